"""The indexing pipeline: the bytes of one object → chunks with embeddings, stable ids and source meta.

The pipeline is Haystack YAML (``INDEXING_PIPELINE``, by default ``pipelines/indexing/indexing.yml``),
loaded with the API's loader (same allowlist, same ``inputs``/``outputs`` contract) but never served as
a route. Its router's ``mime_types`` are the types accepted. The type of an object is taken from its
key's extension, else from its ``Content-Type`` (S3 often stores ``binary/octet-stream``, so the
extension wins); a ``charset`` in the ``Content-Type`` is the text's encoding.

Chunk ids are the SHA-256 of (bucket, key, version, chunk number, text): indexing the same object
version again yields the same ids, so a retry writes the same chunks, and a new version new ones.

Example:
    >>> indexing = IndexingPipeline.load(Path("pipelines/indexing/indexing.yml"))
    >>> chunks = indexing.convert(b"# Guide. Hello.", "acme/guide.md", None, source)
    >>> chunks[0].meta["tenant"], chunks[0].embedding is not None
    ('acme', True)
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from haystack import Document, Pipeline
from haystack.components.routers import FileTypeRouter
from haystack.dataclasses import ByteStream

from core.components.embedders import StaticDocumentEmbedder
from core.pipelines.loader import PipelineLoadError, load_pipeline_file
from core.store.base import SourceRef

# Extensions the standard library's mimetypes table may not know on every system.
EXTENSION_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".htm": "text/html",
    ".html": "text/html",
    ".json": "application/json",
    ".pdf": "application/pdf",
}
# The splitter's and converters' bookkeeping: means nothing to a reader of the chunk.
DROPPED_META = frozenset({"source_id", "_split_overlap", "split_idx_start", "encoding", "file_path"})


class UnsupportedTypeError(ValueError):
    """The object's type is not one the indexing pipeline converts."""


class ConversionError(RuntimeError):
    """The object could not be converted (corrupt, not what its type says, wrong encoding, …)."""


def chunk_id(source: SourceRef, number: int, text: str) -> str:
    """A chunk's id: stable for one object version, different for another."""
    parts = (source.bucket, source.key, source.version, str(number), text)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _media_type(content_type: str | None) -> tuple[str | None, str | None]:
    """``text/plain; charset=latin-1`` → ``("text/plain", "latin-1")``."""
    if not content_type:
        return None, None
    media, *params = (part.strip() for part in content_type.split(";"))
    charset = next((p.split("=", 1)[1].strip('"') for p in params if p.lower().startswith("charset=")), None)
    return media.lower() or None, charset


@dataclass
class IndexingPipeline:
    """A loaded, warmed-up indexing pipeline and what it accepts."""

    pipeline: Pipeline
    source_socket: tuple[str, str]
    output_socket: tuple[str, str]
    mime_types: tuple[str, ...]
    embedding_model: str
    version: str
    converters: frozenset[str]  # the components the router feeds: their output tells a failed conversion

    @classmethod
    def load(cls, path: Path) -> IndexingPipeline:
        """Load and warm up the YAML at ``path``.

        Raises:
            PipelineLoadError: The file is invalid, does not take ``sources`` and give ``documents``,
                has no ``FileTypeRouter``/``StaticDocumentEmbedder``, or cannot warm up.
        """
        if not path.is_file():
            raise PipelineLoadError(f"indexing pipeline {path} does not exist")
        served = load_pipeline_file(path, document_store=None, chat_generator=None, max_text_chars=1)
        if not served.available:
            raise PipelineLoadError(f"{path.name}: {served.unavailable}")
        if (
            list(served.inputs) != ["sources"]
            or len(served.inputs["sources"]) != 1
            or "documents" not in served.outputs
        ):
            raise PipelineLoadError(f"{path.name}: expected one input 'sources' and an output 'documents'")
        routers = [(name, c) for name, c in served.pipeline.walk() if isinstance(c, FileTypeRouter)]
        embedders = [c for _, c in served.pipeline.walk() if isinstance(c, StaticDocumentEmbedder)]
        if len(routers) != 1 or len(embedders) != 1:
            raise PipelineLoadError(f"{path.name}: expected one FileTypeRouter and one StaticDocumentEmbedder")
        router_name, router = routers[0]
        return cls(
            pipeline=served.pipeline,
            source_socket=served.inputs["sources"][0],
            output_socket=served.outputs["documents"],
            mime_types=tuple(router.mime_types),
            embedding_model=embedders[0].model,
            version=served.version,
            converters=frozenset(receiver for _, receiver in served.pipeline.graph.out_edges(router_name)),
        )

    def media_type(self, key: str, content_type: str | None) -> str | None:
        """The MIME type the pipeline would route this object as, or ``None`` when it does not convert it."""
        suffix = PurePosixPath(key).suffix.lower()
        by_extension = EXTENSION_TYPES.get(suffix) or (mimetypes.guess_type(f"x{suffix}")[0] if suffix else None)
        candidate = by_extension or _media_type(content_type)[0]
        return candidate if candidate in self.mime_types else None

    def convert(self, data: bytes, key: str, content_type: str | None, source: SourceRef) -> list[Document]:
        """Chunks of one object, embedded, with ids and ``source_*``/``tenant`` meta (which nothing overrides).

        An empty object, or one whose text is empty, gives no chunks.

        Raises:
            UnsupportedTypeError: Not a type the pipeline converts.
            ConversionError: The converter could not read it.
        """
        media = self.media_type(key, content_type)
        if media is None:
            raise UnsupportedTypeError(f"{key}: type {content_type or 'unknown'} is not indexed")
        if not data:
            return []
        charset = _media_type(content_type)[1]
        stream = ByteStream(data=data, mime_type=media, meta={"encoding": charset} if charset else {})
        component, socket = self.source_socket
        try:
            result = self.pipeline.run({component: {socket: [stream]}}, include_outputs_from=set(self.converters))
        except Exception as exc:  # noqa: BLE001 - any failure inside a converter is this object's failure
            raise ConversionError(f"{key}: {type(exc).__name__}: {exc}") from None
        if not any(result.get(name, {}).get("documents") for name in self.converters):
            raise ConversionError(f"{key}: the {media} converter could not read it (see its warning above)")
        chunks = result.get(self.output_socket[0], {}).get(self.output_socket[1]) or []
        return [self._finish(chunk, number, source) for number, chunk in enumerate(chunks)]

    @staticmethod
    def _finish(chunk: Document, number: int, source: SourceRef) -> Document:
        meta: dict[str, Any] = {k: v for k, v in chunk.meta.items() if k not in DROPPED_META}
        meta.update(source.meta())  # last: a document's own fields (e.g. a JSON "tenant") cannot override it
        return replace(chunk, id=chunk_id(source, number, chunk.content or ""), meta=meta)
