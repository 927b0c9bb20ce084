"""Store snapshots: one file holding documents, their embeddings and a checksummed manifest.

A snapshot is a zip archive with three members:

- ``manifest.json``: format version, document count, embedding model and dimension, creation time,
  and the SHA-256 of the other two members;
- ``documents.jsonl``: one ``{"id", "content", "meta"}`` object per line;
- ``embeddings.npy``: a ``(count, dim)`` float32 matrix, row *i* for line *i*.

It is read from a local path or from ``s3://bucket/key`` (boto3 is imported only then).

Example:
    >>> snap = read_snapshot("data/stdlib.snapshot")
    >>> snap.manifest["count"] == len(snap.documents)
    True
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from haystack import Document

FORMAT_VERSION = 1


class SnapshotError(RuntimeError):
    """A snapshot is missing, unreadable or fails its checksums."""


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot: its manifest and its documents (with embeddings)."""

    manifest: dict
    documents: list[Document]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_snapshot(documents: list[Document], embedding_model: str) -> bytes:
    """Serialise documents (each with an embedding of the same dimension) into snapshot bytes."""
    lines = [
        json.dumps({"id": d.id, "content": d.content, "meta": d.meta}, ensure_ascii=False, sort_keys=True)
        for d in documents
    ]
    docs_bytes = ("\n".join(lines) + "\n").encode() if lines else b""
    matrix = np.asarray([d.embedding for d in documents], dtype=np.float32)
    if matrix.ndim != 2:
        raise SnapshotError("every document needs an embedding of the same dimension")
    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    emb_bytes = buffer.getvalue()
    manifest = {
        "format": FORMAT_VERSION,
        "count": len(documents),
        "embedding_model": embedding_model,
        "embedding_dim": int(matrix.shape[1]) if matrix.size else 0,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sha256": {"documents.jsonl": _sha256(docs_bytes), "embeddings.npy": _sha256(emb_bytes)},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        archive.writestr("documents.jsonl", docs_bytes)
        archive.writestr("embeddings.npy", emb_bytes)
    return out.getvalue()


def decode_snapshot(data: bytes) -> Snapshot:
    """Parse and verify snapshot bytes.

    Raises:
        SnapshotError: Not a snapshot, an unknown format, or a checksum mismatch.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            docs_bytes = archive.read("documents.jsonl")
            emb_bytes = archive.read("embeddings.npy")
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SnapshotError(f"not a store snapshot: {exc}") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise SnapshotError(f"unsupported snapshot format {manifest.get('format')!r}; expected {FORMAT_VERSION}")
    for member, content in (("documents.jsonl", docs_bytes), ("embeddings.npy", emb_bytes)):
        if manifest.get("sha256", {}).get(member) != _sha256(content):
            raise SnapshotError(f"snapshot member {member} fails its checksum")
    matrix = np.load(io.BytesIO(emb_bytes), allow_pickle=False)
    rows = [json.loads(line) for line in docs_bytes.decode().splitlines() if line]
    if len(rows) != manifest["count"] or len(matrix) != len(rows):
        raise SnapshotError("snapshot counts disagree with its manifest")
    documents = [
        Document(id=row["id"], content=row["content"], meta=row["meta"], embedding=vector.tolist())
        for row, vector in zip(rows, matrix, strict=True)
    ]
    return Snapshot(manifest=manifest, documents=documents)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_bytes(uri: str) -> bytes:
    """Read a local path or ``s3://bucket/key``.

    Raises:
        SnapshotError: The object or file does not exist or cannot be read.
    """
    if uri.startswith("s3://"):
        import boto3  # noqa: PLC0415 - only S3 snapshots pay for boto3
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        bucket, key = _split_s3(uri)
        try:
            return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise SnapshotError(f"cannot read snapshot {uri}: {exc}") from None
    path = Path(uri)
    if not path.is_file():
        raise SnapshotError(f"snapshot {uri} does not exist; build it with `make index`")
    return path.read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    """Write to a local path (atomically, via a temporary file) or to ``s3://bucket/key``."""
    if uri.startswith("s3://"):
        import boto3  # noqa: PLC0415

        bucket, key = _split_s3(uri)
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def read_snapshot(uri: str) -> Snapshot:
    """Read and verify the snapshot at ``uri``."""
    return decode_snapshot(read_bytes(uri))


def write_snapshot(uri: str, documents: list[Document], embedding_model: str) -> dict:
    """Write ``documents`` as a snapshot to ``uri``; returns its manifest."""
    data = encode_snapshot(documents, embedding_model)
    write_bytes(uri, data)
    return decode_snapshot(data).manifest
