"""Index targets: the snapshot's conditional read-modify-write (local file and S3), the generic one."""

import boto3
import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from moto import mock_aws

from core.components.wordllama import DEFAULT_MODEL
from core.ingestion.embedded_target import Change, SnapshotTarget, apply_changes
from core.ingestion.store_target import DocumentStoreTarget
from core.store.base import SourceRef
from core.store.snapshot import (
    SnapshotConflictError,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
    read_bytes_tagged,
    snapshot_etag,
    write_bytes_if,
)


def source(key: str, version: str = "v1") -> SourceRef:
    return SourceRef(bucket="docs", key=key, version=version, tenant="t")


def chunks(key: str, *texts: str, version: str = "v1", dim: int = 4) -> list[Document]:
    ref = source(key, version)
    return [
        Document(id=f"{key}:{version}:{i}", content=t, meta=ref.meta(), embedding=[1.0] + [0.0] * (dim - 1))
        for i, t in enumerate(texts)
    ]


def stored(path) -> dict[str, list[str]]:
    documents = decode_snapshot(path.read_bytes()).store.filter_documents()
    out: dict[str, list[str]] = {}
    for d in documents:
        out.setdefault(d.meta["source_key"], []).append(d.content)
    return {k: sorted(v) for k, v in out.items()}


def test_apply_changes_replaces_and_deletes_by_source_and_the_last_change_wins():
    current = chunks("a", "a1", "a2") + chunks("b", "b1")
    changes = [
        Change(source("a", "v2"), chunks("a", "A", version="v2")),
        Change(source("b"), None),
        Change(source("c"), chunks("c", "c-old")),
        Change(source("c", "v2"), chunks("c", "c-new", version="v2")),
    ]
    result, written, deleted, differs = apply_changes(current, changes)
    assert sorted(d.content for d in result) == ["A", "c-new"]
    assert (written, deleted, differs) == (2, 3, True)
    assert apply_changes(result, [Change(source("a", "v2"), chunks("a", "A", version="v2"))])[3] is False
    assert apply_changes(result, [Change(source("zzz"), None)])[3] is False


def test_a_local_snapshot_is_created_replaced_and_deleted_from(tmp_path):
    path = tmp_path / "store.snapshot"
    target = SnapshotTarget(str(path), DEFAULT_MODEL)
    assert target.replace_source(source("a"), chunks("a", "a1", "a2")) == 2
    assert target.replace_source(source("b"), chunks("b", "b1")) == 1
    assert stored(path) == {"a": ["a1", "a2"], "b": ["b1"]}
    assert target.replace_source(source("a", "v2"), chunks("a", "new", version="v2")) == 1
    assert target.delete_source(source("b")) == 1
    assert stored(path) == {"a": ["new"]}


def test_a_commit_that_changes_nothing_writes_nothing(tmp_path):
    path = tmp_path / "store.snapshot"
    target = SnapshotTarget(str(path), DEFAULT_MODEL)
    target.replace_source(source("a"), chunks("a", "a1"))
    before = snapshot_etag(str(path))
    result = target.apply([Change(source("a"), chunks("a", "a1")), Change(source("gone"), None)])
    assert (result.wrote, result.written, result.deleted) == (False, 0, 0)
    assert snapshot_etag(str(path)) == before
    assert (
        SnapshotTarget(str(tmp_path / "none.snapshot"), DEFAULT_MODEL).apply([Change(source("x"), None)]).wrote is False
    )


def test_a_conflicting_writer_makes_the_commit_re_read_and_re_apply(tmp_path):
    path = tmp_path / "store.snapshot"
    SnapshotTarget(str(path), DEFAULT_MODEL).replace_source(source("seed"), chunks("seed", "s"))
    other = SnapshotTarget(str(path), DEFAULT_MODEL)
    pauses: list[float] = []

    def someone_else_commits_first(attempt: int) -> None:
        if attempt == 0:
            other.replace_source(source("other"), chunks("other", "o"))

    mine = SnapshotTarget(str(path), DEFAULT_MODEL, before_write=someone_else_commits_first, sleep=pauses.append)
    result = mine.replace_source(source("mine"), chunks("mine", "m"))

    assert result == 1
    assert len(pauses) == 1
    assert 0 <= pauses[0] <= 0.1
    assert stored(path) == {"mine": ["m"], "other": ["o"], "seed": ["s"]}


def test_a_commit_gives_up_after_its_retries(tmp_path):
    path = tmp_path / "store.snapshot"
    SnapshotTarget(str(path), DEFAULT_MODEL).replace_source(source("seed"), chunks("seed", "s"))
    rival = SnapshotTarget(str(path), DEFAULT_MODEL)
    rounds = iter(range(100))

    def always_beaten(_attempt: int) -> None:
        rival.replace_source(source("rival"), chunks("rival", f"r{next(rounds)}"))

    target = SnapshotTarget(str(path), DEFAULT_MODEL, retries=2, before_write=always_beaten, sleep=lambda _s: None)
    with pytest.raises(SnapshotConflictError, match="3 conflicting writes"):
        target.replace_source(source("mine"), chunks("mine", "m"))
    assert "mine" not in stored(path)


def test_a_snapshot_of_another_model_or_dimension_is_refused(tmp_path):
    path = tmp_path / "store.snapshot"
    path.write_bytes(encode_snapshot(chunks("a", "a1"), "another-model"))
    with pytest.raises(SnapshotError, match="another-model"):
        SnapshotTarget(str(path), DEFAULT_MODEL).replace_source(source("b"), chunks("b", "b1"))
    path.write_bytes(encode_snapshot(chunks("a", "a1", dim=4), DEFAULT_MODEL))
    with pytest.raises(SnapshotError, match="dimension"):
        SnapshotTarget(str(path), DEFAULT_MODEL).replace_source(source("b"), chunks("b", "b1", dim=8))


def test_conditional_reads_and_writes_on_s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="index-bucket")
        uri = "s3://index-bucket/store.snapshot"
        assert read_bytes_tagged(uri, s3) == (None, None)
        assert snapshot_etag(uri, s3) is None
        first = write_bytes_if(uri, b"one", None, s3)
        with pytest.raises(SnapshotConflictError):
            write_bytes_if(uri, b"two", None, s3)  # If-None-Match: * on an existing object
        assert read_bytes_tagged(uri, s3) == (b"one", first)
        second = write_bytes_if(uri, b"two", first, s3)
        with pytest.raises(SnapshotConflictError):
            write_bytes_if(uri, b"three", first, s3)  # If-Match with a stale ETag: 412
        assert snapshot_etag(uri, s3) == second != first
        with pytest.raises(SnapshotError):
            read_bytes_tagged("s3://no-such-bucket/store.snapshot", s3)


def test_conditional_writes_on_a_local_file(tmp_path):
    uri = str(tmp_path / "sub" / "store.snapshot")
    first = write_bytes_if(uri, b"one", None)
    with pytest.raises(SnapshotConflictError):
        write_bytes_if(uri, b"two", None)
    second = write_bytes_if(uri, b"two", first)
    with pytest.raises(SnapshotConflictError):
        write_bytes_if(uri, b"three", first)
    assert read_bytes_tagged(uri) == (b"two", second)


def test_the_generic_target_replaces_and_deletes_by_source_in_any_document_store():
    store = InMemoryDocumentStore()
    target = DocumentStoreTarget(store)
    assert target.replace_source(source("a"), chunks("a", "a1", "a2")) == 2
    target.replace_source(source("b"), chunks("b", "b1"))
    assert target.replace_source(source("a", "v2"), chunks("a", "A", version="v2")) == 1
    assert sorted(d.content for d in store.filter_documents()) == ["A", "b1"]
    assert target.delete_source(source("a")) == 1
    assert [d.content for d in store.filter_documents()] == ["b1"]
