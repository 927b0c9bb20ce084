"""The embedded store as an index target: the snapshot is rewritten by a conditional read-modify-write.

The embedded store lives in one snapshot (``STORE_SNAPSHOT_URI``, S3 in AWS). An indexer commits a set
of changes by reading the snapshot with its ETag, applying the changes to its documents (every chunk of
a changed source object is dropped, the new chunks added), re-indexing (``build_index``: BM25 and the
embedding matrix) and writing it back with ``PutObject(If-Match=<etag>)`` (``If-None-Match: *`` when
there is none yet). When another indexer wrote in between, S3 answers 412 (or 409 for two conditional
writes in flight): the commit reads the newer snapshot and applies the same changes again, after a
random pause (full jitter), at most ``SNAPSHOT_COMMIT_RETRIES`` times. Two indexers racing both land.

Cost: a commit rewrites the whole snapshot, so the indexer commits once per SQS batch, not per object
(``core.ingestion.service``). Measured here at 11k chunks (the default corpus): ~1.9 s per commit
(decode 0.1 s, documents 0.4 s, re-index 1.1 s, encode 0.3 s) plus the S3 transfer of ~12 MB each way.
A commit whose changes leave the documents as they were (a duplicate, a removal of an unindexed object)
writes nothing.

Example:
    >>> target = SnapshotTarget("s3://docs-index/store.snapshot", embedding_model="l2_supercat_256")
    >>> target.apply([Change(source, chunks), Change(removed_source, None)]).written
    12
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from haystack import Document

from core.store.base import META_BUCKET, META_KEY, SourceRef
from core.store.embedded import build_index
from core.store.snapshot import (
    SnapshotConflictError,
    SnapshotError,
    decode_snapshot,
    encode_index,
    read_bytes_tagged,
    write_bytes_if,
)

BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 3.0


@dataclass(frozen=True)
class Change:
    """One source object's new chunks (``documents``), or its removal (``None``)."""

    source: SourceRef
    documents: list[Document] | None


@dataclass
class CommitResult:
    """What a commit did."""

    written: int = 0  # chunks added
    deleted: int = 0  # chunks dropped (old versions of changed objects, removed objects)
    documents: int = 0  # chunks in the snapshot afterwards
    conflicts: int = 0  # conditional writes lost to another writer (each followed by a re-read)
    size_bytes: int = 0
    elapsed_ms: float = 0.0
    wrote: bool = False  # False: nothing changed, nothing written
    etag: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def _fingerprint(document: Document) -> tuple[str, str, str]:
    return document.id, document.content or "", json.dumps(document.meta, sort_keys=True, default=str)


def apply_changes(documents: list[Document], changes: Sequence[Change]) -> tuple[list[Document], int, int, bool]:
    """Documents after ``changes`` (the last change of a source wins).

    Returns:
        The documents, how many were written and deleted, and whether anything differs at all (a
        source replaced by the very chunks it has, or a removal of a source without chunks, does not).
    """
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:
        latest[(change.source.bucket, change.source.key)] = change
    kept, dropped = [], []
    for document in documents:
        changed = (document.meta.get(META_BUCKET), document.meta.get(META_KEY)) in latest
        (dropped if changed else kept).append(document)
    added = [d for change in latest.values() for d in change.documents or []]
    differs = sorted(map(_fingerprint, dropped)) != sorted(map(_fingerprint, added))
    return kept + added, len(added), len(dropped), differs


class SnapshotTarget:
    """``IndexTarget`` over a snapshot file or S3 object (see the module docstring).

    Args:
        uri: ``s3://bucket/key`` or a local path.
        embedding_model: The model the chunks are embedded with; an existing snapshot must use the same.
        retries: Re-reads after a lost conditional write.
        s3: A boto3 S3 client (default: a new one, for ``s3://`` URIs).
        before_write: Called with the attempt number between the read and the write (tests force races here).
        sleep: ``time.sleep`` (tests pass a recorder).
    """

    def __init__(
        self,
        uri: str,
        embedding_model: str,
        *,
        retries: int = 5,
        s3: Any = None,
        before_write: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.uri = uri
        self.embedding_model = embedding_model
        self.retries = retries
        self.s3 = s3
        self.before_write = before_write
        self.sleep = sleep

    # -- IndexTarget -----------------------------------------------------------------------------------

    def replace_source(self, source: SourceRef, documents: list[Document]) -> int:
        """Replace every chunk of ``source``'s object with ``documents``; returns how many were written."""
        return self.apply([Change(source, documents)]).written

    def delete_source(self, source: SourceRef) -> int:
        """Delete every chunk of ``source``'s object; returns how many were deleted."""
        return self.apply([Change(source, None)]).deleted

    # -- the batch commit ------------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> CommitResult:
        """Commit ``changes`` in one snapshot write, re-applying them on a newer snapshot after a conflict.

        Raises:
            SnapshotConflictError: Still conflicting after ``retries`` re-reads.
            SnapshotError: The snapshot cannot be read or written, was embedded with another model, or a
                chunk's embedding does not fit it.
        """
        started = time.perf_counter()
        result = CommitResult()
        for attempt in range(self.retries + 1):
            timings: dict[str, float] = {}
            data, etag = self._timed(timings, "read_ms", lambda: read_bytes_tagged(self.uri, self.s3))
            current = self._timed(timings, "documents_ms", lambda d=data: self._documents(d))
            documents, result.written, result.deleted, differs = apply_changes(current, changes)
            result.documents = len(documents)
            if not differs:  # a duplicate, or the removal of an object that has no chunks: nothing to write
                result.written = result.deleted = 0
                result.elapsed_ms = _ms(started)
                return result
            try:
                index = self._timed(timings, "index_ms", lambda docs=documents: build_index(docs, self.embedding_model))
            except ValueError as exc:
                raise SnapshotError(f"cannot index the chunks: {exc}") from None
            encoded, _ = self._timed(timings, "encode_ms", lambda i=index: encode_index(i))
            if self.before_write is not None:
                self.before_write(attempt)
            try:
                result.etag = self._timed(
                    timings, "write_ms", lambda e=encoded, t=etag: write_bytes_if(self.uri, e, t, self.s3)
                )
            except SnapshotConflictError:
                result.conflicts += 1
                if attempt == self.retries:
                    raise SnapshotConflictError(
                        f"{self.uri}: {result.conflicts} conflicting writes in a row; giving up for now"
                    ) from None
                self.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))  # noqa: S311 - jitter
                continue
            result.wrote, result.size_bytes, result.timings_ms = True, len(encoded), timings
            break
        result.elapsed_ms = _ms(started)
        return result

    def _documents(self, data: bytes | None) -> list[Document]:
        if data is None:
            return []
        snapshot = decode_snapshot(data)
        model = snapshot.manifest.get("embedding_model")
        if snapshot.manifest.get("count") and model != self.embedding_model:
            raise SnapshotError(
                f"{self.uri} is embedded with {model!r}; the indexing pipeline embeds with {self.embedding_model!r}"
            )
        return snapshot.store.filter_documents()

    @staticmethod
    def _timed(timings: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = step()
        timings[name] = _ms(started)
        return value


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
