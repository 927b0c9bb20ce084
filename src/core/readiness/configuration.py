"""Checks of what a process is given rather than what it reaches: settings, dependencies, logging, tracing.

These are fixed for the life of a process (a running container passed them at init), so only the CLI
runs them. Settings findings are ✗ when the configuration cannot work or breaks the deployment's safety
net, and ⚠ when it is legal but costly or exposes user data; each rule's docstring says which and why.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.aws import LAMBDA_FUNCTION_NAME_ENV, is_s3_uri
from core.errors import one_line
from core.readiness.base import CheckResult, Context, failure, warning
from core.settings import Settings

XRAY_DAEMON_ENV = "AWS_XRAY_DAEMON_ADDRESS"  # set by Lambda when the function has Tracing: Active
TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
TELEMETRY_ENV = "HAYSTACK_TELEMETRY_ENABLED"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SAMPLE_RATE_WARNING = 0.1


def redis_endpoint(url: str) -> str:
    """``scheme://host:port`` of a Redis URL: never the password a URL may carry."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"


def is_serverless_elasticache(url: str) -> bool:
    """Whether the URL names an ElastiCache Serverless endpoint (``*.serverless.*.cache.amazonaws.com``)."""
    host = urlsplit(url).hostname or ""
    return host.endswith(".cache.amazonaws.com") and ".serverless." in host


# --- configuration ---------------------------------------------------------------------------------


def _summary(s: Settings, context: Context) -> str:
    redis = "unset"
    if s.redis_url:
        redis = redis_endpoint(s.redis_url) + (" (cluster)" if s.redis_cluster else "")
    where = f"on Lambda ({context.environ[LAMBDA_FUNCTION_NAME_ENV]})" if context.on_lambda else "not on Lambda"
    return (
        f"valid; GENERATOR={s.generator}, DOCUMENT_STORE={s.document_store}, "
        f"STORE_SNAPSHOT_URI={s.store_snapshot_uri}, REDIS_URL {redis}, TRACING_BACKEND={s.tracing_backend}, "
        f"LOG_LEVEL={s.log_level}; {where}"
    )


def _log_level(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ ``LOG_LEVEL=DEBUG``: every Haystack component run and Mangum request is logged (cost, noise).

    Legal and useful while debugging, and nothing breaks: a warning.
    """
    if s.log_level != "DEBUG":
        return None
    return warning(
        "configuration.log_level",
        "LOG_LEVEL=DEBUG: Haystack and Mangum log every component run and request (log volume and cost)",
        "LOG_LEVEL=INFO; for a fraction of requests at DEBUG use POWERTOOLS_LOGGER_SAMPLE_RATE",
    )


def _sample_rate(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ a sample rate above 10 %: that many requests log at DEBUG. A cost, not a fault."""
    if s.powertools_logger_sample_rate <= SAMPLE_RATE_WARNING:
        return None
    return warning(
        "configuration.powertools_logger_sample_rate",
        f"POWERTOOLS_LOGGER_SAMPLE_RATE={s.powertools_logger_sample_rate}: that fraction of requests logs at DEBUG",
        "keep it at 0.01-0.1 in production",
    )


def _log_query_text(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ ``LOG_QUERY_TEXT=true``: user queries (possibly personal data) reach the logs in clear.

    A deliberate, documented debugging switch whose data stays in the account's own log group: a
    warning, not a failure; the recommendation says to turn it off again.
    """
    if not s.log_query_text:
        return None
    return warning(
        "configuration.log_query_text",
        "LOG_QUERY_TEXT=true: query text (possibly personal data) is logged in clear",
        "unset LOG_QUERY_TEXT once debugging is done: logs then carry only the query's SHA-256 prefix and length",
    )


def _content_tracing(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ content tracing with a tracing backend: queries, documents and answers go into traces.

    Legal (and sometimes needed to debug a pipeline), but traces are kept for 30 days and readable by
    anyone with trace access: a warning. Without a backend the switch has no effect: no finding.
    """
    if not s.haystack_content_tracing_enabled or s.tracing_backend == "off":
        return None
    return warning(
        "configuration.haystack_content_tracing_enabled",
        f"HAYSTACK_CONTENT_TRACING_ENABLED=true with TRACING_BACKEND={s.tracing_backend}: "
        "queries, documents and answers are recorded in traces",
        "unset HAYSTACK_CONTENT_TRACING_ENABLED outside debugging",
    )


def _results_ttl(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ ``CACHE_TTL_RESULTS_S=0``: no result caching; every request runs its pipeline (latency, cost)."""
    if s.cache_ttl_results_s:
        return None
    return warning(
        "configuration.cache_ttl_results_s",
        "CACHE_TTL_RESULTS_S=0: results are never cached; every request runs its pipeline (and pays the generator)",
        "set CACHE_TTL_RESULTS_S (default 3600) unless every answer must be fresh",
    )


def _redis_transport(s: Settings, context: Context) -> CheckResult | None:
    """The Redis URL's transport and mode.

    ✗ an ElastiCache Serverless endpoint with ``redis://`` or without ``REDIS_CLUSTER``: Serverless is
    TLS-only and cluster-mode-only, so every L2 call would fail. The service would still answer from L1,
    but the configuration can never work: it is a deployment mistake to fix before shipping.
    ⚠ ``redis://`` on Lambda or to a cluster elsewhere: cached answers and the AUTH password cross the
    network in clear (legal on a private network; ElastiCache node-based clusters may run without TLS).
    """
    if not s.redis_url:
        return None
    endpoint = redis_endpoint(s.redis_url)
    plain = s.redis_url.startswith("redis://")
    if is_serverless_elasticache(s.redis_url) and (plain or not s.redis_cluster):
        problems = [p for p, bad in (("redis:// (no TLS)", plain), ("REDIS_CLUSTER off", not s.redis_cluster)) if bad]
        return failure(
            "configuration.redis_url",
            f"{endpoint} is ElastiCache Serverless, which is TLS-only and cluster mode only: "
            f"{' and '.join(problems)} means every L2 call fails",
            "use rediss://<endpoint>:6379 with REDIS_CLUSTER=true (the template's CacheEndpoint output)",
        )
    if plain and (s.redis_cluster or context.on_lambda):
        return warning(
            "configuration.redis_url",
            f"{endpoint} without TLS: cached answers and the AUTH password cross the network in clear",
            "use rediss:// (ElastiCache: in-transit encryption) unless the network is private by design",
        )
    return None


def _redis_ca_file(s: Settings, _context: Context) -> CheckResult | None:
    """``REDIS_TLS_CA_FILE``: ✗ when the file is missing (every TLS handshake fails); ⚠ when unused (``redis://``)."""
    if s.redis_tls_ca_file is None or not s.redis_url:
        return None
    if not Path(s.redis_tls_ca_file).is_file():
        return failure(
            "configuration.redis_tls_ca_file",
            f"REDIS_TLS_CA_FILE={s.redis_tls_ca_file} does not exist: every TLS connection to Redis fails",
            "point it at the CA bundle shipped with the function, or unset it for a public CA (ElastiCache)",
        )
    if s.redis_url.startswith("redis://"):
        return warning(
            "configuration.redis_tls_ca_file",
            "REDIS_TLS_CA_FILE is set but REDIS_URL is redis:// (no TLS): the CA is not used",
            "use rediss:// or unset REDIS_TLS_CA_FILE",
        )
    return None


def _unused_auth_secret(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ ``REDIS_AUTH_SECRET`` without ``REDIS_URL``: ignored; probably a half-removed cache."""
    if not s.redis_auth_secret or s.redis_url:
        return None
    return warning(
        "configuration.redis_auth_secret",
        "REDIS_AUTH_SECRET is set but REDIS_URL is not: there is no L2 cache to authenticate to",
        "set REDIS_URL, or unset REDIS_AUTH_SECRET",
    )


def _openai_key_in_clear(s: Settings, _context: Context) -> CheckResult | None:
    """⚠ an OpenAI API key sent over ``http://`` to another host: the key crosses the network in clear."""
    if s.generator != "openai" or not s.openai_api_key or s.openai_base_url is None:
        return None
    if s.openai_base_url.scheme != "http" or s.openai_base_url.host in LOOPBACK_HOSTS:
        return None
    return warning(
        "configuration.openai_base_url",
        f"OPENAI_API_KEY is sent to {s.openai_base_url} over plain http",
        "use https:// for a remote server",
    )


def _tracing_off_on_lambda(s: Settings, context: Context) -> CheckResult | None:
    """⚠ ``TRACING_BACKEND=off`` on Lambda: only Lambda's own segments, no request or component spans.

    Tracing is a diagnosis aid, not part of serving or of the canary's judgement: a warning.
    """
    if s.tracing_backend != "off" or not context.on_lambda:
        return None
    return warning(
        "configuration.tracing_backend",
        "TRACING_BACKEND=off on Lambda: traces hold no request, pipeline or component spans",
        "TRACING_BACKEND=xray (or otel with the ADOT layer), as the template's TracingBackend parameter sets",
    )


def _metrics(s: Settings, context: Context) -> CheckResult | None:
    """EMF metrics off (``POWERTOOLS_METRICS_DISABLED=true``, or ``POWERTOOLS_DEV`` without it set to false).

    ✗ on Lambda: the canary alarms read ``Errors5xx`` and ``Latency`` of the new version; without data
    they stay OK (``TreatMissingData: notBreaching``) and a broken version is promoted. ⚠ elsewhere.
    """
    if s.metrics_enabled:
        return None
    why = "POWERTOOLS_METRICS_DISABLED=true" if s.powertools_metrics_disabled else "POWERTOOLS_DEV=true mutes them"
    detail = f"no EMF metrics ({why})"
    if context.on_lambda:
        return failure(
            "configuration.powertools_metrics_disabled",
            f"{detail}: the canary alarms see no data and a broken version would be promoted",
            "unset POWERTOOLS_METRICS_DISABLED and POWERTOOLS_DEV on Lambda",
        )
    return warning("configuration.powertools_metrics_disabled", detail, "set POWERTOOLS_METRICS_DISABLED=false")


def _dev_mode_on_lambda(s: Settings, context: Context) -> CheckResult | None:
    """⚠ ``POWERTOOLS_DEV`` on Lambda: indented multi-line JSON, which log queries expect on one line."""
    if not s.powertools_dev or not context.on_lambda:
        return None
    return warning(
        "configuration.powertools_dev",
        "POWERTOOLS_DEV=true on Lambda: log lines are indented JSON over several lines",
        "unset POWERTOOLS_DEV outside `make run`",
    )


def _haystack_telemetry(_s: Settings, context: Context) -> CheckResult | None:
    """⚠ Haystack telemetry on: usage data leaves the process, and import fails where ``~`` is read-only.

    A running process already imported Haystack, so here it is a cost and a privacy matter: a warning.
    """
    if context.environ.get(TELEMETRY_ENV, "").strip().lower() in {"false", "0", "no", "off"}:
        return None
    return warning(
        "configuration.haystack_telemetry_enabled",
        f"{TELEMETRY_ENV} is not False: Haystack sends usage telemetry (and retries it at exit without network)",
        f"set {TELEMETRY_ENV}=False (and HOME=/tmp on Lambda), as the template's Globals do",
    )


def _single_tenant_on_lambda(s: Settings, context: Context) -> CheckResult | None:
    """✗ no ``TENANT_REGISTRY`` on Lambda: every caller would be the one ``default`` tenant, with its data.

    Without a registry the API cannot tell callers apart, so tenant isolation does not exist: critical.
    """
    if s.tenant_registry or not context.on_lambda:
        return None
    return failure(
        "configuration.tenant_registry",
        "TENANT_REGISTRY unset on Lambda: every caller is the single tenant `default` and sees its documents",
        "TENANT_REGISTRY=ssm:/<stack>/tenants (the template's TenantRegistryPrefix) with one record per API key",
    )


def _rate_limit_without_redis(s: Settings, context: Context) -> CheckResult | None:
    """⚠ tenants without ``REDIS_URL``: no shared token bucket, so no per-tenant rate limit in the function.

    API Gateway's usage plans still throttle per API key: a warning, not a failure.
    """
    if not s.tenant_registry or s.redis_url or not context.on_lambda:
        return None
    return warning(
        "configuration.rate_limit",
        "tenants without REDIS_URL: per-tenant rate limits are not enforced (only API Gateway usage plans)",
        "enable the cache (EnableCache=true): the rate limiter shares its Redis",
    )


RISKS: tuple[Callable[[Settings, Context], CheckResult | None], ...] = (
    _single_tenant_on_lambda,
    _rate_limit_without_redis,
    _log_level,
    _sample_rate,
    _log_query_text,
    _content_tracing,
    _results_ttl,
    _redis_transport,
    _redis_ca_file,
    _unused_auth_secret,
    _openai_key_in_clear,
    _tracing_off_on_lambda,
    _metrics,
    _dev_mode_on_lambda,
    _haystack_telemetry,
)


def check_configuration(context: Context) -> list[CheckResult]:
    """✗ invalid settings (the one-line ``SettingsError``); else ✓ with a summary, plus one result per finding."""
    if context.settings is None:
        return [failure("configuration", context.settings_error or "settings not loaded")]
    findings = [finding for rule in RISKS if (finding := rule(context.settings, context)) is not None]
    return [CheckResult("configuration", True, _summary(context.settings, context)), *findings]


# --- dependencies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """A module a feature imports, and the distribution that provides it."""

    module: str
    distribution: str
    find_only: bool = False  # importing it has side effects the service avoids (find_spec only)


BASE = (
    Requirement("haystack", "haystack-ai"),
    Requirement("fastapi", "fastapi"),
    Requirement("mangum", "mangum"),
    Requirement("pydantic_settings", "pydantic-settings"),
    Requirement("yaml", "PyYAML"),
    Requirement("numpy", "numpy"),
    Requirement("bm25s", "bm25s"),
    Requirement("safetensors", "safetensors"),
    Requirement("tokenizers", "tokenizers"),
    Requirement(
        "wordllama", "wordllama", find_only=True
    ),  # its import configures logging: core.components.wordllama avoids it
    Requirement("aws_lambda_powertools", "aws-lambda-powertools"),
)
BOTO3 = Requirement("boto3", "boto3")
FEATURES: dict[str, tuple[Requirement, ...]] = {
    "REDIS_URL": (Requirement("redis", "redis"),),
    "s3 snapshot": (BOTO3,),
    "REDIS_AUTH_SECRET": (BOTO3, Requirement("aws_lambda_powertools.utilities.parameters", "aws-lambda-powertools")),
    "GENERATOR=bedrock": (
        Requirement("haystack_integrations.components.generators.amazon_bedrock", "amazon-bedrock-haystack"),
        BOTO3,
    ),
    "GENERATOR=openai": (Requirement("openai", "openai"), Requirement("httpx", "httpx")),
    "TRACING_BACKEND=xray": (Requirement("aws_xray_sdk", "aws-xray-sdk"),),
    "TRACING_BACKEND=otel": (
        Requirement("haystack_integrations.tracing.opentelemetry", "opentelemetry-haystack"),
        Requirement("opentelemetry.trace", "opentelemetry-api"),
    ),
}


def enabled_features(context: Context) -> list[str]:
    """The features whose dependencies are needed; read from the raw environment when settings are invalid."""
    if context.settings is not None:
        s = context.settings
        values = {
            "redis_url": s.redis_url or "",
            "redis_auth_secret": s.redis_auth_secret or "",
            "store_snapshot_uri": s.store_snapshot_uri,
            "generator": s.generator,
            "tracing_backend": s.tracing_backend,
        }
    else:  # best effort: the same variables, unvalidated (pydantic-settings matches names case-insensitively)
        env: Mapping[str, str] = {k.lower(): v for k, v in context.environ.items()}
        values = {name: env.get(name, "").strip() for name in ("redis_url", "redis_auth_secret", "store_snapshot_uri")}
        values |= {name: env.get(name, "").strip().lower() for name in ("generator", "tracing_backend")}
    features = []
    if values["redis_url"]:
        features.append("REDIS_URL")
        if values["redis_auth_secret"]:
            features.append("REDIS_AUTH_SECRET")
    if is_s3_uri(values["store_snapshot_uri"]):
        features.append("s3 snapshot")
    if values["generator"] in {"bedrock", "openai"}:
        features.append(f"GENERATOR={values['generator']}")
    if values["tracing_backend"] in {"xray", "otel"}:
        features.append(f"TRACING_BACKEND={values['tracing_backend']}")
    return features


def _importable(requirement: Requirement) -> str | None:
    """``None`` when the module imports (or, for ``find_only``, is found); else why not."""
    try:
        if requirement.find_only:
            return None if importlib.util.find_spec(requirement.module) else "not found"
        importlib.import_module(requirement.module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken native extension (OSError, …)
        return one_line(exc)
    return None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _layer_architecture() -> str | None:
    """``None`` when every bundled layer was built for this CPU (``core.runtime.boot``'s check); else its message."""
    try:
        from core.runtime.boot import check_layer_architecture  # noqa: PLC0415 - core.runtime.boot runs the check at import

        check_layer_architecture()
    except SystemExit as exc:
        return str(exc.code)
    return None


def check_dependencies(context: Context) -> CheckResult:
    """Every module of the base service and of the enabled features imports (a real import, not a lookup).

    Importing catches what a lookup does not: a wheel built for another CPU, a missing shared library.
    Critical: the function's init would fail on the same import.
    """
    features = enabled_features(context)
    needed = [("base", r) for r in BASE] + [(f, r) for f in features for r in FEATURES[f]]
    missing = [(feature, r, why) for feature, r in needed if (why := _importable(r)) is not None]
    arch = _layer_architecture()
    if missing or arch:
        problems = [f"{r.module} ({r.distribution}, for {feature}): {why}" for feature, r, why in missing]
        advice = []
        if missing:
            packages = ", ".join(sorted({r.distribution for _, r, _ in missing}))
            advice.append(f"install {packages} (pinned in layers/deps/requirements.txt) and rebuild the layer")
        if arch:
            problems.append(arch)
            advice.append("rebuild the layer for this architecture (make build)")
        return failure("dependencies", "; ".join(problems), "; ".join(advice))
    base = f"haystack-ai {_version('haystack-ai')} and {len(BASE) - 1} more base packages"
    detail = f"{len(needed)} modules import: {base}"
    for feature in features:
        versions = ", ".join(f"{r.distribution} {_version(r.distribution)}" for r in FEATURES[feature])
        detail += f"; {feature}: {versions}"
    return CheckResult("dependencies", True, detail)


# --- logging -----------------------------------------------------------------------------------------


def check_logging(context: Context) -> CheckResult | None:
    """The root logger writes Powertools JSON at ``LOG_LEVEL``, as ``core.runtime.boot`` configures it at init.

    Not critical: without it the service answers correctly, but its lines are plain text that the
    saved Logs Insights queries and the dashboard's audit widget cannot read.
    """
    if context.settings is None:
        return None
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter  # noqa: PLC0415

    settings = context.settings
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h.formatter, LambdaPowertoolsFormatter)]
    if not handlers:
        kinds = ", ".join(type(h).__name__ for h in root.handlers) or "none"
        return failure("logging", f"the root logger has no Powertools JSON handler (handlers: {kinds})")
    level = logging.getLevelName(root.level)
    if level != settings.log_level:
        return failure("logging", f"the root logger is at {level}, LOG_LEVEL says {settings.log_level}")
    probe = logging.LogRecord("core.readiness", logging.INFO, __file__, 0, "readiness probe", None, None)
    try:
        line = json.loads(handlers[0].format(probe))
    except ValueError as exc:
        return failure("logging", f"the Powertools handler does not write JSON: {one_line(exc)}")
    if line.get("service") != settings.powertools_service_name or line.get("level") != "INFO":
        return failure("logging", f"a probe line lacks the service or level keys: {sorted(line)}")
    return CheckResult(
        "logging",
        True,
        f"Powertools JSON on the root logger at {level}, service {line['service']}"
        + (" (indented: POWERTOOLS_DEV)" if settings.powertools_dev else ""),
    )


# --- tracing -----------------------------------------------------------------------------------------


def check_tracing(context: Context) -> CheckResult | None:
    """The tracing backend can deliver spans here.

    ``otel``: ✗ without a configured tracer provider (init stops with ``TracingError``). ``xray``: ⚠ on
    Lambda without the X-Ray daemon address (``Tracing: Active`` off) or with the tracer disabled; off
    Lambda Powertools disables the tracer by design, which is fine.
    """
    settings = context.settings
    if settings is None or settings.tracing_backend == "off":
        return None
    if settings.tracing_backend == "otel":
        from opentelemetry import trace  # noqa: PLC0415 - only for this backend

        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return failure(
                "tracing",
                "TRACING_BACKEND=otel but no OpenTelemetry tracer provider is configured: init stops",
                "add the ADOT Lambda layer (AdotLayerArn, AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument), "
                "or set TRACING_BACKEND=xray|off",
            )
        return CheckResult("tracing", True, f"otel: spans go to the configured {type(provider).__name__}")
    disabled = context.environ.get(TRACE_DISABLED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    if context.on_lambda and disabled:
        return warning(
            "tracing", f"TRACING_BACKEND=xray but {TRACE_DISABLED_ENV} is set: no spans", f"unset {TRACE_DISABLED_ENV}"
        )
    if context.on_lambda and not context.environ.get(XRAY_DAEMON_ENV):
        return warning(
            "tracing",
            f"TRACING_BACKEND=xray but {XRAY_DAEMON_ENV} is unset: the function has no active tracing",
            "set Tracing: Active on the function (the template's Globals do)",
        )
    if not context.on_lambda:
        return CheckResult("tracing", True, "xray: X-Ray SDK present; Powertools sends segments only on Lambda")
    return CheckResult("tracing", True, f"xray: segments to the daemon at {context.environ[XRAY_DAEMON_ENV]}")
