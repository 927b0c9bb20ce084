"""Checks of what the process holds and reaches: init, the S3 snapshot, store, pipelines, Redis, generator.

Each one really looks at the thing it names, with a bound: S3 and the generator's server within
``READINESS_TIMEOUT_S`` (no retries), Redis within its own timeouts, through the circuit breaker. When
init failed (CLI only), the checks that do not need the runtime build what they need from settings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from core.aws import error_code, is_s3_uri, split_s3
from core.errors import one_line
from core.readiness.base import CheckResult, Context, failure
from core.readiness.configuration import redis_endpoint
from core.settings import Settings

# --- init (CLI only) -------------------------------------------------------------------------------

_INIT_ADVICE = {
    "SnapshotError": "build the snapshot (make index) or fix STORE_SNAPSHOT_URI; see the snapshot check",
    "PipelineLoadError": "fix the pipeline YAML named in the message (PIPELINES_DIR)",
    "TracingError": "see the tracing check",
    "StoreUnavailableError": "start the database or fix PG_CONN_STR/PG_CONN_SECRET and the network path to it "
    "(security groups, VPC)",
    "StoreError": "fix the PG_* setting or the table named in the message",
}


def check_init(context: Context) -> CheckResult | None:
    """The runtime builds as Lambda init builds it (store, generator, pipelines, cache, telemetry).

    A failure is reported on one line (not a traceback); the store and pipeline checks then cannot run.
    """
    if context.settings is None:
        return None
    if context.init_error is not None:
        kind = type(context.init_error).__name__
        return failure(
            "init",
            f"{one_line(context.init_error)} (store and pipelines not checked)",
            _INIT_ADVICE.get(kind, "fix the cause above: Lambda init would stop the same way"),
        )
    if context.runtime is None:
        return None
    timings = context.runtime.init_timings_ms
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.0f}" for k, v in timings.items())
    return CheckResult("init", True, f"runtime built in {sum(timings.values()):.0f} ms ({stages})")


# --- the S3 snapshot -------------------------------------------------------------------------------


def _bounded_config(timeout_s: float) -> Any:
    from botocore.config import Config  # noqa: PLC0415 - boto3 only for the features that need it

    return Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"total_max_attempts": 1})


def check_snapshot(context: Context) -> CheckResult | None:
    """The S3 snapshot the store loads at init is there (``HeadObject``: size, ETag, modification time).

    Critical: a container that starts while it is missing fails its init. Only for ``s3://`` URIs (a
    local snapshot ships inside the read-only package; ``init`` and ``store`` cover it).
    """
    settings = context.settings
    if settings is None or settings.document_store != "memory" or not is_s3_uri(settings.store_snapshot_uri):
        return None
    uri = settings.store_snapshot_uri
    bucket, key = split_s3(uri)
    try:
        import boto3  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    except ImportError as exc:
        return failure("snapshot", f"{uri}: boto3 is not installed ({one_line(exc)})", "install boto3")
    client = boto3.session.Session().client("s3", config=_bounded_config(settings.readiness_timeout_s))
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = error_code(exc) or "error"
        if code in {"404", "NoSuchKey", "NotFound"}:
            return failure(
                "snapshot",
                f"{uri}: not found",
                "upload the snapshot (python -m core.corpus --output s3://...) or fix STORE_SNAPSHOT_URI",
            )
        if code in {"403", "AccessDenied", "Forbidden"}:
            return failure(
                "snapshot", f"{uri}: access denied", "allow s3:GetObject on the object to the function's role"
            )
        return failure("snapshot", f"{uri}: {code}: {one_line(exc)}")
    except BotoCoreError as exc:
        return failure(
            "snapshot",
            f"{uri}: S3 unreachable within {settings.readiness_timeout_s:g} s ({one_line(exc)})",
            "give the function a route to S3 (a VPC gateway endpoint or NAT) and credentials",
        )
    size_mb = head.get("ContentLength", 0) / 1_000_000
    modified = head.get("LastModified")
    when = f", modified {modified:%Y-%m-%dT%H:%M:%SZ}" if modified else ""
    return CheckResult("snapshot", True, f"{uri}: {size_mb:.1f} MB, ETag {head.get('ETag', '?')}{when}")


# --- the runtime: pipelines and store --------------------------------------------------------------


def check_pipelines(context: Context) -> CheckResult | None:
    """Every pipeline loaded; those unavailable only by design (an unconfigured generator) are fine."""
    runtime = context.runtime
    if runtime is None:
        return None
    failed = {name: p.unavailable for name, p in runtime.pipelines.items() if not p.available and not p.by_design}
    if failed:
        return failure("pipelines", "; ".join(f"{n}: {why}" for n, why in failed.items()))
    ready = [name for name, p in runtime.pipelines.items() if p.available]
    return CheckResult("pipelines", True, f"{len(ready)} runnable: {', '.join(ready)}")


def check_store(context: Context) -> CheckResult | None:
    """The store answers a count and a one-document read through its dense index (about a millisecond)."""
    runtime = context.runtime
    if runtime is None:
        return None
    store, dim = runtime.store.store, int(runtime.store.manifest.get("embedding_dim") or 0)
    try:
        count = store.count_documents()
        # Any unit vector ranks every document: the read returns one whenever the store holds any.
        sample = store.embedding_retrieval(query_embedding=[1.0] + [0.0] * (dim - 1), top_k=1) if count else []
    except Exception as exc:  # noqa: BLE001 - any failure to read is "not ready"
        advice = _INIT_ADVICE["StoreUnavailableError"] if runtime.settings.document_store == "pgvector" else None
        return failure("store", f"unreadable: {type(exc).__name__}", advice)
    if count == 0 or not sample:
        pgvector = runtime.settings.document_store == "pgvector"
        advice = (
            "index documents (the indexer, or python -m core.store.recovery restore --from ...)" if pgvector else None
        )
        return failure("store", "empty: no documents to search", advice)
    return CheckResult("store", True, f"{count} documents from {runtime.store.source}")


# --- the cache -------------------------------------------------------------------------------------


def check_cache(context: Context) -> CheckResult | None:
    """The cache's state; L2 is pinged (through the breaker, bounded by the Redis timeouts) when configured.

    Not critical: without L2 the service answers from L1 and the pipelines, so a Redis that does not
    answer is a ⚠. Without a runtime (CLI, init failed) a cache is built from settings to ping Redis.
    """
    if context.runtime is not None:
        cache = context.runtime.cache
    elif context.settings is not None:
        from core.cache.build import build_cache  # noqa: PLC0415

        cache = build_cache(context.settings)
    else:
        return None
    ping = cache.ping()
    state = cache.state()
    healthy = True
    if cache.l2 is None:
        l2 = f"L2 {state['l2']}" + (f" ({cache.problem})" if cache.problem else "")
        healthy = cache.problem is None
    elif ping is None:
        l2, healthy = "L2 breaker open: skipped until the cool-down ends", False
    else:
        l2 = "L2 ok" if ping else f"L2 degraded: ping failed ({cache.stats.last_l2_error})"
        healthy = bool(ping)
    if cache.l2 is not None and context.settings is not None and context.settings.redis_url:
        l2 += f" at {redis_endpoint(context.settings.redis_url)}"
    return CheckResult(
        "cache",
        healthy,
        f"{l2}; L1 {state['l1_entries']} entries; hits L1 {state['hits_l1']}, L2 {state['hits_l2']}, "
        f"misses {state['misses']}, L2 errors {state['l2_errors']}",
    )


def _read_secret(reference: str, timeout_s: float) -> object:
    """Read ``secretsmanager:<id>`` / ``ssm:<name>`` through Powertools Parameters, bounded, never cached."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - only when configured

    store, _, name = reference.partition(":")
    config = _bounded_config(timeout_s)
    if store == "secretsmanager":
        return parameters.SecretsProvider(boto_config=config).get(name, force_fetch=True)
    return parameters.SSMProvider(boto_config=config).get(name, decrypt=True, force_fetch=True)


def check_redis_auth(context: Context) -> CheckResult | None:
    """``REDIS_AUTH_SECRET`` resolves to a password (plain, or JSON with ``password``).

    Not critical, like the cache it serves: without it L2 is unavailable and the service runs on L1.
    CLI only: a running container read it at init, and ``/ready`` shows the outcome in ``cache``.
    """
    settings = context.settings
    if settings is None or not settings.redis_auth_secret or not settings.redis_url:
        return None
    reference = settings.redis_auth_secret
    try:
        raw = _read_secret(reference, settings.readiness_timeout_s)
    except Exception as exc:  # noqa: BLE001 - GetParameterError, a botocore error, a missing boto3
        return failure(
            "redis_auth",
            f"{reference}: cannot be read ({one_line(exc)})",
            "create the secret or parameter, and allow the function's role to read it "
            "(secretsmanager:GetSecretValue / ssm:GetParameter with kms:Decrypt)",
        )
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        if not data.get("password"):
            return failure("redis_auth", f"{reference}: JSON without a password key", 'store {"password": "..."}')
        user = f"user {data['username']}" if data.get("username") else "no username"
        return CheckResult("redis_auth", True, f"{reference}: JSON password ({user})")
    if not text:
        return failure("redis_auth", f"{reference}: empty", "store the AUTH password in it")
    return CheckResult("redis_auth", True, f"{reference}: plain password ({len(text)} characters)")


# --- the generator ---------------------------------------------------------------------------------


def _bedrock_session(context: Context) -> CheckResult:
    """Bedrock without a built client (CLI, init failed): do boto3's credentials and region resolve?"""
    import boto3  # noqa: PLC0415

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None or not session.region_name:
        return failure("generator", "no AWS credentials or region for Bedrock")
    return CheckResult(
        "generator",
        True,
        f"bedrock {context.settings.bedrock_model_id} in {session.region_name} ({credentials.method} credentials)",
    )


_GENERATOR_ADVICE = {
    "bedrock": "give the function an execution role and a region (locally: AWS_PROFILE or keys, AWS_REGION); "
    "enable model access for BEDROCK_MODEL_ID",
    "openai": "start the OpenAI-compatible server or fix OPENAI_BASE_URL (GET {base}/models must answer)",
}


def check_generator_reachable(context: Context) -> CheckResult | None:
    """The configured generator can be reached (``check_generator`` below); ``None`` for ``none``.

    Critical: ``rag`` and ``/query`` would answer 502 on every request.
    """
    settings = context.settings
    if settings is None or settings.generator == "none":
        return None
    if context.runtime is not None or settings.generator == "openai":
        backend = context.runtime.chat_generator if context.runtime is not None else None
        result = check_generator(settings, backend)
    else:
        result = _bedrock_session(context)
    if result is not None and not result.ok:
        result = replace(result, recommendation=_GENERATOR_ADVICE[settings.generator])
    return result


def check_generator(settings: Settings, backend: Any | None) -> CheckResult | None:
    """Whether the configured generator can be reached; ``None`` when none is configured.

    OpenAI-compatible servers: ``GET {base}/models`` answers. Bedrock: credentials and a region
    resolve (a model call would cost money on every probe).
    """
    if settings.generator == "none":
        return None
    if settings.generator == "openai":
        import httpx  # noqa: PLC0415

        url = str(settings.openai_base_url).rstrip("/") + "/models"
        headers = {}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
        try:
            response = httpx.get(url, timeout=settings.readiness_timeout_s, headers=headers)
        except httpx.HTTPError as exc:
            return CheckResult("generator", False, f"{settings.openai_base_url} unreachable: {type(exc).__name__}")
        if response.status_code >= 400:
            return CheckResult("generator", False, f"{url} answered {response.status_code}")
        return CheckResult("generator", True, f"openai-compatible server at {settings.openai_base_url}")
    client = getattr(backend, "client", None)
    if client is None:
        return CheckResult("generator", False, "Bedrock client not created (warm-up failed)")
    credentials = client._request_signer._credentials  # noqa: SLF001 - boto3 exposes no public accessor
    if credentials is None or not client.meta.region_name:
        return CheckResult("generator", False, "no AWS credentials or region for Bedrock")
    return CheckResult("generator", True, f"bedrock {settings.bedrock_model_id} in {client.meta.region_name}")
