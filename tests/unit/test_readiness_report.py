"""The readiness runner (criticality, recommendations, broken checks) and the report's text and JSON."""

import json

from core.readiness.base import Check, CheckResult, Context, evaluate, ready
from core.readiness.report import ASCII_SYMBOLS, SYMBOLS, as_json, render_json, render_text, symbols_for

CONTEXT = Context(settings=None, environ={})


def check(name, outcome, *, critical=True):
    def run(_context):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return Check(name, run, critical=critical, recommendation=f"fix {name}")


def test_a_failure_of_a_critical_check_is_critical_with_the_checks_advice():
    [result] = evaluate(CONTEXT, (check("store", CheckResult("store", False, "empty")),))
    assert (result.ok, result.severity, result.recommendation) == (False, "critical", "fix store")
    assert not ready([result])


def test_a_failure_of_a_non_critical_check_is_a_warning_and_still_ready():
    [result] = evaluate(CONTEXT, (check("cache", CheckResult("cache", False, "down"), critical=False),))
    assert (result.ok, result.severity, result.recommendation) == (True, "warning", "fix cache")
    assert ready([result])


def test_a_results_own_recommendation_wins_and_a_pass_carries_none():
    specific = CheckResult("generator", False, "unreachable", recommendation="start the server")
    results = evaluate(
        CONTEXT, (check("generator", specific), check("store", CheckResult("store", True, "10 documents")))
    )
    assert [r.recommendation for r in results] == ["start the server", None]


def test_a_check_that_raises_is_a_failure_of_that_check_only():
    results = evaluate(
        CONTEXT,
        (check("tracing", ValueError("bad\nvalue")), check("store", CheckResult("store", True, "10 documents"))),
    )
    assert [(r.name, r.severity) for r in results] == [("tracing", "critical"), ("store", "ok")]
    assert results[0].detail == "the check itself failed: ValueError: bad value"


def test_a_check_for_a_disabled_feature_leaves_no_line_and_findings_are_separate_lines():
    findings = [CheckResult("configuration", True, "valid"), CheckResult("configuration.x", True, "risky", True)]
    results = evaluate(CONTEXT, (check("generator", None), check("configuration", findings)))
    assert [(r.name, r.severity) for r in results] == [("configuration", "ok"), ("configuration.x", "warning")]


RESULTS = [
    CheckResult("configuration", True, "valid"),
    CheckResult("cache", True, "L2 degraded", warning=True, recommendation="check Redis"),
    CheckResult("store", False, "empty", recommendation="make index"),
]


def test_text_report_aligns_names_puts_advice_under_problems_and_ends_with_the_verdict():
    text = render_text(RESULTS, title="Readiness of svc")
    assert text.splitlines() == [
        "Readiness of svc",
        "",
        "  ✓ configuration  valid",
        "  ⚠ cache          L2 degraded",
        "                   → check Redis",
        "  ✗ store          empty",
        "                   → make index",
        "",
        "NOT READY: 1 ✓, 1 ⚠, 1 ✗",
    ]


def test_text_report_in_ascii():
    text = render_text(RESULTS[:2], title="t", symbols=ASCII_SYMBOLS)
    assert "  OK   configuration  valid" in text
    assert "-> check Redis" in text
    assert text.endswith("ready: 1 OK, 1 WARN, 0 FAIL")
    text.encode("ascii")


def test_symbols_follow_the_output_encoding():
    assert symbols_for("utf-8") is SYMBOLS
    assert symbols_for("ascii") is ASCII_SYMBOLS
    assert symbols_for(None) is ASCII_SYMBOLS
    assert symbols_for("no-such-codec") is ASCII_SYMBOLS


def test_json_report_has_the_ready_shape_and_counts():
    body = json.loads(render_json(RESULTS))
    assert body == as_json(RESULTS)
    assert body["status"] == "not_ready"
    assert body["summary"] == {"ok": 1, "warning": 1, "critical": 1}
    assert body["checks"][1] == {
        "name": "cache",
        "ok": True,
        "severity": "warning",
        "detail": "L2 degraded",
        "recommendation": "check Redis",
    }
    render_json(RESULTS).encode("ascii")
