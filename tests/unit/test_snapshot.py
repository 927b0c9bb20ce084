"""Snapshots: round trip, integrity checks, local and S3 locations."""

import io
import json
import zipfile

import boto3
import pytest
from haystack import Document
from moto import mock_aws

from core.store.load import memory_store_from_snapshot
from core.store.snapshot import (
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
    read_snapshot,
    verify_snapshot,
    write_snapshot,
)


def documents() -> list[Document]:
    return [
        Document(content="json.loads parses JSON", meta={"module": "json"}, embedding=[0.6, 0.8]),
        Document(content="csv.reader reads rows", meta={"module": "csv"}, embedding=[1.0, 0.0]),
    ]


def test_round_trip_keeps_ids_content_meta_and_embeddings(tmp_path):
    path = tmp_path / "s.snapshot"
    manifest = write_snapshot(str(path), documents(), "test-model")
    assert manifest["count"] == 2
    assert manifest["embedding_dim"] == 2
    loaded = read_snapshot(str(path))
    stored = loaded.store.filter_documents()
    assert [d.id for d in stored] == [d.id for d in documents()]
    assert [d.content for d in stored] == [d.content for d in documents()]
    assert stored[0].meta == {"module": "json"}
    assert stored[0].embedding == pytest.approx([0.6, 0.8], abs=1e-3)  # stored as float16
    assert loaded.manifest["embedding_model"] == "test-model"
    # The keyword index came with it: no re-indexing at load.
    assert [d.meta["module"] for d in loaded.store.bm25_retrieval("rows", top_k=1)] == ["csv"]


def test_a_tampered_member_fails_verification():
    data = encode_snapshot(documents(), "m")
    assert verify_snapshot(data)["count"] == 2
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "content.bin":
                content = content.replace(b"json.loads", b"json.LOADS")
            dst.writestr(name, content)
    with pytest.raises(SnapshotError, match="checksum"):
        verify_snapshot(out.getvalue())


def test_a_corrupted_file_fails_to_load(tmp_path):
    path = tmp_path / "s.snapshot"
    write_snapshot(str(path), documents(), "m")
    data = bytearray(path.read_bytes())
    start = data.index(documents()[1].id.encode())  # ids.json is stored as is
    data[start : start + 3] = b"XXX"  # flip bytes inside a stored member: its CRC-32 no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        read_snapshot(str(path))


def test_not_a_snapshot_and_unknown_format_are_rejected():
    with pytest.raises(SnapshotError, match="not a store snapshot"):
        decode_snapshot(b"hello")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": 99}))

    with pytest.raises(SnapshotError, match="format"):
        decode_snapshot(out.getvalue())


def test_missing_local_snapshot_names_the_fix(tmp_path):
    with pytest.raises(SnapshotError, match="make index"):
        read_snapshot(str(tmp_path / "nope.snapshot"))


def test_documents_without_embeddings_cannot_be_snapshotted():
    with pytest.raises(SnapshotError):
        encode_snapshot([Document(content="x")], "m")


@mock_aws
def test_store_loads_from_s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="snapshots")
    write_snapshot("s3://snapshots/v1/stdlib.snapshot", documents(), "m")
    loaded = memory_store_from_snapshot("s3://snapshots/v1/stdlib.snapshot")
    assert loaded.store.count_documents() == 2
    assert loaded.source == "s3://snapshots/v1/stdlib.snapshot"
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        read_snapshot("s3://snapshots/missing.snapshot")
