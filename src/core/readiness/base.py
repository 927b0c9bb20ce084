"""What a readiness check is, what it looks at, and how its results become ✓ / ⚠ / ✗.

A check reports a failure as ``ok=False``; the runner keeps it a ✗ when the check is ``critical``
(``/ready`` answers 503, the CLI exits 1) and turns it into a ⚠ otherwise. A check may also report a
⚠ itself (risky but legal), or several results (one per configuration finding), or ``None`` when the
feature it checks is not enabled.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.aws import on_lambda
from core.errors import one_line

__all__ = ["Check", "CheckResult", "Context", "evaluate", "failure", "one_line", "ready", "warning"]

if TYPE_CHECKING:
    from core.runtime.container import Runtime
    from core.settings import Settings

# Set by Lambda in every execution environment; unset elsewhere.


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one readiness check: ✓ (``ok``), ⚠ (``ok`` with ``warning``) or ✗ (not ``ok``).

    A check reports a failure as ``ok=False``; ``core.readiness`` turns the failures of non-critical
    checks into warnings, so in a finished report ``ok=False`` means a critical failure (``/ready`` 503).
    """

    name: str
    ok: bool
    detail: str
    warning: bool = False
    recommendation: str | None = None

    @property
    def severity(self) -> str:
        """``ok``, ``warning`` or ``critical``."""
        if not self.ok:
            return "critical"
        return "warning" if self.warning else "ok"

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/ready`` and ``python -m core.readiness --json``."""
        return {
            "name": self.name,
            "ok": self.ok,
            "severity": self.severity,
            "detail": self.detail,
            "recommendation": self.recommendation,
        }


@dataclass
class Context:
    """What the checks look at.

    Attributes:
        settings: The loaded settings, or ``None`` when they are invalid (``settings_error`` says why).
        runtime: The built runtime, or ``None`` when init failed (``init_error``) or was not attempted.
        environ: The process environment (platform variables such as ``AWS_LAMBDA_FUNCTION_NAME``).
    """

    settings: Settings | None
    runtime: Runtime | None = None
    settings_error: str | None = None
    init_error: BaseException | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @property
    def on_lambda(self) -> bool:
        """Whether this process runs in a Lambda execution environment."""
        return on_lambda(self.environ)


Outcome = CheckResult | list[CheckResult] | None


@dataclass(frozen=True)
class Check:
    """One entry of the checklist.

    Attributes:
        name: The result's name (findings of one check add a suffix: ``configuration.log_level``).
        run: Returns the result(s), or ``None`` when the feature it checks is not enabled.
        critical: Whether a failure is ✗ (``/ready`` 503, CLI exit 1); otherwise it is shown as ⚠.
        recommendation: What to do when it does not pass (a result may carry a more specific one).
        on_ready: Also part of ``GET /ready``; otherwise only the CLI runs it.
    """

    name: str
    run: Callable[[Context], Outcome]
    critical: bool
    recommendation: str
    on_ready: bool = False


def evaluate(context: Context, checks: tuple[Check, ...]) -> list[CheckResult]:
    """Run ``checks`` in order; a check that raises is a failure of that check, not of the runner."""
    results: list[CheckResult] = []
    for check in checks:
        try:
            outcome = check.run(context)
        except Exception as exc:  # noqa: BLE001 - a broken check must still produce its line in the report
            outcome = CheckResult(check.name, False, f"the check itself failed: {one_line(exc)}")
        if outcome is None:
            continue
        results.extend(_finish(check, result) for result in (outcome if isinstance(outcome, list) else [outcome]))
    return results


def _finish(check: Check, result: CheckResult) -> CheckResult:
    if not result.ok and not check.critical:
        result = dataclasses.replace(result, ok=True, warning=True)
    if result.severity != "ok" and result.recommendation is None:
        result = dataclasses.replace(result, recommendation=check.recommendation)
    return result


def warning(name: str, detail: str, recommendation: str) -> CheckResult:
    """A ⚠ result: works, but risky or degraded."""
    return CheckResult(name, True, detail, warning=True, recommendation=recommendation)


def failure(name: str, detail: str, recommendation: str | None = None) -> CheckResult:
    """A failed result (✗ for a critical check, ⚠ otherwise)."""
    return CheckResult(name, False, detail, recommendation=recommendation)


def ready(results: list[CheckResult]) -> bool:
    """No critical failure among ``results``."""
    return all(r.ok for r in results)
