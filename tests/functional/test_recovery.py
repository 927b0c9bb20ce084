"""Recovery commands on a versioned S3 bucket (moto): list, verify, export, point-in-time restore.

The round trip is judged by what users see: the same queries return the same documents in the same
order after export → damage → restore.
"""

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from haystack import Document
from moto import mock_aws

from core.corpus.build import build_documents
from core.runtime.container import build_runtime
from core.store import recovery
from core.store.base import LoadedStore
from core.store.snapshot import SnapshotError, encode_snapshot, read_snapshot

BUCKET = "haystack-store"
KEY = "live/store.snapshot"
URI = f"s3://{BUCKET}/{KEY}"
MODEL = "l2_supercat_256"
QUERIES = ["parse JSON text", "read a CSV file", "regular expression groups", "copy a directory tree"]


@pytest.fixture
def s3(monkeypatch):
    credentials = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return build_documents(["json", "csv", "re", "shutil"])


def answers(make_settings, uri: str) -> list[list[str]]:
    """What `search` returns for each query when the store is loaded from ``uri``."""
    snapshot = read_snapshot(uri)
    runtime = build_runtime(
        make_settings(store_snapshot_uri=uri), store=LoadedStore(snapshot.store, snapshot.manifest, uri)
    )
    search = runtime.pipelines["search"]
    return [[d["id"] for d in search.run({"query": q, "top_k": 5})["documents"]] for q in QUERIES]


def put(s3, data: bytes) -> str:
    return s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)["VersionId"]


def moment_between_writes() -> datetime:
    """A time strictly between two writes: S3's LastModified has one-second resolution."""
    time.sleep(1.1)
    moment = datetime.now(UTC)
    time.sleep(1.1)
    return moment


def test_list_shows_every_version_newest_first_and_verify_checks_each(s3, documents):
    first = put(s3, encode_snapshot(documents[:50], MODEL))
    time.sleep(1.1)  # S3's LastModified has one-second resolution
    second = put(s3, encode_snapshot(documents[:80], MODEL))
    versions = recovery.list_versions(URI)
    assert [v.version_id for v in versions] == [second, first]
    assert [v.latest for v in versions] == [True, False]
    assert recovery.verify(recovery.read_version(URI, first))["count"] == 50


def test_verify_refuses_a_corrupted_snapshot(s3, documents):
    data = bytearray(encode_snapshot(documents[:20], MODEL))
    data[len(data) // 2] ^= 0xFF
    version = put(s3, bytes(data))
    with pytest.raises(SnapshotError):
        recovery.verify(recovery.read_version(URI, version))


def test_point_in_time_picks_the_newest_version_written_by_then(s3, documents):
    first = put(s3, encode_snapshot(documents[:10], MODEL))
    between = moment_between_writes()
    put(s3, encode_snapshot(documents[:20], MODEL))
    versions = recovery.list_versions(URI)
    assert recovery.pick_version(versions, None, between).version_id == first
    with pytest.raises(SnapshotError, match="at or before"):
        recovery.pick_version(versions, None, between - timedelta(days=1))
    with pytest.raises(SnapshotError, match="no version"):
        recovery.pick_version(versions, "nope", None)


def test_export_then_restore_returns_identical_retrieval_results(s3, documents, make_settings, tmp_path):
    put(s3, encode_snapshot(documents, MODEL))
    before = answers(make_settings, URI)
    backup = f"s3://{BUCKET}/backups/store.snapshot"
    recovery.export_store(read_snapshot(URI).store, MODEL, backup)

    put(s3, encode_snapshot(documents[: len(documents) // 3], MODEL))  # the damage: two thirds lost
    assert answers(make_settings, URI) != before

    good = recovery.list_versions(backup)[0]
    recovery.restore_live_snapshot(URI, recovery.read_version(backup, good.version_id))
    assert answers(make_settings, URI) == before
    assert len(recovery.list_versions(URI)) == 3  # the restore is a new version: reversible


def test_a_restore_never_overwrites_a_commit_made_meanwhile(s3, documents):
    put(s3, encode_snapshot(documents[:10], MODEL))

    class CommitDuringRestore:
        """The S3 client, with an indexer committing between the restore's read and its write."""

        def head_object(self, **kwargs):
            head = s3.head_object(**kwargs)
            put(s3, encode_snapshot(documents[:30], MODEL))
            return head

        def __getattr__(self, name):
            return getattr(s3, name)

    with pytest.raises(SnapshotError, match="changed during the restore"):
        recovery.restore_live_snapshot(URI, encode_snapshot(documents[:5], MODEL), s3=CommitDuringRestore())
    assert read_snapshot(URI).store.count_documents() == 30  # the indexer's commit stands


def test_restore_documents_makes_a_store_hold_exactly_the_snapshot(documents):
    from core.store.embedded import EmbeddedDocumentStore

    store = EmbeddedDocumentStore.from_documents(documents[:40], MODEL)
    snapshot = encode_snapshot(documents[20:60], MODEL)
    written, deleted = recovery.restore_documents(store, snapshot)
    assert (written, deleted) == (40, 20)
    assert {d.id for d in store.filter_documents()} == {d.id for d in documents[20:60]}


def test_the_cli_lists_verifies_and_restores_by_time(s3, documents, monkeypatch, capsys):
    monkeypatch.setenv("STORE_SNAPSHOT_URI", URI)
    first = put(s3, encode_snapshot(documents[:25], MODEL))
    between = moment_between_writes()
    put(s3, encode_snapshot(documents[:5], MODEL))
    assert recovery.main(["list"]) == 0
    assert first in capsys.readouterr().out
    assert recovery.main(["verify", "--version", first]) == 0
    assert "25 documents" in capsys.readouterr().out
    assert recovery.main(["restore", "--at", between.isoformat()]) == 0
    assert read_snapshot(URI).store.count_documents() == 25
    assert recovery.main(["verify", "--version", "missing"]) == 1
