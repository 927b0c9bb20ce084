"""Container init for the Lambda handlers: the clock, settings, runtime, and one structured init line.

``handlers/api.py`` imports ``STARTED`` before anything heavy, so ``imports_ms`` covers the imports
of the app (Lambda's own "Init Duration" also covers the interpreter start).

Example:
    from core.runtime.boot import STARTED  # first import of the handler
    ...
    runtime = boot(STARTED)
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402 - after the clock starts, on purpose
import platform  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

_MACHINES = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}


def check_layer_architecture(paths: list[str] | None = None, machine: str | None = None) -> None:
    """Stop with one line when a layer was built for another CPU than this one.

    ``scripts/package.py`` writes ``haystack_serverless_layer*.json`` (with ``arch``) into each layer;
    without this check, a layer of arm64 wheels on an x86_64 function fails deep inside numpy's import.

    Raises:
        SystemExit: A layer's ``arch`` differs from this machine's.
    """
    here = _MACHINES.get((machine or platform.machine()).lower())
    for entry in paths if paths is not None else sys.path:
        for marker in Path(entry or ".").glob("haystack_serverless_layer*.json"):
            built_for = json.loads(marker.read_text()).get("arch")
            if here and built_for and built_for != here:
                raise SystemExit(
                    f"init failed: {marker} says this layer was built for {built_for}, but the function runs on "
                    f"{here}: rebuild with ARCH={here} (make build reads Architecture from samconfig.toml)"
                )


check_layer_architecture()  # before numpy and the tokenizers load

import logging  # noqa: E402

from core.observability.logs import configure_logging  # noqa: E402
from core.observability.tracing import TracingError  # noqa: E402
from core.pipelines.loader import PipelineLoadError  # noqa: E402
from core.runtime.container import Runtime, build_runtime  # noqa: E402
from core.settings import SettingsError, load_settings  # noqa: E402
from core.store.base import StoreError  # noqa: E402
from core.store.snapshot import SnapshotError  # noqa: E402

logger = logging.getLogger("core.init")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def boot(started: float = STARTED) -> Runtime:
    """Build the runtime from the environment and log the init timings once, as one JSON line.

    Logging is configured first (Powertools JSON for every logger), so init's own lines are JSON too.

    Raises:
        SystemExit: With one line (``init failed: …``) for a bad setting, snapshot, pipeline or tracing
            backend, or an unreachable pgvector database, so a broken release fails its init instead of
            answering traffic.
    """
    imports_ms = _ms(started)
    try:
        stage = time.perf_counter()
        settings = load_settings()
        settings_ms = _ms(stage)
        powertools_logger = configure_logging(settings)
        runtime = build_runtime(settings)
    except (SettingsError, SnapshotError, StoreError, PipelineLoadError, TracingError) as exc:
        raise SystemExit(f"init failed: {exc}") from None
    runtime.telemetry.logger = powertools_logger
    runtime.init_timings_ms = {
        "imports_ms": imports_ms,
        "settings_ms": settings_ms,
        **runtime.init_timings_ms,
        "total_ms": _ms(started),
    }
    logger.info(
        "init",
        extra={
            "timings_ms": runtime.init_timings_ms,
            "documents": runtime.store.store.count_documents(),
            "snapshot": runtime.store.source,
            "pipelines": {n: ("ready" if p.available else p.unavailable) for n, p in runtime.pipelines.items()},
            "tracing": runtime.telemetry.tracing.backend,
            "version": runtime.telemetry.metrics.version,
        },
    )
    return runtime
