"""Store snapshots: one file holding the embedded store's documents and precomputed indexes.

A snapshot is a zip archive; loading is a file read (numeric members are stored, the text is deflated):

- ``manifest.json``: format version, document count, embedding model and dimension, creation time,
  and the SHA-256 of every other member;
- ``ids.json``, ``metas.json``: document ids and metadata, in index order;
- ``content.bin`` + ``offsets.npy``: the documents' text as one UTF-8 blob and int64 offsets;
- ``embeddings.npy``: the ``(count, dim)`` matrix of unit vectors, as float16 (float32 in memory);
- ``bm25/*``: the ``bm25s`` index and its tokenizer vocabulary, as ``bm25s`` saves them.

It is read from a local path or from ``s3://bucket/key`` (boto3 is imported only then). Loading
relies on the zip's CRC-32 per member; ``verify_snapshot`` checks the SHA-256 of each.

Example:
    >>> snap = read_snapshot("data/stdlib.snapshot")
    >>> snap.manifest["count"] == snap.store.count_documents()
    True
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
from haystack import Document

from core.aws import error_code, is_s3_uri, split_s3
from core.store.embedded import EmbeddedDocumentStore, StoreIndex, build_index, new_tokenizer

FORMAT_VERSION = 2
# The text blob shrinks ~3.5x and inflates in ~20 ms; the numeric members barely compress: stored.
COMPRESSED_MEMBERS = frozenset({"content.bin"})


class SnapshotError(RuntimeError):
    """A snapshot is missing, unreadable or fails its checksums."""


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot: its manifest and the store it holds."""

    manifest: dict
    store: EmbeddedDocumentStore


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _bm25_members(index: StoreIndex) -> dict[str, bytes]:
    if index.bm25 is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        index.bm25.save(tmp, show_progress=False)
        index.tokenizer.save_vocab(tmp)
        index.tokenizer.save_stopwords(tmp)
        return {f"bm25/{path.name}": path.read_bytes() for path in sorted(Path(tmp).iterdir())}


def encode_index(index: StoreIndex) -> tuple[bytes, dict]:
    """Serialise a store index; returns the snapshot bytes and its manifest."""
    members = {
        "ids.json": json.dumps(index.ids).encode(),
        "metas.json": json.dumps(index.metas, ensure_ascii=False, sort_keys=True).encode(),
        "content.bin": index.content,
        "offsets.npy": _npy(index.offsets),
        # float16 halves the matrix (the model's own weights are float16); rows are cast back at load.
        "embeddings.npy": _npy(index.embeddings.astype(np.float16)),
        **_bm25_members(index),
    }
    manifest = {
        "format": FORMAT_VERSION,
        "count": len(index.ids),
        "embedding_model": index.embedding_model,
        "embedding_dim": int(index.embeddings.shape[1]) if index.embeddings.ndim == 2 else 0,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sha256": {name: _sha256(data) for name, data in members.items()},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        for name, data in members.items():
            compressed = name in COMPRESSED_MEMBERS
            archive.writestr(
                name,
                data,
                compress_type=zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED,
                compresslevel=6 if compressed else None,
            )
    return out.getvalue(), manifest


def _build(documents: list[Document], embedding_model: str) -> StoreIndex:
    try:
        return build_index(documents, embedding_model)
    except ValueError as exc:
        raise SnapshotError(str(exc)) from None


def encode_snapshot(documents: list[Document], embedding_model: str) -> bytes:
    """Index documents (each with an embedding) and serialise them into snapshot bytes.

    Raises:
        SnapshotError: A document has no embedding, or the dimensions differ.
    """
    return encode_index(_build(documents, embedding_model))[0]


def _load_bm25(members: dict[str, bytes]) -> tuple[bm25s.BM25 | None, bm25s.tokenization.Tokenizer]:
    tokenizer = new_tokenizer()
    files = {name.removeprefix("bm25/"): data for name, data in members.items() if name.startswith("bm25/")}
    if not files:
        return None, tokenizer
    # bm25s loads from a folder: hand it the members through a temporary one.
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        # Queries are tokenized to ids by the tokenizer: the index needs no vocabulary of its own.
        bm25 = bm25s.BM25.load(tmp, load_vocab=False, show_progress=False)
        tokenizer.load_vocab(tmp)
        tokenizer.load_stopwords(tmp)
    return bm25, tokenizer


def _open(source: bytes | Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)


def _read_members(source: bytes | Path) -> tuple[dict, dict[str, bytes]]:
    try:
        with _open(source) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            if manifest.get("format") != FORMAT_VERSION:
                raise SnapshotError(
                    f"unsupported snapshot format {manifest.get('format')!r}; expected {FORMAT_VERSION} "
                    "(rebuild it with `make index`)"
                )
            # zipfile checks each member's CRC-32 as it reads it: a truncated or corrupted file fails here.
            members = {name: archive.read(name) for name in manifest.get("sha256", {})}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SnapshotError(f"not a store snapshot: {exc}") from None
    return manifest, members


def verify_snapshot(source: bytes | Path) -> dict:
    """Check every member against the SHA-256 in the manifest; returns the manifest.

    Loading relies on the zip's CRC-32 (cheap); this is the full check, for tools and tests.

    Raises:
        SnapshotError: Not a snapshot, or a member does not match its checksum.
    """
    manifest, members = _read_members(source)
    for name, content in members.items():
        if manifest["sha256"][name] != _sha256(content):
            raise SnapshotError(f"snapshot member {name} fails its checksum")
    return manifest


def decode_snapshot(source: bytes | Path) -> Snapshot:
    """Load a snapshot from bytes or a local file.

    Raises:
        SnapshotError: Not a snapshot, an unknown format, a corrupted member or inconsistent counts.
    """
    manifest, members = _read_members(source)
    try:
        ids = json.loads(members["ids.json"])
        metas = json.loads(members["metas.json"])
        offsets = np.load(io.BytesIO(members["offsets.npy"]), allow_pickle=False)
        embeddings = np.load(io.BytesIO(members["embeddings.npy"]), allow_pickle=False).astype(np.float32)
    except KeyError as exc:
        raise SnapshotError(f"snapshot lacks member {exc}") from None
    if not (len(ids) == len(metas) == len(offsets) - 1 == len(embeddings) == manifest["count"]):
        raise SnapshotError("snapshot counts disagree with its manifest")
    bm25, tokenizer = _load_bm25(members)
    index = StoreIndex(
        ids=ids,
        metas=metas,
        content=members["content.bin"],
        offsets=offsets,
        embeddings=embeddings,
        bm25=bm25,
        tokenizer=tokenizer,
        embedding_model=manifest["embedding_model"],
    )
    return Snapshot(manifest=manifest, store=EmbeddedDocumentStore(index))


def read_bytes(uri: str) -> bytes:
    """Read a local path or ``s3://bucket/key``.

    Raises:
        SnapshotError: The object or file does not exist or cannot be read.
    """
    if is_s3_uri(uri):
        import boto3  # noqa: PLC0415 - only S3 snapshots pay for boto3
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        bucket, key = split_s3(uri)
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
    if is_s3_uri(uri):
        import boto3  # noqa: PLC0415

        bucket, key = split_s3(uri)
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- conditional reads and writes (the indexer's read-modify-write, the query side's refresh) ---------

# S3 answers a failed If-Match/If-None-Match with 412, and a conditional write racing another one on the
# same key with 409 ConditionalRequestConflict: both mean "re-read and try again".
_CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class SnapshotConflictError(SnapshotError):
    """The snapshot changed since it was read (a conditional write lost the race)."""


def _s3_client():
    import boto3  # noqa: PLC0415 - only S3 snapshots pay for boto3

    return boto3.client("s3")


def _file_tag(path: Path) -> str | None:
    """A local file's ETag stand-in: inode, mtime and size (every write replaces the file: a new inode)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f'"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"'


def snapshot_etag(uri: str, s3: Any = None) -> str | None:
    """The current ETag of the snapshot (S3 HEAD, or a local file's stat), ``None`` when there is none.

    Raises:
        SnapshotError: It cannot be checked (permissions, network).
    """
    if not is_s3_uri(uri):
        return _file_tag(Path(uri))
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_s3(uri)
    try:
        return (s3 or _s3_client()).head_object(Bucket=bucket, Key=key)["ETag"]
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise SnapshotError(f"cannot check snapshot {uri}: {exc}") from None
    except BotoCoreError as exc:
        raise SnapshotError(f"cannot check snapshot {uri}: {exc}") from None


def read_bytes_tagged(uri: str, s3: Any = None) -> tuple[bytes | None, str | None]:
    """Read the snapshot with the ETag of exactly what was read; ``(None, None)`` when there is none.

    Raises:
        SnapshotError: It exists but cannot be read.
    """
    if not is_s3_uri(uri):
        path = Path(uri)
        for _ in range(3):  # a writer may replace the file between the stat and the read: read again
            tag = _file_tag(path)
            if tag is None:
                return None, None
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if _file_tag(path) == tag:
                return data, tag
        raise SnapshotError(f"snapshot {uri} keeps changing while it is read")
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_s3(uri)
    try:
        response = (s3 or _s3_client()).get_object(Bucket=bucket, Key=key)
        return response["Body"].read(), response["ETag"]
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey"}:
            return None, None
        raise SnapshotError(f"cannot read snapshot {uri}: {exc}") from None
    except BotoCoreError as exc:
        raise SnapshotError(f"cannot read snapshot {uri}: {exc}") from None


def write_bytes_if(uri: str, data: bytes, etag: str | None, s3: Any = None) -> str:
    """Write only if the snapshot is still the one read: ETag ``etag``, or absent when ``etag`` is ``None``.

    On S3: ``PutObject`` with ``If-Match: <etag>`` (``If-None-Match: *`` to create). A local file is
    compared and replaced under an exclusive lock on ``<file>.lock``, which gives the same guarantee
    to every writer on the machine.

    Returns:
        The new ETag.

    Raises:
        SnapshotConflictError: Someone else wrote it first.
        SnapshotError: It cannot be written.
    """
    if not is_s3_uri(uri):
        return _write_file_if(Path(uri), data, etag)
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_s3(uri)
    condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
    try:
        return (s3 or _s3_client()).put_object(Bucket=bucket, Key=key, Body=data, **condition)["ETag"]
    except ClientError as exc:
        if error_code(exc) in _CONFLICT_CODES:
            raise SnapshotConflictError(f"{uri} changed since it was read") from None
        raise SnapshotError(f"cannot write snapshot {uri}: {exc}") from None
    except BotoCoreError as exc:
        raise SnapshotError(f"cannot write snapshot {uri}: {exc}") from None


def _write_file_if(path: Path, data: bytes, etag: str | None) -> str:
    import fcntl  # noqa: PLC0415 - POSIX only, and only local snapshots need it

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _file_tag(path) != etag:
                raise SnapshotConflictError(f"{path} changed since it was read")
            write_bytes(str(path), data)
            return _file_tag(path) or ""
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_snapshot(uri: str) -> Snapshot:
    """Load the snapshot at ``uri`` (a local file is read in place, S3 objects into memory)."""
    if is_s3_uri(uri):
        return decode_snapshot(read_bytes(uri))
    path = Path(uri)
    if not path.is_file():
        raise SnapshotError(f"snapshot {uri} does not exist; build it with `make index`")
    return decode_snapshot(path)


def write_snapshot(uri: str, documents: list[Document], embedding_model: str) -> dict:
    """Index ``documents`` (with embeddings) and write them as a snapshot to ``uri``; returns its manifest.

    Raises:
        SnapshotError: A document has no embedding, or the dimensions differ.
    """
    data, manifest = encode_index(_build(documents, embedding_model))
    write_bytes(uri, data)
    return manifest
