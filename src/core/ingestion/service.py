"""The indexer's logic: each SQS record is prepared on its own, then the batch is committed at once.

``prepare`` (per record; an exception fails that record only): parse the S3 notification → claim each
object event in the idempotency ledger (a handled one is skipped) → reconcile with the object's current
state (``core.ingestion.objects``) → download → convert, clean, split, embed (``IndexingPipeline``) →
stage the change (new chunks, or the removal). ``commit`` (per batch): write every staged change through
the index target — with the embedded store one snapshot rewrite for the whole batch — then complete the
ledger claims of the records that landed, or release them and fail the records when the commit failed.

Failure policy (a failed record is retried by SQS, and after ``maxReceiveCount`` receives goes to the
DLQ, where an alarm sees it):

- fails: a message that is not an S3 notification; an object the converter cannot read (corrupt PDF,
  JSON without ``content``, text in another encoding than declared); an object over
  ``INGEST_MAX_OBJECT_BYTES``; S3/DynamoDB errors (throttling, permissions); an event another invocation
  is handling right now; a commit that fails (each record of the batch that had a change fails with it).
- acknowledged without work (``skipped``): S3's ``s3:TestEvent``; a duplicate (the ledger has it); a
  superseded event (the object is now another version, is gone, or exists again after a removal: the
  newer event does the work); an object of a type the pipeline does not convert — its key's old chunks
  are removed, if any (the object no longer has indexable content), and the notification's suffix filter
  is the place to keep such objects away.
- an object that converts to no text (an empty file, a PDF of scanned images) is indexed with no chunks:
  the chunks of its previous version go.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from core.ingestion.embedded_target import Change
from core.ingestion.events import ObjectEvent, is_test_event, parse_message, tenant_of
from core.ingestion.ledger import Ledger
from core.ingestion.objects import ObjectReader
from core.ingestion.pipeline import IndexingPipeline
from core.ingestion.telemetry import DELETED, FAILED, INDEXED, SKIPPED, IndexerTelemetry, ObjectOutcome
from core.store.base import IndexTarget, SourceRef

logger = logging.getLogger("core.ingestion")


@dataclass
class PreparedRecord:
    """One SQS record after ``prepare``: its ledger claims, staged changes and pending outcomes."""

    message_id: str
    claims: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    outcomes: list[ObjectOutcome] = field(default_factory=list)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


class Ingestor:
    """Prepares records and commits batches (see the module docstring).

    Args:
        pipeline: The indexing pipeline.
        reader: Reads the current source objects.
        target: Where chunks go; with an ``apply(changes)`` method (the snapshot) a batch is one commit.
        ledger: Idempotency records.
        telemetry: Log lines and metrics.
        key_prefix: ``INGEST_KEY_PREFIX`` (the tenant rule, ``core.ingestion.events``).
        max_object_bytes: ``INGEST_MAX_OBJECT_BYTES``.
    """

    def __init__(
        self,
        pipeline: IndexingPipeline,
        reader: ObjectReader,
        target: IndexTarget,
        ledger: Ledger,
        telemetry: IndexerTelemetry,
        *,
        key_prefix: str = "",
        max_object_bytes: int = 50 * 1024 * 1024,
    ) -> None:
        self.pipeline = pipeline
        self.reader = reader
        self.target = target
        self.ledger = ledger
        self.telemetry = telemetry
        self.key_prefix = key_prefix
        self.max_object_bytes = max_object_bytes

    # -- phase 1: one record ---------------------------------------------------------------------------

    def prepare(self, message_id: str, body: str, remaining_ms: int | None = None) -> PreparedRecord:
        """Stage the changes of one SQS record.

        Raises:
            Exception: Anything that fails the record (its claims are released first, its line logged).
        """
        prepared = PreparedRecord(message_id)
        current: ObjectEvent | None = None
        started = time.perf_counter()
        try:
            events = parse_message(body)
            if not events:
                reason = "test_event" if is_test_event(body) else "not_an_object_event"
                self.telemetry.object_done(ObjectOutcome(SKIPPED, "", "", "", message_id, reason=reason))
            for current in events:
                started = time.perf_counter()
                self._prepare_event(current, prepared, remaining_ms)
        except Exception as exc:
            for identity in prepared.claims:
                self._release(identity, exc)
            where = current or ObjectEvent("created", "", "", "", None, None, None, None)
            self.telemetry.object_done(
                ObjectOutcome(
                    FAILED, where.bucket, where.key, where.name, message_id, reason=_reason(exc), ms=_ms(started)
                )
            )
            raise
        return prepared

    def _prepare_event(self, event: ObjectEvent, prepared: PreparedRecord, remaining_ms: int | None) -> None:
        started = time.perf_counter()
        tenant = tenant_of(event.key, self.key_prefix)

        def outcome(kind: str, **extra: Any) -> ObjectOutcome:
            return ObjectOutcome(
                kind, event.bucket, event.key, event.name, prepared.message_id, tenant=tenant, ms=_ms(started), **extra
            )

        if not self.ledger.claim(event.identity(), remaining_ms):
            self.telemetry.object_done(outcome(SKIPPED, reason="duplicate", version=event.version or event.etag))
            return
        prepared.claims.append(event.identity())
        if event.action == "removed":
            if self.reader.exists(event.bucket, event.key):
                prepared.outcomes.append(outcome(SKIPPED, reason="superseded"))  # uploaded again since
                return
            source = SourceRef(event.bucket, event.key, event.version or event.sequencer or "", tenant)
            prepared.changes.append(Change(source, None))
            prepared.outcomes.append(outcome(DELETED, version=source.version))
            return
        current = self.reader.current(event.bucket, event.key)
        if current is None:
            prepared.outcomes.append(outcome(SKIPPED, reason="gone"))  # removed since: its own event deletes
            return
        if (event.version and current.version_id != event.version) or (
            not event.version and event.etag and current.etag != event.etag
        ):
            current.close()
            prepared.outcomes.append(outcome(SKIPPED, reason="superseded", version=current.version))
            return
        source = SourceRef(event.bucket, event.key, current.version, tenant)
        if self.pipeline.media_type(event.key, current.content_type) is None:
            current.close()
            prepared.changes.append(Change(source, None))  # no indexable content (any more): no chunks
            prepared.outcomes.append(outcome(SKIPPED, reason="unsupported", version=source.version))
            return
        chunks = self.pipeline.convert(current.read(self.max_object_bytes), event.key, current.content_type, source)
        prepared.changes.append(Change(source, chunks))
        prepared.outcomes.append(outcome(INDEXED, version=source.version, chunks=len(chunks)))

    # -- phase 2: the batch ----------------------------------------------------------------------------

    def commit(self, prepared: list[PreparedRecord]) -> dict[str, Exception]:
        """Write the staged changes; complete or release the claims; log each object's line.

        Returns:
            The records that must fail, by message id, with the reason.
        """
        failures = self._write([p for p in prepared if p.changes])
        for record in prepared:
            error = failures.get(record.message_id)
            for identity in record.claims:
                if error is None:
                    self._complete(identity)
                else:
                    self._release(identity, error)
            for outcome in record.outcomes:
                if error is not None:
                    outcome.outcome, outcome.reason = FAILED, f"commit failed: {_reason(error)}"
                self.telemetry.object_done(outcome)
        return failures

    def _write(self, staged: list[PreparedRecord]) -> dict[str, Exception]:
        if not staged:
            return {}
        apply = getattr(self.target, "apply", None)
        if callable(apply):  # the snapshot: all changes in one commit, all or nothing
            try:
                result = apply([change for record in staged for change in record.changes])
            except Exception as exc:  # noqa: BLE001 - every record of the commit fails with it
                logger.warning("commit failed: %s", _reason(exc), extra={"records": len(staged)})
                return {record.message_id: exc for record in staged}
            self.telemetry.committed(result.conflicts, result.elapsed_ms, result.wrote)
            self.telemetry.chunks_written(result.written)  # what really landed (nothing for a no-op)
            logger.info(
                "snapshot committed" if result.wrote else "snapshot unchanged",
                extra={
                    "written": result.written,
                    "deleted": result.deleted,
                    "documents": result.documents,
                    "conflicts": result.conflicts,
                    "bytes": result.size_bytes,
                    "commit_ms": result.elapsed_ms,
                    **result.timings_ms,
                },
            )
            return {}
        failures: dict[str, Exception] = {}
        for record in staged:  # a store with its own writes: each record lands or fails alone
            try:
                for change in record.changes:
                    if change.documents is None:
                        self.target.delete_source(change.source)
                    else:
                        self.telemetry.chunks_written(self.target.replace_source(change.source, change.documents))
            except Exception as exc:  # noqa: BLE001 - this record fails, the others go on
                failures[record.message_id] = exc
        return failures

    def _complete(self, identity: dict[str, Any]) -> None:
        try:
            self.ledger.complete(identity)
        except Exception as exc:  # noqa: BLE001 - the change landed; a retry after the in-progress expiry is a no-op
            logger.warning("could not complete the idempotency record: %s", _reason(exc), extra=identity)

    def _release(self, identity: dict[str, Any], error: Exception) -> None:
        try:
            self.ledger.release(identity, error)
        except Exception as exc:  # noqa: BLE001 - the claim then expires with the invocation's time
            logger.warning("could not release the idempotency record: %s", _reason(exc), extra=identity)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
