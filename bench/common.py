"""Shared bench helpers: timing statistics, results files, the default snapshot."""

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SNAPSHOT = ROOT / "data" / "stdlib.snapshot"

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def timed_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(values: list[float]) -> dict:
    """p50/p99/mean of a list of milliseconds."""
    return {
        "p50_ms": round(percentile(values, 50), 4),
        "p99_ms": round(percentile(values, 99), 4),
        "mean_ms": round(statistics.fmean(values), 4),
        "n": len(values),
    }


def write_result(name: str, data: dict) -> Path:
    """Write ``bench/results/<name>.json`` with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def machine() -> dict:
    """What the numbers were measured on."""
    import platform

    return {"python": sys.version.split()[0], "cpu": platform.machine(), "cores": os.cpu_count()}


def require_snapshot() -> None:
    """Fail with the fix when the default snapshot is missing."""
    if not SNAPSHOT.exists():
        sys.exit(f"{SNAPSHOT} is missing: run `make index` first")


def run(main: Callable[[], int]) -> None:
    """Run a bench's ``main``, print how long it took, exit with its code."""
    started = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - started:.0f} s)")
    raise SystemExit(code)
