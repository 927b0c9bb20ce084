"""Indexing throughput of the embedded store's indexer, and what one snapshot commit costs by store size.

- pipeline: a folder of the default corpus's pydoc text (one .txt per module, as ``make index`` renders
  them) through ``IndexingPipeline.convert`` (route, convert, clean, split, embed): documents/s, chunks/s;
- end to end: the same files in moto S3, delivered to the real indexer (``build_indexer``, what
  ``handlers/indexer.py`` runs) in SQS batches of 10, the snapshot on moto S3 (starting empty), with and
  without the DynamoDB idempotency table: documents/s including one snapshot commit per batch;
- commit cost: one object changed in a snapshot of 1k, 3k and all ~11k chunks of the default corpus
  (``SnapshotTarget.apply`` on a local file): read, decode to documents, re-index, encode, write.

moto answers in-process, so S3/DynamoDB latency is not in these numbers: in AWS add ~20-50 ms per
request and the snapshot transfer (~12 MB each way per commit at 11k chunks).
"""

import json
import os
import tempfile
import time
from pathlib import Path

from common import SNAPSHOT, require_snapshot, run, write_result

from core.components.wordllama import DEFAULT_MODEL
from core.corpus.pydoc import render_modules, stdlib_modules
from core.ingestion.embedded_target import Change, SnapshotTarget
from core.ingestion.pipeline import IndexingPipeline
from core.settings import bundled_path, load_settings
from core.store.base import SourceRef
from core.store.snapshot import decode_snapshot, encode_snapshot

MODULES = 120
BATCH = 10


def corpus_folder(folder: Path) -> list[Path]:
    names = stdlib_modules(include_submodules=False)[:MODULES]
    paths = []
    for document in render_modules(names):
        path = folder / f"{document.meta['module']}.txt"
        path.write_text(document.content or "")
        paths.append(path)
    return paths


def pipeline_throughput(paths: list[Path]) -> dict:
    indexing = IndexingPipeline.load(bundled_path("pipelines") / "indexing" / "indexing.yml")
    started = time.perf_counter()
    chunks = 0
    for path in paths:
        source = SourceRef("bench", path.name, "v1", "default")
        chunks += len(indexing.convert(path.read_bytes(), path.name, None, source))
    seconds = time.perf_counter() - started
    return {
        "documents": len(paths),
        "chunks": chunks,
        "bytes": sum(p.stat().st_size for p in paths),
        "documents_per_s": round(len(paths) / seconds, 1),
        "chunks_per_s": round(chunks / seconds, 1),
    }


def end_to_end(paths: list[Path], idempotency: bool) -> dict:
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")  # moto: any credentials
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # one EMF line per batch is noise here
    from core.ingestion.runtime import build_indexer

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench-docs")
        s3.create_bucket(Bucket="bench-index")
        table = None
        if idempotency:
            table = "bench-idempotency"
            boto3.client("dynamodb").create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        bodies = []
        for sequence, path in enumerate(paths):
            etag = s3.put_object(Bucket="bench-docs", Key=f"default/{path.name}", Body=path.read_bytes())["ETag"]
            record = {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "bench-docs"},
                    "object": {"key": f"default/{path.name}", "eTag": etag.strip('"'), "sequencer": f"{sequence:016X}"},
                },
            }
            bodies.append(json.dumps({"Records": [record]}))
        settings = load_settings(store_snapshot_uri="s3://bench-index/store.snapshot", idempotency_table=table)
        indexer = build_indexer(settings, s3=s3)
        batch_ms = []
        started = time.perf_counter()
        for start in range(0, len(bodies), BATCH):
            event = {
                "Records": [
                    {"messageId": f"m{start + i}", "body": body, "attributes": {}, "messageAttributes": {}}
                    for i, body in enumerate(bodies[start : start + BATCH])
                ]
            }
            batch_started = time.perf_counter()
            response = indexer.handle(event)
            batch_ms.append(round((time.perf_counter() - batch_started) * 1000, 1))
            if response != {"batchItemFailures": []}:
                raise SystemExit(f"records failed: {response}")
        seconds = time.perf_counter() - started
        data = s3.get_object(Bucket="bench-index", Key="store.snapshot")["Body"].read()
        count = decode_snapshot(data).store.count_documents()
    return {
        "idempotency_table": idempotency,
        "documents": len(paths),
        "chunks_in_snapshot": count,
        "batch_size": BATCH,
        "documents_per_s": round(len(paths) / seconds, 1),
        "batch_ms_first": batch_ms[0],
        "batch_ms_last": batch_ms[-1],
    }


def commit_cost(sizes: list[int]) -> list[dict]:
    documents = decode_snapshot(SNAPSHOT.read_bytes()).store.filter_documents()
    model = DEFAULT_MODEL
    extra = documents[0]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            base = documents[:size]
            path = Path(tmp) / f"store-{size}.snapshot"
            path.write_bytes(encode_snapshot(base, model))
            source = SourceRef("bench", "new-object.txt", "v1", "default")
            chunk = type(extra)(
                id=f"bench-{size}", content=extra.content, meta=source.meta(), embedding=extra.embedding
            )
            result = SnapshotTarget(str(path), model).apply([Change(source, [chunk])])
            out.append(
                {
                    "chunks": size,
                    "snapshot_mb": round(result.size_bytes / 1e6, 1),
                    "commit_ms": result.elapsed_ms,
                    **result.timings_ms,
                }
            )
    return out


def main() -> int:
    require_snapshot()
    with tempfile.TemporaryDirectory() as tmp:
        paths = corpus_folder(Path(tmp))
        pipeline = pipeline_throughput(paths)
        print("pipeline:", pipeline)
        e2e = [end_to_end(paths, idempotency) for idempotency in (False, True)]
        for row in e2e:
            print("end to end:", row)
    full = decode_snapshot(SNAPSHOT.read_bytes()).manifest["count"]
    commits = commit_cost([1000, 3000, full])
    for row in commits:
        print("commit:", row)
    write_result("ingestion", {"pipeline": pipeline, "end_to_end": e2e, "commit": commits})
    return 0


if __name__ == "__main__":
    run(main)
