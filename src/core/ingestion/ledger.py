"""Idempotency of object events: Powertools' idempotency records, completed only after the store commit.

Powertools' ``idempotent_function`` marks a record COMPLETED when the decorated function returns. The
indexer cannot use it as is: it converts every record of an SQS batch first and commits them to the
snapshot together (one rewrite per batch, not per record), so a record is done only once that commit
has succeeded. The ledger drives the same persistence layer through the same protocol, split in two:

1. ``claim`` before the work: ``save_inprogress`` (with the Lambda's remaining time as in-progress
   expiry, so a container that dies mid-batch does not block the retry for longer than its timeout).
   An existing COMPLETED record means the event was handled: the caller skips it (a duplicate). An
   INPROGRESS one means another invocation is handling it now: the record fails and comes back later.
2. ``complete`` after the commit (``save_success``), or ``release`` when the work or the commit failed
   (``delete_record``), so the retry redoes it.

Keys: ``<AWS_LAMBDA_FUNCTION_NAME>.indexer#<md5 of the event identity>`` where the identity is
(action, bucket, key, version id, ETag, sequencer), the same in every re-delivery of one S3 event.

Example:
    >>> ledger = IdempotencyLedger(DynamoDBPersistenceLayer(table_name="idempotency"), ttl_s=86400)
    >>> if ledger.claim(event.identity(), remaining_ms=context.get_remaining_time_in_millis()):
    ...     ...  # index, commit, then ledger.complete(event.identity())
"""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

LEDGER_NAME = "indexer"


class EventInProgressError(RuntimeError):
    """Another invocation is handling this event right now (its record is INPROGRESS): retry later."""


class Ledger(Protocol):
    """Remembers which object events were handled."""

    def claim(self, identity: dict[str, Any], remaining_ms: int | None) -> bool:
        """Start handling an event; ``False`` when it was handled already (skip it)."""
        ...

    def complete(self, identity: dict[str, Any]) -> None:
        """The event's change is committed."""
        ...

    def release(self, identity: dict[str, Any], error: Exception) -> None:
        """The event failed: forget the claim so a retry handles it."""
        ...


class NoLedger:
    """No idempotency records (``IDEMPOTENCY_TABLE`` unset): every delivery is handled, harmlessly twice."""

    def claim(self, identity: dict[str, Any], remaining_ms: int | None) -> bool:  # noqa: D102
        return True

    def complete(self, identity: dict[str, Any]) -> None:  # noqa: D102
        return None

    def release(self, identity: dict[str, Any], error: Exception) -> None:  # noqa: D102
        return None


class IdempotencyLedger:
    """The ledger on a Powertools persistence layer (DynamoDB in AWS; see the module docstring).

    Args:
        persistence: e.g. ``DynamoDBPersistenceLayer(table_name=...)``.
        ttl_s: How long a handled event is remembered.
    """

    def __init__(self, persistence: BasePersistenceLayer, ttl_s: int) -> None:
        self.persistence = persistence
        persistence.configure(
            IdempotencyConfig(expires_after_seconds=ttl_s, raise_on_no_idempotency_key=True),
            function_name=LEDGER_NAME,
        )

    def claim(self, identity: dict[str, Any], remaining_ms: int | None) -> bool:
        """Save the INPROGRESS record; ``False`` when a COMPLETED one exists.

        Raises:
            EventInProgressError: Another invocation holds it (not expired).
        """
        try:
            self.persistence.save_inprogress(data=identity, remaining_time_in_millis=remaining_ms)
        except IdempotencyItemAlreadyExistsError as exc:
            try:
                record = exc.old_data_record or self.persistence.get_record(data=identity)
            except IdempotencyItemNotFoundError:
                record = None  # deleted between the two calls: the holder failed; let the retry take it
            if record is not None and record.status == STATUS_CONSTANTS["COMPLETED"]:
                return False
            raise EventInProgressError("another invocation is indexing this object event") from None
        return True

    def complete(self, identity: dict[str, Any]) -> None:
        """Mark it COMPLETED (kept ``ttl_s``)."""
        self.persistence.save_success(data=identity, result={"indexed": True})

    def release(self, identity: dict[str, Any], error: Exception) -> None:
        """Delete the INPROGRESS record."""
        self.persistence.delete_record(data=identity, exception=error)
