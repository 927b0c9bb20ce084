"""S3 event notifications as the indexer receives them (an SQS message body), and whose object it is.

A message body is what S3 sends: ``{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}]}``, the
one-time ``{"Event": "s3:TestEvent", ...}`` S3 sends when the notification is configured, or either of
them wrapped in an SNS envelope (``{"Type": "Notification", "Message": "..."}``) when S3 fans out
through SNS. Keys arrive URL-encoded (``+`` for a space), as S3 sends them; they are decoded here.

Actions: ``ObjectCreated:*`` → ``created``; ``ObjectRemoved:*`` and ``LifecycleExpiration:*`` →
``removed``; any other event (restore, replication, tagging, …) is not the indexer's business: ignored.

Tenant rule: the key is ``[INGEST_KEY_PREFIX]<tenant>/<path>``; the first path segment after the
optional prefix is the tenant when the object sits in a folder and the segment is a plain name
(letters, digits, ``_ . -``, at most 64). Any other key (no folder, not under the prefix, an odd
segment) belongs to ``default``, the tenant the API uses when a request names none. Examples with
``INGEST_KEY_PREFIX=tenants/``: ``tenants/acme/guide.md`` → ``acme``; ``guide.md`` → ``default``;
``public/guide.md`` → ``default``. Without a prefix: ``acme/guide.md`` → ``acme``.

Example:
    >>> [e.key for e in parse_message('{"Records": [{"eventName": "ObjectRemoved:Delete", "s3": '
    ...     '{"bucket": {"name": "docs"}, "object": {"key": "acme/My+Guide.md", "sequencer": "0A"}}}]}')]
    ['acme/My Guide.md']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from core.names import DEFAULT_TENANT

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TEST_EVENT = "s3:TestEvent"


class MalformedMessageError(ValueError):
    """The message is not an S3 event notification the indexer understands."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 event for one object."""

    action: Literal["created", "removed"]
    name: str  # e.g. ObjectCreated:Put
    bucket: str
    key: str  # decoded
    version: str | None  # versionId (versioned buckets); None otherwise
    etag: str | None  # created events only, without quotes
    sequencer: str | None  # orders the events of one key; unique per event
    size: int | None

    def identity(self) -> dict[str, Any]:
        """What makes this event itself (a re-delivery carries the same): the idempotency payload."""
        return {
            "action": self.action,
            "bucket": self.bucket,
            "key": self.key,
            "version": self.version,
            "etag": self.etag,
            "sequencer": self.sequencer,
        }


def tenant_of(key: str, prefix: str = "") -> str:
    """The tenant a key belongs to (see the module docstring)."""
    if not key.startswith(prefix):
        return DEFAULT_TENANT
    head, slash, rest = key[len(prefix) :].partition("/")
    if not slash or not rest or not _TENANT.fullmatch(head):
        return DEFAULT_TENANT
    return head


def _action(name: str) -> Literal["created", "removed"] | None:
    if name.startswith("ObjectCreated:"):
        return "created"
    if name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
        return "removed"
    return None


def _event(record: dict[str, Any]) -> ObjectEvent | None:
    name = str(record.get("eventName", ""))
    action = _action(name)
    if action is None:
        return None
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
    except (KeyError, TypeError) as exc:
        raise MalformedMessageError(f"S3 record without {exc}") from None
    if not bucket or not key:
        raise MalformedMessageError("S3 record without a bucket or key")
    etag = obj.get("eTag")
    return ObjectEvent(
        action=action,
        name=name,
        bucket=bucket,
        key=key,
        version=obj.get("versionId") or None,
        etag=etag.strip('"') if isinstance(etag, str) and etag else None,
        sequencer=obj.get("sequencer"),
        size=obj.get("size"),
    )


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events of one SQS message body; ``[]`` for S3's test event and events not handled.

    Raises:
        MalformedMessageError: Not JSON, or not an S3 notification.
    """
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
            data = json.loads(data["Message"])  # S3 → SNS → SQS without raw message delivery
    except (TypeError, ValueError) as exc:
        raise MalformedMessageError(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessageError("message body is not a JSON object")
    if data.get("Event") == TEST_EVENT:
        return []
    records = data.get("Records")
    if not isinstance(records, list):
        raise MalformedMessageError("message body has no S3 'Records'")
    return [event for record in records if isinstance(record, dict) and (event := _event(record)) is not None]


def is_test_event(body: str) -> bool:
    """Whether the body is S3's one-time ``s3:TestEvent``."""
    try:
        return json.loads(body).get("Event") == TEST_EVENT
    except (TypeError, ValueError, AttributeError):
        return False
