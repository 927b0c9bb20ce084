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
    """The store answers a count and a one-document read."""
    try:
        count = runtime.store.store.count_documents()
        sample = runtime.store.store.filter_documents(filters=None)[:1] if count else []
    except Exception as exc:  # noqa: BLE001 - any failure to read is "not ready"
        return CheckResult("store", False, f"unreadable: {type(exc).__name__}")
    if count == 0 or not sample:
        return CheckResult("store", False, "empty: no documents to search")
    return CheckResult("store", True, f"{count} documents from {runtime.store.source}")


def run_checks(runtime: Runtime) -> list[CheckResult]:
    """All checks for the configured features."""
    checks = [check_pipelines(runtime), check_store(runtime)]
    generator = check_generator(runtime.settings, runtime.chat_generator)
    if generator is not None:
        checks.append(generator)
    return checks
