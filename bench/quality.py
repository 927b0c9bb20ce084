"""Retrieval quality on the default corpus: keyword alone, dense alone, and the ``search`` pipeline (their fusion).

Each query names the standard-library module a Python programmer would want. Prints hit@1 and
MRR@10 (a hit is the expected module or one of its submodules) for each retriever, measured in the
same run over the same snapshot, and writes them to ``bench/results/quality.json``. Baselines:
Haystack's ``InMemoryBM25Retriever`` over the same chunks, and each of the project's retrievers alone.
"""

import json
import sys
import time
from pathlib import Path

from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from core.components.embedders import StaticTextEmbedder
from core.components.retrievers import EmbeddingRetriever, KeywordRetriever
from core.pipelines.loader import load_pipelines
from core.settings import load_settings
from core.store.load import load_store

QUERIES = {
    "how do I parse JSON": "json",
    "read and write CSV files": "csv",
    "match a regular expression": "re",
    "run a shell command and capture its output": "subprocess",
    "serialize python objects to bytes": "pickle",
    "copy a directory tree": "shutil",
    "current date and time": "datetime",
    "parse command line arguments": "argparse",
    "create a temporary file": "tempfile",
    "compute a SHA-256 hash": "hashlib",
    "random number between two values": "random",
    "read a zip archive": "zipfile",
    "write log messages to a file": "logging",
    "parse an XML document": "xml",
    "send an email over SMTP": "smtplib",
    "run functions in a thread pool": "concurrent",
    "split a URL into its parts": "urllib",
    "decimal fixed point arithmetic": "decimal",
    "read a configuration INI file": "configparser",
    "measure execution time of small code snippets": "timeit",
    # Identifiers: where keywords should win.
    "ThreadPoolExecutor": "concurrent",
    "namedtuple": "collections",
    "lru_cache": "functools",
    "Popen communicate": "subprocess",
    "makedirs exist_ok": "os",
    "SequenceMatcher ratio": "difflib",
    "heappush heappop": "heapq",
    "struct pack unpack format": "struct",
}
RESULTS = Path(__file__).parent / "results" / "quality.json"


def rank_of(documents, module: str) -> int | None:
    for rank, document in enumerate(documents[:10], start=1):
        name = document.meta.get("module", "")
        if name == module or name.startswith(module + "."):
            return rank
    return None


def main() -> int:
    settings = load_settings()
    store = load_store(settings).store
    search = load_pipelines(settings.pipelines_dir, store, None, settings.max_query_chars)["search"]
    haystack_store = InMemoryDocumentStore(shared=False)
    haystack_store.write_documents(store.filter_documents())
    inmemory_bm25 = InMemoryBM25Retriever(haystack_store, top_k=50)
    bm25 = KeywordRetriever(store, top_k=50)
    dense = EmbeddingRetriever(store, top_k=50)
    embedder = StaticTextEmbedder()
    variants = ("inmemory-bm25", "bm25s", "dense", "search")
    ranks: dict[str, list[int | None]] = {name: [] for name in variants}
    started = time.perf_counter()
    for query, module in QUERIES.items():
        ranks["inmemory-bm25"].append(rank_of(inmemory_bm25.run(query=query)["documents"], module))
        ranks["bm25s"].append(rank_of(bm25.run(query=query)["documents"], module))
        semantic = dense.run(query_embedding=embedder.run(text=query)["embedding"])["documents"]
        ranks["dense"].append(rank_of(semantic, module))
        found = search.pipeline.run(
            {"text_embedder": {"text": query}, "bm25_retriever": {"query": query}, "joiner": {"top_k": 10}}
        )["joiner"]["documents"]
        ranks["search"].append(rank_of(found, module))
    report = {
        name: {
            "hit@1": sum(r == 1 for r in found) / len(found),
            "mrr@10": round(sum(1 / r for r in found if r) / len(found), 3),
        }
        for name, found in ranks.items()
    }
    report["queries"] = len(QUERIES)
    report["seconds"] = round(time.perf_counter() - started, 1)
    for name in variants:
        print(f"{name:13s} hit@1 {report[name]['hit@1']:.2f}  mrr@10 {report[name]['mrr@10']:.3f}")
    for baseline in ("inmemory-bm25", "bm25s", "dense"):
        ratio = report["search"]["mrr@10"] / max(report[baseline]["mrr@10"], 1e-9)
        print(f"search vs {baseline}: mrr@10 ratio {ratio:.2f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
