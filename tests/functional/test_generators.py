"""The `rag` pipeline end to end with each generator backend, and `/ready` on its dependencies.

- Haystack's `MockChatGenerator` as the backend;
- the real `AmazonBedrockChatGenerator` with its boto3 client stubbed (botocore `Stubber` on `converse`:
  no Bedrock here);
- the real `OpenAIChatGenerator` against an OpenAI-compatible server started on loopback.
"""

import threading
import time

import pytest
import uvicorn
from botocore.stub import Stubber
from fastapi import FastAPI
from haystack.components.generators.chat import MockChatGenerator

from core.runtime.generators import build_chat_generator
from tests.support import free_port


def test_rag_is_listed_but_unavailable_without_a_generator(client):
    listed = {p["name"]: p for p in client.get("/pipelines").json()["pipelines"]}
    assert listed["rag"]["available"] is False
    assert "GENERATOR=none" in listed["rag"]["unavailable_reason"]
    response = client.post("/pipelines/rag/run", json={"query": "parse JSON"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "pipeline_unavailable"
    # ...and that does not make the service unready: it is unavailable by configuration.
    assert client.get("/ready").status_code == 200


def test_rag_with_mock_generator_answers_from_the_retrieved_documents(make_client):
    prompts = []

    def reply(messages):
        prompts.append(messages[-1].text)
        return "Use json.loads to parse a JSON string."

    client = make_client(chat_generator_factory=lambda s: MockChatGenerator(response_fn=reply), generator="bedrock")
    body = client.post("/query", json={"text": "how do I parse JSON", "top_k": 3}).json()
    assert body["pipeline"] == "rag"
    assert body["answer"] == "Use json.loads to parse a JSON string."
    assert len(body["documents"]) == 3
    # The prompt carried the question and the retrieved documents, with their module names.
    assert "Question: how do I parse JSON" in prompts[0]
    assert "(json" in prompts[0]

    run = client.post("/pipelines/rag/run", json={"query": "read a CSV file", "top_k": 2})
    assert run.status_code == 200, run.text
    reply_out = run.json()["replies"][0]
    assert (reply_out["role"], reply_out["text"]) == ("assistant", "Use json.loads to parse a JSON string.")
    assert reply_out["meta"]["usage"]["completion_tokens"] > 0
    assert len(run.json()["documents"]) == 2


def converse_response(text: str) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 120, "outputTokens": 9, "totalTokens": 129},
        "metrics": {"latencyMs": 230},
    }


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def bedrock_with_stubbed_client(settings, setup):
    generator = build_chat_generator(settings)
    generator.warm_up()
    stubber = Stubber(generator.client)
    setup(stubber, generator.client)
    stubber.activate()
    return generator


def test_rag_with_bedrock_calls_converse_with_the_configured_model(make_client, aws_credentials):
    sent = []

    def setup(stubber, client):
        client.meta.events.register(
            "provide-client-params.bedrock-runtime.Converse", lambda params, **_: sent.append(params)
        )
        stubber.add_response("converse", converse_response("json.loads parses JSON text."))

    client = make_client(
        chat_generator_factory=lambda s: bedrock_with_stubbed_client(s, setup),
        generator="bedrock",
        bedrock_model_id="amazon.nova-micro-v1:0",
    )
    response = client.post("/query", json={"text": "how do I parse JSON", "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "json.loads parses JSON text."
    assert body["pipeline"] == "rag"
    assert sent[0]["modelId"] == "amazon.nova-micro-v1:0"
    user_text = sent[0]["messages"][-1]["content"][0]["text"]
    assert "Question: how do I parse JSON" in user_text
    ready = client.get("/ready").json()
    assert {c["name"]: c["ok"] for c in ready["checks"]}["generator"] is True


def test_bedrock_failure_is_a_502_without_internal_detail(make_client, aws_credentials):
    def setup(stubber, _client):
        for _ in range(5):  # the client retries throttling; every attempt is throttled
            stubber.add_client_error("converse", "ThrottlingException", "Rate exceeded for account 1234", 429)

    client = make_client(chat_generator_factory=lambda s: bedrock_with_stubbed_client(s, setup), generator="bedrock")
    response = client.post("/query", json={"text": "how do I parse JSON"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "generator_error"
    assert "1234" not in response.text


def test_ready_fails_when_bedrock_has_no_credentials(make_client, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = make_client(generator="bedrock")
    response = client.get("/ready")
    assert response.status_code == 503
    failing = {c["name"]: c for c in response.json()["checks"] if not c["ok"]}
    assert "generator" in failing
    assert "credentials" in failing["generator"]["detail"]


@pytest.fixture(scope="module")
def openai_server():
    """A minimal OpenAI-compatible server (models + chat completions) on a free loopback port."""
    app = FastAPI()
    seen = []

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    def complete(body: dict):
        seen.append(body)
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Call json.loads(text)."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
        }

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join(5)


def test_rag_with_an_openai_compatible_server(make_client, openai_server):
    base_url, seen = openai_server
    client = make_client(generator="openai", openai_base_url=base_url, openai_model="tiny")
    body = client.post("/query", json={"text": "how do I parse JSON"}).json()
    assert body["pipeline"] == "rag"
    assert body["answer"] == "Call json.loads(text)."
    assert seen[-1]["model"] == "tiny"
    ready = client.get("/ready")
    assert ready.status_code == 200
    checks = {c["name"]: c["ok"] for c in ready.json()["checks"]}
    assert checks == {"pipelines": True, "store": True, "cache": True, "generator": True}


def test_ready_is_503_when_the_generator_server_is_unreachable(make_client):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    client = make_client(generator="openai", openai_base_url=closed, openai_model="tiny", readiness_timeout_s=0.5)
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    failing = [c for c in body["checks"] if not c["ok"]]
    assert [c["name"] for c in failing] == ["generator"]
    assert "unreachable" in failing[0]["detail"]
    # The liveness probe stays cheap and green.
    assert client.get("/health").status_code == 200
