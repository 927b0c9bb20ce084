"""Disaster recovery for the store: export, list, verify and restore snapshots (``python -m core.store.recovery``).

Snapshots are the recovery unit for both stores:

- embedded (``DOCUMENT_STORE=memory``): the live snapshot *is* the store. On S3 with versioning on, every
  write of the live key (an indexer's commit, an export, a restore) is a version: ``list`` shows them,
  ``restore --version V`` (or ``--at <time>``: the newest version written at or before it) writes that
  version back as the newest one — a point-in-time restore that is itself reversible.
- pgvector: ``export`` writes every document (with its embedding) to a snapshot file or S3 object;
  ``restore --from <snapshot>`` makes the table hold exactly that snapshot's documents again.

Every restore verifies the snapshot (every member's SHA-256 and the counts) before touching the store.

Example:
    $ python -m core.store.recovery list
    $ python -m core.store.recovery verify --version 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY
    $ python -m core.store.recovery restore --at 2026-11-26T09:00:00Z
    $ python -m core.store.recovery export --to s3://backups/store/2026-11-26.snapshot
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from haystack.document_stores.types import DuplicatePolicy

from core.aws import error_code, is_s3_uri, split_s3
from core.settings import Settings, SettingsError, load_settings
from core.store.snapshot import (
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
    read_bytes,
    verify_snapshot,
    write_bytes,
)

PAGE = 1000  # documents per write batch on restore


@dataclass(frozen=True)
class SnapshotVersion:
    """One stored version of a snapshot location."""

    version_id: str | None  # None: a local file (no versions)
    modified: datetime
    size: int
    latest: bool


def _s3():
    import boto3  # noqa: PLC0415 - only S3 locations pay for boto3

    return boto3.client("s3")


def list_versions(uri: str, s3: Any = None) -> list[SnapshotVersion]:
    """Every version of the snapshot at ``uri``, newest first (a local file has one).

    Raises:
        SnapshotError: The location does not exist or cannot be listed.
    """
    if not is_s3_uri(uri):
        path = Path(uri)
        if not path.is_file():
            raise SnapshotError(f"snapshot {uri} does not exist")
        stat = path.stat()
        return [SnapshotVersion(None, datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size, latest=True)]
    s3 = s3 or _s3()
    bucket, key = split_s3(uri)
    versions = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        versions += [
            SnapshotVersion(v["VersionId"], v["LastModified"], v["Size"], v["IsLatest"])
            for v in page.get("Versions", [])
            if v["Key"] == key
        ]
    if not versions:
        raise SnapshotError(f"no snapshot at {uri}")
    return sorted(versions, key=lambda v: (v.modified, v.latest), reverse=True)


def pick_version(versions: list[SnapshotVersion], version: str | None, at: datetime | None) -> SnapshotVersion:
    """The version named, else the newest written at or before ``at``, else the latest.

    Raises:
        SnapshotError: No such version, or none that old.
    """
    if version is not None:
        for candidate in versions:
            if candidate.version_id == version:
                return candidate
        raise SnapshotError(f"no version {version!r}; `python -m core.store.recovery list` shows them")
    if at is not None:
        older = [v for v in versions if v.modified <= at]
        if not older:
            raise SnapshotError(f"no version written at or before {at.isoformat()}")
        return max(older, key=lambda v: v.modified)
    return versions[0]


def read_version(uri: str, version_id: str | None, s3: Any = None) -> bytes:
    """The bytes of one version (the file itself for a local path).

    Raises:
        SnapshotError: It cannot be read.
    """
    if version_id is None or not is_s3_uri(uri):
        return read_bytes(uri)
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_s3(uri)
    try:
        return (s3 or _s3()).get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise SnapshotError(f"cannot read version {version_id} of {uri}: {exc}") from None


def verify(data: bytes) -> dict:
    """Full check of a snapshot: every member's SHA-256, then a load (counts agree); returns the manifest.

    Raises:
        SnapshotError: It fails either check.
    """
    manifest = verify_snapshot(data)
    store = decode_snapshot(data).store
    if store.count_documents() != manifest["count"]:
        raise SnapshotError("snapshot loads a different number of documents than its manifest says")
    return manifest


def export_store(store: Any, embedding_model: str, to_uri: str) -> dict:
    """Write every document of ``store`` (with embeddings) as a snapshot to ``to_uri``; returns its manifest."""
    documents = store.filter_documents()
    data = encode_snapshot(documents, embedding_model)
    write_bytes(to_uri, data)
    return verify_snapshot(data)


def restore_live_snapshot(uri: str, data: bytes, s3: Any = None) -> None:
    """Write ``data`` as the newest version of the live snapshot ``uri`` (after ``verify``).

    On S3 the write is conditional on the ETag read just before, so an indexer committing at the same
    moment makes the restore fail loudly instead of being silently overwritten (run it again).

    Raises:
        SnapshotError: The live snapshot changed during the restore.
    """
    if not is_s3_uri(uri):
        write_bytes(uri, data)
        return
    from botocore.exceptions import ClientError  # noqa: PLC0415

    s3 = s3 or _s3()
    bucket, key = split_s3(uri)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=data, IfMatch=etag)
    except ClientError as exc:
        if error_code(exc) in {"PreconditionFailed", "412"}:
            raise SnapshotError(f"{uri} changed during the restore (an indexer committed): run it again") from None
        raise


def restore_documents(store: Any, data: bytes) -> tuple[int, int]:
    """Make ``store`` hold exactly the snapshot's documents (pgvector); returns (written, deleted)."""
    documents = decode_snapshot(data).store.filter_documents()
    keep = {d.id for d in documents}
    stale = [d.id for d in store.filter_documents() if d.id not in keep]
    for start in range(0, len(stale), PAGE):
        store.delete_documents(stale[start : start + PAGE])
    written = 0
    for start in range(0, len(documents), PAGE):
        written += store.write_documents(documents[start : start + PAGE], policy=DuplicatePolicy.OVERWRITE)
    return written, len(stale)


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _describe(manifest: dict) -> str:
    return f"{manifest['count']} documents, {manifest['embedding_model']} (dim {manifest['embedding_dim']})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.store.recovery", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    where = "snapshot location (default: STORE_SNAPSHOT_URI)"
    listing = commands.add_parser("list", help="versions of the live snapshot (S3 versioning)")
    listing.add_argument("--uri", help=where)
    check = commands.add_parser("verify", help="checksums and counts of a snapshot version")
    check.add_argument("--uri", help=where)
    check.add_argument("--version", help="S3 version id (default: the latest)")
    export = commands.add_parser("export", help="write the configured store to a snapshot")
    export.add_argument("--to", required=True, help="path or s3://bucket/key")
    restore = commands.add_parser("restore", help="restore a snapshot version into the configured store")
    restore.add_argument("--uri", help=f"{where}; with pgvector, where --version/--at look")
    restore.add_argument("--from", dest="source", help="pgvector: the snapshot to restore (path or s3://)")
    chosen = restore.add_mutually_exclusive_group()
    chosen.add_argument("--version", help="S3 version id")
    chosen.add_argument("--at", type=_when, help="point in time (ISO 8601): the newest version written by then")
    return parser


def _load_configured_store(settings: Settings) -> tuple[Any, str]:
    from core.store.load import load_store  # noqa: PLC0415 - the store only for export/restore

    loaded = load_store(settings)
    return loaded.store, str(loaded.manifest.get("embedding_model") or "")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one command; returns the exit code."""
    uri = getattr(args, "uri", None) or settings.store_snapshot_uri
    if args.command == "list":
        for v in list_versions(uri):
            mark = "  (live)" if v.latest else ""
            print(f"{v.version_id or '-'}  {v.modified.isoformat()}  {v.size / 1e6:.1f} MB{mark}")
        return 0
    if args.command == "verify":
        chosen = pick_version(list_versions(uri), args.version, None)
        manifest = verify(read_version(uri, chosen.version_id))
        print(f"ok: {uri} version {chosen.version_id or '-'}: {_describe(manifest)}, every checksum matches")
        return 0
    if args.command == "export":
        store, model = _load_configured_store(settings)
        manifest = export_store(store, model, args.to)
        print(f"exported {_describe(manifest)} to {args.to}")
        return 0
    source = args.source or uri
    chosen = pick_version(list_versions(source), args.version, args.at)
    data = read_version(source, chosen.version_id)
    manifest = verify(data)
    if settings.document_store == "memory":
        restore_live_snapshot(settings.store_snapshot_uri, data)
        print(
            f"restored version {chosen.version_id or '-'} ({chosen.modified.isoformat()}, {_describe(manifest)}) "
            f"as the newest version of {settings.store_snapshot_uri}; functions pick it up on their next refresh"
        )
        return 0
    store, _ = _load_configured_store(settings)
    written, deleted = restore_documents(store, data)
    print(f"restored {source} version {chosen.version_id or '-'}: {written} written, {deleted} deleted")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: 0 done, 1 the snapshot or store failed, 2 usage or settings."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        code = run(args, settings)
    except SnapshotError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return code


if __name__ == "__main__":  # python -m core.store.recovery list|verify|export|restore
    raise SystemExit(main())
