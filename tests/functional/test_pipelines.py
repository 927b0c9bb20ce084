"""Pipeline loading, the YAML contract, listing and per-pipeline run endpoints."""

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.pipelines.loader import PipelineLoadError, load_pipeline_file, load_pipelines
from core.runtime.container import build_runtime

ROOT = Path(__file__).resolve().parents[2]

UPPERCASE_PIPELINE = """
description: Cleans documents (no inputs or outputs declared).
components:
  cleaner:
    type: haystack.components.preprocessors.document_cleaner.DocumentCleaner
    init_parameters: {}
connections: []
"""


def test_listing_shows_name_description_schema_version_and_availability(client):
    response = client.get("/pipelines")
    assert response.status_code == 200
    listed = {p["name"]: p for p in response.json()["pipelines"]}
    assert set(listed) == {"rag", "search"}
    search = listed["search"]
    assert search["available"] is True
    assert search["unavailable_reason"] is None
    assert "Hybrid" in search["description"]
    expected = hashlib.sha256((ROOT / "pipelines" / "search.yml").read_bytes()).hexdigest()[:12]
    assert search["version"] == expected
    schema = search["input_schema"]
    assert schema["required"] == ["query"]
    assert set(schema["properties"]) == {"query", "top_k", "filters"}
    assert schema["additionalProperties"] is False
    assert search["outputs"] == ["documents"]
    assert listed["rag"]["outputs"] == ["documents", "replies"]


def test_search_run_endpoint_validates_with_the_derived_model(client):
    ok = client.post("/pipelines/search/run", json={"query": "read a CSV file", "top_k": 3})
    assert ok.status_code == 200, ok.text
    documents = ok.json()["documents"]
    assert len(documents) == 3
    assert documents[0]["meta"]["module"] == "csv"
    for bad in ({}, {"query": ""}, {"query": "x", "top_k": 0}, {"query": "x", "nope": 1}, {"query": ["x"]}):
        response = client.post("/pipelines/search/run", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "validation_error"


def test_unknown_pipeline_is_404(client):
    response = client.post("/pipelines/nope/run", json={"query": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_pipeline_without_declared_contract_exposes_its_free_sockets(tmp_path, small_store, make_settings):
    (tmp_path / "clean.yml").write_text(UPPERCASE_PIPELINE)
    runtime = build_runtime(make_settings(pipelines_dir=tmp_path), store=small_store)
    served = runtime.pipelines["clean"]
    assert served.inputs == {"documents": [("cleaner", "documents")]}
    assert served.outputs == {"documents": ("cleaner", "documents")}
    client = TestClient(create_app(runtime))
    response = client.post("/pipelines/clean/run", json={"documents": [{"content": "a   b\n\n\n\nc"}]})
    assert response.status_code == 200, response.text
    assert response.json()["documents"][0]["content"] == "a b c"


def test_store_in_yaml_is_replaced_by_the_configured_store(small_store, tmp_path):
    served = load_pipeline_file(ROOT / "pipelines" / "search.yml", small_store.store, None, 5000)
    retriever = served.pipeline.get_component("bm25_retriever")
    assert retriever.document_store is small_store.store


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("broken.yml", "components: [", "invalid YAML"),
        ("list.yml", "- a\n- b\n", "mapping"),
        ("evil.yml", "components:\n  x:\n    type: os.system\n    init_parameters: {}\n", "allowlist"),
        ("badref.yml", UPPERCASE_PIPELINE + "inputs:\n  text: cleaner.nope\n", "no socket 'cleaner.nope'"),
        ("Bad Name.yml", UPPERCASE_PIPELINE, "lower-case"),
    ],
)
def test_invalid_pipeline_files_fail_loading_with_the_file_name(tmp_path, small_store, filename, text, message):
    (tmp_path / filename).write_text(text)
    with pytest.raises(PipelineLoadError) as error:
        load_pipelines(tmp_path, small_store.store, None, 5000)
    assert filename in str(error.value)
    assert message in str(error.value)


def test_empty_or_missing_pipelines_folder_fails(tmp_path, small_store):
    with pytest.raises(PipelineLoadError, match="no pipeline files"):
        load_pipelines(tmp_path, small_store.store, None, 5000)
    with pytest.raises(PipelineLoadError, match="does not exist"):
        load_pipelines(tmp_path / "missing", small_store.store, None, 5000)


def test_failed_warm_up_marks_the_pipeline_unavailable_and_the_service_unready(make_client):
    class BrokenGenerator:
        def warm_up(self):
            raise ConnectionError("cannot reach the model")

        def run(self, messages, generation_kwargs=None):
            raise AssertionError("never called")

    client = make_client(chat_generator_factory=lambda s: BrokenGenerator(), generator="bedrock")
    listed = {p["name"]: p for p in client.get("/pipelines").json()["pipelines"]}
    assert listed["rag"]["available"] is False
    assert "ConnectionError" in listed["rag"]["unavailable_reason"]
    assert client.post("/query", json={"text": "json"}).status_code == 503
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert [c["name"] for c in ready.json()["checks"] if not c["ok"]] == ["pipelines", "generator"]
