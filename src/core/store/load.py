"""The document store the pipelines read, built from settings once per container.

``DOCUMENT_STORE=memory`` loads the embedded store from a snapshot; ``pgvector`` connects to PostgreSQL
(``core.store.pgvector``, imported only then). Either way the pipelines get an object with the same
retrieval methods, so their YAML does not change.
"""

from __future__ import annotations

from core.settings import Settings
from core.store.base import LoadedStore, StoreError
from core.store.snapshot import read_snapshot


def memory_store_from_snapshot(uri: str) -> LoadedStore:
    """The embedded store, loaded from a snapshot (a file read: the indexes are precomputed).

    Raises:
        core.store.snapshot.SnapshotError: The snapshot is missing or invalid.
    """
    snapshot = read_snapshot(uri)
    return LoadedStore(store=snapshot.store, manifest=snapshot.manifest, source=uri)


def load_store(settings: Settings) -> LoadedStore:
    """The store chosen by ``DOCUMENT_STORE``.

    Raises:
        core.store.snapshot.SnapshotError: ``memory``: the snapshot is missing or invalid.
        StoreError: ``pgvector``: the database cannot be reached or its table does not fit the settings.
    """
    if settings.document_store == "pgvector":
        try:
            from core.store.pgvector import open_pgvector_store  # noqa: PLC0415 - psycopg only when configured
        except ImportError as exc:
            raise StoreError(
                f"DOCUMENT_STORE=pgvector needs its layer ({exc.name} is not importable): deploy with "
                "DocumentStore=pgvector, which attaches PgvectorLayer"
            ) from None

        return open_pgvector_store(settings)
    return memory_store_from_snapshot(settings.store_snapshot_uri)
