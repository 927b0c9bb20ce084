"""The store-agnostic retrievers: Haystack's retriever contract on whichever store is configured."""

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from core.components.retrievers import EmbeddingRetriever, KeywordRetriever, StoreNotConfiguredError
from core.store.embedded import EmbeddedDocumentStore

DOCS = [
    Document(content="json.loads parses JSON", meta={"module": "json"}, embedding=[1.0, 0.0]),
    Document(content="json.dumps writes JSON", meta={"module": "json"}, embedding=[0.8, 0.6]),
    Document(content="csv.reader reads JSON-free rows", meta={"module": "csv"}, embedding=[0.0, 1.0]),
]


def sockets(component) -> tuple[dict, dict]:
    inputs = {name: socket.type for name, socket in component.__haystack_input__._sockets_dict.items()}
    outputs = {name: socket.type for name, socket in component.__haystack_output__._sockets_dict.items()}
    return inputs, outputs


def test_sockets_match_haystacks_retrievers():
    store = InMemoryDocumentStore()
    keyword_in, keyword_out = sockets(KeywordRetriever(store))
    reference_in, reference_out = sockets(InMemoryBM25Retriever(store))
    assert keyword_in == reference_in
    assert keyword_out == reference_out
    dense_in, dense_out = sockets(EmbeddingRetriever(store))
    reference_in, reference_out = sockets(InMemoryEmbeddingRetriever(store))
    assert dense_in == reference_in
    assert dense_out == reference_out


@pytest.mark.parametrize("store_class", [EmbeddedDocumentStore, InMemoryDocumentStore])
def test_same_results_on_the_embedded_and_haystacks_store(store_class):
    if store_class is EmbeddedDocumentStore:
        store = EmbeddedDocumentStore.from_documents(DOCS, "m")
    else:
        store = InMemoryDocumentStore(shared=False)
        store.write_documents(DOCS)
    keyword = KeywordRetriever(store, top_k=2).run(query="parses JSON")["documents"]
    assert keyword[0].content == "json.loads parses JSON"
    dense = EmbeddingRetriever(store).run(query_embedding=[1.0, 0.1], top_k=1)["documents"]
    assert dense[0].content == "json.loads parses JSON"


def test_filter_policy_replace_and_merge():
    store = EmbeddedDocumentStore.from_documents(DOCS, "m")
    init_filter = {"field": "meta.module", "operator": "==", "value": "json"}
    runtime_filter = {"field": "content", "operator": "==", "value": "json.dumps writes JSON"}
    replace = EmbeddingRetriever(store, filters=init_filter, top_k=5)
    assert len(replace.run(query_embedding=[1.0, 0.0])["documents"]) == 2
    assert (
        len(
            replace.run(query_embedding=[1.0, 0.0], filters={"field": "meta.module", "operator": "==", "value": "csv"})[
                "documents"
            ]
        )
        == 1
    )
    merge = EmbeddingRetriever(store, filters=init_filter, top_k=5, filter_policy="merge")
    merged = merge.run(query_embedding=[1.0, 0.0], filters=runtime_filter)["documents"]
    assert [d.content for d in merged] == ["json.dumps writes JSON"]


def test_serialisation_leaves_out_the_store_and_round_trips():
    retriever = KeywordRetriever(EmbeddedDocumentStore(), top_k=7, filter_policy="merge")
    data = retriever.to_dict()
    assert data["type"] == "core.components.retrievers.KeywordRetriever"
    assert "document_store" not in data["init_parameters"]
    pipeline = Pipeline()
    pipeline.add_component("r", retriever)
    restored = Pipeline.loads(pipeline.dumps(), allowed_modules=["core.components.*"]).get_component("r")
    assert restored.top_k == 7
    assert restored.filter_policy.value == "merge"


def test_without_a_store_a_run_fails_clearly():
    with pytest.raises(StoreNotConfiguredError):
        KeywordRetriever().run(query="json")
    with pytest.raises(ValueError, match="top_k"):
        KeywordRetriever(top_k=0)
