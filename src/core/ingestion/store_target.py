"""The index target of the configured store, and a generic one for any Haystack document store.

``DOCUMENT_STORE=memory`` writes the snapshot (``core.ingestion.embedded_target``). Any other store is
used directly when it implements ``IndexTarget`` itself (``replace_source``/``delete_source``, e.g. in
one transaction), else through ``DocumentStoreTarget``: a filter on the source meta, a delete by id and
a write, which any Haystack ``DocumentStore`` supports (not atomic: a failure in between leaves the
object without chunks until the retry writes them).
"""

from __future__ import annotations

from typing import Any

from haystack import Document
from haystack.document_stores.types import DuplicatePolicy

from core.ingestion.embedded_target import SnapshotTarget
from core.settings import Settings
from core.store.base import META_BUCKET, META_KEY, IndexTarget, SourceRef


class DocumentStoreTarget:
    """``IndexTarget`` over a Haystack ``DocumentStore`` (see the module docstring)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _ids(self, source: SourceRef) -> list[str]:
        filters = {
            "operator": "AND",
            "conditions": [
                {"field": f"meta.{META_BUCKET}", "operator": "==", "value": source.bucket},
                {"field": f"meta.{META_KEY}", "operator": "==", "value": source.key},
            ],
        }
        return [d.id for d in self.store.filter_documents(filters=filters)]

    def replace_source(self, source: SourceRef, documents: list[Document]) -> int:
        """Delete the object's chunks that are not among ``documents``, write ``documents``."""
        keep = {d.id for d in documents}
        stale = [i for i in self._ids(source) if i not in keep]
        if stale:
            self.store.delete_documents(stale)
        return self.store.write_documents(documents, policy=DuplicatePolicy.OVERWRITE) if documents else 0

    def delete_source(self, source: SourceRef) -> int:
        """Delete every chunk of the object."""
        ids = self._ids(source)
        if ids:
            self.store.delete_documents(ids)
        return len(ids)


def build_target(settings: Settings, embedding_model: str) -> IndexTarget:
    """The index target of ``DOCUMENT_STORE``."""
    if settings.document_store == "memory":
        return SnapshotTarget(settings.store_snapshot_uri, embedding_model, retries=settings.snapshot_commit_retries)
    from core.store.load import load_store  # noqa: PLC0415 - only other stores are loaded by the indexer

    store = load_store(settings).store
    if callable(getattr(store, "replace_source", None)) and callable(getattr(store, "delete_source", None)):
        return store
    return DocumentStoreTarget(store)
