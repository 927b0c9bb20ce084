"""The embedded document store: documents, a BM25 index and an embedding matrix, held in memory.

Everything a query needs is precomputed when the store is built (``make index``) and saved in the
snapshot, so loading it at init is a file read, not a re-index:

- keyword search: a ``bm25s`` sparse index (scores for every document in ~0.1 ms at 11k chunks);
- dense search: a ``(documents, dim)`` float32 matrix of unit vectors (one matrix-vector product);
- documents: ids, metadata, and the text as one UTF-8 blob with offsets; a ``Document`` is only
  built for the documents a query returns.

It implements Haystack's ``DocumentStore`` protocol and the ``bm25_retrieval`` /
``embedding_retrieval`` methods of ``InMemoryDocumentStore``, so Haystack components and this
project's retrievers (``core.components.retrievers``) work with it unchanged. Filters use Haystack's
filter semantics (``haystack.utils.filters``); the mask of each distinct filter is cached.

Example:
    >>> store = EmbeddedDocumentStore.from_documents(documents_with_embeddings, "l2_supercat_256")
    >>> [d.meta["module"] for d in store.bm25_retrieval("parse JSON", top_k=3)]
    ['json', 'json', 'json.decoder']
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import bm25s
import numpy as np
from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import expit
from haystack.utils.filters import document_matches_filter

BM25_SCALING_FACTOR = 8  # as Haystack's InMemoryDocumentStore, so scaled scores compare
FILTER_CACHE_SIZE = 256


def new_tokenizer() -> bm25s.tokenization.Tokenizer:
    """The keyword tokenizer: lower-case words of 2+ characters, English stopwords removed."""
    return bm25s.tokenization.Tokenizer(stopwords="en")


@dataclass(frozen=True)
class StoreIndex:
    """Everything the store holds; replaced as a whole on writes, so readers never see half of it."""

    ids: list[str]
    metas: list[dict[str, Any]]
    content: bytes
    offsets: np.ndarray  # int64, len(ids) + 1: content of i is content[offsets[i]:offsets[i + 1]]
    embeddings: np.ndarray  # float32 (len(ids), dim), unit rows
    bm25: bm25s.BM25 | None  # None when empty
    tokenizer: bm25s.tokenization.Tokenizer
    embedding_model: str

    def text(self, i: int) -> str:
        """Content of document ``i``."""
        return self.content[self.offsets[i] : self.offsets[i + 1]].decode("utf-8")


class _MetaView:
    """A document as a filter on ``meta.*`` fields sees it, without building a ``Document``."""

    __slots__ = ("meta",)

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta


def _meta_only(filters: dict[str, Any]) -> bool:
    """Whether every condition of ``filters`` is on a ``meta.*`` field."""
    if "conditions" in filters:
        return all(_meta_only(c) for c in filters["conditions"])
    return str(filters.get("field", "")).startswith("meta.")


def build_index(documents: list[Document], embedding_model: str) -> StoreIndex:
    """Index documents (each needs an embedding of one dimension).

    Raises:
        ValueError: A document has no embedding, or the dimensions differ.
    """
    texts = [d.content or "" for d in documents]
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    if any(d.embedding is None for d in documents):
        raise ValueError("every document of the embedded store needs an embedding")
    embeddings = (
        np.asarray([d.embedding for d in documents], dtype=np.float32)
        if documents
        else np.zeros((0, 0), dtype=np.float32)
    )
    if embeddings.ndim != 2:
        raise ValueError("every document of the embedded store needs an embedding of the same dimension")
    tokenizer = new_tokenizer()
    bm25 = None
    if documents:
        tokens = tokenizer.tokenize(texts, return_as="tuple", show_progress=False)
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
    return StoreIndex(
        ids=[d.id for d in documents],
        metas=[dict(d.meta) for d in documents],
        content=b"".join(encoded),
        offsets=offsets,
        embeddings=np.ascontiguousarray(embeddings),
        bm25=bm25,
        tokenizer=tokenizer,
        embedding_model=embedding_model,
    )


class EmbeddedDocumentStore:
    """In-memory store with precomputed keyword and dense indexes (see the module docstring).

    Args:
        index: A built index (``build_index``, or a snapshot's); empty when omitted.
    """

    def __init__(self, index: StoreIndex | None = None) -> None:
        self._index = index or build_index([], "")
        self._masks: OrderedDict[str, tuple[StoreIndex, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_documents(cls, documents: list[Document], embedding_model: str) -> EmbeddedDocumentStore:
        """A store holding ``documents``."""
        return cls(build_index(documents, embedding_model))

    @property
    def index(self) -> StoreIndex:
        """The current index (immutable; writes swap in a new one)."""
        return self._index

    # -- Haystack DocumentStore protocol ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Serialise the store's type (its data lives in snapshots, not in pipeline YAML)."""
        return default_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddedDocumentStore:
        """An empty store (the pipeline loader injects the loaded one)."""
        return default_from_dict(cls, data)

    def count_documents(self) -> int:
        """Number of documents."""
        return len(self._index.ids)

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Documents matching ``filters`` (all when ``None``), with their embeddings."""
        index = self._index
        selected = range(len(index.ids)) if not filters else np.flatnonzero(self._mask(index, filters))
        return [self._document(index, int(i), None, with_embedding=True) for i in selected]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Add documents and re-index; returns how many were written.

        Raises:
            DuplicateDocumentError: An id exists and ``policy`` is ``NONE`` or ``FAIL``.
        """
        with self._lock:
            current = {d.id: d for d in self.filter_documents()}
            written = 0
            for document in documents:
                if document.id in current:
                    if policy == DuplicatePolicy.SKIP:
                        continue
                    if policy != DuplicatePolicy.OVERWRITE:
                        raise DuplicateDocumentError(f"document {document.id} already exists")
                current[document.id] = document
                written += 1
            self._swap(build_index(list(current.values()), self._index.embedding_model))
        return written

    def delete_documents(self, document_ids: list[str]) -> None:
        """Remove documents by id and re-index."""
        with self._lock:
            drop = set(document_ids)
            kept = [d for d in self.filter_documents() if d.id not in drop]
            self._swap(build_index(kept, self._index.embedding_model))

    def replace_index(self, index: StoreIndex) -> None:
        """Serve ``index`` from now on (a newer snapshot): a query in flight finishes on the index it started with."""
        with self._lock:
            self._swap(index)

    def _swap(self, index: StoreIndex) -> None:
        self._index = index
        self._masks.clear()

    # -- retrieval (same signatures as InMemoryDocumentStore) ----------------------------------------

    def bm25_retrieval(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int = 10, scale_score: bool = False
    ) -> list[Document]:
        """Documents ranked by BM25 for ``query``; documents sharing no term with it are left out."""
        index = self._index
        if index.bm25 is None or not query.strip():
            return []
        token_ids = index.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
        if not token_ids:
            return []
        scores = index.bm25.get_scores(token_ids)
        mask = scores > 0
        if filters:
            mask &= self._mask(index, filters)
        chosen = _top(scores, mask, top_k)
        return [
            self._document(index, i, float(expit(scores[i] / BM25_SCALING_FACTOR)) if scale_score else float(scores[i]))
            for i in chosen
        ]

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
    ) -> list[Document]:
        """Documents ranked by cosine similarity (rows and query are unit vectors)."""
        index = self._index
        if not index.ids:
            return []
        query = np.asarray(query_embedding, dtype=np.float32)
        if query.shape != (index.embeddings.shape[1],):
            raise ValueError(f"query embedding has dimension {query.size}; the store's is {index.embeddings.shape[1]}")
        norm = float(np.linalg.norm(query))
        scores = index.embeddings @ (query / norm if norm else query)
        mask = self._mask(index, filters) if filters else None
        chosen = _top(scores, mask, top_k)
        return [
            self._document(index, i, (float(scores[i]) + 1) / 2 if scale_score else float(scores[i]), return_embedding)
            for i in chosen
        ]

    # -- helpers -------------------------------------------------------------------------------------

    def _mask(self, index: StoreIndex, filters: dict[str, Any]) -> np.ndarray:
        """Boolean mask of the documents matching ``filters`` (Haystack semantics), cached per filter."""
        key = json.dumps(filters, sort_keys=True, default=str)
        with self._lock:
            cached = self._masks.get(key)
            # Same index object, not just the same length: a mask of the index before a swap must not answer.
            if cached is not None and cached[0] is index:
                self._masks.move_to_end(key)
                return cached[1]
        if _meta_only(filters):
            rows: Any = (_MetaView(meta) for meta in index.metas)
        else:  # content, id, ...: Haystack's filter code needs real documents
            rows = (self._document(index, i, None) for i in range(len(index.ids)))
        mask = np.fromiter((document_matches_filter(filters, row) for row in rows), dtype=bool, count=len(index.ids))
        with self._lock:
            if index is self._index:  # not swapped out meanwhile: worth keeping
                self._masks[key] = (index, mask)
            while len(self._masks) > FILTER_CACHE_SIZE:
                self._masks.popitem(last=False)
        return mask

    @staticmethod
    def _document(index: StoreIndex, i: int, score: float | None, with_embedding: bool = False) -> Document:
        document = Document(id=index.ids[i], content=index.text(i), meta=dict(index.metas[i]), score=score)
        return replace(document, embedding=index.embeddings[i].tolist()) if with_embedding else document


def _top(scores: np.ndarray, mask: np.ndarray | None, top_k: int) -> list[int]:
    """Indices of the ``top_k`` highest scores where ``mask`` holds; ties broken by position."""
    candidates = np.flatnonzero(mask) if mask is not None else np.arange(len(scores))
    if candidates.size == 0 or top_k <= 0:
        return []
    if candidates.size > top_k:
        part = np.argpartition(-scores[candidates], top_k - 1)[:top_k]
        candidates = candidates[part]
    order = np.lexsort((candidates, -scores[candidates]))
    return [int(i) for i in candidates[order]]
