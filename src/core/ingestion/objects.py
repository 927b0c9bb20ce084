"""Reading source objects from S3: the object as it is now, not as an event remembers it.

S3 delivers events at least once and in no guaranteed order. The indexer therefore reconciles each
event with the object's current state: a ``created`` event is indexed only if the object still is that
version (else a later event covers the newer version or the removal), and a ``removed`` event deletes
only if the object is really gone (deleting a non-current version, or a delete followed by a new upload,
leaves the current object indexed). What stays possible is two indexers handling two events of the
same key at the same moment; the later commit wins, and the later event is usually the newer version.

A missing key answers 404 only when the role may ``s3:ListBucket`` the bucket; without it S3 answers
403 and the record fails (then the DLQ), which is the right outcome for a real permission problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import error_code

_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


class ObjectTooLargeError(ValueError):
    """The object is larger than ``INGEST_MAX_OBJECT_BYTES``."""


@dataclass(frozen=True)
class CurrentObject:
    """The current version of an object, body still unread."""

    version_id: str | None  # None for an unversioned bucket (S3 says "null" for pre-versioning objects)
    etag: str  # without quotes
    content_type: str | None
    size: int
    body: Any  # botocore StreamingBody

    @property
    def version(self) -> str:
        """The ``source_version`` of its chunks: the version id, else the ETag."""
        return self.version_id or self.etag

    def read(self, max_bytes: int) -> bytes:
        """The whole body.

        Raises:
            ObjectTooLargeError: It is larger than ``max_bytes``.
        """
        if self.size > max_bytes:
            self.close()
            raise ObjectTooLargeError(f"object is {self.size} bytes; INGEST_MAX_OBJECT_BYTES is {max_bytes}")
        try:
            return self.body.read()
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection without reading the rest."""
        self.body.close()


def _missing(exc: ClientError) -> bool:
    return error_code(exc) in _MISSING


class ObjectReader:
    """Current objects of S3 buckets.

    Args:
        s3: A boto3 S3 client.
    """

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def current(self, bucket: str, key: str) -> CurrentObject | None:
        """The object as it is now (``GetObject`` without a version), or ``None`` when it does not exist.

        Raises:
            botocore.exceptions.ClientError: Anything but "not found" (permissions, throttling, …).
        """
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        version = response.get("VersionId")
        return CurrentObject(
            version_id=version if version and version != "null" else None,
            etag=str(response.get("ETag", "")).strip('"'),
            content_type=response.get("ContentType"),
            size=int(response.get("ContentLength", 0)),
            body=response["Body"],
        )

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the key currently has an object (``HeadObject``; a delete marker counts as none).

        Raises:
            botocore.exceptions.ClientError: Anything but "not found".
        """
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True
