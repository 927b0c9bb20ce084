"""Bulk indexing (`make index SOURCE=…`): a folder and an S3 prefix into the embedded snapshot, through the
real indexing pipeline; the same chunks as the indexer function, and a re-run doubles nothing.
"""

import boto3
import pytest
from moto import mock_aws

from core.ingestion import bulk
from core.ingestion.pipeline import IndexingPipeline
from core.ingestion.store_target import build_target
from core.store.snapshot import read_snapshot
from tests.ingestion_files import SAMPLES


@pytest.fixture(scope="module")
def pipeline():
    from core.settings import load_settings

    return IndexingPipeline.load(load_settings().indexing_pipeline)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "docs"
    for name, (data, _) in SAMPLES.items():
        target = root / "acme" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "loose.txt").write_bytes(b"A file outside any tenant folder about heapq.\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / "acme" / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (root / ".hidden.txt").write_bytes(b"never indexed")
    return root


def test_a_folder_is_indexed_with_tenants_sources_and_failures_reported(folder, pipeline, make_settings, tmp_path):
    settings = make_settings(store_snapshot_uri=str(tmp_path / "live.snapshot"))
    target = build_target(settings, pipeline.embedding_model)
    report = bulk.bulk_index(bulk.local_files(folder), pipeline, target, settings, batch=3, progress=False)
    assert report.files == len(SAMPLES) + 3  # the hidden file is not listed
    assert report.indexed == len(SAMPLES) + 1
    assert report.skipped == ["image.png"]
    assert list(report.failed) == ["acme/broken.pdf"]
    assert report.commits == 2  # batches of 3 → ceil(6 / 3)
    documents = read_snapshot(settings.store_snapshot_uri).store.filter_documents()
    assert len(documents) == report.chunks
    by_key = {d.meta["source_key"]: d.meta for d in documents}
    assert by_key["acme/guide.md"]["tenant"] == "acme"
    assert by_key["loose.txt"]["tenant"] == "default"
    assert {m["source_bucket"] for m in by_key.values()} == {"local:docs"}
    for name, (_, phrase) in SAMPLES.items():
        assert any(phrase in (d.content or "") for d in documents if d.meta["source_key"] == f"acme/{name}"), name


def test_a_rerun_replaces_instead_of_doubling(folder, pipeline, make_settings, tmp_path):
    settings = make_settings(store_snapshot_uri=str(tmp_path / "live.snapshot"))
    files = bulk.local_files(folder)
    bulk.bulk_index(files, pipeline, build_target(settings, pipeline.embedding_model), settings, progress=False)
    first = sorted(d.id for d in read_snapshot(settings.store_snapshot_uri).store.filter_documents())
    (folder / "acme" / "notes.txt").write_bytes(b"Rewritten notes: the walrus operator assigns in expressions.\n")
    bulk.bulk_index(files, pipeline, build_target(settings, pipeline.embedding_model), settings, progress=False)
    again = read_snapshot(settings.store_snapshot_uri).store.filter_documents()
    assert len(again) == len(first)
    notes = [d for d in again if d.meta["source_key"] == "acme/notes.txt"]
    assert len(notes) == 1 and "Rewritten" in notes[0].content


def test_an_s3_prefix_is_indexed_into_an_s3_snapshot(pipeline, make_settings, monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in ("docs-bucket", "store-bucket"):
            s3.create_bucket(Bucket=bucket)
        for name, (data, _) in SAMPLES.items():
            s3.put_object(Bucket="docs-bucket", Key=f"globex/{name}", Body=data)
        s3.put_object(Bucket="docs-bucket", Key="elsewhere/skip.txt", Body=b"outside the prefix")
        settings = make_settings(store_snapshot_uri="s3://store-bucket/live/store.snapshot")
        files = bulk.s3_files("s3://docs-bucket/globex/", s3=s3)
        report = bulk.bulk_index(
            files, pipeline, build_target(settings, pipeline.embedding_model), settings, progress=False
        )
        assert (report.indexed, report.failed) == (len(SAMPLES), {})
        documents = read_snapshot(settings.store_snapshot_uri).store.filter_documents()
        assert {d.meta["tenant"] for d in documents} == {"globex"}
        assert {d.meta["source_bucket"] for d in documents} == {"docs-bucket"}
        etags = {o["Key"]: o["ETag"].strip('"') for o in s3.list_objects_v2(Bucket="docs-bucket")["Contents"]}
        assert all(d.meta["source_version"] == etags[d.meta["source_key"]] for d in documents)


def test_the_cli_exits_1_when_a_file_failed_and_2_on_a_bad_source(folder, make_settings, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("STORE_SNAPSHOT_URI", str(tmp_path / "cli.snapshot"))
    assert bulk.main(["--source", str(folder), "--no-progress"]) == 1
    out = capsys.readouterr()
    assert "files indexed" in out.out and "acme/broken.pdf" in out.err
    assert bulk.main(["--source", str(tmp_path / "nowhere"), "--no-progress"]) == 2
