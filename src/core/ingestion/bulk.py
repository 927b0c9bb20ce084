"""Bulk indexing: every file of a folder or an S3 prefix into the configured store (``make index SOURCE=…``).

The same indexing pipeline (``INDEXING_PIPELINE``), tenant rule (``INGEST_KEY_PREFIX``) and target
(``DOCUMENT_STORE``: the snapshot at ``STORE_SNAPSHOT_URI``, or pgvector) as the indexer function, so a
bulk load and the SQS path produce the same chunks with the same ids: re-running a bulk load, or the
function later seeing the same objects, replaces them instead of doubling them.

Sources: a local folder (key = the path relative to it, version = the file's SHA-256, bucket =
``local:<folder name>``) or ``s3://bucket/prefix`` (key = the object key, version = its ETag). Embedded
snapshots are committed every ``--batch`` files (one conditional write each, re-applied after a conflict
with a concurrent indexer), pgvector per file.

Example:
    $ python -m core.ingestion.bulk --source ./docs
    $ STORE_SNAPSHOT_URI=s3://store/live/store.snapshot python -m core.ingestion.bulk --source s3://docs/acme/
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.aws import is_s3_uri, split_s3
from core.ingestion.embedded_target import Change, SnapshotTarget
from core.ingestion.events import tenant_of
from core.ingestion.pipeline import ConversionError, IndexingPipeline, UnsupportedTypeError
from core.ingestion.store_target import build_target
from core.pipelines.loader import PipelineLoadError
from core.settings import Settings, SettingsError, load_settings
from core.store.base import IndexTarget, SourceRef
from core.store.snapshot import SnapshotError


@dataclass(frozen=True)
class SourceFile:
    """One file to index: where it is, and how to read it."""

    bucket: str
    key: str
    size: int
    read: Any  # () -> bytes
    version: Any  # (bytes) -> str


@dataclass
class BulkReport:
    """What a bulk load did."""

    files: int = 0
    indexed: int = 0
    chunks: int = 0
    skipped: list[str] = field(default_factory=list)  # unsupported types
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason
    commits: int = 0
    conflicts: int = 0
    seconds: float = 0.0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_files(root: Path) -> list[SourceFile]:
    """Every regular file under ``root`` (hidden ones left out), in a stable order."""
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue
        files.append(
            SourceFile(f"local:{root.resolve().name}", relative, path.stat().st_size, path.read_bytes, _sha256)
        )
    return files


def s3_files(uri: str, s3: Any = None) -> list[SourceFile]:
    """Every object under ``s3://bucket/prefix``."""
    import boto3  # noqa: PLC0415 - only S3 sources pay for boto3

    s3 = s3 or boto3.client("s3")
    bucket, prefix = split_s3(uri)
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue
            key, etag = item["Key"], item["ETag"].strip('"')

            def read(key: str = key) -> bytes:
                return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

            files.append(SourceFile(bucket, key, item["Size"], read, lambda _data, etag=etag: etag))
    return files


def _changes(
    pipeline: IndexingPipeline, files: list[SourceFile], settings: Settings, report: BulkReport, bar: Any
) -> Iterator[Change]:
    for source_file in files:
        bar.set_postfix_str(source_file.key[-40:], refresh=False)
        try:
            if pipeline.media_type(source_file.key, None) is None:
                raise UnsupportedTypeError(source_file.key)
            if source_file.size > settings.ingest_max_object_bytes:
                raise ConversionError(f"{source_file.size} bytes > INGEST_MAX_OBJECT_BYTES")
            data = source_file.read()
            source = SourceRef(
                source_file.bucket,
                source_file.key,
                source_file.version(data),
                tenant_of(source_file.key, settings.ingest_key_prefix),
            )
            chunks = pipeline.convert(data, source_file.key, None, source)
        except UnsupportedTypeError:
            report.skipped.append(source_file.key)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the load; it is reported
            report.failed[source_file.key] = f"{type(exc).__name__}: {exc}"[:200]
        else:
            report.indexed += 1
            report.chunks += len(chunks)
            yield Change(source, chunks)
        bar.update(1)


def bulk_index(
    files: list[SourceFile],
    pipeline: IndexingPipeline,
    target: IndexTarget,
    settings: Settings,
    *,
    batch: int = 50,
    progress: bool = True,
) -> BulkReport:
    """Index ``files`` into ``target``; returns the report (failed files do not stop the others)."""
    report = BulkReport(files=len(files))
    started = time.perf_counter()
    pending: list[Change] = []

    def commit() -> None:
        if isinstance(target, SnapshotTarget):
            result = target.apply(pending)
            report.commits += int(result.wrote)
            report.conflicts += result.conflicts
        else:
            for change in pending:
                target.replace_source(change.source, change.documents or [])
            report.commits += len(pending)
        pending.clear()

    with tqdm(total=len(files), unit="file", disable=not progress, file=sys.stderr) as bar:
        for change in _changes(pipeline, files, settings, report, bar):
            pending.append(change)
            if len(pending) >= batch:
                commit()
        if pending:
            commit()
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: 0 every file indexed or skipped, 1 some failed, 2 usage or settings."""
    parser = argparse.ArgumentParser(prog="python -m core.ingestion.bulk", description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="a folder, or s3://bucket/prefix")
    parser.add_argument("--batch", type=int, default=50, help="files per snapshot commit (embedded store)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        pipeline = IndexingPipeline.load(settings.indexing_pipeline)
    except (SettingsError, PipelineLoadError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if is_s3_uri(args.source):
        files = s3_files(args.source)
    elif Path(args.source).is_dir():
        files = local_files(Path(args.source))
    else:
        print(f"--source {args.source}: not a folder nor s3://bucket/prefix", file=sys.stderr)
        return 2
    try:
        target = build_target(settings, pipeline.embedding_model)
        report = bulk_index(files, pipeline, target, settings, batch=max(1, args.batch), progress=not args.no_progress)
    except SnapshotError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    rate = report.indexed / report.seconds if report.seconds else 0.0
    print(
        f"{report.indexed} of {report.files} files indexed ({report.chunks} chunks, {rate:.1f} files/s) into "
        f"{settings.document_store} in {report.seconds} s; {len(report.skipped)} skipped (unsupported type), "
        f"{len(report.failed)} failed; {report.commits} commits, {report.conflicts} conflicts re-applied"
    )
    for key, reason in report.failed.items():
        print(f"  failed {key}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
