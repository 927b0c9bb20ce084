"""Store-agnostic retrievers: keyword (BM25) and embedding search on whichever store settings choose.

They have the inputs, outputs and filter handling of Haystack's ``InMemoryBM25Retriever`` and
``InMemoryEmbeddingRetriever``, and call the store's ``bm25_retrieval`` / ``embedding_retrieval``
(``core.store.embedded.EmbeddedDocumentStore`` or Haystack's ``InMemoryDocumentStore``). Pipeline YAML
names no store: the pipeline loader hands them the configured one.

Example (YAML):
    bm25_retriever:
      type: core.components.retrievers.KeywordRetriever
      init_parameters: {top_k: 50}
"""

from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy


class StoreNotConfiguredError(RuntimeError):
    """The retriever was built without a document store (the pipeline loader injects one)."""


class _StoreRetriever:
    def __init__(
        self,
        document_store: Any = None,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        filter_policy: str | FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.scale_score = scale_score
        self.filter_policy = FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str) else filter_policy

    def to_dict(self) -> dict[str, Any]:
        """Serialise without the store (it is configuration, not part of the pipeline)."""
        return default_to_dict(
            self,
            filters=self.filters,
            top_k=self.top_k,
            scale_score=self.scale_score,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Deserialise."""
        return default_from_dict(cls, data)

    def _store(self) -> Any:
        if self.document_store is None:
            raise StoreNotConfiguredError(f"{type(self).__name__} has no document store")
        return self.document_store

    def _options(self, filters: dict[str, Any] | None, top_k: int | None, scale_score: bool | None) -> dict:
        return {
            "filters": apply_filter_policy(self.filter_policy, self.filters, filters),
            "top_k": top_k or self.top_k,
            "scale_score": self.scale_score if scale_score is None else scale_score,
        }


@component
class KeywordRetriever(_StoreRetriever):
    """BM25 keyword retrieval from the configured store.

    Args:
        document_store: The store (injected by the pipeline loader).
        filters: Filters applied on every run, combined with run-time ones by ``filter_policy``.
        top_k: Documents to return when a run names none.
        scale_score: Scale BM25 scores to 0-1 (as Haystack does).
        filter_policy: ``replace`` (run-time filters win) or ``merge`` (both apply).
    """

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
    ) -> dict[str, list[Document]]:
        """Documents ranked by BM25 for ``query``."""
        return {"documents": self._store().bm25_retrieval(query=query, **self._options(filters, top_k, scale_score))}


@component
class EmbeddingRetriever(_StoreRetriever):
    """Dense retrieval from the configured store (same arguments as ``KeywordRetriever``)."""

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
    ) -> dict[str, list[Document]]:
        """Documents ranked by similarity to ``query_embedding``."""
        return {
            "documents": self._store().embedding_retrieval(
                query_embedding=query_embedding,
                return_embedding=bool(return_embedding),
                **self._options(filters, top_k, scale_score),
            )
        }
