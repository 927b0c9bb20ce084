"""The document store the pipelines read, built from settings once per container."""

from __future__ import annotations

from dataclasses import dataclass

from core.embedded_store import EmbeddedDocumentStore
from core.settings import Settings
from core.snapshot import read_snapshot


@dataclass(frozen=True)
class LoadedStore:
    """A document store and the manifest of the snapshot it was loaded from."""

    store: EmbeddedDocumentStore
    manifest: dict
    source: str


def memory_store_from_snapshot(uri: str) -> LoadedStore:
    """The embedded store, loaded from a snapshot (a file read: the indexes are precomputed).

    Raises:
        core.snapshot.SnapshotError: The snapshot is missing or invalid.
    """
    snapshot = read_snapshot(uri)
    return LoadedStore(store=snapshot.store, manifest=snapshot.manifest, source=uri)


def load_store(settings: Settings) -> LoadedStore:
    """The store chosen by ``DOCUMENT_STORE``."""
    return memory_store_from_snapshot(settings.store_snapshot_uri)
