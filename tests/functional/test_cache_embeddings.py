"""Query embeddings of a (remote-like) text embedder are cached; the in-process one is left alone."""

from haystack import component

from core.api.query import answer_query
from core.api.schemas import QueryRequest
from core.cache.embeddings import cache_text_embedders
from core.runtime.container import build_runtime

CALLS: list[str] = []


@component
class CountingTextEmbedder:
    """Stands for a paid remote embedder: returns a fixed unit vector and counts its calls."""

    def __init__(self, model: str = "remote-v1") -> None:
        self.model = model

    @component.output_types(embedding=list[float], meta=dict)
    def run(self, text: str) -> dict:
        CALLS.append(text)
        return {"embedding": [1.0] + [0.0] * 255, "meta": {"model": self.model}}


def remote_embedder_pipelines(source: str) -> str:
    return source.replace(
        "type: core.components.embedders.StaticTextEmbedder\n    init_parameters:\n      model: l2_supercat_256",
        f"type: {__name__}.CountingTextEmbedder\n    init_parameters:\n      model: remote-v1",
    )


def runtime_with_remote_embedder(make_settings, small_store, tmp_path, monkeypatch, **settings):
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", __name__)
    source = (make_settings().pipelines_dir / "search.yml").read_text()
    (tmp_path / "search.yml").write_text(remote_embedder_pipelines(source))
    return build_runtime(make_settings(pipelines_dir=tmp_path, **settings), store=small_store)


def test_the_same_text_is_embedded_once(make_settings, small_store, tmp_path, monkeypatch):
    CALLS.clear()
    runtime = runtime_with_remote_embedder(make_settings, small_store, tmp_path, monkeypatch)
    assert answer_query(runtime, QueryRequest(text="csv reader", top_k=3))[1] == "MISS"
    assert answer_query(runtime, QueryRequest(text="csv reader", top_k=4))[1] == "MISS"  # new result key
    assert CALLS == ["csv reader"]  # ...but the embedding came from the cache
    answer_query(runtime, QueryRequest(text="json"))
    assert CALLS == ["csv reader", "json"]


def test_ttl_zero_turns_embedding_caching_off(make_settings, small_store, tmp_path, monkeypatch):
    CALLS.clear()
    runtime = runtime_with_remote_embedder(make_settings, small_store, tmp_path, monkeypatch, cache_ttl_embeddings_s=0)
    answer_query(runtime, QueryRequest(text="csv reader", top_k=3))
    answer_query(runtime, QueryRequest(text="csv reader", top_k=4))
    assert CALLS == ["csv reader", "csv reader"]


def test_the_in_process_embedder_is_not_wrapped(make_settings, small_store):
    runtime = build_runtime(make_settings(), store=small_store)
    assert cache_text_embedders({n: p.pipeline for n, p in runtime.pipelines.items()}, runtime.cache, "hs", 86400) == []
