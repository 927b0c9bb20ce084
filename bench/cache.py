"""Cache benchmark: one request served on a miss vs an L1 hit vs an L2 hit (real Redis on loopback).

Everything goes through the real handler (API Gateway REST event → Mangum → FastAPI → cache → pipeline),
in one process, in one run:

- miss: a query not seen before (the pipeline runs, the result is written to L1 and Redis);
- L1 hit: the same query again in the same container;
- L2 hit: the same query in a second container (its own runtime and empty L1, same Redis);
- throughput of L1 hits in one warm container (requests/s), and peak RSS.

Targets (issues 3 and 4): L1 hit p50 <= 1 ms of handler time; >= 1,000 L1-hit requests/s in one warm
container. Redis is a real ``redis-server`` started here on a free loopback port (``make test``
installs it).
"""

import json
import resource
import sys
import time

from common import ROOT, require_snapshot, summary, write_result
from handler import rest_event
from quality import QUERIES

sys.path.insert(0, str(ROOT))
from mangum import Mangum

from core.api.app import create_app
from core.runtime.container import build_runtime
from core.settings import load_settings
from core.store.load import load_store
from scripts.invoke import LambdaContext
from tests.redis_servers import RedisServer


def container(settings, store):
    """A Lambda container: its own runtime (and L1), the shared store snapshot and Redis."""
    return Mangum(create_app(build_runtime(settings, store=store)), lifespan="off")


def call(handler, event, context, expect: str) -> float:
    started = time.perf_counter()
    response = handler(event, context)
    elapsed = (time.perf_counter() - started) * 1000
    if response["statusCode"] != 200 or response["headers"].get("x-cache") != expect:
        sys.exit(f"expected 200 {expect}, got {response['statusCode']} {response['headers'].get('x-cache')}")
    return elapsed


def main() -> int:
    require_snapshot()
    context = LambdaContext()
    with RedisServer() as redis_server:
        settings = load_settings(redis_url=redis_server.url)
        store = load_store(settings)
        first, second = container(settings, store), container(settings, store)
        miss, l1, l2 = [], [], []
        for round_ in range(5):
            for i, text in enumerate(QUERIES):
                event = rest_event("POST", "/query", {"text": f"{text} #{round_}"}, f"cache-{round_}-{i}")
                miss.append(call(first, event, context, "MISS"))
                l1.append(call(first, event, context, "HIT-L1"))
                l2.append(call(second, event, context, "HIT-L2"))

        hit_event = rest_event("POST", "/query", {"text": f"{next(iter(QUERIES))} #0"}, "cache-throughput")
        count, deadline = 0, time.perf_counter() + 3
        while time.perf_counter() < deadline:
            first(hit_event, context)
            count += 1
        rps = count / 3
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    results = {
        "miss": summary(miss),
        "l1_hit": summary(l1),
        "l2_hit": summary(l2),
        "l1_hit_rps_one_container": round(rps),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    results["miss_over_l1_p50"] = round(results["miss"]["p50_ms"] / results["l1_hit"]["p50_ms"], 1)
    results["miss_over_l2_p50"] = round(results["miss"]["p50_ms"] / results["l2_hit"]["p50_ms"], 1)
    results["targets"] = {
        "l1_hit_p50_le_1ms": results["l1_hit"]["p50_ms"] <= 1,
        "l1_hit_rps_ge_1000": rps >= 1000,
        "peak_rss_le_300mb": peak_rss_mb <= 300,
    }
    for name in ("miss", "l1_hit", "l2_hit"):
        print(f"{name:7s} p50 {results[name]['p50_ms']:8.3f} ms  p99 {results[name]['p99_ms']:8.3f} ms")
    print(f"miss / L1 hit: {results['miss_over_l1_p50']}x   miss / L2 hit: {results['miss_over_l2_p50']}x (p50)")
    print(f"L1 hits in one warm container: {rps:.0f} req/s; peak RSS {peak_rss_mb:.0f} MB")
    print("targets:", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in results["targets"].items()))
    write_result("cache", results)
    print(json.dumps({"written": "bench/results/cache.json"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
