"""The progressive controller against moto: Lambda versions and a weighted alias, CloudWatch metric data.

The controller's clock and sleep are injected: a bake "lasts" 300 s on a fake clock, and while it sleeps
the new version "serves" requests, i.e. the test puts the datapoints its EMF documents and Lambda would
publish, timestamped inside the bake window. Nothing is invoked through moto (it answers junk without
Docker); the smoke pre-check gets its ``invoke`` answers from a small fake.

Two gaps in moto 5.2.5 are filled here, each at the boto3 client and only for that one behaviour:

- ``update_alias`` ignores ``RevisionId`` and never changes an alias's revision (``LambdaAlias.update``).
  :class:`RevisionIds` hooks botocore's events on the moto-backed clients so they behave like Lambda:
  each successful alias write gets a new ``RevisionId``, and a write naming a stale one fails with
  ``PreconditionFailedException`` (HTTP 412) before it reaches moto.
- ``get_metric_data`` fails on percentile statistics (``TypeError`` for ``Stat: p99``).
  :class:`PercentileCloudWatch` sends every query to moto except the percentile ones, which it answers
  from the raw values put through it (nearest rank over the query window, one datapoint).
"""

from __future__ import annotations

import io
import json
import math
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from core.canary import Controller, Outcome, load_plan
from core.canary.__main__ import main
from core.canary.decisions import DecisionLog

REGION = "us-east-1"
FUNCTION = "haystack-api"
ALIAS = "live"
SERVICE = "haystack-serverless"
NAMESPACE = "HaystackServerless"
# Any fixed time: moto keeps datapoints of any age, and a fixed start keeps windows on whole minutes.
T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
BAKE = 300.0


class RevisionIds:
    """Make moto's alias writes check and rotate ``RevisionId`` like Lambda (moto 5.2.5 does neither)."""

    def __init__(self) -> None:
        self.current: dict[tuple[str, str], str] = {}

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        for operation in ("GetAlias", "CreateAlias", "UpdateAlias"):
            events.register(f"before-parameter-build.lambda.{operation}", self._remember)
            events.register(f"after-call.lambda.{operation}", self._revise)
        events.register("before-call.lambda.UpdateAlias", self._check)
        return client

    @staticmethod
    def _remember(params: dict, context: dict, **_: Any) -> None:
        context["alias_key"] = (params["FunctionName"], params["Name"])
        context["revision_given"] = params.get("RevisionId")

    def _check(self, context: dict, **_: Any) -> tuple[AWSResponse, dict] | None:
        given, latest = context.get("revision_given"), self.current.get(context["alias_key"])
        if given is None or latest is None or given == latest:
            return None
        message = "The Revision Id provided does not match the latest Revision Id."
        error = {"Error": {"Code": "PreconditionFailedException", "Message": message}}
        return AWSResponse("https://lambda.amazonaws.com", 412, {}, None), {
            **error,
            "ResponseMetadata": {"HTTPStatusCode": 412},
        }

    def _revise(self, http_response: AWSResponse, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        key = context["alias_key"]
        if model.name == "UpdateAlias":
            self.current[key] = str(uuid.uuid4())
        else:
            self.current.setdefault(key, parsed["RevisionId"])
        parsed["RevisionId"] = self.current[key]


class PercentileCloudWatch:
    """moto's CloudWatch, with the percentile queries of ``get_metric_data`` answered from the raw values."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.points: list[tuple[str, str, frozenset, datetime, float]] = []
        self.queries: list[dict] = []

    def put_metric_data(self, **kwargs: Any) -> dict:
        for datum in kwargs["MetricData"]:
            dims = frozenset((d["Name"], d["Value"]) for d in datum.get("Dimensions", []))
            point = (kwargs["Namespace"], datum["MetricName"], dims, datum["Timestamp"], float(datum["Value"]))
            self.points.append(point)
        return self.client.put_metric_data(**kwargs)

    def get_metric_data(self, **kwargs: Any) -> dict:
        queries = kwargs["MetricDataQueries"]
        self.queries.extend(queries)
        plain = [q for q in queries if not q["MetricStat"]["Stat"].startswith("p")]
        answered = self.client.get_metric_data(**{**kwargs, "MetricDataQueries": plain}) if plain else {}
        results = {r["Id"]: r for r in answered.get("MetricDataResults", [])}
        for query in queries:
            if query not in plain:
                results[query["Id"]] = self._percentile(query, kwargs["StartTime"], kwargs["EndTime"])
        return {"MetricDataResults": [results[q["Id"]] for q in queries], "Messages": []}

    def _percentile(self, query: dict, start: datetime, end: datetime) -> dict:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        dims = frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"])
        values = sorted(
            value
            for namespace, name, point_dims, stamp, value in self.points
            if (namespace, name, point_dims) == (metric["Namespace"], metric["MetricName"], dims)
            and start <= stamp < end
        )
        if not values:
            return {"Id": query["Id"], "Timestamps": [], "Values": [], "StatusCode": "Complete"}
        rank = math.ceil(float(stat["Stat"][1:]) / 100 * len(values))
        return {"Id": query["Id"], "Timestamps": [start], "Values": [values[rank - 1]], "StatusCode": "Complete"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@dataclass
class Batch:
    """Requests the new version serves during one sleep of the controller."""

    requests: int = 40
    errors_5xx: int = 0
    lambda_errors: int = 0
    latency_ms: float = 120.0
    slow: int = 0
    slow_ms: float = 9000.0


@dataclass
class Release:
    """The new version under traffic: puts what its EMF documents and Lambda publish, per sleep."""

    cloudwatch: PercentileCloudWatch
    version: str
    batches: list[Batch] = field(default_factory=list)
    default: Batch = field(default_factory=Batch)

    def __call__(self, start: datetime, end: datetime) -> None:
        batch = self.batches.pop(0) if self.batches else self.default
        if not batch.requests:
            return
        gap = (end - start).total_seconds() / (batch.requests + 1)
        stamps = [start + timedelta(seconds=int(gap * (i + 1))) for i in range(batch.requests)]
        emf = [{"Name": "service", "Value": SERVICE}, {"Name": "version", "Value": self.version}]
        lam = [
            {"Name": "FunctionName", "Value": FUNCTION},
            {"Name": "Resource", "Value": f"{FUNCTION}:{ALIAS}"},
            {"Name": "ExecutedVersion", "Value": self.version},
        ]

        def data(name: str, dims: list, values: list[float]) -> list[dict]:
            return [
                {"MetricName": name, "Dimensions": dims, "Timestamp": t, "Value": v}
                for t, v in zip(stamps, values, strict=True)
            ]

        n = batch.requests
        latencies = [batch.slow_ms if i < batch.slow else batch.latency_ms for i in range(n)]
        self.cloudwatch.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=data("Requests", emf, [1] * n)
            + data("Errors5xx", emf, [int(i < batch.errors_5xx) for i in range(n)])
            + data("Latency", emf, latencies),
        )
        self.cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=data("Invocations", lam, [1] * n)
            + data("Errors", lam, [int(i < batch.lambda_errors) for i in range(n)]),
        )


class FakeClock:
    """The controller's clock and sleep: sleeping moves time on and lets the world act meanwhile."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.during_sleep: list[Callable[[datetime, datetime], None]] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        start, self.now = self.now, self.now + timedelta(seconds=seconds)
        for hook in self.during_sleep:
            hook(start, self.now)


@dataclass
class World:
    lam: Any
    other: Any
    cloudwatch: PercentileCloudWatch
    stable: str
    new: str
    writes: list[tuple[str, dict[str, float]]]
    clock: FakeClock
    release: Release

    def alias(self) -> tuple[str, dict[str, float]]:
        got = self.other.get_alias(FunctionName=FUNCTION, Name=ALIAS)
        return got["FunctionVersion"], dict((got.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    return buffer.getvalue()


@pytest.fixture
def world(monkeypatch) -> World:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        revisions = RevisionIds()
        lam = revisions.attach(boto3.client("lambda", region_name=REGION))
        other = revisions.attach(boto3.client("lambda", region_name=REGION))
        role = boto3.client("iam", region_name=REGION).create_role(RoleName="api", AssumeRolePolicyDocument="{}")
        lam.create_function(
            FunctionName=FUNCTION,
            Runtime="python3.13",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
        )
        stable = lam.publish_version(FunctionName=FUNCTION)["Version"]
        lam.update_function_code(FunctionName=FUNCTION, ZipFile=_zip())
        new = lam.publish_version(FunctionName=FUNCTION)["Version"]
        other.create_alias(FunctionName=FUNCTION, Name=ALIAS, FunctionVersion=stable)
        writes: list[tuple[str, dict[str, float]]] = []

        def record(http_response: AWSResponse, parsed: dict, **_: Any) -> None:
            if http_response.status_code < 300:
                routing = (parsed.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
                writes.append((parsed["FunctionVersion"], dict(routing)))

        lam.meta.events.register("after-call.lambda.UpdateAlias", record)
        cloudwatch = PercentileCloudWatch(boto3.client("cloudwatch", region_name=REGION))
        clock = FakeClock()
        release = Release(cloudwatch, new)
        clock.during_sleep.append(release)
        yield World(lam, other, cloudwatch, stable, new, writes, clock, release)


def controller(world: World, log_path: Path | None = None, **options: Any) -> Controller:
    values = {"function": FUNCTION, "version": world.new, "service": SERVICE, "namespace": NAMESPACE, "bake_s": BAKE}
    plan = load_plan(**{**values, **options})
    log = DecisionLog(log_path, function=FUNCTION, alias=ALIAS, out=io.StringIO())
    return Controller(
        plan,
        lambda_client=world.lam,
        cloudwatch_client=world.cloudwatch,
        log=log,
        clock=world.clock,
        sleep=world.clock.sleep,
    )


def run_cli(world: World, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(
        list(argv),
        lambda_client=world.lam,
        cloudwatch_client=world.cloudwatch,
        clock=world.clock,
        sleep=world.clock.sleep,
        out=out,
    )
    return code, out.getvalue()


def shift_argv(world: World, log: Path, *extra: str) -> list[str]:
    return [
        "shift",
        "--function",
        FUNCTION,
        "--version",
        world.new,
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--bake",
        str(BAKE),
        "--log",
        str(log),
        *extra,
    ]


def decisions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def judged(path: Path) -> list[tuple[float, str]]:
    return [(r["weight"], r["decision"]) for r in decisions(path) if r["event"] == "judge"]


def test_a_healthy_new_version_is_promoted_through_every_step(world, tmp_path):
    log = tmp_path / "decisions.jsonl"

    outcome = controller(world, log).run()

    assert outcome == Outcome.DONE
    stable, new = world.stable, world.new
    assert world.writes == [
        (stable, {new: 0.05}),
        (stable, {new: 0.1}),
        (stable, {new: 0.25}),
        (stable, {new: 0.5}),
        (new, {}),
    ]
    assert world.alias() == (new, {})
    assert world.clock.sleeps == [BAKE] * 5
    assert judged(log) == [(5, "advance"), (10, "advance"), (25, "advance"), (50, "advance"), (100, "advance")]
    records = decisions(log)
    assert [r["event"] for r in records][:3] == ["start", "precheck", "shift"]
    assert records[-1]["event"] == "promote"
    first = next(r for r in records if r["event"] == "judge")
    assert first["metrics"]["requests"] == 40
    assert first["metrics"]["invocations"] == 40
    assert first["metrics"]["error_rate_pct"] == 0
    assert first["metrics"]["p99_ms"] == 120
    assert first["thresholds"] == {"max_error_rate_pct": 5.0, "max_p99_ms": 5000.0, "min_requests": 20}
    assert (first["stable"], first["new"], first["step"], first["steps"]) == (stable, new, 1, 5)
    assert first["metrics"]["start"] == T0.isoformat()


def test_the_controller_reads_the_new_versions_emf_and_lambda_metrics_over_the_bake_window(world):
    controller(world, steps="100").run()

    queries = {q["Id"]: q["MetricStat"] for q in world.cloudwatch.queries}
    emf = [{"Name": "service", "Value": SERVICE}, {"Name": "version", "Value": world.new}]
    lam = [
        {"Name": "FunctionName", "Value": FUNCTION},
        {"Name": "Resource", "Value": f"{FUNCTION}:{ALIAS}"},
        {"Name": "ExecutedVersion", "Value": world.new},
    ]
    assert {k: (v["Metric"]["Namespace"], v["Metric"]["MetricName"], v["Stat"]) for k, v in queries.items()} == {
        "requests": (NAMESPACE, "Requests", "Sum"),
        "errors5xx": (NAMESPACE, "Errors5xx", "Sum"),
        "latency": (NAMESPACE, "Latency", "p99"),
        "invocations": ("AWS/Lambda", "Invocations", "Sum"),
        "lambdaerrors": ("AWS/Lambda", "Errors", "Sum"),
    }
    assert queries["requests"]["Metric"]["Dimensions"] == emf
    assert queries["invocations"]["Metric"]["Dimensions"] == lam
    assert {q["Period"] for q in queries.values()} == {BAKE}


def test_a_version_with_a_20_percent_5xx_rate_is_rolled_back_at_the_first_step(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.release.default = Batch(requests=40, errors_5xx=8)

    outcome = controller(world, log).run()

    assert outcome == Outcome.ROLLED_BACK
    assert world.writes == [(world.stable, {world.new: 0.05}), (world.stable, {})]
    assert world.alias() == (world.stable, {})
    assert judged(log) == [(5, "rollback")]
    judge = next(r for r in decisions(log) if r["event"] == "judge")
    assert judge["metrics"]["error_rate_pct"] == 20
    assert "error rate 20.00% > 5%" in judge["reason"]
    assert decisions(log)[-1]["event"] == "rollback"


def test_lambda_errors_of_the_new_version_count_toward_the_error_rate(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    # Timeouts or crashes: no EMF document, only Lambda's Errors and Invocations.
    world.release.default = Batch(requests=40, lambda_errors=2, errors_5xx=1)

    assert controller(world, log).run() == Outcome.ROLLED_BACK

    judge = next(r for r in decisions(log) if r["event"] == "judge")
    assert judge["metrics"]["error_rate_pct"] == 7.5
    assert "1 5xx + 2 Lambda errors over 40 requests" in judge["reason"]


def test_a_latency_regression_is_rolled_back(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    # p99 of 40 requests is the slowest one; two slow ones make it 9 s.
    world.release.batches = [Batch(requests=40), Batch(requests=40, slow=2, slow_ms=9000)]

    outcome = controller(world, log).run()

    assert outcome == Outcome.ROLLED_BACK
    assert judged(log) == [(5, "advance"), (10, "rollback")]
    assert world.writes[-1] == (world.stable, {})
    assert world.alias() == (world.stable, {})
    assert "p99 9000 ms > 5000 ms" in decisions(log)[-1]["reason"]


def test_too_little_traffic_waits_instead_of_judging_then_judges_when_requests_arrive(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.release.batches = [Batch(requests=5), Batch(requests=30)]

    outcome = controller(world, log, poll_s=60, max_bake_s=900).run()

    assert outcome == Outcome.DONE
    assert judged(log)[:2] == [(5, "wait"), (5, "advance")]
    assert world.clock.sleeps[:3] == [BAKE, 60, BAKE]
    first_wait, first_verdict = [r for r in decisions(log) if r["event"] == "judge"][:2]
    assert first_wait["metrics"]["requests"] == 5
    assert "not judged yet" in first_wait["reason"]
    # The window grows from the step's start: the waited-for requests add to the first ones.
    assert first_verdict["metrics"]["requests"] == 35
    assert world.alias() == (world.new, {})


def test_a_step_that_never_sees_enough_traffic_is_rolled_back_at_max_bake(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.release.default = Batch(requests=3)

    outcome = controller(world, log, poll_s=60, max_bake_s=420).run()

    assert outcome == Outcome.ROLLED_BACK
    assert world.clock.sleeps == [BAKE, 60, 60]
    assert judged(log) == [(5, "wait"), (5, "wait"), (5, "wait")]
    assert "no verdict after 420s" in decisions(log)[-1]["reason"]
    assert world.alias() == (world.stable, {})


def test_with_on_low_traffic_hold_the_alias_stays_where_it_is(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.release.default = Batch(requests=3)

    outcome = controller(world, log, poll_s=60, max_bake_s=300, on_low_traffic="hold").run()

    assert outcome == Outcome.HELD
    assert world.writes == [(world.stable, {world.new: 0.05})]
    assert world.alias() == (world.stable, {world.new: 0.05})
    assert decisions(log)[-1]["event"] == "hold"


def test_a_concurrent_alias_edit_during_a_bake_stops_the_controller_without_overwriting_it(world, tmp_path):
    log = tmp_path / "decisions.jsonl"

    def operator_sets_50_percent(start: datetime, end: datetime) -> None:
        if len(world.clock.sleeps) == 2:
            world.other.update_alias(
                FunctionName=FUNCTION,
                Name=ALIAS,
                FunctionVersion=world.stable,
                RoutingConfig={"AdditionalVersionWeights": {world.new: 0.5}},
            )

    world.clock.during_sleep.append(operator_sets_50_percent)

    outcome = controller(world, log).run()

    assert outcome == Outcome.STOPPED
    assert world.writes == [(world.stable, {world.new: 0.05}), (world.stable, {world.new: 0.1})]
    assert world.alias() == (world.stable, {world.new: 0.5})
    last = decisions(log)[-1]
    assert (last["event"], last["decision"]) == ("stop", "stop")
    # Caught by the re-read before the 25% write, which therefore never reached Lambda.
    assert f"found {world.stable} (50%) + {world.new} (50%)" in last["reason"]


def test_a_revision_id_mismatch_between_read_and_write_stops_without_overwriting(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    reads = []

    def someone_writes_right_after_the_controllers_read(**_: Any) -> None:
        reads.append(1)
        # Read 1: the start; read 2: before the 5% write; read 3: before the 10% write.
        if len(reads) == 3:
            world.other.update_alias(
                FunctionName=FUNCTION,
                Name=ALIAS,
                FunctionVersion=world.stable,
                RoutingConfig={"AdditionalVersionWeights": {}},
            )

    world.lam.meta.events.register("after-call.lambda.GetAlias", someone_writes_right_after_the_controllers_read)

    outcome = controller(world, log).run()

    assert outcome == Outcome.STOPPED
    assert world.writes == [(world.stable, {world.new: 0.05})]
    assert world.alias() == (world.stable, {})
    assert "PreconditionFailedException" in decisions(log)[-1]["reason"]


def test_a_breach_while_someone_else_changed_the_alias_does_not_overwrite_their_change(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.release.default = Batch(requests=40, errors_5xx=20)

    def operator_pins_the_new_version(start: datetime, end: datetime) -> None:
        world.other.update_alias(
            FunctionName=FUNCTION,
            Name=ALIAS,
            FunctionVersion=world.new,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )

    world.clock.during_sleep.append(operator_pins_the_new_version)

    assert controller(world, log).run() == Outcome.STOPPED
    assert world.alias() == (world.new, {})
    assert "wanted to roll back" in decisions(log)[-1]["reason"]


def test_the_rollback_command_restores_the_stable_version(world, tmp_path):
    world.other.update_alias(
        FunctionName=FUNCTION,
        Name=ALIAS,
        FunctionVersion=world.stable,
        RoutingConfig={"AdditionalVersionWeights": {world.new: 0.25}},
    )
    log = tmp_path / "decisions.jsonl"

    code, printed = run_cli(world, "rollback", "--function", FUNCTION, "--log", str(log))

    assert code == 0
    assert world.writes == [(world.stable, {})]
    assert world.alias() == (world.stable, {})
    assert decisions(log)[-1]["event"] == "rollback"
    assert "rollback" in printed


def test_the_rollback_command_needs_a_target_when_the_alias_has_no_weights(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.other.update_alias(FunctionName=FUNCTION, Name=ALIAS, FunctionVersion=world.new)

    code, _ = run_cli(world, "rollback", "--function", FUNCTION, "--log", str(log))
    assert code == Outcome.USAGE
    assert world.writes == []

    code, _ = run_cli(world, "rollback", "--function", FUNCTION, "--to", world.stable, "--log", str(log))
    assert code == 0
    assert world.alias() == (world.stable, {})


def test_status_prints_the_alias_version_and_weights(world):
    world.other.update_alias(
        FunctionName=FUNCTION,
        Name=ALIAS,
        FunctionVersion=world.stable,
        RoutingConfig={"AdditionalVersionWeights": {world.new: 0.1}},
    )

    code, printed = run_cli(world, "status", "--function", FUNCTION, "--json")
    assert code == 0
    shown = json.loads(printed)
    assert (shown["version"], shown["weights"]) == (world.stable, {world.new: 0.1})

    code, printed = run_cli(world, "status", "--function", FUNCTION)
    assert f"{world.stable} (90%) + {world.new} (10%)" in printed


def test_blue_green_promotes_a_healthy_version_in_one_switch(world, tmp_path):
    log = tmp_path / "decisions.jsonl"

    code, printed = run_cli(world, *shift_argv(world, log, "--schedule", "blue-green"))

    assert code == 0
    assert world.writes == [(world.new, {})]
    assert world.alias() == (world.new, {})
    assert judged(log) == [(100, "advance")]
    # One terminal line per event: start, precheck, shift, judge, promote.
    assert len(printed.splitlines()) == len(decisions(log)) == 5


def test_blue_green_rolls_back_a_bad_version_after_the_switch(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.release.default = Batch(requests=40, errors_5xx=10)

    code, _ = run_cli(world, *shift_argv(world, log, "--schedule", "blue-green"))

    assert code == Outcome.ROLLED_BACK
    assert world.writes == [(world.new, {}), (world.stable, {})]
    assert world.alias() == (world.stable, {})


class SmokeAnswers:
    """The moto Lambda client, except ``invoke``, which answers every smoke event with a fixed status."""

    def __init__(self, client: Any, status: int) -> None:
        self.client = client
        self.status = status
        self.invoked: list[tuple[str, dict]] = []

    def invoke(self, **kwargs: Any) -> dict:
        self.invoked.append((kwargs["Qualifier"], json.loads(kwargs["Payload"])))
        body = json.dumps({"statusCode": self.status, "body": "{}"}).encode()
        return {"StatusCode": 200, "Payload": io.BytesIO(body)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def smoke_folder(tmp_path: Path, events: dict[str, dict]) -> Path:
    """A smoke folder like ``events/smoke/``: events plus ``expectations.toml`` (each expects a 200)."""
    folder = tmp_path / "smoke"
    folder.mkdir()
    for name, event in events.items():
        (folder / name).write_text(json.dumps(event))
    (folder / "expectations.toml").write_text("".join(f'["{name}"]\nstatus = 200\n' for name in events))
    return folder


def test_blue_green_smoke_pre_check_refuses_a_version_answering_5xx_before_any_shift(world, tmp_path):
    smoke = smoke_folder(tmp_path, {"health.json": {"path": "/health", "httpMethod": "GET"}})
    world.lam = SmokeAnswers(world.lam, status=502)
    log = tmp_path / "decisions.jsonl"

    code, _ = run_cli(world, *shift_argv(world, log, "--schedule", "blue-green", "--smoke", "--smoke-dir", str(smoke)))

    assert code == Outcome.ROLLED_BACK
    assert world.lam.invoked == [(world.new, {"path": "/health", "httpMethod": "GET"})]
    assert world.writes == []
    assert world.alias() == (world.stable, {})
    assert "health.json: status 502, expected 200" in decisions(log)[-1]["reason"]


def test_blue_green_smoke_pre_check_passes_on_good_answers_and_skips_a_missing_folder(world, tmp_path):
    smoke = smoke_folder(tmp_path, {"query.json": {"path": "/query", "httpMethod": "POST"}})
    world.lam = SmokeAnswers(world.lam, status=200)
    log = tmp_path / "decisions.jsonl"

    code, _ = run_cli(world, *shift_argv(world, log, "--schedule", "blue-green", "--smoke", "--smoke-dir", str(smoke)))
    assert code == 0
    assert [r["reason"] for r in decisions(log) if r["event"] == "precheck"] == [
        f"version {world.new} is Active; 1 smoke cases passed"
    ]

    world.other.update_alias(FunctionName=FUNCTION, Name=ALIAS, FunctionVersion=world.stable)
    missing = tmp_path / "absent"
    argv = shift_argv(world, log, "--schedule", "blue-green", "--smoke", "--smoke-dir", str(missing))
    code, _ = run_cli(world, *argv)
    assert code == 0
    prechecks = [r["reason"] for r in decisions(log) if r["event"] == "precheck"]
    assert f"warning: no smoke events in {missing}: smoke check skipped" in prechecks[-1]
    assert len(world.lam.invoked) == 1


def test_an_alias_already_on_the_new_version_is_nothing_to_do(world, tmp_path):
    world.other.update_alias(FunctionName=FUNCTION, Name=ALIAS, FunctionVersion=world.new)

    code, printed = run_cli(world, *shift_argv(world, tmp_path / "d.jsonl"))

    assert code == 0
    assert world.writes == []
    assert "nothing to do" in printed


def test_a_run_resumes_above_the_weight_the_new_version_already_has(world, tmp_path):
    log = tmp_path / "decisions.jsonl"
    world.other.update_alias(
        FunctionName=FUNCTION,
        Name=ALIAS,
        FunctionVersion=world.stable,
        RoutingConfig={"AdditionalVersionWeights": {world.new: 0.1}},
    )

    assert controller(world, log).run() == Outcome.DONE

    assert [e["weight"] for e in decisions(log) if e["event"] == "skip"] == [5, 10]
    assert world.writes[0] == (world.stable, {world.new: 0.25})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "5,50"], "the last step must be 100"),
        (["--steps", "50,10,100"], "steps must increase"),
        (["--schedule", "blue-green", "--steps", "50,100"], "exclude each other"),
        (["--max-error-rate", "150"], "--max-error-rate"),
        (["--bake", "600", "--max-bake", "60"], "--max-bake"),
    ],
)
def test_invalid_options_exit_3_with_one_line_without_touching_the_alias(world, tmp_path, capsys, extra, message):
    code, _ = run_cli(world, *shift_argv(world, tmp_path / "d.jsonl", *extra))

    assert code == Outcome.USAGE
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1
    assert world.writes == []


def test_an_unknown_flag_exits_3_not_argparses_2_which_means_a_concurrent_change(world, tmp_path):
    with pytest.raises(SystemExit) as exited:
        run_cli(world, *shift_argv(world, tmp_path / "d.jsonl", "--no-such-flag"))
    assert exited.value.code == Outcome.USAGE


def test_a_version_that_does_not_exist_is_a_usage_error(world, tmp_path):
    log = tmp_path / "d.jsonl"
    argv = shift_argv(world, log)
    argv[argv.index("--version") + 1] = "99"

    code, _ = run_cli(world, *argv)

    assert code == Outcome.USAGE
    assert "version 99 of haystack-api does not exist" in decisions(log)[-1]["reason"]
    assert world.alias() == (world.stable, {})


def test_version_latest_picks_the_highest_published_version(world, tmp_path):
    log = tmp_path / "d.jsonl"
    argv = shift_argv(world, log, "--schedule", "blue-green")
    argv[argv.index("--version") + 1] = "latest"

    assert run_cli(world, *argv)[0] == 0
    assert world.alias() == (world.new, {})


def test_default_bake_times_pass_on_the_injected_clock_not_the_wall_clock(world):
    began = time.monotonic()

    outcome = controller(world, bake_s=300).run()

    assert outcome == Outcome.DONE
    assert world.clock.now - T0 == timedelta(seconds=5 * 300)
    assert time.monotonic() - began < 10


def test_an_interrupted_run_holds_the_alias_where_it_is_and_says_so(world, tmp_path):
    log = tmp_path / "decisions.jsonl"

    def operator_presses_ctrl_c(start: datetime, end: datetime) -> None:
        if len(world.clock.sleeps) == 2:
            raise KeyboardInterrupt

    world.clock.during_sleep.insert(0, operator_presses_ctrl_c)

    assert controller(world, log).run() == Outcome.HELD
    assert world.alias() == (world.stable, {world.new: 0.1})
    assert "interrupted; alias left at 1 (90%) + 2 (10%)" in decisions(log)[-1]["reason"]


def test_a_smoke_folder_whose_events_and_expectations_disagree_is_a_usage_error(world, tmp_path):
    smoke = smoke_folder(tmp_path, {"health.json": {"path": "/health", "httpMethod": "GET"}})
    (smoke / "extra.json").write_text("{}")
    world.lam = SmokeAnswers(world.lam, status=200)
    log = tmp_path / "decisions.jsonl"

    code, _ = run_cli(world, *shift_argv(world, log, "--smoke", "--smoke-dir", str(smoke)))

    assert code == Outcome.USAGE
    assert world.lam.invoked == []
    assert world.writes == []
    assert "events without an expectation ['extra.json']" in decisions(log)[-1]["reason"]


def test_init_creates_the_controllers_alias_from_the_published_one_once(world, tmp_path):
    # PublishAlias=published: CloudFormation moves "published"; "live" is the controller's to create.
    world.other.create_alias(FunctionName=FUNCTION, Name="published", FunctionVersion=world.stable)
    world.other.delete_alias(FunctionName=FUNCTION, Name=ALIAS)
    log = tmp_path / "decisions.jsonl"

    code, _ = run_cli(world, "init", "--function", FUNCTION, "--version", "published", "--log", str(log))
    assert code == 0
    assert world.alias() == (world.stable, {})
    assert decisions(log)[-1]["event"] == "init"

    world.other.update_alias(FunctionName=FUNCTION, Name="published", FunctionVersion=world.new)
    code, _ = run_cli(world, "init", "--function", FUNCTION, "--version", "published", "--log", str(log))
    assert code == 0
    assert world.alias() == (world.stable, {})
    assert decisions(log)[-1]["event"] == "noop"


def test_shift_takes_the_new_version_from_the_published_alias(world, tmp_path):
    world.other.create_alias(FunctionName=FUNCTION, Name="published", FunctionVersion=world.new)
    log = tmp_path / "decisions.jsonl"
    argv = shift_argv(world, log, "--schedule", "blue-green")
    argv[argv.index("--version") + 1] = "published"

    assert run_cli(world, *argv)[0] == 0
    assert world.alias() == (world.new, {})
    assert decisions(log)[0]["new"] == world.new
