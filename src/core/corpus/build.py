"""Build the embedded store's snapshot from the default corpus (``make index``).

Usage:
    python -m core.corpus --output data/stdlib.snapshot [--modules json,csv,re]

Steps: render the standard library with pydoc → split into overlapping word windows (no NLTK, so
nothing is downloaded) → drop chunks whose text was already seen (packages re-export the same
docs) → embed offline → write the snapshot.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import replace

from haystack import Document
from haystack.components.preprocessors import DocumentSplitter

from core.components.embedders import StaticDocumentEmbedder
from core.components.wordllama import DEFAULT_MODEL
from core.corpus.pydoc import render_modules, stdlib_modules
from core.names import DEFAULT_TENANT
from core.store.base import META_TENANT
from core.store.snapshot import write_snapshot

SPLIT_WORDS = 200
SPLIT_OVERLAP = 30


def unique_chunks(chunks: list[Document]) -> list[Document]:
    """Keep the first chunk of each distinct text."""
    seen: set[str] = set()
    kept = []
    for chunk in chunks:
        digest = hashlib.sha256((chunk.content or "").strip().encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(chunk)
    return kept


def build_documents(modules: list[str] | None = None, model: str = DEFAULT_MODEL) -> list[Document]:
    """Render, split, de-duplicate and embed the corpus; returns chunks with embeddings."""
    sources = list(render_modules(modules if modules is not None else stdlib_modules()))
    splitter = DocumentSplitter(split_by="word", split_length=SPLIT_WORDS, split_overlap=SPLIT_OVERLAP)
    splitter.warm_up()
    kept = ("module", "source", "python", "split_id")
    # Keep meta small: the splitter's bookkeeping (source ids, offsets) means nothing to a reader.
    # Every chunk belongs to a tenant (core.security.access scopes every retrieval to one): the bundled
    # corpus is the `default` tenant's, the one local runs and unprefixed uploads use.
    chunks = [
        replace(c, meta={**{k: c.meta[k] for k in kept if k in c.meta}, META_TENANT: DEFAULT_TENANT})
        for c in unique_chunks(splitter.run(documents=sources)["documents"])
    ]
    embedder = StaticDocumentEmbedder(model=model, meta_fields_to_embed=["module"])
    return embedder.run(documents=chunks)["documents"]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m core.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="snapshot path or s3://bucket/key")
    parser.add_argument("--modules", help="comma-separated module names (default: the whole standard library)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    modules = [m.strip() for m in args.modules.split(",") if m.strip()] if args.modules else None
    documents = build_documents(modules)
    if not documents:
        print("no documents rendered; nothing written", file=sys.stderr)
        return 1
    manifest = write_snapshot(args.output, documents, DEFAULT_MODEL)
    print(
        f"indexed {manifest['count']} chunks ({manifest['embedding_model']}, dim {manifest['embedding_dim']}) "
        f"into {args.output} in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
