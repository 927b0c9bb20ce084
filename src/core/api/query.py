"""The query flow between the routes and the pipelines: choose, run, map failures to API errors."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from haystack.core.errors import PipelineRuntimeError
from haystack.errors import FilterError

from core.api.schemas import QueryRequest
from core.cache.keys import result_key
from core.cache.tiered import HIT_L1, HIT_L2
from core.components.generators import GeneratorError, GeneratorNotConfiguredError
from core.errors import ApiError, cause_chain
from core.names import DEFAULT_TENANT
from core.observability.context import current_request
from core.pipelines.loader import ServedPipeline, to_haystack
from core.runtime.container import Runtime
from core.security.access import FILTERS_INPUT, Access, authorize
from core.store.base import store_unavailable

logger = logging.getLogger("core.api.query")


def get_pipeline(runtime: Runtime, name: str) -> ServedPipeline:
    """The named pipeline, ready to run.

    Raises:
        ApiError: 404 when no such pipeline is loaded, 503 when it cannot run.
    """
    served = runtime.pipelines.get(name)
    if served is None:
        raise ApiError(404, "not_found", f"no pipeline named {name!r}; GET /pipelines lists them")
    if not served.available:
        raise ApiError(503, "pipeline_unavailable", f"pipeline {name!r} is unavailable: {served.unavailable}")
    return served


def run_pipeline(served: ServedPipeline, values: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Run and time a pipeline.

    Returns:
        The public outputs and the elapsed milliseconds.

    Raises:
        ApiError: 400 for a filter the store rejects, 502 when the generator fails, 503 when it is
        not configured or the store's database does not answer. Anything else propagates (logged,
        answered as a 500).
    """
    started = time.perf_counter()
    try:
        outputs = served.run(values)
    except PipelineRuntimeError as exc:
        for cause in cause_chain(exc):
            if isinstance(cause, FilterError):
                raise ApiError(400, "invalid_filters", f"filters rejected: {cause}") from None
            if isinstance(cause, GeneratorNotConfiguredError):
                raise ApiError(503, "pipeline_unavailable", str(cause)) from None
            if store_unavailable(cause):
                logger.warning("store unavailable in %s: %s", served.name, cause)
                raise ApiError(503, "store_unavailable", "the document store did not answer; retry later") from None
            if isinstance(cause, GeneratorError):
                logger.warning("generator failed in %s: %s", served.name, cause.__cause__ or cause)
                raise ApiError(502, "generator_error", "the chat generator failed to answer") from None
        raise
    return outputs, round((time.perf_counter() - started) * 1000, 2)


@dataclass(frozen=True)
class CacheControl:
    """What the caller's ``Cache-Control`` asks: ``no-cache`` skips reads, ``no-store`` also writes."""

    read: bool = True
    write: bool = True

    @classmethod
    def from_header(cls, value: str | None) -> CacheControl:
        """Parse a ``Cache-Control`` request header."""
        directives = {d.strip().lower() for d in (value or "").split(",")}
        no_store = "no-store" in directives
        return cls(read="no-cache" not in directives and not no_store, write=not no_store)


@dataclass(frozen=True)
class Served:
    """A pipeline's public outputs and how they were served."""

    outputs: dict[str, Any]
    cache: str  # HIT-L1, HIT-L2, MISS or BYPASS
    elapsed_ms: float

    @property
    def cached(self) -> bool:
        """Whether a cache answered."""
        return self.cache in (HIT_L1, HIT_L2)


def run_cached(
    runtime: Runtime,
    served: ServedPipeline,
    values: dict[str, Any],
    *,
    tenant: str = DEFAULT_TENANT,
    control: CacheControl = CacheControl(),
) -> Served:
    """Run a pipeline through the cache (L1 → L2 → pipeline), keyed by tenant, pipeline version and inputs.

    The request's record (``core.observability``) learns the pipeline, tenant, query fingerprint, how
    the cache served it and the cache's L2 failures; a pipeline that ran writes its own metrics.
    """
    started = time.perf_counter()
    record = current_request()
    if record is not None:
        record.pipeline, record.pipeline_version, record.tenant = served.name, served.version, tenant
        record.query = runtime.telemetry.query_facts(values.get("query"))
    runtime.refresh_store()  # a newer snapshot, if one is due and exists, answers this request already
    stats = runtime.cache.stats
    l2_failures = stats.l2_errors + stats.l2_skipped
    key = result_key(
        runtime.settings.cache_namespace,
        kind="results",
        tenant=tenant,
        pipeline=served.name,
        version=served.version + runtime.store_generation,  # entries of another snapshot never answer
        inputs={k: v for k, v in values.items() if v is not None},
    )

    computed: dict[str, Any] = {}

    def compute() -> bytes:
        computed["outputs"], elapsed_ms = run_pipeline(served, values)
        if record is not None:
            record.pipeline_ms = elapsed_ms
            runtime.telemetry.pipeline_ran(record)
        return json.dumps(computed["outputs"], separators=(",", ":"), ensure_ascii=False).encode()

    value, status = runtime.cache.get_or_compute(
        key, runtime.settings.cache_ttl_results_s, compute, bypass=not control.read, store=control.write
    )
    if record is not None:
        record.cache, record.cache_errors = status, stats.l2_errors + stats.l2_skipped - l2_failures
    # A computed result is used as is; only a cached one is decoded.
    outputs = computed["outputs"] if "outputs" in computed else json.loads(value)
    return Served(outputs, status, round((time.perf_counter() - started) * 1000, 2))


def query_pipeline_name(runtime: Runtime) -> str:
    """``rag`` when a generator is configured, else ``search``."""
    return "search" if runtime.settings.generator == "none" else "rag"


def admit(runtime: Runtime, event: dict | None, served: ServedPipeline, values: dict[str, Any]) -> Access:
    """The access checks of ``core.security.access`` for one run; forces the tenant filter into ``values``.

    Raises:
        ApiError: 401/403/429/503 from the checks, 422 for filters that break the policy.
    """
    readers = store_readers(served)
    filtered = {component for component, _ in served.inputs.get(FILTERS_INPUT, [])}
    access = authorize(runtime.security, event, served.name, scopable=readers <= filtered)
    if readers:  # a pipeline that reads no store has no tenant data to scope
        values[FILTERS_INPUT] = access.scope(to_haystack(values.get(FILTERS_INPUT)))
    return access


def store_readers(served: ServedPipeline) -> set[str]:
    """The components that read the document store: each must take the request's (scoped) filters."""
    return {
        name for name, component in served.pipeline.walk() if getattr(component, "document_store", None) is not None
    }


def answer_query(
    runtime: Runtime,
    request: QueryRequest,
    *,
    event: dict | None = None,
    control: CacheControl = CacheControl(),
) -> tuple[dict[str, Any], str, dict[str, str]]:
    """Run ``POST /query`` for the caller of ``event`` (its API Gateway event; ``None`` locally).

    Returns:
        The response body (``QueryResponse``'s shape), how the cache served it, and the rate-limit headers.
    """
    if len(request.text) > runtime.settings.max_query_chars:
        raise ApiError(
            422, "validation_error", f"text: at most {runtime.settings.max_query_chars} characters are accepted"
        )
    name = query_pipeline_name(runtime)
    served = runtime.pipelines.get(name)
    if served is None:
        raise ApiError(404, "not_found", f"no pipeline named {name!r}; GET /pipelines lists them")
    values = {
        "query": request.text,
        "top_k": request.top_k or runtime.settings.default_top_k,
        "filters": request.filters,
    }
    values = {k: v for k, v in values.items() if k in served.inputs}
    access = admit(runtime, event, served, values)  # the caller's rights first, then the pipeline's state
    served = get_pipeline(runtime, name)
    result = run_cached(runtime, served, values, tenant=access.tenant, control=control)
    replies = result.outputs.get("replies") or []
    body = {
        "query": request.text,
        "answer": replies[0].get("text") if replies else None,
        "documents": result.outputs.get("documents") or [],
        "pipeline": name,
        "cached": result.cached,
        "execution_time_ms": result.elapsed_ms,
    }
    return body, result.cache, access.headers
