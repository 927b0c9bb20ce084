"""What one controller run does: schedule, bake times and thresholds, validated with one-line errors.

Example:
    >>> plan = load_plan(function="api", version="8", steps="5,25,100", bake_s=60)
    >>> plan.steps, plan.wait_limit_s
    ((5.0, 25.0, 100.0), 180.0)
"""

from __future__ import annotations

from enum import IntEnum
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.settings import bundled_path

DEFAULT_STEPS = (5.0, 10.0, 25.0, 50.0, 100.0)
BLUE_GREEN_STEPS = (100.0,)
DEFAULT_BAKE_S = 300.0
# Without an explicit --max-bake, a step that lacks traffic may bake this many times its bake time.
DEFAULT_MAX_BAKE_FACTOR = 3
FULL = 100.0


class Outcome(IntEnum):
    """Exit codes of ``python -m core.canary``."""

    DONE = 0
    """Promoted (the new version serves 100 %), nothing to do, or the requested rollback/status done."""
    ROLLED_BACK = 1
    """A breach (or a failed pre-check, or no verdict in time with ``--on-low-traffic rollback``)."""
    STOPPED = 2
    """Someone else changed the alias: nothing was overwritten."""
    USAGE = 3
    """Bad arguments, missing function/version, or an AWS API error."""
    HELD = 4
    """Too little traffic to judge within ``--max-bake`` and ``--on-low-traffic hold``: alias left as it is."""


class ConfigError(ValueError):
    """Invalid arguments; the message is one line naming each one."""


class Thresholds(BaseModel):
    """When a step passes: error rate and p99 at most these, judged only on enough requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_error_rate_pct: float = Field(default=5.0, ge=0, le=100, description="Highest error rate that passes, %.")
    max_p99_ms: float = Field(default=5000.0, gt=0, description="Highest p99 latency that passes, ms.")
    min_requests: int = Field(default=20, ge=0, description="Requests a step needs before it is judged.")


class Plan(BaseModel):
    """One run of the controller: which alias, which version, how fast, and when to stop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    function: str = Field(min_length=1, description="Function name or ARN.")
    alias: str = Field(default="live", min_length=1)
    version: str = Field(
        pattern=r"^([0-9]+|[A-Za-z][A-Za-z0-9_-]{0,127})$",
        description="Version to shift to: a number, `latest` published, or an alias name (`published`).",
    )
    steps: tuple[float, ...] = Field(default=DEFAULT_STEPS, description="Weights of the new version, %.")
    bake_s: float = Field(default=DEFAULT_BAKE_S, ge=0, description="Seconds each step bakes before it is judged.")
    max_bake_s: float | None = Field(
        default=None, ge=0, description="Longest a step waits for enough requests, s (default: 3 x bake)."
    )
    poll_s: float = Field(default=60.0, gt=0, description="Re-read interval while a step waits for requests, s.")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    on_low_traffic: Literal["rollback", "hold"] = Field(
        default="rollback", description="What a step that never saw enough requests does at max bake."
    )
    service: str = Field(min_length=1, description="`service` dimension of the EMF metrics.")
    namespace: str = Field(min_length=1, description="CloudWatch namespace of the EMF metrics.")
    smoke: bool = Field(default=False, description="Invoke the new version with the smoke events before shifting.")
    smoke_dir: Path = Field(default_factory=lambda: bundled_path("events") / "smoke")

    @field_validator("steps", mode="before")
    @classmethod
    def _parse_steps(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(float(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("expected comma-separated percentages, e.g. 5,10,25,50,100") from None
        return value

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("expected at least one step")
        if any(not 0 < step <= FULL for step in value):
            raise ValueError("each step must be above 0 and at most 100")
        if any(later <= earlier for earlier, later in pairwise(value)):
            raise ValueError("steps must increase")
        if value[-1] != FULL:
            raise ValueError("the last step must be 100")
        return value

    @model_validator(mode="after")
    def _max_bake(self) -> Plan:
        if self.max_bake_s is not None and self.max_bake_s < self.bake_s:
            raise ValueError(f"--max-bake ({self.max_bake_s:g}) must be at least --bake ({self.bake_s:g})")
        return self

    @property
    def wait_limit_s(self) -> float:
        """Longest a step bakes in all, waiting for enough requests (``max_bake_s`` or 3 x ``bake_s``)."""
        return self.bake_s * DEFAULT_MAX_BAKE_FACTOR if self.max_bake_s is None else self.max_bake_s


# Field name -> the CLI flag a user typed, so an error names what they can fix.
FLAGS = {
    "max_error_rate_pct": "--max-error-rate",
    "max_p99_ms": "--max-p99-ms",
    "min_requests": "--min-requests",
    "bake_s": "--bake",
    "max_bake_s": "--max-bake",
    "poll_s": "--poll",
}


def _describe(error: dict) -> str:
    field = next((str(part) for part in error.get("loc", ()) if part != "thresholds"), "")
    message = error["msg"].removeprefix("Value error, ")
    if not field:
        return message
    return f"{FLAGS.get(field, '--' + field.replace('_', '-'))}: {message}"


def load_plan(**values: object) -> Plan:
    """Build a plan from CLI or constructor values.

    Raises:
        ConfigError: One line naming each invalid value.
    """
    threshold_names = set(Thresholds.model_fields)
    thresholds = {k: values.pop(k) for k in list(values) if k in threshold_names}
    try:
        return Plan(**values, thresholds=Thresholds(**thresholds))
    except ValidationError as exc:
        raise ConfigError("invalid canary options: " + "; ".join(_describe(e) for e in exc.errors())) from None
