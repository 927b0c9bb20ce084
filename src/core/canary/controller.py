"""The progressive controller: shift an alias step by step, judge each step, roll back or promote.

A run: read the alias (its primary version is the stable one), pre-check the new version, then for each
step write the weight, bake, read the new version's metrics over the step and judge them
(:mod:`core.canary.judge`). A breach rolls back at once (primary = stable, routing cleared). Too few
requests extend the bake by ``poll_s`` until ``wait_limit_s``; then ``on_low_traffic`` decides (roll back, or
hold: leave the alias as it is and exit 4). The 100 % step bakes and is judged like the others, so
blue/green (one step: 100) is judged after the switch and rolled back if bad.

Resuming: a run that finds the new version already at some weight skips the steps at or below it. An
alias already on the new version alone means nothing to do; an alias routing to any other version, or
changed while the run goes on, stops the run (:class:`~core.canary.alias.ConcurrentChange`).

Example:
    >>> plan = load_plan(function="api", version="8", service="haystack-serverless",
    ...                  namespace="HaystackServerless", bake_s=300)
    >>> Controller(plan, lambda_client=boto3.client("lambda"),
    ...            cloudwatch_client=boto3.client("cloudwatch")).run()
    <Outcome.DONE: 0>
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import error_code
from core.canary.alias import FULL, Alias, AliasState, ConcurrentChange
from core.canary.config import Outcome, Plan
from core.canary.decisions import DecisionLog
from core.canary.judge import ROLLBACK, WAIT, Verdict, judge
from core.canary.metrics import MetricsReader, VersionMetrics
from core.canary.precheck import SmokeSetupError, VersionNotFound, resolve_version, smoke, version_problem

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]
WEIGHT_DIGITS = 6


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(UTC)


class Controller:
    """Drives one alias from its stable version to ``plan.version``.

    Args:
        plan: What to do (:func:`core.canary.config.load_plan`).
        lambda_client: A boto3 Lambda client.
        cloudwatch_client: A boto3 CloudWatch client.
        log: Where decisions go (default: the terminal only).
        clock: Returns the current time, timezone-aware.
        sleep: Waits that many seconds (bake and poll).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        lambda_client: Any,
        cloudwatch_client: Any,
        log: DecisionLog | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.plan = plan
        self.lambda_client = lambda_client
        self.alias = Alias(lambda_client, plan.function, plan.alias)
        self.metrics = MetricsReader(
            cloudwatch_client,
            function=plan.function,
            alias=plan.alias,
            namespace=plan.namespace,
            service=plan.service,
        )
        self.log = log or DecisionLog(None, function=plan.function, alias=plan.alias)
        self.clock = clock
        self.sleep = sleep
        self.thresholds = plan.thresholds.model_dump()
        self.last_seen: AliasState | None = None

    def run(self) -> Outcome:
        """Shift, judge, and roll back or promote; the outcome is the CLI's exit code."""
        try:
            new = resolve_version(self.lambda_client, self.plan.function, self.plan.version)
            self.last_seen = self.alias.read()
            return self._run(new, self.last_seen)
        except KeyboardInterrupt:
            where = self.last_seen.describe() if self.last_seen else "unread"
            self._event("hold", f"interrupted; alias left at {where}: re-run to resume, or roll back", decision="hold")
            return Outcome.HELD
        except ConcurrentChange as exc:
            self._event("stop", f"{exc}; stopped without writing", decision="stop")
            return Outcome.STOPPED
        except (VersionNotFound, SmokeSetupError) as exc:
            self._event("error", str(exc))
            return Outcome.USAGE
        except (ClientError, BotoCoreError) as exc:
            where = f"; alias last seen as {self.last_seen.describe()}" if self.last_seen else ""
            self._event("error", f"AWS API error: {exc}{where}")
            return Outcome.USAGE

    def _run(self, new: str, state: AliasState) -> Outcome:
        if state.version == new and not state.weights:
            self.log.versions(stable=None, new=new)
            self._event("noop", f"alias already routes everything to {new}: nothing to do", weight=FULL)
            return Outcome.DONE
        strangers = set(state.weights) - {new}
        if strangers or state.version == new:
            self.log.versions(stable=state.version, new=new)
            self._event(
                "stop",
                f"alias routes {state.describe()}: another shift is in progress; finish or roll it back first",
                decision="stop",
            )
            return Outcome.STOPPED
        stable, steps = state.version, self.plan.steps
        self.log.versions(stable=stable, new=new)
        self._event(
            "start",
            f"{stable} -> {new}, now {state.describe()}; steps {','.join(f'{s:g}' for s in steps)}%, "
            f"bake {self.plan.bake_s:g}s (up to {self.plan.wait_limit_s:g}s for traffic)",
            weight=state.share(new),
            thresholds=self.thresholds,
        )
        problem = self._precheck(new)
        if problem:
            if state.weights:
                return self._rollback(state, stable, new, f"pre-check failed: {problem}")
            self._event("precheck", f"failed: {problem}; no traffic was shifted", decision="reject")
            return Outcome.ROLLED_BACK
        current = state.share(new)
        for index, percent in enumerate(steps, start=1):
            where = {"step": index, "steps": len(steps), "weight": percent}
            if percent <= current:
                self._event("skip", f"{new} already at {current:g}%", **where)
                continue
            state = self._shift(state, stable, new, percent)
            self._event("shift", state.describe(), **where)
            verdict = self._bake(new, where)
            if verdict.decision == ROLLBACK:
                return self._rollback(state, stable, new, verdict.reason, **where)
            if verdict.decision == WAIT:
                if self.plan.on_low_traffic == "rollback":
                    return self._rollback(state, stable, new, verdict.reason, **where)
                self._event("hold", f"{verdict.reason}; alias left at {state.describe()}", decision="hold", **where)
                return Outcome.HELD
        final = self.alias.read()
        if final.revision != state.revision or not final.routes_like(state):
            raise ConcurrentChange(f"alias changed by someone else after the last step: {final.describe()}", final)
        self._event("promote", f"{new} serves 100%", decision="promote", weight=FULL)
        return Outcome.DONE

    def _precheck(self, new: str) -> str | None:
        problem = version_problem(self.lambda_client, self.plan.function, new)
        if problem or not self.plan.smoke:
            self._event("precheck", problem or f"version {new} is Active")
            return problem
        result = smoke(self.lambda_client, self.plan.function, new, self.plan.smoke_dir)
        if result.warning:
            self._event("precheck", f"version {new} is Active; warning: {result.warning}")
            return None
        if result.problems:
            return f"smoke: {'; '.join(result.problems)}"
        self._event("precheck", f"version {new} is Active; {result.ran} smoke cases passed")
        return None

    def _shift(self, state: AliasState, stable: str, new: str, percent: float) -> AliasState:
        # Weight 1.0 is refused in AdditionalVersionWeights: 100 % makes the new version the primary.
        if percent >= FULL:
            self.last_seen = self.alias.write(state, new, {})
        else:
            self.last_seen = self.alias.write(state, stable, {new: round(percent / FULL, WEIGHT_DIGITS)})
        return self.last_seen

    def _bake(self, new: str, where: dict[str, Any]) -> Verdict:
        start = self.clock()
        self.sleep(self.plan.bake_s)
        while True:
            now = self.clock()
            metrics = self.metrics.read(new, start, now)
            verdict = judge(metrics, self.plan.thresholds)
            waited = (now - start).total_seconds()
            limit = self.plan.wait_limit_s
            if verdict.decision == WAIT and waited >= limit:
                verdict = Verdict(WAIT, f"{verdict.reason}; no verdict after {waited:g}s (max bake {limit:g}s)")
            self._judged(verdict, metrics, where)
            if verdict.decision != WAIT or waited >= limit:
                return verdict
            self.sleep(min(self.plan.poll_s, limit - waited))

    def _rollback(self, state: AliasState, stable: str, new: str, reason: str, **where: Any) -> Outcome:
        try:
            state = self.last_seen = self.alias.write(state, stable, {})
        except ConcurrentChange as exc:
            raise ConcurrentChange(f"wanted to roll back ({reason}) but {exc}", exc.current) from exc
        where = {**where, "weight": state.share(new)}
        self._event("rollback", f"{reason}; alias back to {state.describe()}", decision="rollback", **where)
        return Outcome.ROLLED_BACK

    def _judged(self, verdict: Verdict, metrics: VersionMetrics, where: dict[str, Any]) -> None:
        self.log.record(
            self.clock(),
            "judge",
            decision=verdict.decision,
            reason=verdict.reason,
            metrics=metrics.as_dict(),
            thresholds=self.thresholds,
            **where,
        )

    def _event(self, event: str, reason: str, **fields: Any) -> None:
        self.log.record(self.clock(), event, reason=reason, **fields)


def init(
    lambda_client: Any, function: str, alias_name: str, *, version: str, log: DecisionLog, clock: Clock = utc_now
) -> Outcome:
    """Create the alias the controller will own, on ``version`` (a number, ``latest`` or an alias name).

    With ``PublishAlias=published`` CloudFormation never creates ``live``: this does, once, after the first
    deploy. An alias that exists already is left as it is.
    """
    try:
        existing = Alias(lambda_client, function, alias_name).read()
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            log.record(clock(), "error", reason=f"AWS API error: {exc}")
            return Outcome.USAGE
    except BotoCoreError as exc:
        log.record(clock(), "error", reason=f"AWS API error: {exc}")
        return Outcome.USAGE
    else:
        log.record(clock(), "noop", reason=f"alias {alias_name} exists: {existing.describe()}; left as it is")
        return Outcome.DONE
    try:
        target = resolve_version(lambda_client, function, version)
        created = AliasState.from_response(
            lambda_client.create_alias(
                FunctionName=function,
                Name=alias_name,
                FunctionVersion=target,
                Description="Traffic shifted by python -m core.canary",
            )
        )
    except VersionNotFound as exc:
        log.record(clock(), "error", reason=str(exc))
        return Outcome.USAGE
    except (ClientError, BotoCoreError) as exc:
        log.record(clock(), "error", reason=f"AWS API error: {exc}")
        return Outcome.USAGE
    log.versions(stable=target, new=None)
    log.record(clock(), "init", reason=f"created alias {alias_name}: {created.describe()}", weight=FULL)
    return Outcome.DONE


def rollback(
    lambda_client: Any, function: str, alias_name: str, *, to: str | None, log: DecisionLog, clock: Clock = utc_now
) -> Outcome:
    """Put ``alias_name`` back on one version at once: ``to``, or its primary version when it has weights."""
    alias = Alias(lambda_client, function, alias_name)
    try:
        state = alias.read()
        target = to or (state.version if state.weights else None)
        log.versions(stable=target, new=None)
        if target is None:
            log.record(
                clock(),
                "error",
                reason=f"alias routes {state.describe()} only: nothing to roll back to (pass --to VERSION)",
            )
            return Outcome.USAGE
        if state.version == target and not state.weights:
            log.record(clock(), "noop", reason=f"alias already routes everything to {target}")
            return Outcome.DONE
        after = alias.write(state, target, {})
    except ConcurrentChange as exc:
        log.record(clock(), "stop", reason=f"{exc}; stopped without writing", decision="stop")
        return Outcome.STOPPED
    except (ClientError, BotoCoreError) as exc:
        log.record(clock(), "error", reason=f"AWS API error: {exc}")
        return Outcome.USAGE
    log.record(clock(), "rollback", reason=f"was {state.describe()}; now {after.describe()}", decision="rollback")
    return Outcome.DONE


def status(lambda_client: Any, function: str, alias_name: str, *, out: TextIO, as_json: bool = False) -> Outcome:
    """Print the alias's version, weights and revision."""
    try:
        state = Alias(lambda_client, function, alias_name).read()
    except (ClientError, BotoCoreError) as exc:
        print(f"AWS API error: {exc}", file=out)
        return Outcome.USAGE
    if as_json:
        print(json.dumps({"function": function, "alias": alias_name, **state.as_dict()}), file=out)
    else:
        print(f"{function}:{alias_name} -> {state.describe()} (revision {state.revision})", file=out)
    return Outcome.DONE
