"""The document store the pipelines read, built from settings once per container."""

from __future__ import annotations

from dataclasses import dataclass

from haystack.document_stores.in_memory import InMemoryDocumentStore

from core.settings import Settings
from core.snapshot import read_snapshot


@dataclass(frozen=True)
class LoadedStore:
    """A document store and the manifest of the snapshot it was loaded from."""

    store: InMemoryDocumentStore
    manifest: dict
    source: str


def memory_store_from_snapshot(uri: str) -> LoadedStore:
    """An in-memory store (private to this instance, not process-shared) filled from a snapshot.

    Raises:
        core.snapshot.SnapshotError: The snapshot is missing or invalid.
    """
    snapshot = read_snapshot(uri)
    store = InMemoryDocumentStore(shared=False, embedding_similarity_function="dot_product")
    store.write_documents(snapshot.documents)
    return LoadedStore(store=store, manifest=snapshot.manifest, source=uri)


def load_store(settings: Settings) -> LoadedStore:
    """The store chosen by ``DOCUMENT_STORE``."""
    return memory_store_from_snapshot(settings.store_snapshot_uri)
