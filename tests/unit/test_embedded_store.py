"""The embedded store: precomputed BM25 and dense indexes, Haystack filter semantics, writes."""

import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy

from core.store.embedded import EmbeddedDocumentStore


def unit(*values: float) -> list[float]:
    vector = np.asarray(values, dtype=np.float32)
    return (vector / np.linalg.norm(vector)).tolist()


DOCS = [
    Document(
        content="json.loads parses a JSON document", meta={"module": "json", "year": 2001}, embedding=unit(1, 0, 0)
    ),
    Document(
        content="csv.reader reads rows from a CSV file", meta={"module": "csv", "year": 2003}, embedding=unit(0, 1, 0)
    ),
    Document(
        content="re.match matches a regular expression", meta={"module": "re", "year": 1997}, embedding=unit(0, 0, 1)
    ),
    Document(content="json.dumps writes JSON text", meta={"module": "json", "year": 2008}, embedding=unit(1, 0.2, 0)),
    Document(content="pickle serialises objects", meta={"module": "pickle"}, embedding=unit(0.3, 0.3, 0.3)),
]


@pytest.fixture
def store() -> EmbeddedDocumentStore:
    return EmbeddedDocumentStore.from_documents(DOCS, "test")


def test_bm25_ranks_matching_documents_and_leaves_out_non_matching(store):
    found = store.bm25_retrieval("JSON", top_k=10)
    assert {d.meta["module"] for d in found} == {"json"}
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert store.bm25_retrieval("the of and", top_k=10) == []  # stopwords only
    assert store.bm25_retrieval("zzzunknownzzz", top_k=10) == []
    assert store.bm25_retrieval("   ", top_k=10) == []


def test_bm25_scores_scale_to_zero_one(store):
    scaled = store.bm25_retrieval("JSON", top_k=2, scale_score=True)
    assert all(0 < d.score < 1 for d in scaled)


def test_embedding_retrieval_matches_brute_force_cosine(store):
    query = unit(1, 0.1, 0)
    found = store.embedding_retrieval(query, top_k=3)
    expected = sorted(DOCS, key=lambda d: -float(np.dot(d.embedding, query)))[:3]
    assert [d.id for d in found] == [d.id for d in expected]
    assert found[0].score == pytest.approx(float(np.dot(expected[0].embedding, query)), abs=1e-6)
    assert found[0].embedding is None
    top = store.embedding_retrieval(query, top_k=1, return_embedding=True)[0]
    assert top.embedding == pytest.approx(expected[0].embedding)
    with pytest.raises(ValueError, match="dimension"):
        store.embedding_retrieval([1.0, 0.0], top_k=1)


@pytest.mark.parametrize(
    "filters",
    [
        {"field": "meta.module", "operator": "==", "value": "json"},
        {"field": "meta.module", "operator": "in", "value": ["csv", "re"]},
        {"field": "meta.year", "operator": ">=", "value": 2003},
        {"operator": "NOT", "conditions": [{"field": "meta.module", "operator": "==", "value": "json"}]},
        {
            "operator": "OR",
            "conditions": [
                {"field": "meta.year", "operator": "<", "value": 2000},
                {"field": "content", "operator": "==", "value": "pickle serialises objects"},
            ],
        },
    ],
)
def test_filters_select_what_haystacks_in_memory_store_selects(store, filters):
    reference = InMemoryDocumentStore(shared=False)
    reference.write_documents(DOCS)
    expected = {d.id for d in reference.filter_documents(filters)}
    assert {d.id for d in store.filter_documents(filters)} == expected
    ranked = store.embedding_retrieval(unit(1, 1, 1), filters=filters, top_k=10)
    assert {d.id for d in ranked} == expected


def test_filters_apply_to_bm25_and_top_k_is_respected(store):
    only_csv = {"field": "meta.module", "operator": "==", "value": "csv"}
    assert store.bm25_retrieval("JSON", filters=only_csv, top_k=5) == []
    assert len(store.embedding_retrieval(unit(1, 1, 1), top_k=2)) == 2


def test_documents_come_back_whole(store):
    by_id = {d.id: d for d in store.filter_documents()}
    assert by_id[DOCS[1].id].content == DOCS[1].content
    assert by_id[DOCS[1].id].meta == DOCS[1].meta
    assert by_id[DOCS[1].id].embedding == pytest.approx(DOCS[1].embedding)


def test_writes_and_deletes_reindex_and_refresh_filter_masks(store):
    json_filter = {"field": "meta.module", "operator": "==", "value": "json"}
    assert len(store.filter_documents(json_filter)) == 2
    new = Document(content="json.JSONDecoder decodes JSON", meta={"module": "json"}, embedding=unit(1, 0, 0.1))
    assert store.write_documents([new]) == 1
    assert store.count_documents() == 6
    assert len(store.filter_documents(json_filter)) == 3
    assert new.id in {d.id for d in store.bm25_retrieval("JSONDecoder", top_k=5)}
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([new])
    assert store.write_documents([new], policy=DuplicatePolicy.SKIP) == 0
    store.delete_documents([new.id, DOCS[0].id])
    assert store.count_documents() == 4
    assert len(store.filter_documents(json_filter)) == 1


def test_documents_need_embeddings():
    with pytest.raises(ValueError, match="embedding"):
        EmbeddedDocumentStore.from_documents([Document(content="x")], "m")


def test_empty_store_answers_nothing():
    store = EmbeddedDocumentStore()
    assert store.count_documents() == 0
    assert store.bm25_retrieval("json") == []
    assert store.embedding_retrieval([1.0, 0.0]) == []
    assert EmbeddedDocumentStore.from_dict(store.to_dict()).count_documents() == 0
