"""Readiness checks behind ``GET /ready``: each one really looks at the thing it names."""

from __future__ import annotations

from core.generators import CheckResult, check_generator
from core.runtime import Runtime


def check_pipelines(runtime: Runtime) -> CheckResult:
    """Every pipeline loaded; those unavailable only by design (an unconfigured generator) are fine."""
    failed = {name: p.unavailable for name, p in runtime.pipelines.items() if not p.available and not p.by_design}
    if failed:
        return CheckResult("pipelines", False, "; ".join(f"{n}: {why}" for n, why in failed.items()))
    ready = [name for name, p in runtime.pipelines.items() if p.available]
    return CheckResult("pipelines", True, f"{len(ready)} runnable: {', '.join(ready)}")


def check_store(runtime: Runtime) -> CheckResult:
    """The store answers a count and a one-document read through its dense index (about a millisecond)."""
    store, dim = runtime.store.store, int(runtime.store.manifest.get("embedding_dim") or 0)
    try:
        count = store.count_documents()
        # Any unit vector ranks every document: the read returns one whenever the store holds any.
        sample = store.embedding_retrieval(query_embedding=[1.0] + [0.0] * (dim - 1), top_k=1) if count else []
    except Exception as exc:  # noqa: BLE001 - any failure to read is "not ready"
        return CheckResult("store", False, f"unreadable: {type(exc).__name__}")
    if count == 0 or not sample:
        return CheckResult("store", False, "empty: no documents to search")
    return CheckResult("store", True, f"{count} documents from {runtime.store.source}")


def check_cache(runtime: Runtime) -> CheckResult:
    """The cache's state; always ``ok``: without L2 the service answers from L1 and the pipelines.

    L2 is pinged (through the breaker, bounded by the Redis timeouts) when it is configured.
    """
    cache = runtime.cache
    ping = cache.ping()
    state = cache.state()
    if cache.l2 is None:
        l2 = f"L2 {state['l2']}" + (f" ({cache.problem})" if cache.problem else "")
    elif ping is None:
        l2 = "L2 breaker open: skipped until the cool-down ends"
    else:
        l2 = "L2 ok" if ping else f"L2 degraded: ping failed ({cache.stats.last_l2_error})"
    return CheckResult(
        "cache",
        True,
        f"{l2}; L1 {state['l1_entries']} entries; hits L1 {state['hits_l1']}, L2 {state['hits_l2']}, "
        f"misses {state['misses']}, L2 errors {state['l2_errors']}",
    )


def run_checks(runtime: Runtime) -> list[CheckResult]:
    """All checks for the configured features."""
    checks = [check_pipelines(runtime), check_store(runtime), check_cache(runtime)]
    generator = check_generator(runtime.settings, runtime.chat_generator)
    if generator is not None:
        checks.append(generator)
    return checks
