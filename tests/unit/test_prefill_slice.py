"""How the engine slices a prompt: short enough for Stop to act quickly, long enough that the
per-call cost of llama_decode does not dominate (benchmarks/close_latency.py, adapter_speed.py)."""

from __future__ import annotations

import pytest

from almanac.core.llm.llama_engine import (
    N_BATCH,
    PREFILL_EFFICIENT,
    PREFILL_MAX_SECONDS,
    PREFILL_MIN,
    PREFILL_SECONDS,
    prefill_slice,
)


def test_a_small_model_on_a_busy_machine_keeps_efficient_slices() -> None:
    # 6 ms a token of wall time (SmolLM2-135M, 1 thread, 2 busy cores): the wall-clock target
    # alone would give 33 tokens at 0.2 s, and 16 at the old 0.1 s; never below the floor.
    assert prefill_slice(0.006) >= PREFILL_EFFICIENT
    assert prefill_slice(0.015) == PREFILL_EFFICIENT  # 0.48 s: still within the limit


def test_a_slow_model_gets_slices_that_stop_within_the_limit() -> None:
    size = prefill_slice(0.05)  # a 3B model on a laptop CPU
    assert PREFILL_MIN <= size < PREFILL_EFFICIENT
    assert size * 0.05 <= PREFILL_MAX_SECONDS
    assert prefill_slice(1.0) == PREFILL_MIN  # nothing smaller is worth a call


@pytest.mark.parametrize("per_token", [0.0, 1e-5, 0.0005, 0.002])
def test_a_fast_model_gets_about_the_target_time_and_never_over_a_batch(per_token: float) -> None:
    size = prefill_slice(per_token)
    assert PREFILL_EFFICIENT <= size <= N_BATCH
    if per_token > 0 and PREFILL_SECONDS / per_token < N_BATCH:
        assert size == int(PREFILL_SECONDS / per_token)
