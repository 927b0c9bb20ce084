"""The controller's record: one readable line per event on the terminal, one JSON line per event in a file.

Every JSON line carries ``ts``, ``run``, ``function``, ``alias``, ``stable``, ``new``, ``event``,
``step`` / ``steps``, ``weight`` (the new version's share after the event, %), ``metrics``,
``thresholds``, ``decision``, ``reason``. Events: ``init``, ``start``, ``precheck``, ``skip``, ``shift``,
``judge`` (decision ``advance`` | ``rollback`` | ``wait``), ``rollback``, ``promote``, ``hold``,
``stop``, ``noop``, ``error``.

Example:
    >>> log = DecisionLog(Path("canary-decisions.jsonl"), function="api", alias="live")
    >>> log.record(now, "shift", step=1, steps=5, weight=5.0, reason="7 (95%) + 8 (5%)")
    12:00:00 step 1/5    5% shift     7 (95%) + 8 (5%)
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

DEFAULT_LOG = Path("canary-decisions.jsonl")
RUN_ID_CHARS = 12


class DecisionLog:
    """Appends events to a JSON lines file (when given a path) and prints them as they happen."""

    def __init__(
        self, path: Path | None, *, function: str, alias: str, out: TextIO | None = None, run_id: str | None = None
    ) -> None:
        self.path = path
        self.out = out if out is not None else sys.stdout
        self.context: dict[str, Any] = {
            "run": run_id or uuid.uuid4().hex[:RUN_ID_CHARS],
            "function": function,
            "alias": alias,
            "stable": None,
            "new": None,
        }
        self.records: list[dict[str, Any]] = []

    def versions(self, *, stable: str | None, new: str | None) -> None:
        """Name the versions every following line is about."""
        self.context.update(stable=stable, new=new)

    def record(
        self,
        ts: datetime,
        event: str,
        *,
        reason: str,
        step: int | None = None,
        steps: int | None = None,
        weight: float | None = None,
        metrics: dict[str, Any] | None = None,
        thresholds: dict[str, Any] | None = None,
        decision: str | None = None,
    ) -> dict[str, Any]:
        """Write one event to the file and the terminal; returns the JSON record."""
        entry = {
            "ts": ts.isoformat(),
            **self.context,
            "event": event,
            "step": step,
            "steps": steps,
            "weight": weight,
            "metrics": metrics,
            "thresholds": thresholds,
            "decision": decision,
            "reason": reason,
        }
        self.records.append(entry)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(entry, sort_keys=False) + "\n")
        print(self._line(ts, entry), file=self.out, flush=True)
        return entry

    @staticmethod
    def _line(ts: datetime, entry: dict[str, Any]) -> str:
        where = f"step {entry['step']}/{entry['steps']}" if entry["step"] is not None else ""
        weight = f"{entry['weight']:g}%" if entry["weight"] is not None else ""
        event, decision = entry["event"], entry["decision"]
        what = event if decision in (None, event) else f"{event}:{decision}"
        line = f"{ts:%H:%M:%S} {where:<9} {weight:>4} {what:<15} "
        metrics = entry["metrics"]
        if metrics:
            p99 = "-" if metrics["p99_ms"] is None else f"{metrics['p99_ms']:.0f}ms"
            line += (
                f"requests={metrics['requests']:g} invocations={metrics['invocations']:g} "
                f"5xx={metrics['errors_5xx']:g} lambda_errors={metrics['lambda_errors']:g} "
                f"error_rate={metrics['error_rate_pct']:.2f}% p99={p99} | "
            )
        return line + entry["reason"]
