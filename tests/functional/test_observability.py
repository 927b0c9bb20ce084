"""Logs and metrics of real requests: the JSON lines and EMF documents the app writes, read back and checked.

Requests go through the app (FastAPI TestClient) and through the Lambda entry point (Mangum wrapped
by ``Telemetry.lambda_handler``, as ``handlers/api.py`` builds it) with API Gateway sample events.
"""

import copy
import io
import json
import logging

import pytest
from aws_lambda_powertools.logging import logger as powertools_logger_module
from aws_lambda_powertools.metrics.provider import cold_start
from fastapi.testclient import TestClient
from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage
from mangum import Mangum

from core.api.app import create_app
from core.aws import LAMBDA_FUNCTION_VERSION_ENV
from core.observability import names
from core.observability.logs import configure_logging
from core.runtime.container import build_runtime
from scripts.invoke import LambdaContext
from tests.functional.test_generators import aws_credentials, bedrock_with_stubbed_client, converse_response  # noqa: F401
from tests.functional.test_handler_events import load_event

QUERY = "how do I parse JSON"
# Mangum 0.22 calls asyncio.get_event_loop() with no loop set (deprecated since Python 3.12; it still makes one).
pytestmark = pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")


@pytest.fixture
def restore_logging():
    """``configure_logging`` replaces the root handler: put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in ("haystack", "mangum")}
    yield
    root.handlers, root.level = handlers, level
    for name, value in chatty.items():
        logging.getLogger(name).setLevel(value)


@pytest.fixture
def observed(make_settings, small_store, restore_logging, monkeypatch):
    """``observed(**settings)`` → (TestClient, Lambda handler, runtime, log buffer), logging configured like boot."""
    monkeypatch.setenv(LAMBDA_FUNCTION_VERSION_ENV, "7")

    def factory(chat_generator_factory=None, **overrides):
        settings = make_settings(**overrides)
        stream = io.StringIO()
        kwargs = {"store": small_store}
        if chat_generator_factory is not None:
            kwargs["chat_generator_factory"] = chat_generator_factory
        runtime = build_runtime(settings, **kwargs)
        runtime.telemetry.logger = configure_logging(settings, stream=stream)
        app = create_app(runtime)
        handler = runtime.telemetry.lambda_handler(Mangum(app, lifespan="off"))
        return TestClient(app, raise_server_exceptions=False), handler, runtime, stream

    return factory


def log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def audit_lines(stream: io.StringIO) -> list[dict]:
    return [line for line in log_lines(stream) if line.get("name") == "core.audit"]


def emf_documents(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]


def metric_names(document: dict) -> list[str]:
    return [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]


def dimensions(document: dict) -> list[list[str]]:
    return document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


def units(document: dict) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def search_event(body: dict, request_id: str = "req-obs-1") -> dict:
    event = copy.deepcopy(load_event("api-search-run.json"))
    event["body"] = json.dumps(body)
    event["requestContext"]["requestId"] = request_id
    return event


# -- logs ---------------------------------------------------------------------------------------------------


def test_every_request_writes_one_audit_line_with_its_facts_and_no_query_text(observed):
    client, _, _, stream = observed()
    response = client.post("/query", json={"text": QUERY}, headers={"X-Request-Id": "audit-1"})
    assert response.status_code == 200
    (audit,) = audit_lines(stream)
    assert audit["message"] == "request"
    assert audit["correlation_id"] == "audit-1"
    assert audit["service"] == "haystack-serverless"
    assert (audit["status"], audit["method"], audit["path"]) == (200, "POST", "/query")
    assert (audit["pipeline"], audit["tenant"], audit["version"]) == ("search", "default", "7")
    assert (audit["cache"], audit["cached"]) == ("MISS", False)
    assert audit["latency_ms"] > 0 and audit["pipeline_ms"] > 0
    assert audit["query_chars"] == len(QUERY)
    assert len(audit["query_sha256"]) == 16
    assert QUERY not in stream.getvalue()  # nowhere in any line, by default


def test_query_text_is_logged_in_clear_only_when_asked(observed):
    client, _, _, stream = observed(log_query_text=True)
    client.post("/query", json={"text": QUERY})
    assert audit_lines(stream)[0]["query_text"] == QUERY


def test_the_same_query_has_the_same_hash_and_the_cache_result_is_logged(observed):
    client, _, _, stream = observed()
    for _ in range(2):
        client.post("/pipelines/search/run", json={"query": QUERY, "top_k": 2})
    first, second = audit_lines(stream)
    assert first["query_sha256"] == second["query_sha256"]
    assert (first["cache"], second["cache"], second["cached"]) == ("MISS", "HIT-L1", True)
    assert "pipeline_ms" not in second  # answered from the cache: no pipeline ran


def test_a_4xx_is_audited_with_its_error_code(observed):
    client, _, _, stream = observed()
    assert client.post("/pipelines/nope/run", json={}).status_code == 404
    (audit,) = audit_lines(stream)
    assert (audit["status"], audit["error_code"]) == (404, "not_found")


def test_haystack_logs_join_the_json_stream_at_debug(observed):
    client, _, _, stream = observed(log_level="DEBUG")
    client.post("/pipelines/search/run", json={"query": QUERY})
    haystack = [line for line in log_lines(stream) if line["name"].startswith("haystack")]
    assert haystack, "no Haystack record reached the JSON stream"
    assert all(line["service"] == "haystack-serverless" for line in haystack)
    assert any("component_name" in line for line in haystack)  # Haystack's keyword arguments are keys


def test_log_sampling_turns_debug_on_for_sampled_requests(observed):
    client, _, _, stream = observed(powertools_logger_sample_rate=1.0)
    client.post("/pipelines/search/run", json={"query": QUERY})
    lines = log_lines(stream)
    assert any(line["level"] == "DEBUG" and line.get("sampled") for line in lines)
    assert any(line["name"].startswith("haystack") for line in lines)  # Haystack's component lines too

    client, _, _, stream = observed(powertools_logger_sample_rate=0.0)
    client.post("/pipelines/search/run", json={"query": QUERY})
    assert not any(line["level"] == "DEBUG" for line in log_lines(stream))


def test_lambda_lines_carry_the_api_gateway_request_id_cold_start_and_version(observed, monkeypatch):
    _, handler, _, stream = observed()
    monkeypatch.setattr(powertools_logger_module, "is_cold_start", True)
    handler(search_event({"query": QUERY}, "apigw-1"), LambdaContext())
    handler(search_event({"query": QUERY}, "apigw-2"), LambdaContext())
    first, second = audit_lines(stream)
    assert (first["correlation_id"], second["correlation_id"]) == ("apigw-1", "apigw-2")
    assert (first["cold_start"], second["cold_start"]) == (True, False)
    assert first["function_version"] == second["function_version"] == "7"  # AWS_LAMBDA_FUNCTION_VERSION
    assert first["function_request_id"] != second["function_request_id"]


# -- metrics ------------------------------------------------------------------------------------------------


def test_a_request_emits_its_metrics_with_the_version_dimension(observed, capsys):
    client, _, _, _ = observed()
    capsys.readouterr()
    client.post("/query", json={"text": QUERY})
    documents = emf_documents(capsys.readouterr().out)
    request = next(d for d in documents if names.REQUESTS in metric_names(d))
    assert dimensions(request) == [sorted(names.REQUEST_DIMENSIONS, reverse=True)]
    assert request["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "HaystackServerless"
    assert (request["version"], request["service"]) == ("7", "haystack-serverless")
    assert units(request) == {
        names.REQUESTS: "Count",
        names.LATENCY: "Milliseconds",
        names.ERRORS_4XX: "Count",
        names.ERRORS_5XX: "Count",
        names.CACHE_HITS: "Count",
        names.CACHE_MISSES: "Count",
        names.CACHE_ERRORS: "Count",
    }
    assert (request[names.REQUESTS], request[names.ERRORS_5XX], request[names.CACHE_MISSES]) == ([1.0], [0.0], [1.0])
    pipeline = next(d for d in documents if names.PIPELINE_LATENCY in metric_names(d))
    assert sorted(dimensions(pipeline)[0]) == sorted(names.PIPELINE_DIMENSIONS)
    assert (pipeline["pipeline"], pipeline["version"]) == ("search", "7")
    assert pipeline[names.PIPELINE_LATENCY][0] > 0


def test_a_failure_inside_a_pipeline_counts_as_a_5xx_of_that_version(observed, capsys):
    client, _, runtime, stream = observed()
    joiner = runtime.pipelines["search"].pipeline.get_component("joiner")

    def broken(**_):
        raise RuntimeError("joiner exploded")

    joiner.run = broken
    capsys.readouterr()
    response = client.post("/pipelines/search/run", json={"query": QUERY})
    assert response.status_code == 500
    assert "exploded" not in response.text
    (request,) = [d for d in emf_documents(capsys.readouterr().out) if names.REQUESTS in metric_names(d)]
    assert (request[names.ERRORS_5XX], request[names.ERRORS_4XX], request["version"]) == ([1.0], [0.0], "7")
    (audit,) = audit_lines(stream)
    assert (audit["status"], audit["error_code"]) == (500, "internal_error")


def test_a_4xx_counts_as_4xx_and_not_5xx(observed, capsys):
    client, _, _, _ = observed()
    capsys.readouterr()
    client.post("/query", json={"text": ""})
    (request,) = [d for d in emf_documents(capsys.readouterr().out) if names.REQUESTS in metric_names(d)]
    assert (request[names.ERRORS_4XX], request[names.ERRORS_5XX]) == ([1.0], [0.0])
    assert names.CACHE_HITS not in request  # the cache was never consulted


def test_cache_errors_count_the_l2_failures_of_the_request(observed, capsys):
    client, _, runtime, _ = observed()

    class DownL2:
        def get(self, key):
            raise ConnectionError("down")

        def set(self, key, value, ttl_s):
            raise ConnectionError("down")

    runtime.cache.l2 = DownL2()
    capsys.readouterr()
    assert client.post("/pipelines/search/run", json={"query": QUERY}).status_code == 200
    (request,) = [d for d in emf_documents(capsys.readouterr().out) if names.REQUESTS in metric_names(d)]
    assert request[names.CACHE_ERRORS][0] >= 2  # the read and the write both failed
    assert request[names.CACHE_MISSES] == [1.0]


def test_generator_latency_and_tokens_are_measured_where_the_backend_reports_them(observed, capsys):
    usage = {"prompt_tokens": 120, "completion_tokens": 7}
    reply = ChatMessage.from_assistant("Use json.loads.", meta={"usage": usage})
    client, _, _, stream = observed(
        chat_generator_factory=lambda s: MockChatGenerator(responses=[reply]), generator="bedrock"
    )
    capsys.readouterr()
    assert client.post("/query", json={"text": QUERY}).status_code == 200
    (pipeline,) = [d for d in emf_documents(capsys.readouterr().out) if names.PIPELINE_LATENCY in metric_names(d)]
    assert pipeline["pipeline"] == "rag"
    assert (pipeline[names.GENERATOR_INPUT_TOKENS], pipeline[names.GENERATOR_OUTPUT_TOKENS]) == ([120.0], [7.0])
    assert 0 <= pipeline[names.GENERATOR_LATENCY][0] <= pipeline[names.PIPELINE_LATENCY][0]
    audit = audit_lines(stream)[0]
    assert (audit["input_tokens"], audit["output_tokens"]) == (120, 7)


def test_lambda_flushes_once_per_invocation_with_the_cold_start_metric_only_once(observed, capsys):
    _, handler, _, _ = observed()
    cold_start.reset_cold_start_flag()
    capsys.readouterr()
    for n in range(3):
        assert handler(search_event({"query": f"{QUERY} {n}"}), LambdaContext())["statusCode"] == 200
    documents = emf_documents(capsys.readouterr().out)
    cold = [d for d in documents if names.COLD_START in metric_names(d)]
    assert len(cold) == 1
    assert sorted(dimensions(cold[0])[0]) == sorted(names.COLD_START_DIMENSIONS)
    assert cold[0]["function_name"] == "ApiFunction"
    requests = [d for d in documents if names.REQUESTS in metric_names(d)]
    assert [d[names.REQUESTS] for d in requests] == [[1.0]] * 3  # one document per invocation, never merged


def test_metrics_can_be_switched_off(observed, capsys):
    client, _, _, _ = observed(powertools_metrics_disabled=True)
    capsys.readouterr()
    client.post("/query", json={"text": QUERY})
    assert emf_documents(capsys.readouterr().out) == []


def test_dev_mode_prints_readable_logs_and_metrics(observed, capsys):
    client, _, _, stream = observed(powertools_dev=True, powertools_metrics_disabled=False)
    capsys.readouterr()
    client.post("/query", json={"text": QUERY})
    out = capsys.readouterr().out
    assert '\n  "_aws": {' in out  # indented EMF
    assert '\n  "message": "request"' in stream.getvalue()  # indented log lines


@pytest.mark.usefixtures("aws_credentials")
def test_bedrock_token_usage_reaches_the_metrics(observed, capsys):
    def setup(stubber, _client):
        stubber.add_response("converse", converse_response("Use json.loads."))  # usage: 120 in, 9 out

    client, _, _, _ = observed(
        chat_generator_factory=lambda s: bedrock_with_stubbed_client(s, setup), generator="bedrock"
    )
    capsys.readouterr()
    assert client.post("/query", json={"text": QUERY}).status_code == 200
    (pipeline,) = [d for d in emf_documents(capsys.readouterr().out) if names.PIPELINE_LATENCY in metric_names(d)]
    assert (pipeline[names.GENERATOR_INPUT_TOKENS], pipeline[names.GENERATOR_OUTPUT_TOKENS]) == ([120.0], [9.0])


def test_the_audit_line_is_written_whatever_the_log_level(observed):
    client, _, _, stream = observed(log_level="WARNING")
    client.post("/query", json={"text": QUERY})
    lines = log_lines(stream)
    assert [line["message"] for line in lines if line["name"] == "core.audit"] == ["request"]
    assert all(line["level"] != "DEBUG" for line in lines)
