"""The real Lambda handler (`handlers.api.handler`) driven in-process with the sample events in `events/`.

API Gateway REST (payload v1) and HTTP API (payload v2) events go through Mangum into the app built at
import from the environment, exactly as in Lambda; init failures are checked in a fresh interpreter.
"""

import base64
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.invoke import LambdaContext
from tests.support import HANDLER_ENV

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

QUERY_BODY = {"text": "how do I parse JSON"}
SEARCH_RUN_BODY = {"query": "read a CSV file", "top_k": 3}
SAMPLES = {
    # file: (method, path, JSON body or None)
    "api-query.json": ("POST", "/query", QUERY_BODY),
    "api-query-v2.json": ("POST", "/query", QUERY_BODY),
    "api-health.json": ("GET", "/health", None),
    "api-health-v2.json": ("GET", "/health", None),
    "api-search-run.json": ("POST", "/pipelines/search/run", SEARCH_RUN_BODY),
    "api-search-run-v2.json": ("POST", "/pipelines/search/run", SEARCH_RUN_BODY),
}

# Mangum 0.22 calls asyncio.get_event_loop() with no loop set (deprecated since Python 3.12; it still makes one).
pytestmark = pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def is_v2(event: dict) -> bool:
    return event.get("version") == "2.0"


def request_id(event: dict) -> str:
    return event["requestContext"]["requestId"]


def retarget(event: dict, method: str, path: str, body: str | None) -> dict:
    """A copy of ``event`` for another request, every field API Gateway would change kept consistent."""
    event = copy.deepcopy(event)
    context = event["requestContext"]
    if is_v2(event):
        event["rawPath"] = context["http"]["path"] = path
        context["http"]["method"] = method
        headers = event["headers"]
        for name in ("content-type", "content-length"):
            headers.pop(name, None)
        if body is not None:
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(body.encode()))
    else:
        event["path"] = path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["httpMethod"] = context["httpMethod"] = method
        context["path"] = f"/{context['stage']}{path}"
        event["headers"].pop("Content-Type", None)
        event["multiValueHeaders"].pop("Content-Type", None)
        if body is not None:
            event["headers"]["Content-Type"] = "application/json"
            event["multiValueHeaders"]["Content-Type"] = ["application/json"]
    if body is None:
        event.pop("body", None) if is_v2(event) else event.update(body=None)
    else:
        event["body"] = body
    event["isBase64Encoded"] = False
    return event


def header_values(response: dict, name: str) -> list[str]:
    """Every value of a response header: Mangum 0.22 answers v1 in `headers` + `multiValueHeaders`, v2 in `headers`."""
    values = [v for k, v in (response.get("headers") or {}).items() if k.lower() == name]
    for key, many in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            values.extend(many)
    return values


def json_body(response: dict) -> dict:
    assert response["isBase64Encoded"] is False
    assert header_values(response, "content-type") == ["application/json"]
    return json.loads(response["body"])


def assert_error(response: dict, event: dict, status: int, code: str) -> dict:
    assert response["statusCode"] == status, response["body"]
    assert "Traceback" not in response["body"]
    body = json_body(response)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["error"]["request_id"] == request_id(event)
    assert header_values(response, "x-request-id") == [request_id(event)]
    return body["error"]


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HANDLER_ENV}
    env.update(PYTHONPATH=str(ROOT / "src"), HAYSTACK_TELEMETRY_ENABLED="False", **values)
    return env


@pytest.fixture
def invoke(api):
    """Call the handler like Lambda does: an event and a context."""

    def call(event: dict) -> dict:
        return api.handler(copy.deepcopy(event), LambdaContext())

    return call


# --- the sample events themselves ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_event_is_a_consistent_api_gateway_proxy_event(name):
    text = (EVENTS / name).read_text()
    event = json.loads(text)
    assert text == json.dumps(event, indent=2) + "\n", "keep the sample pretty-printed (indent=2)"
    method, path, body = SAMPLES[name]
    context = event["requestContext"]
    if name.endswith("-v2.json"):
        assert is_v2(event)
        assert context["stage"] == "$default"  # so rawPath carries no stage prefix
        assert event["rawPath"] == context["http"]["path"] == path
        assert context["http"]["method"] == method
        assert all(key == key.lower() for key in event["headers"])  # HTTP API lower-cases header names
        if body is not None:
            assert event["headers"]["content-length"] == str(len(event["body"].encode()))
    else:
        assert "version" not in event
        assert event["resource"] == context["resourcePath"] == "/{proxy+}"
        assert event["path"] == path  # the stage is not part of `path` on a proxy resource...
        assert context["path"] == f"/{context['stage']}{path}"  # ...only of requestContext.path
        assert context["stage"] == "v1"
        assert event["pathParameters"] == {"proxy": path.lstrip("/")}
        assert event["httpMethod"] == context["httpMethod"] == method
        assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    assert event["isBase64Encoded"] is False
    headers = {k.lower(): v for k, v in event["headers"].items()}
    if body is None:
        assert event.get("body") is None
        assert "content-type" not in headers
    else:
        assert json.loads(event["body"]) == body
        assert headers["content-type"] == "application/json"


def test_sample_events_have_distinct_request_ids():
    ids = [request_id(load_event(name)) for name in SAMPLES]
    assert all(ids)
    assert len(set(ids)) == len(ids)


def test_handler_is_built_from_the_environment(api, small_snapshot):
    assert api.runtime.settings.store_snapshot_uri == str(small_snapshot)
    assert api.runtime.settings.generator == "none"
    assert api.runtime.pipelines["search"].available


# --- each sample through the real handler ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["api-query.json", "api-query-v2.json"])
def test_query_event(invoke, name):
    event = load_event(name)
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"]
    assert header_values(response, "x-request-id") == [request_id(event)]
    body = json_body(response)
    assert set(body) == {"query", "answer", "documents", "pipeline", "cached", "execution_time_ms"}
    assert body["query"] == QUERY_BODY["text"]
    assert body["answer"] is None
    assert body["pipeline"] == "search"
    # Both event versions ask the same question: the first is a miss, the second may be an L1 hit.
    (x_cache,) = header_values(response, "x-cache")
    assert x_cache in {"MISS", "HIT-L1"}
    assert body["cached"] is (x_cache == "HIT-L1")
    assert isinstance(body["execution_time_ms"], int | float)
    assert body["execution_time_ms"] >= 0
    assert 1 <= len(body["documents"]) <= 5  # DEFAULT_TOP_K
    for document in body["documents"]:
        assert set(document) == {"id", "content", "score", "meta"}
        assert isinstance(document["id"], str)
        assert document["id"]
        assert isinstance(document["content"], str)
        assert isinstance(document["score"], float)
        assert isinstance(document["meta"], dict)
    scores = [d["score"] for d in body["documents"]]
    assert scores == sorted(scores, reverse=True)
    assert body["documents"][0]["meta"]["module"].split(".")[0] == "json"


@pytest.mark.parametrize("name", ["api-health.json", "api-health-v2.json"])
def test_health_event(invoke, name):
    event = load_event(name)
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"]
    assert json_body(response) == {"status": "ok"}
    assert header_values(response, "x-request-id") == [request_id(event)]


@pytest.mark.parametrize("name", ["api-search-run.json", "api-search-run-v2.json"])
def test_search_run_event(invoke, name):
    event = load_event(name)
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"]
    assert header_values(response, "x-request-id") == [request_id(event)]
    body = json_body(response)
    assert set(body) == {"documents", "cached"}
    assert 1 <= len(body["documents"]) <= SEARCH_RUN_BODY["top_k"]
    assert all(set(d) == {"id", "content", "score", "meta"} for d in body["documents"])
    assert body["documents"][0]["meta"]["module"] == "csv"


# --- variants: bad body, base64 body, unknown path -------------------------------------------------------


@pytest.mark.parametrize("name", ["api-query.json", "api-query-v2.json"])
def test_invalid_json_body_is_a_400_error_body(invoke, name):
    event = load_event(name)
    sent = '{"text": "how do I parse JSON"'  # unterminated object
    response = invoke(retarget(event, "POST", "/query", sent))
    error = assert_error(response, event, 400, "invalid_json")
    assert sent not in error["message"]


@pytest.mark.parametrize("name", ["api-query.json", "api-query-v2.json"])
def test_base64_encoded_body_is_decoded(invoke, name):
    event = load_event(name)
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    response = invoke(event)
    assert response["statusCode"] == 200, response["body"]
    assert json_body(response)["query"] == QUERY_BODY["text"]


@pytest.mark.parametrize("name", ["api-health.json", "api-health-v2.json"])
def test_unknown_path_is_a_404_error_body(invoke, name):
    event = load_event(name)
    response = invoke(retarget(event, "GET", "/no/such/route", None))
    assert_error(response, event, 404, "not_found")


# --- init failures and `make invoke`, in a fresh interpreter ---------------------------------------------


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_init_fails_in_one_line_on_an_invalid_generator(small_snapshot):
    result = run_python(
        ["-c", "import handlers.api"], clean_env(STORE_SNAPSHOT_URI=str(small_snapshot), GENERATOR="bogus")
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("init failed:")
    assert "GENERATOR" in last


def test_init_fails_in_one_line_on_a_missing_snapshot(tmp_path):
    missing = tmp_path / "nowhere.snapshot"
    result = run_python(["-c", "import handlers.api"], clean_env(STORE_SNAPSHOT_URI=str(missing), GENERATOR="none"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("init failed:")
    assert str(missing) in lines[0]
    assert "make index" in lines[0]


def test_invoke_script_runs_the_handler_with_an_event_file(small_snapshot):
    result = run_python(
        ["scripts/invoke.py", "events/api-query.json"], clean_env(STORE_SNAPSHOT_URI=str(small_snapshot))
    )
    assert result.returncode == 0, result.stderr
    # The log lines (one JSON object per line) come first, as in CloudWatch; the response is printed last.
    logs, _, printed = result.stdout.rpartition("\n{\n")
    response = json.loads("{\n" + printed)
    audit = [json.loads(line) for line in logs.splitlines() if '"core.audit"' in line]
    assert [a["correlation_id"] for a in audit] == [request_id(load_event("api-query.json"))]
    assert response["statusCode"] == 200
    assert header_values(response, "x-request-id") == [request_id(load_event("api-query.json"))]
    assert json.loads(response["body"])["query"] == QUERY_BODY["text"]
