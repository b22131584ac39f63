"""The int8 ONNX embedder: export from the bundled weights, the cache, and agreement with fp32.

Real export (torch -> ONNX -> onnxruntime quantizer), real onnxruntime, real LanceDB. The shared
export lives in build/test-models/onnx-cache (keyed by content, so it is reused across runs); the
tests that are about exporting use fresh temporary caches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from almanac.app.services import build_services
from almanac.app.settings import Settings, validate_settings
from almanac.core.documents import read_document
from almanac.core.embedding import onnx_export
from almanac.core.embedding.embedding import EMBEDDER_BACKENDS, bundled_model_path, embedding_text
from almanac.core.embedding.onnx_embedder import OnnxEmbedder
from almanac.core.embedding.onnx_export import MANIFEST_FILE, MODEL_FILE, ensure_exported
from almanac.core.indexing.chunking import Chunker
from almanac.core.system.hashing import sha256_file

REPO = Path(__file__).resolve().parents[2]
SHARED_CACHE = REPO / "build" / "test-models" / "onnx-cache"

# Measured on 14,150 SciFact chunks (benchmarks/retrieval_quality.py --compare-with): cosine
# between int8 and fp32 vectors of the same text averages ~0.994, minimum ~0.989. A wrong export
# lands far below these bounds (per-tensor weights: mean ~0.945; padding ignored: far worse).
MIN_COSINE = 0.98
MEAN_COSINE = 0.99


@pytest.fixture(scope="module")
def int8() -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir=SHARED_CACHE)


@pytest.fixture(scope="module")
def sample_texts(fp32_embedder, sample_kb: Path) -> list[str]:
    """Exactly what ingestion embeds for the sample KB (heading context + chunk text)."""
    chunker = Chunker(fp32_embedder.count_tokens)
    texts: list[str] = []
    for path in sorted(p for p in sample_kb.rglob("*") if p.is_file()):
        for chunk in chunker.chunk_document(path.as_posix(), read_document(path)):
            texts.append(embedding_text(chunk.heading_path, chunk.text))
    return texts


_EXPORT_IN_CHILD = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
from almanac.core.embedding.embedding import bundled_model_path
from almanac.core.embedding.onnx_export import ensure_exported
print("DIR", ensure_exported(bundled_model_path(), "int8", Path(sys.argv[1])).directory)
"""


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory) -> tuple[Path, list[str]]:
    """An empty cache filled by two processes started at the same time."""
    root = tmp_path_factory.mktemp("onnx-fresh") / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _EXPORT_IN_CHILD, str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=540)
        assert proc.returncode == 0, err
        outputs.append(out)
    return root, outputs


def _exports(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


# -- export and cache ---------------------------------------------------------------------------


def test_concurrent_first_use_exports_once(fresh_cache) -> None:
    root, outputs = fresh_cache
    (export,) = _exports(root)
    # Both processes got the same folder; only one of them did the work.
    assert [line for out in outputs for line in out.splitlines() if line.startswith("DIR")] == [
        f"DIR {export}"
    ] * 2
    assert sum(out.count("exporting") for out in outputs) == 1
    assert not [p for p in root.iterdir() if p.name.endswith((".tmp", ".trash"))]
    manifest = json.loads((export / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["variant"] == "int8" and manifest["max_seq_length"] == 256
    assert manifest["files"][MODEL_FILE] == sha256_file(export / MODEL_FILE)
    # int8 weights: about a quarter of the 90 MB float32 checkpoint.
    assert (export / MODEL_FILE).stat().st_size < 0.35 * (
        bundled_model_path() / "model.safetensors"
    ).stat().st_size


def test_cached_export_is_reused_without_exporting(fresh_cache, monkeypatch) -> None:
    root, _ = fresh_cache
    (export,) = _exports(root)
    before = (export / MODEL_FILE).stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache was valid")

    monkeypatch.setattr(onnx_export, "_export", no_export)
    again = ensure_exported(bundled_model_path(), "int8", root)
    assert again.directory == export
    assert (export / MODEL_FILE).stat().st_mtime_ns == before
    embedder = OnnxEmbedder(cache_dir=root)
    assert embedder.embed(["reused"]).shape == (1, 384)


def test_damaged_cached_model_is_exported_again(fresh_cache, tmp_path, caplog) -> None:
    root, _ = fresh_cache
    copy = tmp_path / "cache"
    shutil.copytree(root, copy)
    (export,) = _exports(copy)
    model = export / MODEL_FILE
    data = bytearray(model.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    model.write_bytes(bytes(data))  # same size, different weights
    damaged = sha256_file(model)

    with caplog.at_level("WARNING", logger="almanac.core.embedding.onnx_export"):
        embedder = OnnxEmbedder(cache_dir=copy)  # no crash: detected, exported again
    assert "damaged" in caplog.text
    (again,) = _exports(copy)
    manifest = json.loads((again / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert sha256_file(again / MODEL_FILE) == manifest["files"][MODEL_FILE] != damaged
    vector = embedder.embed_query("the sync client uses TCP port 47310")
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_unreadable_manifest_is_not_trusted(fresh_cache, tmp_path, monkeypatch) -> None:
    root, _ = fresh_cache
    copy = tmp_path / "cache"
    shutil.copytree(root, copy)
    (export,) = _exports(copy)
    (export / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    calls: list[Path] = []

    def record(model_dir, spec, variant, work):
        calls.append(work)
        raise onnx_export.EmbeddingError("stop here: the point is that an export was attempted")

    monkeypatch.setattr(onnx_export, "_export", record)
    with pytest.raises(onnx_export.EmbeddingError, match="stop here"):
        ensure_exported(bundled_model_path(), "int8", copy)
    assert len(calls) == 1
    # The failed attempt leaves no half-written folder behind.
    assert not [p for p in copy.iterdir() if p.name.endswith(".tmp")]


# -- agreement with the fp32 model ------------------------------------------------------------


def test_int8_vectors_are_close_to_fp32(fp32_embedder, int8, sample_texts) -> None:
    assert len(sample_texts) > 30
    fp32 = fp32_embedder.embed(sample_texts)
    quantized = int8.embed(sample_texts)
    assert quantized.dtype == np.float32 and quantized.shape == fp32.shape
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    cosine = (fp32 * quantized).sum(axis=1)
    assert cosine.min() >= MIN_COSINE, cosine.min()
    assert cosine.mean() >= MEAN_COSINE, cosine.mean()


def test_int8_export_is_the_fused_graph(int8) -> None:
    # The fusion silently falling back to the unfused graph would cost 8% of ingest speed.
    import onnx

    assert int8._exported.manifest["fused_norms"] is True
    ops = {node.op_type for node in onnx.load(str(int8.model_file)).graph.node}
    assert {"LayerNormalization", "BiasGelu", "MatMulInteger"} <= ops, ops


def test_ranking_agrees_with_fp32(fp32_embedder, int8, sample_texts, sample_questions) -> None:
    fp32_docs = fp32_embedder.embed(sample_texts)
    int8_docs = int8.embed(sample_texts)
    overlaps = []
    for q in sample_questions:
        fp32_scores = fp32_docs @ fp32_embedder.embed_query(q["question"])
        fp32_rank = np.argsort(-fp32_scores)
        int8_rank = np.argsort(-(int8_docs @ int8.embed_query(q["question"])))
        # int8 may swap near-ties (overlapping chunks score within ~0.04 of each other), but its
        # first pick is always one fp32 ranks near the top with nearly the same score.
        assert int8_rank[0] in fp32_rank[:3], q["question"]
        assert fp32_scores[fp32_rank[0]] - fp32_scores[int8_rank[0]] < 0.05, q["question"]
        overlaps.append(len(set(fp32_rank[:5]) & set(int8_rank[:5])) / 5)
    assert float(np.mean(overlaps)) >= 0.8


def test_count_tokens_matches_fp32(fp32_embedder, int8, sample_texts) -> None:
    texts = [
        "",
        "   ",
        "Hello, World!",
        "naïve café Ünïcödé — “quotes” and emoji 🙂",
        "中文字符 mixed with English",
        "x" * 3000,  # one 'word' longer than the WordPiece limit
        "word " * 700,  # far past 256
        *sample_texts[:20],
    ]
    assert [int8.count_tokens(t) for t in texts] == [fp32_embedder.count_tokens(t) for t in texts]
    assert int8.max_tokens == fp32_embedder.max_tokens == 256
    assert int8.dim == fp32_embedder.dim == 384


def test_truncation_at_256_tokens_matches_fp32(fp32_embedder, int8) -> None:
    vocabulary = ("alpha", "beta", "gamma", "delta", "river", "stone", "cloud")
    words = [vocabulary[i % len(vocabulary)] for i in range(254)]
    tail = [
        "submarine",
        "volcano",
        "jazz",
        "pizza",
        "glacier",
        "orchestra",
        "tractor",
        "lantern",
        "violin",
        "harbor",
    ]
    # One word piece per word: 254 pieces + [CLS] + [SEP] is exactly the 256-token limit.
    assert fp32_embedder.count_tokens(" ".join(words)) == int8.count_tokens(" ".join(words)) == 254
    full = " ".join(words)
    past_limit = " ".join(words + tail * 30)  # the tail lies wholly past the limit
    tail_inside = " ".join(words[: -len(tail)] + tail)  # same length, tail inside the limit
    for model in (fp32_embedder, int8):
        full_v, past_v, inside_v = model.embed([full, past_limit, tail_inside])
        assert float(full_v @ past_v) > 0.9999, model  # everything past 256 is dropped
        assert float(full_v @ inside_v) < 0.9999, model  # the last kept pieces do count
    assert float(int8.embed_query(past_limit) @ fp32_embedder.embed_query(past_limit)) >= MIN_COSINE


def test_vectors_do_not_depend_on_batch_neighbours(int8, sample_texts) -> None:
    together = int8.embed(sample_texts[:12])
    alone = np.stack([int8.embed_query(t) for t in sample_texts[:12]])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_empty_input_and_concurrent_callers(int8, sample_texts) -> None:
    assert int8.embed([]).shape == (0, 384)
    expected = int8.embed(sample_texts[:8])
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(int8.embed(sample_texts[:8]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


# -- wiring ---------------------------------------------------------------------------------------


def _found(result, folder: Path, q: dict) -> int | None:
    for i, hit in enumerate(result.hits):
        if (
            hit.path == (folder / q["path"]).as_posix()
            and (q["page"] is None or hit.page == q["page"])
            and q["must_contain"] in f"{hit.heading}\n{hit.text}"
        ):
            return i
    return None


def test_ingest_and_search_with_int8_backend(
    tmp_path, sample_kb, sample_questions, monkeypatch
) -> None:
    monkeypatch.setenv("ALMANAC_MODEL_CACHE_DIR", str(SHARED_CACHE))
    folder = tmp_path / "docs"
    shutil.copytree(sample_kb, folder)
    services = build_services(tmp_path / "kb", embedder_backend="int8")
    assert isinstance(services.embedder, OnnxEmbedder)
    report = services.ingestor.ingest([folder])
    assert report.failed == () and report.added == 10 and report.chunks_embedded > 0
    searcher = services.searcher
    ranks = [_found(searcher.search(q["question"], 5), folder, q) for q in sample_questions]
    missed = [q["question"] for q, r in zip(sample_questions, ranks, strict=True) if r is None]
    assert not missed, missed
    assert sum(1 for r in ranks if r == 0) >= 0.6 * len(ranks)


def test_fp32_knowledge_base_keeps_working_with_int8(tmp_path, sample_kb, monkeypatch) -> None:
    monkeypatch.setenv("ALMANAC_MODEL_CACHE_DIR", str(SHARED_CACHE))
    folder = tmp_path / "docs"
    shutil.copytree(sample_kb, folder)
    old = build_services(tmp_path / "kb", embedder_backend="fp32")
    old.ingestor.ingest([folder])
    del old
    services = build_services(tmp_path / "kb", embedder_backend="int8")
    hits = services.searcher.search("Which ports does LAN sync use?", 3).hits
    assert hits and "47310" in hits[0].text
    # Nothing changed on disk, so nothing is embedded again.
    assert services.ingestor.ingest([folder]).chunks_embedded == 0


def test_backend_choices_are_validated() -> None:
    from almanac.app.services import build_embedder
    from almanac.cli import EMBEDDER_BACKENDS as CLI_BACKENDS

    assert CLI_BACKENDS == EMBEDDER_BACKENDS
    assert validate_settings(Settings()) == []
    assert Settings().embedder_backend == "int8"
    (reason,) = validate_settings(Settings(embedder_backend="int4"))
    assert "int4" in reason
    with pytest.raises(ValueError, match="int4"):
        build_embedder(None, "int4")


def test_sessions_are_first_come_first_served() -> None:
    from almanac.core.embedding.onnx_embedder import _SessionPool

    pool = _SessionPool(1, object)
    order: list[str] = []
    queued = threading.Event()

    def waiter() -> None:
        queued.set()
        with pool.session():
            order.append("waiter")

    with pool.session():
        thread = threading.Thread(target=waiter)
        thread.start()
        queued.wait(5)
        while not pool._waiting:  # until the waiter is in the queue
            time.sleep(0.001)
    # The holder comes straight back; the one already waiting must go first.
    with pool.session():
        order.append("holder again")
    thread.join(5)
    assert order == ["waiter", "holder again"]
    assert pool.created == 1


def test_one_session_per_concurrent_run_made_on_demand(sample_texts) -> None:
    embedder = OnnxEmbedder(cache_dir=SHARED_CACHE, threads=2)
    embedder.embed_query("how do I reset my password?")
    assert embedder._sessions.created == 1  # a process that only searches holds one
    expected = np.stack([embedder.embed_query(t) for t in sample_texts[:16]])
    np.testing.assert_allclose(embedder.embed(sample_texts[:16]), expected, atol=1e-6)
    assert embedder._sessions.created <= 2  # never more than the workers


def test_a_session_is_made_only_when_all_are_busy() -> None:
    from almanac.core.embedding.onnx_embedder import _SessionPool

    pool = _SessionPool(2, object)
    with pool.session() as a:
        pass
    with pool.session() as b:  # reused, not a new one
        assert b is a and pool.created == 1
        with pool.session() as c:  # the first is busy: a second is made
            assert c is not a and pool.created == 2
            got: list[object] = []
            thread = threading.Thread(target=lambda: got.append(pool.session().__enter__()))
            thread.start()
            thread.join(0.2)
            assert thread.is_alive() and pool.created == 2  # at the limit: it waits
        thread.join(5)
        assert got == [c]


def test_session_pool_survives_a_failed_factory() -> None:
    from almanac.core.embedding.onnx_embedder import _SessionPool

    made: list[object] = []

    def factory() -> object:
        if made:
            raise RuntimeError("out of memory")
        made.append(object())
        return made[-1]

    pool = _SessionPool(2, factory)
    with pool.session() as first:
        with pytest.raises(RuntimeError), pool.session():
            pass
        assert pool.created == 1
    with pool.session() as again:  # the working session is still handed out
        assert again is first
