"""The canary's rule, error-rate arithmetic, alias shares and option validation, without AWS."""

from datetime import UTC, datetime

import pytest

from core.canary.alias import AliasState
from core.canary.config import ConfigError, Thresholds, load_plan
from core.canary.judge import ADVANCE, ROLLBACK, WAIT, judge
from core.canary.metrics import VersionMetrics

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(max_error_rate_pct=5, max_p99_ms=5000, min_requests=20)


def metrics(requests=100.0, errors_5xx=0.0, invocations=100.0, lambda_errors=0.0, p99_ms=100.0) -> VersionMetrics:
    return VersionMetrics(requests, errors_5xx, invocations, lambda_errors, p99_ms, NOW, NOW)


def test_error_rate_adds_5xx_and_lambda_errors_over_the_larger_request_count():
    # 110 invocations, of which 10 crashed before writing EMF: 3 + 10 failures over 110.
    assert metrics(requests=100, errors_5xx=3, invocations=110, lambda_errors=10).error_rate_pct == pytest.approx(
        100 * 13 / 110
    )
    # EMF ahead of Lambda's metrics: the EMF count is the denominator.
    assert metrics(requests=50, errors_5xx=5, invocations=40).error_rate_pct == pytest.approx(10)


def test_error_rate_is_zero_without_traffic_and_never_above_100():
    assert metrics(requests=0, invocations=0).error_rate_pct == 0
    assert metrics(requests=2, errors_5xx=2, invocations=2, lambda_errors=2).error_rate_pct == 100


@pytest.mark.parametrize(
    ("observed", "decision"),
    [
        (metrics(requests=19, invocations=19, errors_5xx=19), WAIT),
        (metrics(requests=20, invocations=20, errors_5xx=1), ADVANCE),  # exactly 5 %: passes
        (metrics(requests=100, errors_5xx=6), ROLLBACK),
        (metrics(p99_ms=5000), ADVANCE),  # exactly the threshold: passes
        (metrics(p99_ms=5001), ROLLBACK),
        (metrics(p99_ms=None), ADVANCE),  # requests without latency data are not slow ones
    ],
)
def test_judge_waits_below_the_minimum_and_rolls_back_only_above_a_threshold(observed, decision):
    assert judge(observed, LIMITS).decision == decision


def test_an_error_breach_is_reported_before_a_latency_breach():
    verdict = judge(metrics(errors_5xx=50, p99_ms=9000), LIMITS)
    assert (verdict.decision, verdict.reason.split()[0]) == (ROLLBACK, "error")


def test_alias_shares_and_description():
    canary = AliasState("7", {"8": 0.05}, "r1")
    assert (canary.share("7"), canary.share("8"), canary.share("9")) == pytest.approx((95, 5, 0))
    assert canary.describe() == "7 (95%) + 8 (5%)"
    assert AliasState.from_response({"FunctionVersion": "8", "RoutingConfig": {"AdditionalVersionWeights": {}}}) == (
        AliasState("8", {}, "")
    )
    assert canary.routes_like(AliasState("7", {"8": 0.0500000000001}, "r2"))
    assert not canary.routes_like(AliasState("7", {"8": 0.1}, "r1"))


def test_plan_defaults_and_the_wait_limit():
    plan = load_plan(function="api", version="8", service="s", namespace="n")
    assert plan.steps == (5, 10, 25, 50, 100)
    assert (plan.bake_s, plan.wait_limit_s, plan.alias) == (300, 900, "live")
    assert load_plan(function="api", version="latest", service="s", namespace="n", max_bake_s=400).wait_limit_s == 400


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"steps": "5,10"}, "the last step must be 100"),
        ({"steps": "0,100"}, "each step must be above 0"),
        ({"steps": "five,100"}, "comma-separated percentages"),
        ({"version": "$LATEST"}, "--version"),
        ({"min_requests": -1}, "--min-requests"),
        ({"bake_s": 60, "max_bake_s": 30}, "--max-bake (30) must be at least --bake (60)"),
    ],
)
def test_invalid_options_are_one_line_naming_the_flag(options, expected):
    values = {"function": "api", "version": "8", "service": "s", "namespace": "n", **options}
    with pytest.raises(ConfigError) as error:
        load_plan(**values)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)
