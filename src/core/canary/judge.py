"""The rule that turns one step's metrics into advance, rollback or wait.

In order: fewer requests than ``min_requests`` → wait (a rate over a handful of requests is noise);
error rate above ``max_error_rate_pct`` → rollback; p99 above ``max_p99_ms`` → rollback; else advance.
A value equal to its threshold passes.

Example:
    >>> judge(metrics, Thresholds(max_error_rate_pct=5, max_p99_ms=5000, min_requests=20))
    Verdict(decision='advance', reason='error rate 0.00% <= 5%, p99 120 ms <= 5000 ms over 40 requests')
"""

from __future__ import annotations

from dataclasses import dataclass

from core.canary.config import Thresholds
from core.canary.metrics import VersionMetrics

ADVANCE = "advance"
ROLLBACK = "rollback"
WAIT = "wait"


@dataclass(frozen=True)
class Verdict:
    """A decision and the sentence that explains it."""

    decision: str
    reason: str


def _p99(metrics: VersionMetrics) -> str:
    return "no latency data" if metrics.p99_ms is None else f"{metrics.p99_ms:.0f} ms"


def judge(metrics: VersionMetrics, thresholds: Thresholds) -> Verdict:
    """Decide one step from the new version's metrics over its bake window."""
    traffic = metrics.traffic
    if traffic < thresholds.min_requests:
        return Verdict(WAIT, f"{traffic:g} requests < minimum {thresholds.min_requests}: not judged yet")
    rate, limit = metrics.error_rate_pct, thresholds.max_error_rate_pct
    if rate > limit:
        return Verdict(
            ROLLBACK,
            f"error rate {rate:.2f}% > {limit:g}% ({metrics.errors_5xx:g} 5xx + {metrics.lambda_errors:g} "
            f"Lambda errors over {traffic:g} requests)",
        )
    if metrics.p99_ms is not None and metrics.p99_ms > thresholds.max_p99_ms:
        return Verdict(
            ROLLBACK, f"p99 {metrics.p99_ms:.0f} ms > {thresholds.max_p99_ms:g} ms over {traffic:g} requests"
        )
    return Verdict(
        ADVANCE,
        f"error rate {rate:.2f}% <= {limit:g}%, p99 {_p99(metrics)} <= {thresholds.max_p99_ms:g} ms "
        f"over {traffic:g} requests",
    )
