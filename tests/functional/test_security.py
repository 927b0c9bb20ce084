"""Tenants, rate limits and input limits through the real app and Lambda entry point.

Tenant records live in SSM (moto); requests are API Gateway REST events with an API key id, served by
Mangum in-process; rate limits run against a real redis-server (tests/redis_fixtures.py).
"""

import copy
import json
import time

import boto3
import pytest
from haystack import Document
from mangum import Mangum
from moto import mock_aws

from core.api.app import create_app
from core.components.embedders import StaticDocumentEmbedder
from core.observability import names
from core.runtime.container import build_runtime
from core.store.base import LoadedStore
from core.store.embedded import EmbeddedDocumentStore
from scripts.invoke import LambdaContext
from tests.functional.test_handler_events import load_event

PREFIX = "/hs-test/tenants"
MODEL = "l2_supercat_256"
pytestmark = pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")

TEXTS = {
    "acme": ["Acme rockets use liquid oxygen.", "Acme anvils are made of iron.", "Acme JSON export format."],
    "globex": ["Globex hammocks are woven from cotton.", "Globex JSON export secrets.", "Globex rocket plans."],
}


def record(tenant: str, **extra) -> dict:
    return {"tenant_id": tenant, "allowed_pipelines": "*", "rate_limit": {"rate_per_s": 100, "burst": 100}, **extra}


@pytest.fixture
def store() -> LoadedStore:
    docs = [Document(content=t, meta={"tenant": tenant}) for tenant, texts in TEXTS.items() for t in texts]
    embedded = StaticDocumentEmbedder().run(documents=docs)["documents"]
    store = EmbeddedDocumentStore.from_documents(embedded, MODEL)
    return LoadedStore(store, {"embedding_model": MODEL, "embedding_dim": 256, "count": len(embedded)}, "memory")


@pytest.fixture
def ssm(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("ssm")

        def put(key_id: str, value: dict) -> None:
            client.put_parameter(Name=f"{PREFIX}/api-key/{key_id}", Value=json.dumps(value), Type="String")

        put("key-acme", record("acme"))
        put("key-globex", record("globex"))
        put("key-search-only", record("acme", allowed_pipelines=["search"]))
        put("key-slow", record("initech", rate_limit={"rate_per_s": 1, "burst": 2}))
        yield put


@pytest.fixture
def serve(ssm, make_settings, store):
    """``serve(**settings)`` → a function sending (method, path, body, api key id, headers) through Lambda."""

    def factory(**overrides):
        settings = make_settings(tenant_registry=f"ssm:{PREFIX}", **overrides)
        runtime = build_runtime(settings, store=store)
        handler = runtime.telemetry.lambda_handler(Mangum(create_app(runtime), lifespan="off"))

        def call(method, path, body=None, key="key-acme", headers=None):
            event = copy.deepcopy(load_event("api-query.json"))
            event.update(httpMethod=method, path=path, body=None if body is None else json.dumps(body))
            event["requestContext"].update(httpMethod=method, path=path)
            event["requestContext"]["identity"]["apiKeyId"] = key
            event["headers"] = {**event["headers"], **(headers or {})}
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
            response = handler(event, LambdaContext())
            response["json"] = json.loads(response["body"]) if response["body"] else None
            return response

        call.runtime = runtime
        return call

    return factory


def contents(response) -> list[str]:
    return [d["content"] for d in response["json"]["documents"]]


def test_a_tenant_sees_only_its_documents_through_every_endpoint(serve):
    call = serve()
    for key, tenant in (("key-acme", "acme"), ("key-globex", "globex")):
        query = call("POST", "/query", {"text": "JSON export rocket", "top_k": 10}, key=key)
        run = call("POST", "/pipelines/search/run", {"query": "JSON export rocket", "top_k": 10}, key=key)
        for response in (query, run):
            assert response["statusCode"] == 200, response["body"]
            assert contents(response)
            assert set(contents(response)) <= set(TEXTS[tenant])


@pytest.mark.parametrize(
    "filters",
    [
        {"field": "meta.tenant", "operator": "==", "value": "globex"},
        {"operator": "OR", "conditions": [{"field": "meta.tenant", "operator": "!=", "value": "acme"}]},
        {"operator": "NOT", "conditions": [{"field": "meta.tenant", "operator": "==", "value": "acme"}]},
    ],
)
def test_crafted_filters_naming_the_tenant_are_refused(serve, filters):
    call = serve()
    for path, body in (("/query", {"text": "rocket"}), ("/pipelines/search/run", {"query": "rocket"})):
        response = call("POST", path, {**body, "filters": filters})
        assert response["statusCode"] == 422
        assert response["json"]["error"]["code"] == "invalid_filters"


def test_crafted_filters_on_other_fields_cannot_reach_another_tenant(serve):
    call = serve()
    escape = {"operator": "OR", "conditions": [{"field": "content", "operator": "!=", "value": "nothing"}]}
    response = call("POST", "/pipelines/search/run", {"query": "Globex rocket plans", "filters": escape})
    assert response["statusCode"] == 200
    assert set(contents(response)) <= set(TEXTS["acme"])


def test_cache_entries_of_one_tenant_never_answer_another(serve):
    call = serve()
    first = call("POST", "/query", {"text": "JSON export"}, key="key-acme")
    second = call("POST", "/query", {"text": "JSON export"}, key="key-globex")
    assert first["headers"]["x-cache"] == "MISS" and second["headers"]["x-cache"] == "MISS"
    assert set(contents(second)) <= set(TEXTS["globex"])
    assert call("POST", "/query", {"text": "JSON export"}, key="key-acme")["headers"]["x-cache"] == "HIT-L1"


def test_missing_identity_is_401_and_unknown_is_403(serve):
    call = serve()
    missing = call("POST", "/query", {"text": "rocket"}, key=None)
    unknown = call("POST", "/query", {"text": "rocket"}, key="key-nobody")
    assert (missing["statusCode"], missing["json"]["error"]["code"]) == (401, "unauthorized")
    assert (unknown["statusCode"], unknown["json"]["error"]["code"]) == (403, "forbidden")
    assert "key-nobody" not in unknown["body"]  # the identity is logged, never returned


def test_a_pipeline_outside_the_record_is_403(serve):
    call = serve()
    assert call("POST", "/pipelines/search/run", {"query": "rocket"}, key="key-search-only")["statusCode"] == 200
    response = call("POST", "/pipelines/rag/run", {"query": "rocket"}, key="key-search-only")
    assert response["statusCode"] == 403


def test_rate_limit_answers_429_at_the_configured_rate_and_recovers(serve, redis_url, capsys):
    call = serve(redis_url=redis_url)
    statuses = [call("POST", "/query", {"text": f"rocket {i}"}, key="key-slow") for i in range(3)]
    assert [r["statusCode"] for r in statuses] == [200, 200, 429]
    denied = statuses[2]
    assert denied["json"]["error"]["code"] == "rate_limited"
    assert denied["headers"]["x-ratelimit-limit"] == "2"
    assert denied["headers"]["x-ratelimit-remaining"] == "0"
    retry_after = int(denied["headers"]["retry-after"])
    assert retry_after == 1
    assert statuses[0]["headers"]["x-ratelimit-remaining"] == "1"
    assert call("POST", "/query", {"text": "rocket"}, key="key-acme")["statusCode"] == 200  # another bucket
    time.sleep(retry_after)
    assert call("POST", "/query", {"text": "rocket again"}, key="key-slow")["statusCode"] == 200
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    limited = [d[names.RATE_LIMITED][0] for d in documents if names.RATE_LIMITED in d]
    assert limited.count(1.0) == 1


def test_without_redis_the_limit_fails_open_or_closed_as_set(serve, capsys):
    closed_port = "redis://127.0.0.1:1"
    opened = serve(redis_url=closed_port, redis_connect_timeout_ms=50, redis_timeout_ms=50)
    assert opened("POST", "/query", {"text": "rocket"})["statusCode"] == 200
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(d.get(names.RATE_LIMIT_FAIL_OPEN) == [1.0] for d in documents)

    closed = serve(
        redis_url=closed_port, redis_connect_timeout_ms=50, redis_timeout_ms=50, rate_limit_fail_mode="closed"
    )
    response = closed("POST", "/query", {"text": "rocket"})
    assert response["statusCode"] == 429
    assert int(response["headers"]["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/query", {"text": "x" * 6000}, 422, "validation_error"),
        ("/query", {"text": "rocket", "top_k": 51}, 422, "validation_error"),
        ("/query", {"text": "rocket", "top_k": 0}, 422, "validation_error"),
        ("/query", {"text": "rocket", "extra": 1}, 422, "validation_error"),
        ("/pipelines/search/run", {"query": "rocket", "unknown_input": 1}, 422, "validation_error"),
        (
            "/query",
            {"text": "rocket", "filters": {"field": "meta.x", "operator": "~", "value": 1}},
            422,
            "validation_error",
        ),
    ],
)
def test_invalid_inputs_get_their_4xx_with_the_error_body(serve, path, body, status, code):
    response = serve()("POST", path, body)
    assert response["statusCode"] == status
    assert response["json"]["error"]["code"] == code
    assert "Traceback" not in response["body"]


def test_deep_filters_are_refused(serve):
    node = {"field": "meta.x", "operator": "==", "value": 1}
    for _ in range(6):
        node = {"operator": "AND", "conditions": [node]}
    response = serve()("POST", "/pipelines/search/run", {"query": "rocket", "filters": node})
    assert response["statusCode"] == 422


def test_an_oversized_body_is_413_before_anything_reads_it(serve):
    response = serve(max_body_bytes=2048)("POST", "/query", {"text": "rocket " * 1000})
    assert response["statusCode"] == 413
    assert response["json"]["error"]["code"] == "payload_too_large"


def test_cors_allows_only_the_listed_origins(serve):
    call = serve(cors_allow_origins="https://app.example")
    allowed = call("POST", "/query", {"text": "rocket"}, headers={"origin": "https://app.example"})
    other = call("POST", "/query", {"text": "rocket"}, headers={"origin": "https://evil.example"})
    assert allowed["headers"]["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other["headers"]


def test_only_trusted_hosts_are_served(serve):
    call = serve(trusted_hosts="api.example.com")
    assert call("POST", "/query", {"text": "rocket"}, headers={"Host": "api.example.com"})["statusCode"] == 200
    assert call("POST", "/query", {"text": "rocket"}, headers={"Host": "evil.example"})["statusCode"] == 400


def test_wildcards_are_refused_on_lambda(make_settings, monkeypatch):
    from core.settings import SettingsError

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "api")
    for name in ("cors_allow_origins", "trusted_hosts"):
        with pytest.raises(SettingsError, match="refused on Lambda"):
            make_settings(**{name: "*"})


def test_sam_local_serves_the_single_local_tenant(serve, monkeypatch):
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")  # what `sam local start-api` sets; it sends no API key id
    response = serve()("POST", "/query", {"text": "JSON export"}, key=None)
    assert response["statusCode"] == 200
