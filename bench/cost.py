"""Cost per million requests, computed from the durations and memory measured by the other benches.

Reads ``bench/results/handler.json`` (warm durations, peak RSS) and, when present,
``bench/results/cold_init.json`` (init time), and prices them at AWS list prices. The durations are
measured on this machine, not in Lambda: read the table as a model to re-run with your own
measurements (CloudWatch ``Duration`` p50 and ``Init Duration``), not as a bill.

Prices: us-east-1 list prices as published by AWS in 2025 and not re-checked here (no network):
verify them on the pricing pages before relying on the table, and edit ``PRICES``.
"""

import json
import math
import sys

from common import RESULTS, write_result

PRICES = {
    "as_of": "2025 list prices, us-east-1 (not re-checked: verify before use)",
    "lambda_gb_second": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
    "lambda_request": 0.20 / 1e6,
    "api_gateway_rest_request": 3.50 / 1e6,  # first 333 million requests a month
    "api_gateway_http_request": 1.00 / 1e6,  # first 300 million requests a month
    "elasticache_serverless_valkey_gb_hour": 0.084,  # data stored; Valkey bills at least 100 MB
    "elasticache_serverless_valkey_million_ecpu": 0.0023,
}
MEMORY_MB = 1024  # the template's MemorySize
HOURS_PER_MONTH = 730
ECPU_PER_REQUEST = 2  # one GET, one SET on a miss (<= 1 KB each: 1 ECPU per KB)


def lambda_cost(duration_ms: float, arch: str) -> float:
    """Per request: duration (billed per 1 ms) at MEMORY_MB, plus the request charge."""
    billed_s = math.ceil(duration_ms) / 1000
    return billed_s * MEMORY_MB / 1024 * PRICES["lambda_gb_second"][arch] + PRICES["lambda_request"]


def main() -> int:
    handler_path = RESULTS / "handler.json"
    if not handler_path.exists():
        sys.exit("run bench/handler.py first (make bench runs both)")
    handler = json.loads(handler_path.read_text())
    miss_ms = handler["miss"]["handler"]["p50_ms"]
    cold_path = RESULTS / "cold_init.json"
    init_ms = json.loads(cold_path.read_text())["optimised"]["median_ms"] if cold_path.exists() else None

    rows = []
    for arch in ("arm64", "x86_64"):
        for gateway in ("rest", "http"):
            per_request = lambda_cost(miss_ms, arch) + PRICES[f"api_gateway_{gateway}_request"]
            rows.append(
                {
                    "arch": arch,
                    "api": gateway,
                    "duration_ms": miss_ms,
                    "usd_per_million": round(per_request * 1e6, 2),
                    "lambda_share": round(lambda_cost(miss_ms, arch) / per_request, 3),
                }
            )
    cache_month = 0.1 * PRICES["elasticache_serverless_valkey_gb_hour"] * HOURS_PER_MONTH
    cache_per_million = ECPU_PER_REQUEST * PRICES["elasticache_serverless_valkey_million_ecpu"]
    cold_start_per_million = None
    if init_ms is not None:
        # Lambda bills the init of on-demand functions from 2025-08-01: price 1 % cold starts.
        cold_start_per_million = round(0.01 * lambda_cost(init_ms, "arm64") * 1e6, 2)

    print(f"priced at: {PRICES['as_of']}; warm miss duration p50 {miss_ms:.1f} ms at {MEMORY_MB} MB")
    print(f"{'arch':7s} {'API':5s} {'USD / 1M requests':>18s} {'Lambda share':>13s}")
    for row in rows:
        print(f"{row['arch']:7s} {row['api']:5s} {row['usd_per_million']:18.2f} {row['lambda_share']:13.1%}")
    print(
        f"ElastiCache Serverless (Valkey): {cache_month:.2f} USD/month minimum"
        f" + {cache_per_million:.4f} USD / 1M requests"
    )
    if cold_start_per_million is not None:
        print(
            f"cold starts at 1 % of requests (init {init_ms:.0f} ms, arm64):"
            f" +{cold_start_per_million:.2f} USD / 1M requests"
        )
    write_result(
        "cost",
        {
            "prices": PRICES,
            "memory_mb": MEMORY_MB,
            "rows": rows,
            "elasticache_usd_month_minimum": round(cache_month, 2),
            "elasticache_usd_per_million": cache_per_million,
            "cold_start_usd_per_million_at_1pct": cold_start_per_million,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
