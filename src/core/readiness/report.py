"""The readiness report as text (✓ / ⚠ / ✗ with details and recommendations) or as JSON.

The JSON has the shape of ``GET /ready`` (``status`` and ``checks``, each ``{name, ok, severity, detail,
recommendation}``) plus a ``summary`` of counts.

Example:
    >>> print(render_text(results, title="haystack-serverless"))
    Readiness of haystack-serverless
      ✓ configuration  valid; GENERATOR=none, ...
    ready: 7 ✓, 0 ⚠, 0 ✗
"""

from __future__ import annotations

import json
from typing import Any

from core.readiness.base import CheckResult, ready

SYMBOLS = {"ok": "✓", "warning": "⚠", "critical": "✗", "advice": "→"}
ASCII_SYMBOLS = {"ok": "OK  ", "warning": "WARN", "critical": "FAIL", "advice": "->"}
SEVERITIES = ("ok", "warning", "critical")


def symbols_for(encoding: str | None) -> dict[str, str]:
    """✓ / ⚠ / ✗ / → when the output encoding can carry them, else ASCII words."""
    try:
        "".join(SYMBOLS.values()).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII_SYMBOLS
    return SYMBOLS


def summary(results: list[CheckResult]) -> dict[str, int]:
    """How many results of each severity."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for result in results:
        counts[result.severity] += 1
    return counts


def as_json(results: list[CheckResult]) -> dict[str, Any]:
    """The report as ``GET /ready`` shapes it, with the counts."""
    return {
        "status": "ready" if ready(results) else "not_ready",
        "summary": summary(results),
        "checks": [r.as_dict() for r in results],
    }


def render_json(results: list[CheckResult]) -> str:
    """The JSON report, indented."""
    return json.dumps(as_json(results), indent=2)  # ASCII escapes: valid whatever the output encoding


def render_text(results: list[CheckResult], *, title: str, symbols: dict[str, str] = SYMBOLS) -> str:
    """One line per result (symbol, name, detail), its recommendation under each ⚠ / ✗, then the verdict."""
    width = max((len(r.name) for r in results), default=0)
    lines = [title, ""]
    for result in results:
        lines.append(f"  {symbols[result.severity]} {result.name.ljust(width)}  {result.detail}")
        if result.severity != "ok" and result.recommendation:
            lines.append(f"    {' ' * width}  {symbols['advice']} {result.recommendation}")
    counts = summary(results)
    verdict = "ready" if ready(results) else "NOT READY"
    tally = ", ".join(f"{n} {symbols[s].strip()}" for s, n in counts.items())
    lines += ["", f"{verdict}: {tally}"]
    return "\n".join(lines)
