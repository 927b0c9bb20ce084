"""The CodeDeploy hooks (`core.deploy.hooks`, `handlers.deploy_hooks`) with real smoke events and a real API.

PreTraffic invokes "the new version" through an injected invoker that runs the real Lambda entry point
(`handlers.api`, imported with this module's environment) in-process and answers like `Lambda.invoke`:
moto's `invoke` needs Docker and, without it, answers 200 with an error text (FIELD-NOTES). PostTraffic
reads a real-shaped Lambda alias and CloudWatch alarms from moto.

CodeDeploy's `put_lifecycle_event_hook_execution_status` is not implemented in moto 5.2.5, so the
CodeDeploy client is a real botocore client whose one call is stubbed with `botocore.stub.Stubber`: the
stub checks the exact parameters (deployment id, hook execution id, status), and a hook that forgets
to report leaves a pending response, which `assert_no_pending_responses` turns into a failure.
"""

import asyncio
import copy
import importlib
import io
import json
import shutil
import threading
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from core.deploy import hooks
from core.deploy.smoke import (
    EXPECTATIONS_FILE,
    Deadline,
    SmokeConfigError,
    as_sent_by_api_gateway,
    call_within,
    default_smoke_dir,
    load_cases,
    run_cases,
    with_identity,
)
from scripts.invoke import LambdaContext
from tests.support import HANDLER_ENV, forget_handler_module

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "events" / "smoke"
REGION = "us-east-1"
FUNCTION = "haystack-serverless-test-ApiFunction-AbC123"
NEW_VERSION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}:7"
HOOK_EVENT = {"DeploymentId": "d-EXAMPLE111", "LifecycleEventHookExecutionId": "eyJleGFtcGxlIjoiaG9vayJ9"}
ALARMS = ("stack-new-version-5xx-rate", "stack-new-version-p99-latency", "stack-new-version-lambda-errors")
# What the template gives the PreTraffic hook (SMOKE_API_KEY_ID, SMOKE_HOST) and the smoke tenant's record.
STACK = "haystack-serverless-test"
SMOKE_KEY_ID = f"codedeploy-smoke-{STACK}"
API_HOST = f"a1b2c3d4e5.execute-api.{REGION}.amazonaws.com"
TENANTS = f"/{STACK}/tenants"
SMOKE_RECORD = {"tenant_id": "default", "allowed_pipelines": "*", "rate_limit": {"rate_per_s": 5, "burst": 10}}

# Mangum 0.22 calls asyncio.get_event_loop() with no loop set (deprecated since Python 3.12; it still makes one).
pytestmark = pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in hooks.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


# --- the real API, invoked like a Lambda version --------------------------------------------------------


def lambda_response(payload: object, function_error: str | None = None) -> dict:
    """What `Lambda.Client.invoke` returns for a synchronous invocation."""
    response = {"StatusCode": 200, "ExecutedVersion": "7", "Payload": io.BytesIO(json.dumps(payload).encode())}
    if function_error:
        response["FunctionError"] = function_error
    return response


class InProcessInvoker:
    """Invokes the real API handler as if it were the new version; records the paths it was asked for."""

    def __init__(self, api):
        self.api = api
        self.paths: list[str] = []
        self.events: list[dict] = []

    def answer(self, event: dict) -> dict:
        # Lambda runs the handler on its process's main thread; here it runs on the hook's invoke thread,
        # which has no event loop for Mangum to run the app on.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return self.api.handler(copy.deepcopy(event), LambdaContext())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def __call__(self, event: dict, timeout_s: float) -> dict:
        assert timeout_s > 0
        self.paths.append(f"{event['httpMethod']} {event['path']}")
        self.events.append(event)
        try:
            return lambda_response(self.answer(event))
        except Exception as exc:  # noqa: BLE001 - what Lambda does with an exception escaping the handler
            return lambda_response({"errorMessage": str(exc), "errorType": type(exc).__name__}, "Unhandled")


@pytest.fixture
def invoker(api) -> InProcessInvoker:
    return InProcessInvoker(api)


@pytest.fixture
def tenant_api(small_snapshot):
    """`handlers.api` as the template configures it: tenants from SSM (moto) holding the smoke tenant's record.

    Per test: moto's state must not outlive it (the PostTraffic tests start their own).
    """
    with mock_aws(), pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            mp.setenv(name, value)
        for name in HANDLER_ENV:
            mp.delenv(name, raising=False)
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=f"{TENANTS}/api-key/{SMOKE_KEY_ID}", Type="String", Value=json.dumps(SMOKE_RECORD)
        )
        mp.setenv("STORE_SNAPSHOT_URI", str(small_snapshot))
        mp.setenv("GENERATOR", "none")
        mp.setenv("TENANT_REGISTRY", f"ssm:{TENANTS}")
        mp.setenv("TRUSTED_HOSTS", API_HOST)
        forget_handler_module()
        try:
            yield importlib.import_module("handlers.api")
        finally:
            forget_handler_module()


# --- CodeDeploy: the one call moto lacks, stubbed -------------------------------------------------------


class Verdicts:
    """A CodeDeploy client whose `put_lifecycle_event_hook_execution_status` expects exactly one verdict."""

    def __init__(self):
        self.client = boto3.client("codedeploy", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def expect(self, status: str, event: dict = HOOK_EVENT) -> None:
        self.stubber.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": event["DeploymentId"],
                "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"],
                "status": status,
            },
        )

    def assert_delivered(self) -> None:
        self.stubber.assert_no_pending_responses()


@pytest.fixture
def verdicts():
    verdicts = Verdicts()
    yield verdicts
    verdicts.stubber.deactivate()


def config(**overrides) -> hooks.HookConfig:
    return hooks.HookConfig(**{"new_version_arn": NEW_VERSION_ARN, "smoke_dir": SMOKE, **overrides})


def pre(verdicts: "Verdicts", invoke, *, timeout_ms: int = 120_000, **kwargs) -> dict:
    """PreTraffic with this module's hook event, a context with ``timeout_ms`` left and the stubbed CodeDeploy."""
    kwargs.setdefault("config", config())
    context = LambdaContext("CodeDeployHook_stack-pre", timeout_ms=timeout_ms)
    return hooks.pre_traffic(HOOK_EVENT, context, codedeploy=verdicts.client, invoke=invoke, **kwargs)


# --- the smoke events themselves ------------------------------------------------------------------------


def test_every_smoke_event_has_an_expectation_and_is_a_plain_rest_api_event():
    cases = load_cases(SMOKE)
    assert {c.name for c in cases} == {p.name for p in SMOKE.glob("*.json")}
    assert (SMOKE / EXPECTATIONS_FILE).is_file()
    for case in cases:
        event, context = case.event, case.event["requestContext"]
        text = (SMOKE / case.name).read_text()
        assert text == json.dumps(event, indent=2) + "\n", "keep the event pretty-printed (indent=2)"
        # What `sam local invoke -e` and `make invoke EVENT=` take: an API Gateway REST (v1) proxy event.
        assert "version" not in event
        assert event["resource"] == context["resourcePath"] == "/{proxy+}"
        assert event["pathParameters"] == {"proxy": event["path"].lstrip("/")}
        assert context["path"] == f"/{context['stage']}{event['path']}"
        assert event["httpMethod"] == context["httpMethod"]
        assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    requests = {(c.event["httpMethod"], c.event["path"]) for c in cases}
    assert {("GET", "/health"), ("GET", "/ready"), ("GET", "/pipelines"), ("POST", "/query")} <= requests
    assert ("POST", "/pipelines/search/run") in requests
    assert any(400 <= c.expect.status < 500 for c in cases), "one event the app must refuse with its error body"
    assert len({c.event["requestContext"]["requestId"] for c in cases}) == len(cases)


def test_smoke_posts_bypass_the_cache():
    # A cached answer would test the cache, not the new version's pipeline, and a smoke answer must not be cached.
    for case in load_cases(SMOKE):
        if case.event["httpMethod"] == "POST":
            assert case.event["headers"]["Cache-Control"] == "no-store", case.name


def test_smoke_dir_is_found_in_the_checkout():
    assert default_smoke_dir() == SMOKE


def test_an_event_without_an_expectation_is_a_configuration_error(tmp_path):
    shutil.copytree(SMOKE, tmp_path / "smoke")
    (tmp_path / "smoke" / "extra.json").write_text("{}")
    with pytest.raises(SmokeConfigError, match=r"events without an expectation \['extra.json'\]"):
        load_cases(tmp_path / "smoke")


def test_an_expectation_without_its_event_is_a_configuration_error(tmp_path):
    shutil.copytree(SMOKE, tmp_path / "smoke")
    (tmp_path / "smoke" / "ready.json").unlink()
    with pytest.raises(SmokeConfigError, match=r"expectations without an event \['ready.json'\]"):
        load_cases(tmp_path / "smoke")


def test_no_other_json_beside_the_events():
    # Tools serve every *.json under events/ as an API Gateway event (scripts/package_trace.py does).
    for path in SMOKE.glob("*.json"):
        assert "httpMethod" in json.loads(path.read_text()), path


def test_smoke_events_are_sent_as_api_gateway_would_from_the_smoke_key_to_the_api_host():
    for case in load_cases(SMOKE):
        sent = as_sent_by_api_gateway(case.event, SMOKE_KEY_ID, API_HOST)
        identity = sent["requestContext"]["identity"]
        assert identity == {**case.event["requestContext"]["identity"], "apiKeyId": SMOKE_KEY_ID}
        assert sent["headers"] == {**case.event["headers"], "Host": API_HOST}
        assert sent["multiValueHeaders"] == {**case.event["multiValueHeaders"], "Host": [API_HOST]}
        # Nothing else changes, and the event on disk is not touched.
        assert {k: v for k, v in sent.items() if k not in ("requestContext", "headers", "multiValueHeaders")} == {
            k: v for k, v in case.event.items() if k not in ("requestContext", "headers", "multiValueHeaders")
        }
        assert "apiKeyId" not in case.event["requestContext"]["identity"]
        assert as_sent_by_api_gateway(case.event) == case.event


def test_the_host_replaces_a_host_header_of_any_case():
    event = {
        "headers": {"host": "old.example.com", "Accept": "*/*"},
        "multiValueHeaders": {"HOST": ["old.example.com"]},
    }
    sent = as_sent_by_api_gateway(event, host=API_HOST)
    assert sent["headers"] == {"Accept": "*/*", "Host": API_HOST}
    assert sent["multiValueHeaders"] == {"Host": [API_HOST]}
    # An event without a requestContext gets one with just the identity.
    assert as_sent_by_api_gateway({}, SMOKE_KEY_ID) == {"requestContext": {"identity": {"apiKeyId": SMOKE_KEY_ID}}}


def test_every_smoke_event_passes_against_the_real_api(invoker):
    results = run_cases(load_cases(SMOKE), invoker, Deadline.after(120), invoke_timeout_s=60)
    assert [r.case for r in results if not r.ok] == [], [r.detail for r in results if not r.ok]
    assert {r.status for r in results} == {200, 400}


# --- PreTraffic -----------------------------------------------------------------------------------------


def test_pre_traffic_succeeds_when_every_smoke_event_passes(invoker, verdicts):
    verdicts.expect("Succeeded")
    outcome = pre(verdicts, invoker)
    verdicts.assert_delivered()
    assert outcome["status"] == "Succeeded"
    assert invoker.paths == [f"{c.event['httpMethod']} {c.event['path']}" for c in load_cases(SMOKE)]
    assert all(r["ok"] for r in outcome["results"])


def test_pre_traffic_sends_every_event_with_the_smoke_key_id_and_the_api_host(invoker, verdicts):
    seen = []

    def invoke(event: dict, timeout_s: float) -> dict:
        seen.append(event)
        return invoker(event, timeout_s)

    verdicts.expect("Succeeded")
    outcome = pre(verdicts, invoke, config=config(smoke_api_key_id=SMOKE_KEY_ID, smoke_host=API_HOST))
    verdicts.assert_delivered()
    assert outcome["status"] == "Succeeded"
    assert len(seen) == len(load_cases(SMOKE))
    assert {e["requestContext"]["identity"]["apiKeyId"] for e in seen} == {SMOKE_KEY_ID}
    assert {e["headers"]["Host"] for e in seen} == {API_HOST}


def test_pre_traffic_passes_with_tenancy_on_only_through_the_smoke_tenant(tenant_api, verdicts):
    # The API as deployed: every pipeline request needs a tenant, resolved from the API key id through SSM.
    invoker = InProcessInvoker(tenant_api)
    verdicts.expect("Succeeded")
    cfg = config(smoke_api_key_id=SMOKE_KEY_ID, smoke_host=API_HOST)
    outcome = pre(verdicts, invoker, config=cfg)
    verdicts.assert_delivered()
    assert outcome["status"] == "Succeeded", [r for r in outcome["results"] if not r["ok"]]
    # Without the injected key id the same events reach the app with no identity: the pipelines refuse them.
    results = run_cases(with_identity(load_cases(SMOKE), host=API_HOST), invoker, Deadline.after(120), 60)
    refused = {r.case: r.status for r in results if not r.ok}
    assert refused == {"query.json": 401, "search-run.json": 401}, [r.detail for r in results if not r.ok]
    # Without the API's host every event is refused by the host check (TRUSTED_HOSTS), before any route.
    results = run_cases(with_identity(load_cases(SMOKE), SMOKE_KEY_ID), invoker, Deadline.after(120), 60)
    assert {r.status for r in results} == {400} and not any(r.ok for r in results), [r.detail for r in results]
    # An id with no record is a stranger (403), not the smoke tenant.
    results = run_cases(with_identity(load_cases(SMOKE), "a1b2c3d4e5", API_HOST), invoker, Deadline.after(120), 60)
    assert {r.case: r.status for r in results if not r.ok} == {"query.json": 403, "search-run.json": 403}


def _answer_with(invoker: InProcessInvoker, case: str, change) -> InProcessInvoker:
    """The same API, but its answer to the smoke event ``case`` goes through ``change`` first."""
    real = invoker.answer
    (request_id,) = [c.event["requestContext"]["requestId"] for c in load_cases(SMOKE) if c.name == case]

    def answer(event: dict) -> dict:
        response = real(event)
        return change(response) if event["requestContext"]["requestId"] == request_id else response

    invoker.answer = answer
    return invoker


def _failed(outcome: dict) -> dict[str, str]:
    return {r["case"]: r["detail"] for r in outcome["results"] if not r["ok"]}


def test_pre_traffic_fails_when_the_new_version_answers_500(invoker, verdicts):
    def server_error(response: dict) -> dict:
        body = {"error": {"code": "internal_error", "message": "boom", "request_id": "r"}}
        return {**response, "statusCode": 500, "body": json.dumps(body)}

    verdicts.expect("Failed")
    outcome = pre(verdicts, _answer_with(invoker, "query.json", server_error))
    verdicts.assert_delivered()
    assert outcome["status"] == "Failed"
    assert list(_failed(outcome)) == ["query.json"]
    assert _failed(outcome)["query.json"].startswith("status 500, expected 200")


def test_pre_traffic_fails_when_an_answer_has_the_wrong_shape(invoker, verdicts):
    def no_documents(response: dict) -> dict:
        body = json.loads(response["body"])
        body["documents"] = []
        return {**response, "body": json.dumps(body)}

    verdicts.expect("Failed")
    outcome = pre(verdicts, _answer_with(invoker, "search-run.json", no_documents))
    verdicts.assert_delivered()
    assert _failed(outcome) == {
        "search-run.json": "no documents.0.id; no documents.0.content; no documents.0.score; "
        "documents is empty or missing"
    }


def test_pre_traffic_fails_when_the_new_version_is_not_ready(invoker, verdicts):
    def not_ready(response: dict) -> dict:
        body = {"status": "not_ready", "checks": [{"name": "store", "ok": False, "detail": "no snapshot"}]}
        return {**response, "statusCode": 503, "body": json.dumps(body)}

    verdicts.expect("Failed")
    outcome = pre(verdicts, _answer_with(invoker, "ready.json", not_ready))
    verdicts.assert_delivered()
    assert list(_failed(outcome)) == ["ready.json"]


def test_pre_traffic_fails_on_a_function_error(verdicts):
    def crashed(event: dict, timeout_s: float) -> dict:
        return lambda_response({"errorMessage": "Task timed out", "errorType": "Sandbox.Timedout"}, "Unhandled")

    verdicts.expect("Failed")
    outcome = pre(verdicts, crashed)
    verdicts.assert_delivered()
    assert all(detail.startswith("function error (Unhandled)") for detail in _failed(outcome).values())
    assert len(_failed(outcome)) == len(load_cases(SMOKE))


def test_pre_traffic_fails_on_a_payload_that_is_not_json(verdicts):
    verdicts.expect("Failed")

    def html(event: dict, timeout_s: float) -> dict:
        return {"StatusCode": 200, "Payload": io.BytesIO(b"<html>")}

    outcome = pre(verdicts, html)
    verdicts.assert_delivered()
    assert all(detail.startswith("payload is not JSON") for detail in _failed(outcome).values())


def test_an_exception_inside_the_hook_is_reported_not_raised(verdicts):
    def broken(event: dict, timeout_s: float) -> dict:
        raise ConnectionError("endpoint unreachable")

    verdicts.expect("Failed")
    outcome = pre(verdicts, broken)
    verdicts.assert_delivered()
    assert outcome["status"] == "Failed"
    assert set(_failed(outcome).values()) == {"invocation failed: ConnectionError: endpoint unreachable"}


def test_a_configuration_error_inside_the_hook_is_reported_not_raised(tmp_path, verdicts, invoker):
    verdicts.expect("Failed")
    outcome = pre(verdicts, invoker, config=config(smoke_dir=tmp_path / "nowhere"))
    verdicts.assert_delivered()
    assert outcome == {"status": "Failed", "results": []}
    assert invoker.paths == []


def test_a_hung_invocation_is_reported_failed_before_the_hook_runs_out_of_time(verdicts):
    released = threading.Event()

    def hangs(event: dict, timeout_s: float) -> dict:
        released.wait(30)
        return lambda_response({"statusCode": 200, "body": "{}"})

    verdicts.expect("Failed")
    started = time.monotonic()
    try:
        # 3 s left in the invocation, 2.5 s kept to report: 0.5 s for the smoke events.
        outcome = pre(verdicts, hangs, timeout_ms=3_000, margin_s=2.5)
    finally:
        released.set()
    elapsed = time.monotonic() - started
    verdicts.assert_delivered()
    assert elapsed < 1.5, f"the verdict took {elapsed:.1f} s"
    details = list(_failed(outcome).values())
    assert details[0].startswith("invocation failed: TimeoutError: no answer within 0.")
    assert set(details[1:]) == {"not run: the hook ran out of time"}


def test_each_invocation_is_bounded_by_the_invoke_timeout(verdicts):
    seen = []

    def slow(event: dict, timeout_s: float) -> dict:
        seen.append(timeout_s)
        time.sleep(0.3)
        return lambda_response({"statusCode": 200, "body": "{}"})

    verdicts.expect("Failed")
    outcome = pre(verdicts, slow, timeout_ms=60_000, config=config(invoke_timeout_s=0.1), margin_s=1)
    verdicts.assert_delivered()
    assert seen and all(t == pytest.approx(0.1) for t in seen)
    assert set(_failed(outcome).values()) == {"invocation failed: TimeoutError: no answer within 0.1 s"}


def test_call_within_passes_results_and_errors_through():
    assert call_within(lambda: 42, 1) == 42
    with pytest.raises(KeyError):
        call_within(lambda: {}["missing"], 1)


def test_a_verdict_codedeploy_already_has_is_not_an_error(verdicts, invoker):
    verdicts.stubber.add_client_error(
        "put_lifecycle_event_hook_execution_status", "LifecycleEventAlreadyCompletedException", "already completed"
    )
    outcome = pre(verdicts, invoker)
    verdicts.assert_delivered()
    assert outcome["status"] == "Succeeded"


def test_a_verdict_that_cannot_be_delivered_raises_so_lambda_retries(verdicts, invoker):
    verdicts.stubber.add_client_error("put_lifecycle_event_hook_execution_status", "ThrottlingException", "slow down")
    with pytest.raises(ClientError, match="ThrottlingException"):
        pre(verdicts, invoker)
    verdicts.assert_delivered()


def test_an_event_without_hook_ids_cannot_be_reported(verdicts):
    with pytest.raises(hooks.HookEventError):
        hooks.pre_traffic({"DeploymentId": "d-1"}, LambdaContext(), codedeploy=verdicts.client, config=config())


@pytest.mark.parametrize("arn", ["", f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}", "7"])
def test_the_new_version_must_be_a_version_arn(arn):
    with pytest.raises(ValueError, match="NEW_VERSION_ARN"):
        hooks.HookConfig.from_env({"NEW_VERSION_ARN": arn})


def test_config_from_the_environment_the_template_sets():
    cfg = hooks.HookConfig.from_env(
        {
            "NEW_VERSION_ARN": NEW_VERSION_ARN,
            "ALIAS_NAME": "published",
            "ALARM_NAMES": ",".join(ALARMS),
            "SMOKE_API_KEY_ID": SMOKE_KEY_ID,
            "SMOKE_HOST": API_HOST,
        }
    )
    assert (cfg.function_arn, cfg.version) == (NEW_VERSION_ARN.rsplit(":", 1)[0], "7")
    assert cfg.alias_name == "published"
    assert cfg.alarm_names == ALARMS
    assert cfg.smoke_dir == SMOKE
    assert cfg.invoke_timeout_s == hooks.DEFAULT_INVOKE_TIMEOUT_S
    assert (cfg.smoke_api_key_id, cfg.smoke_host) == (SMOKE_KEY_ID, API_HOST)
    # Without them (a stack before tenancy, or a local run) the events go as they are on disk.
    bare = hooks.HookConfig.from_env({"NEW_VERSION_ARN": NEW_VERSION_ARN})
    assert (bare.smoke_api_key_id, bare.smoke_host) == (None, None)


# --- the Lambda entry points, wired from the environment ------------------------------------------------


def test_handler_pre_traffic_invokes_the_version_named_in_its_environment(monkeypatch, verdicts, invoker):
    import handlers.deploy_hooks as entry

    invoked = []

    def make_invoker(version_arn: str, timeout_s: float):
        invoked.append((version_arn, timeout_s))
        return invoker

    monkeypatch.setenv("NEW_VERSION_ARN", NEW_VERSION_ARN)
    monkeypatch.setenv("SMOKE_API_KEY_ID", SMOKE_KEY_ID)
    monkeypatch.setenv("SMOKE_HOST", API_HOST)
    monkeypatch.setattr(hooks, "codedeploy_client", lambda: verdicts.client)
    monkeypatch.setattr(hooks, "lambda_invoker", make_invoker)
    verdicts.expect("Succeeded")
    outcome = entry.pre_traffic(dict(HOOK_EVENT), LambdaContext("CodeDeployHook_stack-pre", timeout_ms=120_000))
    verdicts.assert_delivered()
    assert outcome["status"] == "Succeeded"
    assert invoked == [(NEW_VERSION_ARN, hooks.DEFAULT_INVOKE_TIMEOUT_S)]
    assert {(e["requestContext"]["identity"]["apiKeyId"], e["headers"]["Host"]) for e in invoker.events} == {
        (SMOKE_KEY_ID, API_HOST)
    }


def test_lambda_invoker_calls_the_version_synchronously_once():
    client = boto3.client("lambda", region_name=REGION)
    event = load_cases(SMOKE)[0].event
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": io.BytesIO(b"{}")},
            {
                "FunctionName": NEW_VERSION_ARN,
                "InvocationType": "RequestResponse",
                "Payload": json.dumps(event).encode(),
            },
        )
        response = hooks.lambda_invoker(NEW_VERSION_ARN, 45, client=client)(event, 45)
        stub.assert_no_pending_responses()
    assert response["StatusCode"] == 200


def test_the_real_invoke_client_tries_once_and_waits_as_long_as_the_function_may_run():
    # A retried smoke invocation would eat the hook's budget; a shorter read timeout would fail a slow cold start.
    config = hooks.invoke_config(hooks.DEFAULT_INVOKE_TIMEOUT_S)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.read_timeout == hooks.DEFAULT_INVOKE_TIMEOUT_S > 29 + 10


# --- PostTraffic, against moto's Lambda and CloudWatch --------------------------------------------------


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture
def deployed():
    """moto: the API function with versions 1 and 2, alias live on 2, the new-version alarms OK."""
    with mock_aws():
        role = boto3.client("iam").create_role(
            RoleName="api", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        lam = boto3.client("lambda")
        lam.create_function(
            FunctionName=FUNCTION, Runtime="python3.13", Role=role, Handler="app.handler", Code={"ZipFile": _zip()}
        )
        published = []
        for description in ("stable", "new"):
            lam.update_function_configuration(FunctionName=FUNCTION, Description=description)
            published.append(lam.publish_version(FunctionName=FUNCTION, Description=description))
        versions = [p["Version"] for p in published]
        lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=versions[1])
        cloudwatch = boto3.client("cloudwatch")
        for name in ALARMS:
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="HaystackServerless",
                MetricName="Errors5xx",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
            )
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test")
        yield {
            "lambda": lam,
            "cloudwatch": cloudwatch,
            "stable": versions[0],
            "new": versions[1],
            "new_arn": published[1]["FunctionArn"],
        }


def _post(deployed: dict, verdicts: Verdicts, alias: str = "live", alarms: tuple[str, ...] = ALARMS) -> dict:
    """PostTraffic against moto, told the new version, the alias and the alarms like its environment would."""
    cfg = hooks.HookConfig(new_version_arn=deployed["new_arn"], alias_name=alias, alarm_names=alarms)
    clients = {"lambda_client": deployed["lambda"], "cloudwatch": deployed["cloudwatch"]}
    return hooks.post_traffic(HOOK_EVENT, LambdaContext(), codedeploy=verdicts.client, config=cfg, **clients)


def test_post_traffic_succeeds_when_live_serves_only_the_new_version_and_alarms_are_ok(deployed, verdicts):
    verdicts.expect("Succeeded")
    assert _post(deployed, verdicts) == {"status": "Succeeded", "problems": []}
    verdicts.assert_delivered()


def test_post_traffic_treats_too_little_data_as_no_alarm(deployed, verdicts):
    deployed["cloudwatch"].set_alarm_state(AlarmName=ALARMS[1], StateValue="INSUFFICIENT_DATA", StateReason="quiet")
    verdicts.expect("Succeeded")
    assert _post(deployed, verdicts)["status"] == "Succeeded"
    verdicts.assert_delivered()


def test_post_traffic_fails_when_live_points_elsewhere(deployed, verdicts):
    deployed["lambda"].update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=deployed["stable"])
    verdicts.expect("Failed")
    outcome = _post(deployed, verdicts)
    verdicts.assert_delivered()
    assert outcome["problems"] == [f"alias live points at version {deployed['stable']}, expected {deployed['new']}"]


def test_post_traffic_fails_while_live_still_splits_traffic(deployed, verdicts):
    deployed["lambda"].update_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion=deployed["new"],
        RoutingConfig={"AdditionalVersionWeights": {deployed["stable"]: 0.1}},
    )
    verdicts.expect("Failed")
    outcome = _post(deployed, verdicts)
    verdicts.assert_delivered()
    assert outcome["problems"] == [
        f"alias live still routes part of the traffic elsewhere: {{'{deployed['stable']}': 0.1}}"
    ]


def test_post_traffic_fails_when_a_new_version_alarm_is_in_alarm(deployed, verdicts):
    deployed["cloudwatch"].set_alarm_state(AlarmName=ALARMS[0], StateValue="ALARM", StateReason="5xx")
    verdicts.expect("Failed")
    outcome = _post(deployed, verdicts)
    verdicts.assert_delivered()
    assert outcome["problems"] == [f"alarm {ALARMS[0]} is in ALARM"]


def test_post_traffic_fails_when_an_alarm_it_should_watch_does_not_exist(deployed, verdicts):
    verdicts.expect("Failed")
    outcome = _post(deployed, verdicts, alarms=(*ALARMS, "stack-renamed-alarm"))
    verdicts.assert_delivered()
    assert outcome["problems"] == ["alarm stack-renamed-alarm does not exist"]


def test_post_traffic_reports_failed_when_the_alias_cannot_be_read(deployed, verdicts):
    verdicts.expect("Failed")
    outcome = _post(deployed, verdicts, alias="missing")
    verdicts.assert_delivered()
    assert outcome["status"] == "Failed"
    assert outcome["problems"][0].startswith("ResourceNotFoundException")


def test_handler_post_traffic_reads_alias_and_alarms_from_its_environment(deployed, verdicts, monkeypatch):
    import handlers.deploy_hooks as entry

    monkeypatch.setenv("NEW_VERSION_ARN", deployed["new_arn"])
    monkeypatch.setenv("ALIAS_NAME", "live")
    monkeypatch.setenv("ALARM_NAMES", ",".join(ALARMS))
    monkeypatch.setattr(hooks, "codedeploy_client", lambda: verdicts.client)
    deployed["cloudwatch"].set_alarm_state(AlarmName=ALARMS[2], StateValue="ALARM", StateReason="crash")
    verdicts.expect("Failed")
    outcome = entry.post_traffic(dict(HOOK_EVENT), LambdaContext("CodeDeployHook_stack-post"))
    verdicts.assert_delivered()
    assert outcome["problems"] == [f"alarm {ALARMS[2]} is in ALARM"]
