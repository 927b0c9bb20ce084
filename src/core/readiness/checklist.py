"""The readiness checklist: one list of checks, and the two ways to run it.

``GET /ready`` (and the CodeDeploy PreTraffic hook, which invokes the new version with that request)
runs the entries marked ``on_ready`` against the live runtime: facts that can change while a container
lives, each bounded by a timeout, so the answer stays fast and changes nothing. ``python -m
core.readiness`` does what Lambda init does (``prepare``) and runs every entry, including those fixed
for the life of a process (settings, dependencies, logging, tracing, init), which a running container
has passed already.

Example:
    >>> [r.name for r in run_checks(runtime)]       # GET /ready
    ['pipelines', 'store', 'cache']
    >>> results = run_checklist(prepare())          # the CLI's report
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, TYPE_CHECKING

from core.readiness.base import Check, CheckResult, Context, evaluate
from core.readiness.configuration import check_configuration, check_dependencies, check_logging, check_tracing
from core.readiness.connectivity import (
    check_cache,
    check_generator_reachable,
    check_init,
    check_pipelines,
    check_redis_auth,
    check_snapshot,
    check_store,
)

if TYPE_CHECKING:
    from core.runtime.container import Runtime

CHECKS: tuple[Check, ...] = (
    Check(
        "configuration",
        check_configuration,
        critical=True,
        recommendation="fix the variables named; the README's settings table lists every one",
    ),
    Check(
        "dependencies",
        check_dependencies,
        critical=True,
        recommendation="install the packages named (layers/deps/requirements.txt) and rebuild the layer",
    ),
    Check(
        "logging",
        check_logging,
        critical=False,
        recommendation="call core.observability.logs.configure_logging(settings) at init, as core.runtime.boot does",
    ),
    Check("tracing", check_tracing, critical=True, recommendation="fix TRACING_BACKEND or what it needs"),
    Check("init", check_init, critical=True, recommendation="fix the cause named: Lambda init would stop the same way"),
    Check(
        "snapshot",
        check_snapshot,
        critical=True,
        recommendation="make the snapshot readable at STORE_SNAPSHOT_URI",
        on_ready=True,
    ),
    Check(
        "pipelines",
        check_pipelines,
        critical=True,
        recommendation="fix the pipeline named (GET /pipelines shows why it is unavailable)",
        on_ready=True,
    ),
    Check(
        "store",
        check_store,
        critical=True,
        recommendation="index documents into the snapshot (make index) and redeploy",
        on_ready=True,
    ),
    Check(
        "cache",
        check_cache,
        critical=False,
        recommendation="check REDIS_URL (rediss:// for ElastiCache), the security groups between the function "
        "and the cache, and REDIS_AUTH_SECRET; meanwhile the service answers from L1",
        on_ready=True,
    ),
    Check(
        "redis_auth",
        check_redis_auth,
        critical=False,
        recommendation="make REDIS_AUTH_SECRET readable by the function",
    ),
    Check(
        "generator",
        check_generator_reachable,
        critical=True,
        recommendation="make the generator reachable (credentials, region, server)",
        on_ready=True,
    ),
)


def run_checks(runtime: Runtime) -> list[CheckResult]:
    """The checks of ``GET /ready``, for the configured features, against ``runtime``."""
    context = Context(settings=runtime.settings, runtime=runtime)
    return evaluate(context, tuple(c for c in CHECKS if c.on_ready))


def prepare(environ: Mapping[str, str] | None = None, *, log_stream: IO[str] | None = None) -> Context:
    """Do what Lambda init does (``core.runtime.boot``), catching each failure: settings → logging → runtime.

    Args:
        environ: Platform variables the checks read (default: ``os.environ``). Settings always come
            from the process environment, as in Lambda.
        log_stream: Where the configured logging writes (the CLI passes stderr: stdout is the report).
    """
    from core.observability.logs import configure_logging  # noqa: PLC0415 - heavy: the CLI only
    from core.runtime.container import build_runtime  # noqa: PLC0415
    from core.settings import SettingsError, load_settings  # noqa: PLC0415

    context = Context(settings=None) if environ is None else Context(settings=None, environ=environ)
    try:
        context.settings = load_settings()
    except SettingsError as exc:
        context.settings_error = str(exc)
        return context
    configure_logging(context.settings, stream=log_stream)
    try:
        context.runtime = build_runtime(context.settings)
    except Exception as exc:  # noqa: BLE001 - SnapshotError, PipelineLoadError, TracingError, or anything else
        context.init_error = exc
    return context


def run_checklist(context: Context) -> list[CheckResult]:
    """Every check of the checklist, for the enabled features (the CLI's report)."""
    return evaluate(context, CHECKS)


__all__ = ["CHECKS", "prepare", "run_checklist", "run_checks"]
