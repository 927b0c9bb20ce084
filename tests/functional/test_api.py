"""Every endpoint through the real app over a real (small) snapshot and the real pipelines."""

import pytest


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body["error"]


def test_health_is_cheap_liveness(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


def test_request_id_is_echoed_when_the_caller_sends_a_safe_one(client):
    assert client.get("/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    unsafe = client.get("/health", headers={"X-Request-Id": "bad id\nwith newline"}).headers["x-request-id"]
    assert unsafe != "bad id\nwith newline"
    assert len(unsafe) == 36


def test_query_returns_ranked_documents_from_search_without_a_generator(client):
    response = client.post("/query", json={"text": "read and write CSV files", "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"query", "answer", "documents", "pipeline", "cached", "execution_time_ms"}
    assert body["query"] == "read and write CSV files"
    assert body["answer"] is None
    assert body["pipeline"] == "search"
    assert body["cached"] is False
    assert body["execution_time_ms"] > 0
    assert 1 <= len(body["documents"]) <= 3
    top = body["documents"][0]
    assert set(top) == {"id", "content", "score", "meta"}
    assert top["meta"]["module"] == "csv"
    assert "embedding" not in top


def test_query_uses_default_top_k_from_settings(make_client):
    body = make_client(default_top_k=2).post("/query", json={"text": "pickle objects"}).json()
    assert len(body["documents"]) == 2


def test_query_filters_restrict_documents(client):
    body = client.post(
        "/query",
        json={"text": "parse", "top_k": 10, "filters": {"field": "meta.module", "operator": "==", "value": "tomllib"}},
    ).json()
    assert body["documents"]
    assert {d["meta"]["module"] for d in body["documents"]} == {"tomllib"}


def test_query_accepts_json_sent_as_form_encoding_like_curl_dash_d(client):
    response = client.post(
        "/query",
        content=b'{"text": "parse JSON"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["documents"][0]["meta"]["module"].startswith("json")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"text": ', 400, "invalid_json"),
        (b"not json at all", 400, "invalid_json"),
        (b"", 422, "validation_error"),
        (b"[]", 422, "validation_error"),
        (b'{"text": 5}', 422, "validation_error"),
        (b'{"text": ""}', 422, "validation_error"),
        (b'{"text": "   \\n\\t"}', 422, "validation_error"),
        (b'{"text": "json", "top_k": 0}', 422, "validation_error"),
        (b'{"text": "json", "top_k": 51}', 422, "validation_error"),
        (b'{"text": "json", "top_k": "five"}', 422, "validation_error"),
        (b'{"text": "json", "unknown": 1}', 422, "validation_error"),
        (b'{"text": "json", "filters": {"field": "meta.module"}}', 422, "validation_error"),
        (b'{"text": "json", "filters": {"field": "x; drop", "operator": "==", "value": 1}}', 422, "validation_error"),
        (b'{"text": "json", "filters": {"operator": "AND", "conditions": []}}', 422, "validation_error"),
        (
            b'{"text": "json", "filters": {"field": "meta.module", "operator": "~", "value": 1}}',
            422,
            "validation_error",
        ),
    ],
)
def test_query_bad_input_gets_a_4xx_error_body(client, body, status, code):
    response = client.post("/query", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, status, code)


def test_query_text_over_the_limit_is_rejected_and_the_limit_is_a_setting(make_client):
    default = make_client()
    assert_error(default.post("/query", json={"text": "x" * 5001}), 422, "validation_error")
    assert default.post("/query", json={"text": "x" * 5000}).status_code == 200
    strict = make_client(max_query_chars=10)
    error = assert_error(strict.post("/query", json={"text": "x" * 11}), 422, "validation_error")
    assert "10 characters" in error["message"]


def test_validation_messages_do_not_echo_the_input(client):
    secret = "s3cr3t-" + "y" * 6000
    response = client.post("/query", json={"text": secret})
    assert_error(response, 422, "validation_error")
    assert "s3cr3t" not in response.text


def test_filters_nested_too_deep_are_rejected(client):
    condition = {"field": "meta.module", "operator": "==", "value": "json"}
    for _ in range(6):
        condition = {"operator": "AND", "conditions": [condition]}
    assert_error(client.post("/query", json={"text": "json", "filters": condition}), 422, "validation_error")


def test_filter_the_store_cannot_apply_is_a_400(client):
    response = client.post(
        "/query", json={"text": "json", "filters": {"field": "meta.module", "operator": ">", "value": "json"}}
    )
    assert_error(response, 400, "invalid_filters")


def test_unknown_route_and_wrong_method_get_the_error_body(client):
    assert_error(client.get("/nothing-here"), 404, "not_found")
    assert_error(client.get("/query"), 405, "method_not_allowed")


def test_unhandled_error_is_a_500_with_the_error_body_and_no_stack_trace(client, monkeypatch):
    def explode(self, values):
        raise RuntimeError("secret internal detail at /var/task/core/pipelines.py")

    monkeypatch.setattr("core.pipelines.loader.ServedPipeline.run", explode)
    response = client.post("/query", json={"text": "json"})
    error = assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.text
    assert error["message"] == "internal error"


def test_openapi_lists_every_endpoint_with_typed_bodies(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/health", "/ready", "/pipelines", "/pipelines/search/run", "/pipelines/rag/run", "/query"):
        assert path in paths, path
    assert "/pipelines/{name}/run" not in paths
    schemas = spec["components"]["schemas"]
    assert "SearchRunRequest" in schemas
    assert schemas["QueryRequest"]["additionalProperties"] is False
    assert "ErrorBody" in schemas


def test_ready_is_503_when_the_store_is_empty(make_client):
    from core.store.base import LoadedStore
    from core.store.embedded import EmbeddedDocumentStore

    empty = LoadedStore(store=EmbeddedDocumentStore(), manifest={"embedding_dim": 256}, source="empty")
    response = make_client(store=empty).get("/ready")
    assert response.status_code == 503
    failing = {c["name"]: c["detail"] for c in response.json()["checks"] if not c["ok"]}
    assert list(failing) == ["store"]
    assert "empty" in failing["store"]
