"""The document store the pipelines read, built from settings once per container.

``DOCUMENT_STORE=memory`` loads the embedded store from a snapshot; ``pgvector`` connects to PostgreSQL
(``core.pgvector_store``, imported only then). Either way the pipelines get an object with the same
retrieval methods, so their YAML does not change.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from core.embedded_store import EmbeddedDocumentStore
from core.settings import Settings
from core.snapshot import read_snapshot


class StoreError(RuntimeError):
    """The configured store cannot be opened (init stops with this one line)."""


class StoreUnavailableError(StoreError):
    """The store's database does not answer (at init: init fails; on a request: 503)."""


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store's server could not be reached or timed out (not a bug: a 503).

    Also recognises psycopg's ``OperationalError`` (raised by Haystack's own pgvector components),
    without importing psycopg when nothing else has.
    """
    if isinstance(exc, StoreUnavailableError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


@dataclass(frozen=True)
class LoadedStore:
    """A document store and its manifest (the snapshot's, or pgvector's table description)."""

    store: EmbeddedDocumentStore | Any
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
    """The store chosen by ``DOCUMENT_STORE``.

    Raises:
        core.snapshot.SnapshotError: ``memory``: the snapshot is missing or invalid.
        StoreError: ``pgvector``: the database cannot be reached or its table does not fit the settings.
    """
    if settings.document_store == "pgvector":
        try:
            from core.pgvector_store import open_pgvector_store  # noqa: PLC0415 - psycopg only when configured
        except ImportError as exc:
            raise StoreError(
                f"DOCUMENT_STORE=pgvector needs its layer ({exc.name} is not importable): deploy with "
                "DocumentStore=pgvector, which attaches PgvectorLayer"
            ) from None

        return open_pgvector_store(settings)
    return memory_store_from_snapshot(settings.store_snapshot_uri)
