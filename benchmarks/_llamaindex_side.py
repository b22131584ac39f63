"""The LlamaIndex half of benchmarks/side_by_side.py. Runs in its own venv
(benchmarks/.venv-llamaindex, made by side_by_side.py), never imports almanac, writes one JSON file.

A default LlamaIndex pipeline: SimpleDirectoryReader, the default SentenceSplitter (from Settings),
HuggingFaceEmbedding over a local sentence-transformers folder, LanceDB as the vector store.
Retrievers: the index's vector retriever (LlamaIndex's default), BM25Retriever over the same
nodes, and QueryFusionRetriever fusing the two by reciprocal rank with no query generation.

    python _llamaindex_side.py --corpus DIR --queries Q.jsonl --model DIR --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Offline before any Hugging Face import: the model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", type=Path, required=True, help="folder of documents")
    p.add_argument("--queries", type=Path, required=True, help='JSON lines {"id", "text"}')
    p.add_argument("--model", type=Path, required=True, help="sentence-transformers folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=10, help="nodes retrieved per query (10)")
    p.add_argument("--modes", default="vector,bm25,fusion", help="comma-separated")
    p.add_argument("--workdir", type=Path, help="where LanceDB writes (default: a temp folder)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    queries = [json.loads(line) for line in args.queries.read_text("utf-8").splitlines() if line]

    t0 = time.perf_counter()
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    Settings.llm = None  # a MockLLM: nothing here may call a hosted model
    Settings.embed_model = HuggingFaceEmbedding(model_name=str(args.model), device="cpu")
    Settings.embed_model.get_text_embedding("warm-up")
    load_s = time.perf_counter() - t0

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="li-side-"))
    t0 = time.perf_counter()
    documents = SimpleDirectoryReader(str(args.corpus)).load_data()
    read_s = time.perf_counter() - t0
    nodes = Settings.node_parser.get_nodes_from_documents(documents)
    split_s = time.perf_counter() - t0 - read_s
    store = LanceDBVectorStore(uri=str(workdir / "lancedb"), table_name="scifact")
    index = VectorStoreIndex(
        nodes, storage_context=StorageContext.from_defaults(vector_store=store)
    )
    ingest_s = time.perf_counter() - t0

    retrievers = {}
    bm25_build_s = 0.0
    vector = index.as_retriever(similarity_top_k=args.top_k)
    retrievers["vector"] = vector
    if "bm25" in modes or "fusion" in modes:
        from llama_index.retrievers.bm25 import BM25Retriever

        t0 = time.perf_counter()
        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=args.top_k)
        bm25_build_s = time.perf_counter() - t0
        retrievers["bm25"] = bm25
        if "fusion" in modes:
            from llama_index.core.retrievers import QueryFusionRetriever

            retrievers["fusion"] = QueryFusionRetriever(
                [vector, bm25],
                similarity_top_k=args.top_k,
                num_queries=1,  # the question itself: no LLM query rewriting
                mode="reciprocal_rerank",
                use_async=False,
            )

    results: dict[str, dict[str, object]] = {}
    for mode in modes:
        retriever = retrievers[mode]
        ranked: dict[str, list[str]] = {}
        seconds: list[float] = []
        for q in queries:
            t0 = time.perf_counter()
            hits = retriever.retrieve(q["text"])
            seconds.append(time.perf_counter() - t0)
            ranked[q["id"]] = [Path(h.node.metadata.get("file_name", "")).stem for h in hits]
        results[mode] = {"ranked": ranked, "seconds": seconds}

    payload = {
        "versions": _versions(),
        "documents": len(documents),
        "nodes": len(nodes),
        "model_load_s": load_s,
        "read_s": read_s,
        "split_s": split_s,
        "ingest_s": ingest_s,
        "bm25_build_s": bm25_build_s,
        "top_k": args.top_k,
        "modes": results,
    }
    args.out.write_text(json.dumps(payload), encoding="utf-8")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in (
        "llama-index-core",
        "llama-index-embeddings-huggingface",
        "llama-index-vector-stores-lancedb",
        "llama-index-retrievers-bm25",
        "llama-index-readers-file",
        "lancedb",
        "sentence-transformers",
        "torch",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


if __name__ == "__main__":
    sys.exit(main())
