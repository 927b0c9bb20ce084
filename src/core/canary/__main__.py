"""Shift a Lambda alias to a new version step by step, judged on its metrics (``python -m core.canary``).

    python -m core.canary shift --function FN --version 8 [--schedule canary|blue-green] [--steps 5,10,25,50,100]
                                [--bake 300] [--max-bake 900] [--poll 60] [--max-error-rate 5] [--max-p99-ms 5000]
                                [--min-requests 20] [--on-low-traffic rollback|hold] [--smoke] [--log FILE]
    python -m core.canary init --function FN --version published
    python -m core.canary rollback --function FN [--to 7]
    python -m core.canary status --function FN [--json]

Exit codes: 0 promoted / nothing to do / command done; 1 rolled back (or rejected by the pre-check);
2 stopped: someone else changed the alias, nothing overwritten; 3 usage, configuration or AWS API error;
4 held: too little traffic to judge within --max-bake, with --on-low-traffic hold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from core.canary.config import BLUE_GREEN_STEPS, DEFAULT_BAKE_S, ConfigError, Outcome, load_plan
from core.canary.controller import Clock, Controller, Sleep, init, rollback, status
from core.canary.decisions import DEFAULT_LOG, DecisionLog
from core.settings import SettingsError, load_settings


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 means "stopped on a concurrent change" here."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Outcome.USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core.canary", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--function", required=True, help="function name or ARN")
    common.add_argument("--alias", default="live", help="alias to move (default: live)")
    common.add_argument("--region", help="AWS region (default: the SDK's)")

    shift = commands.add_parser("shift", parents=[common], help="move the alias to a new version, step by step")
    shift.add_argument(
        "--version", required=True, help="version to shift to: a number, 'latest' published, or an alias name"
    )
    shift.add_argument("--schedule", choices=("canary", "blue-green"), default="canary")
    shift.add_argument("--steps", help="weights of the new version, %% (canary; default 5,10,25,50,100)")
    shift.add_argument("--bake", type=float, default=DEFAULT_BAKE_S, help="seconds per step before judging")
    shift.add_argument("--max-bake", type=float, help="longest a step waits for enough requests (default 3 x bake)")
    shift.add_argument("--poll", type=float, default=60.0, help="re-read interval while waiting for requests, s")
    shift.add_argument("--max-error-rate", type=float, default=5.0, help="highest passing error rate, %%")
    shift.add_argument("--max-p99-ms", type=float, default=5000.0, help="highest passing p99 latency, ms")
    shift.add_argument("--min-requests", type=int, default=20, help="requests a step needs before it is judged")
    shift.add_argument(
        "--on-low-traffic",
        choices=("rollback", "hold"),
        default="rollback",
        help="when a step never sees enough requests: roll back (exit 1) or leave the alias as it is (exit 4)",
    )
    shift.add_argument("--smoke", action="store_true", help="invoke the new version with the smoke events first")
    shift.add_argument("--smoke-dir", type=Path, help="smoke events folder (default: events/smoke)")
    shift.add_argument("--service", help="EMF service dimension (default: POWERTOOLS_SERVICE_NAME)")
    shift.add_argument("--namespace", help="EMF namespace (default: POWERTOOLS_METRICS_NAMESPACE)")
    shift.add_argument("--log", type=Path, default=DEFAULT_LOG, help=f"JSON lines decision log (default {DEFAULT_LOG})")

    first = commands.add_parser("init", parents=[common], help="create the alias the controller owns (once)")
    first.add_argument("--version", required=True, help="a number, 'latest', or an alias name ('published')")
    first.add_argument("--log", type=Path, default=DEFAULT_LOG, help=f"JSON lines decision log (default {DEFAULT_LOG})")

    back = commands.add_parser("rollback", parents=[common], help="put the alias back on one version at once")
    back.add_argument("--to", help="version to restore (default: the alias's primary version, if it has weights)")
    back.add_argument("--log", type=Path, default=DEFAULT_LOG, help=f"JSON lines decision log (default {DEFAULT_LOG})")

    show = commands.add_parser("status", parents=[common], help="print the alias's version and weights")
    show.add_argument("--json", action="store_true", help="one JSON object")
    return parser


def _plan_values(args: argparse.Namespace) -> dict[str, Any]:
    if args.schedule == "blue-green" and args.steps:
        raise ConfigError("invalid canary options: --steps and --schedule blue-green exclude each other")
    service, namespace = args.service, args.namespace
    if not service or not namespace:
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise ConfigError(f"{exc} (or pass --service and --namespace)") from None
        service = service or settings.powertools_service_name
        namespace = namespace or settings.powertools_metrics_namespace
    values: dict[str, Any] = {
        "function": args.function,
        "alias": args.alias,
        "version": args.version,
        "bake_s": args.bake,
        "max_bake_s": args.max_bake,
        "poll_s": args.poll,
        "max_error_rate_pct": args.max_error_rate,
        "max_p99_ms": args.max_p99_ms,
        "min_requests": args.min_requests,
        "on_low_traffic": args.on_low_traffic,
        "smoke": args.smoke,
        "service": service,
        "namespace": namespace,
    }
    if args.schedule == "blue-green":
        values["steps"] = BLUE_GREEN_STEPS
    elif args.steps:
        values["steps"] = args.steps
    if args.smoke_dir:
        values["smoke_dir"] = args.smoke_dir
    return values


def _client(name: str, region: str | None) -> Any:
    return boto3.client(name, region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 5}))


def main(
    argv: list[str] | None = None,
    *,
    lambda_client: Any = None,
    cloudwatch_client: Any = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
    out: TextIO | None = None,
) -> int:
    """Command line entry point; the clients, clock and sleep are injectable for tests."""
    args = _parser().parse_args(argv)
    out = out if out is not None else sys.stdout
    clocked: dict[str, Any] = {"clock": clock} if clock else {}
    try:
        plan = load_plan(**_plan_values(args)) if args.command == "shift" else None
        lambda_client = lambda_client or _client("lambda", args.region)
        if plan is not None:
            cloudwatch_client = cloudwatch_client or _client("cloudwatch", args.region)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return Outcome.USAGE
    except BotoCoreError as exc:  # no region configured, unknown profile: one line, not a traceback
        print(f"cannot create the AWS clients: {exc}", file=sys.stderr)
        return Outcome.USAGE
    if args.command == "status":
        return status(lambda_client, args.function, args.alias, out=out, as_json=args.json)
    log = DecisionLog(args.log, function=args.function, alias=args.alias, out=out)
    if args.command == "init":
        return init(lambda_client, args.function, args.alias, version=args.version, log=log, **clocked)
    if plan is None:
        return rollback(lambda_client, args.function, args.alias, to=args.to, log=log, **clocked)
    timing = {**clocked, **({"sleep": sleep} if sleep else {})}
    controller = Controller(plan, lambda_client=lambda_client, cloudwatch_client=cloudwatch_client, log=log, **timing)
    return controller.run()


if __name__ == "__main__":
    raise SystemExit(main())
