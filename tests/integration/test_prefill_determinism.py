"""One prompt, the same numbers, however the engine slices it: the slice sizes follow wall time,
so without PREFILL_ALIGN a sampled answer changed from run to run on a busy machine. Real
llama.cpp with the default model (Gemma-3-270M Q4_K_M + adapter, repacked CPU kernels), which
``make install`` provides; skipped without it."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from almanac.core.llm import llama_engine
from almanac.core.llm.base import ChatMessage
from almanac.core.llm.default_model import DefaultModelError, resolve_default_model
from almanac.core.llm.llama_engine import (
    N_BATCH,
    PREFILL_ALIGN,
    LlamaCppEngine,
    slice_end,
)

PASSAGE = (
    "The terminal charges in its cradle in about 3.5 hours. Receipts print at 70 mm per second. "
)
MESSAGES = [
    ChatMessage("system", "Answer from the sources.\n\nSources:\n\n[1] guide.md\n" + PASSAGE * 30),
    ChatMessage("user", "How long does charging take?"),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    from almanac.app.environment import model_cache_dir

    try:
        default = resolve_default_model(cache_dir=model_cache_dir())
        runtime = default.prepare(model_cache_dir())
    except DefaultModelError as exc:
        pytest.skip(f"no default model: {exc}")
    loaded = LlamaCppEngine(
        runtime.path,
        n_ctx=2048,
        threads=2,
        lora_path=default.adapter,
        chat_format=default.chat_format,
    )
    yield loaded
    loaded.close()


def _logits(engine: LlamaCppEngine, sizes: Iterator[int], monkeypatch, *, cold: bool) -> np.ndarray:
    monkeypatch.setattr(llama_engine, "prefill_slice", lambda _per_token: next(sizes))
    monkeypatch.setattr(llama_engine, "PREFILL_FIRST", next(sizes))
    llm = engine._llm
    if cold:
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = 0
    payload = llama_engine._payload(MESSAGES)
    assert engine._prefill(payload, threading.Event())
    llm.eval(engine._prompt_tokens(payload)[-1:])
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


def test_any_slicing_gives_the_same_logits(engine, monkeypatch) -> None:
    rng = random.Random(7)
    schedules = {
        "64 each": itertools.repeat(64),
        "16, then 64": itertools.chain([16], itertools.repeat(64)),
        "a whole batch": itertools.repeat(N_BATCH),
        "7 each": itertools.repeat(7),
        "3 each": itertools.repeat(3),
        "random": (rng.randint(1, 200) for _ in itertools.count()),
    }
    reference = None
    for name, sizes in schedules.items():
        logits = _logits(engine, sizes, monkeypatch, cold=True)
        if reference is None:
            reference = logits
        assert np.array_equal(logits, reference), name
    # From a warm cache that holds this prompt (the common case in a chat): the same again.
    warm = _logits(engine, itertools.repeat(40), monkeypatch, cold=False)
    assert np.array_equal(warm, reference)


@pytest.mark.parametrize(
    ("start", "total", "wanted", "end"),
    [
        (0, 700, 16, 16),
        (16, 700, 61, 72),  # rounded down to a multiple of PREFILL_ALIGN
        (0, 700, 3, PREFILL_ALIGN),  # never fewer
        (688, 700, 16, 700),  # 4 would be left over: taken now
        (0, 2000, 10_000, N_BATCH - PREFILL_ALIGN),  # room for a tail within one batch
        (0, 5, 64, 5),
    ],
)
def test_slice_ends(start: int, total: int, wanted: int, end: int) -> None:
    assert slice_end(start, total, wanted) == end
