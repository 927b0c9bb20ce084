"""Retrieval speed on the default corpus: this project's store vs Haystack's InMemoryDocumentStore.

Both stores hold the same chunks and embeddings, measured in the same run:

- load: ``read_snapshot`` (precomputed indexes, a file read) vs ``InMemoryDocumentStore.load_from_disk``
  (Haystack's own persistence: re-writes every document and rebuilds BM25 statistics);
- keyword: ``KeywordRetriever`` (bm25s) vs ``InMemoryBM25Retriever``, 50 candidates, p50/p99;
- dense: ``EmbeddingRetriever`` (one matrix product) vs ``InMemoryEmbeddingRetriever``;
- the whole ``search`` pipeline (embed + both retrievers + fusion) on this project's store.

Targets (issue 3): retrieval p50 <= 2 ms and snapshot load <= 100 ms at the default corpus size.
"""

import tempfile
from pathlib import Path

from common import SNAPSHOT, require_snapshot, run, summary, timed_ms, write_result
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from quality import QUERIES

from core.components.embedders import StaticTextEmbedder
from core.components.retrievers import EmbeddingRetriever, KeywordRetriever
from core.pipelines.loader import load_pipelines
from core.settings import bundled_path
from core.store.snapshot import read_snapshot

REPEAT = 10  # passes over the query set


def load_times(repeat: int, load) -> list[float]:
    return timed_ms(load, repeat)


def main() -> int:
    require_snapshot()
    ours_load = load_times(7, lambda: read_snapshot(str(SNAPSHOT)))
    store = read_snapshot(str(SNAPSHOT)).store
    documents = store.filter_documents()
    baseline = InMemoryDocumentStore(shared=False)
    baseline.write_documents(documents)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "inmemory.json"
        baseline.save_to_disk(str(saved))
        baseline_load = load_times(3, lambda: InMemoryDocumentStore.load_from_disk(str(saved)))

    embedder = StaticTextEmbedder()
    embedder.warm_up()
    queries = list(QUERIES)
    embeddings = {q: embedder.run(text=q)["embedding"] for q in queries}
    ours_keyword, base_keyword = KeywordRetriever(store, top_k=50), InMemoryBM25Retriever(baseline, top_k=50)
    ours_dense, base_dense = EmbeddingRetriever(store, top_k=50), InMemoryEmbeddingRetriever(baseline, top_k=50)
    search = load_pipelines(bundled_path("pipelines"), store, None, 5000)["search"].pipeline

    def over_queries(run) -> list[float]:
        out: list[float] = []
        for _ in range(REPEAT):
            for q in queries:
                out.extend(timed_ms(lambda q=q: run(q), 1))
        return out

    results = {
        "documents": len(documents),
        "load": {"ours": summary(ours_load), "inmemory": summary(baseline_load)},
        "keyword": {
            "ours": summary(over_queries(lambda q: ours_keyword.run(query=q))),
            "inmemory": summary(over_queries(lambda q: base_keyword.run(query=q))),
        },
        "dense": {
            "ours": summary(over_queries(lambda q: ours_dense.run(query_embedding=embeddings[q]))),
            "inmemory": summary(over_queries(lambda q: base_dense.run(query_embedding=embeddings[q]))),
        },
        "search_pipeline": summary(
            over_queries(
                lambda q: search.run(
                    {"text_embedder": {"text": q}, "bm25_retriever": {"query": q}, "joiner": {"top_k": 5}}
                )
            )
        ),
    }
    for kind in ("load", "keyword", "dense"):
        ours, base = results[kind]["ours"], results[kind]["inmemory"]
        results[kind]["speedup_p50"] = round(base["p50_ms"] / ours["p50_ms"], 1)
        print(
            f"{kind:8s} ours p50 {ours['p50_ms']:8.3f} ms p99 {ours['p99_ms']:8.3f} | "
            f"InMemory p50 {base['p50_ms']:9.3f} ms p99 {base['p99_ms']:9.3f} | {results[kind]['speedup_p50']}x faster"
        )
    pipe = results["search_pipeline"]
    print(f"search pipeline (embed + 2 retrievers + fusion) p50 {pipe['p50_ms']:.3f} ms p99 {pipe['p99_ms']:.3f} ms")
    targets = {
        "keyword_p50_le_2ms": results["keyword"]["ours"]["p50_ms"] <= 2,
        "dense_p50_le_2ms": results["dense"]["ours"]["p50_ms"] <= 2,
        "load_le_100ms": results["load"]["ours"]["p50_ms"] <= 100,
    }
    results["targets"] = targets
    print("targets:", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    write_result("retrieval", results)
    return 0


if __name__ == "__main__":
    run(main)
