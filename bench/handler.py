"""Warm handler overhead and throughput of one container (in-process, like a warm Lambda).

- overhead on a miss: ``POST /pipelines/search/run`` as an API Gateway REST event through the real
  handler (Mangum → FastAPI → validation → pipeline → response) vs a bare ``pipeline.run`` with the
  same inputs, measured in the same run, interleaved so both see the same machine state;
- throughput: requests/s of one warm container on ``GET /health`` (the routing floor) and on the
  search run;
- peak RSS of the process (ru_maxrss).

Targets (issue 3): <= 5 % over bare ``pipeline.run`` on a miss; peak RSS <= 300 MB. Requests here
send ``Cache-Control: no-cache`` so every one runs the pipeline; the cache-hit figures (L1/L2 hit
latency, hit throughput) are measured by ``bench/cache.py``.
"""

import json
import resource
import sys
import time

from common import ROOT, require_snapshot, summary, write_result
from quality import QUERIES

sys.path.insert(0, str(ROOT))
from scripts.invoke import LambdaContext

NO_CACHE = {"Cache-Control": "no-cache"}


def rest_event(method: str, path: str, body: dict | None, request_id: str, headers: dict | None = None) -> dict:
    """A REST (v1) proxy event, as in events/api-search-run.json."""
    template = json.loads((ROOT / "events" / "api-search-run.json").read_text())
    template.update(httpMethod=method, path=path, body=json.dumps(body) if body is not None else None)
    template["requestContext"] = {**template["requestContext"], "requestId": request_id, "httpMethod": method}
    template["headers"] = {**template["headers"], **(headers or {})}
    template["multiValueHeaders"] = {**template["multiValueHeaders"], **{k: [v] for k, v in (headers or {}).items()}}
    return template


def main() -> int:
    require_snapshot()
    from handlers.api import handler, runtime

    search = runtime.pipelines["search"].pipeline
    queries = list(QUERIES)
    context = LambdaContext()
    events = [
        rest_event("POST", "/pipelines/search/run", {"query": q, "top_k": 5}, f"bench-{i}", NO_CACHE)
        for i, q in enumerate(queries)
    ]
    for event in events[:3]:  # warm both paths
        if handler(event, context)["statusCode"] != 200:
            sys.exit("the search run failed")

    through_handler, bare = [], []
    for _ in range(10):
        for event, query in zip(events, queries, strict=True):
            started = time.perf_counter()
            response = handler(event, context)
            through_handler.append((time.perf_counter() - started) * 1000)
            if response["statusCode"] != 200:
                sys.exit(f"the search run failed: {response['body']}")
            started = time.perf_counter()
            search.run({"text_embedder": {"text": query}, "bm25_retriever": {"query": query}, "joiner": {"top_k": 5}})
            bare.append((time.perf_counter() - started) * 1000)
    handler_stats, bare_stats = summary(through_handler), summary(bare)
    overhead_ms = handler_stats["p50_ms"] - bare_stats["p50_ms"]
    overhead_pct = 100 * overhead_ms / bare_stats["p50_ms"]

    def throughput(event: dict, seconds: float) -> float:
        count, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            handler(event, context)
            count += 1
        return count / seconds

    health_rps = throughput(rest_event("GET", "/health", None, "bench-health"), 3)
    search_rps = throughput(events[0], 3)  # no-cache: the pipeline runs every time
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = {
        "miss": {
            "handler": handler_stats,
            "bare_pipeline_run": bare_stats,
            "overhead_p50_ms": round(overhead_ms, 3),
            "overhead_pct": round(overhead_pct, 1),
        },
        "throughput_rps": {"health": round(health_rps), "search_run": round(search_rps)},
        "peak_rss_mb": round(peak_rss_mb, 1),
        "documents": runtime.store.store.count_documents(),
    }
    print(
        f"miss: handler p50 {handler_stats['p50_ms']:.3f} ms vs bare pipeline.run p50 {bare_stats['p50_ms']:.3f} ms "
        f"-> overhead {overhead_ms:.3f} ms ({overhead_pct:.1f} %)"
    )
    print(f"throughput: /health {health_rps:.0f} req/s, search run {search_rps:.0f} req/s (one warm container)")
    print(f"peak RSS {peak_rss_mb:.0f} MB")
    targets = {"miss_overhead_le_5pct": overhead_pct <= 5, "peak_rss_le_300mb": peak_rss_mb <= 300}
    results["targets"] = targets
    print("targets:", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    write_result("handler", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
