"""The store contract every backend keeps (embedded snapshot, pgvector): errors, meta names, index targets.

A leaf: the backends, the indexer and the access checks import it; it imports no project module.

What an indexer writes to is one contract for every store. Chunks are keyed by the object they came
from. Re-indexing an object *replaces* its chunks (whatever version they came from), so applying the
same change twice leaves the store as applying it once: the base of "nothing doubled". Every chunk
carries its source and tenant in ``meta``:

- ``source_bucket``, ``source_key``, ``source_version`` (S3 version id, or the ETag when unversioned,
  or the file's SHA-256 for a local folder), ``tenant``.

Example:
    >>> source = SourceRef(bucket="docs", key="acme/guide.md", version="3HL4kqtJ", tenant="acme")
    >>> target.replace_source(source, chunks)   # deletes docs/acme/guide.md's old chunks, writes these
    >>> target.delete_source(source)            # the object was removed: its chunks go
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol

from haystack import Document

# Meta keys every chunk carries (filters and deletes use them; tenant isolation too).
META_BUCKET = "source_bucket"
META_KEY = "source_key"
META_VERSION = "source_version"
META_TENANT = "tenant"


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

    store: Any
    manifest: dict
    source: str


@dataclass(frozen=True)
class SourceRef:
    """One source object: where it is, which version, whose."""

    bucket: str
    key: str
    version: str
    tenant: str

    def meta(self) -> dict[str, str]:
        """The ``meta`` entries a chunk of this object carries."""
        return {META_BUCKET: self.bucket, META_KEY: self.key, META_VERSION: self.version, META_TENANT: self.tenant}


class IndexTarget(Protocol):
    """A store as an indexer sees it."""

    def replace_source(self, source: SourceRef, documents: list[Document]) -> int:
        """Delete every chunk of ``source.bucket``/``source.key`` (any version), write ``documents``.

        Returns:
            How many chunks were written.
        """
        ...

    def delete_source(self, source: SourceRef) -> int:
        """Delete every chunk of ``source.bucket``/``source.key``; returns how many were deleted."""
        ...
