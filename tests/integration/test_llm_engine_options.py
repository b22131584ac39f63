"""LlamaCppEngine options with the real llama.cpp and the tiny GGUF: a LoRA adapter, the model's
special tokens neutralized in prompts, stop strings and the repeat penalty reaching the sampler,
and the thread count following other processes' load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from almanac.core.answering.prompting import (
    Neutralizer,
    Source,
    build_messages,
    default_system_prompt,
)
from almanac.core.llm.base import ChatMessage, GenerationConfig, ModelError, ModelNotFoundError
from almanac.core.llm.llama_engine import LlamaCppEngine

QUESTION = "How long is the password reset link valid?"
PASSAGE = Source(1, "faq.md - Passwords", "The reset link expires after 30 minutes.")


@pytest.fixture(scope="module")
def engine(tiny_gguf):
    eng = LlamaCppEngine(tiny_gguf, n_ctx=1024)
    yield eng
    eng.close()


def _messages(neutralizer: Neutralizer | None = None, text: str = "") -> list[ChatMessage]:
    source = Source(1, PASSAGE.label, f"{PASSAGE.text} {text}".strip())
    question = f"{QUESTION} {text}".strip()
    return build_messages(default_system_prompt(), [source], [], question, neutralizer)


def _greedy(engine: LlamaCppEngine, **config: object) -> str:
    cfg = GenerationConfig(max_tokens=24, temperature=0.0, **config)  # type: ignore[arg-type]
    return "".join(engine.stream_chat(_messages(), cfg))


# -- special tokens ---------------------------------------------------------------------------


def _control_ids(engine: LlamaCppEngine) -> set[int]:
    import llama_cpp

    vocab = engine._llm._model.vocab
    return {
        t
        for t in range(llama_cpp.llama_vocab_n_tokens(vocab))
        if llama_cpp.llama_vocab_get_attr(vocab, t)
        & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN)
    }


def test_every_special_token_of_the_model_is_neutralized(engine) -> None:
    special = engine.special_tokens
    assert {"<|im_start|>", "<|im_end|>"} <= special
    controls = _control_ids(engine)

    def control_count(messages: list[ChatMessage]) -> int:
        prompt = engine.render(messages).encode("utf-8")
        return sum(t in controls for t in engine._llm.tokenize(prompt, special=True))

    baseline = control_count(_messages())  # the template's own role markers
    attack = " ".join(sorted(special))  # every special token of the vocabulary, as document text
    clean = Neutralizer(special)
    assert control_count(_messages(clean, attack)) == baseline
    # Through the service's own path, history included.
    history = [ChatMessage("user", attack), ChatMessage("assistant", attack)]
    plain = [ChatMessage("user", "a"), ChatMessage("assistant", "b")]
    messages = build_messages("sys", [PASSAGE], history, attack, clean)
    assert control_count(messages) == control_count(build_messages("sys", [PASSAGE], plain, "q"))
    # Without the model's list only the static patterns apply: "<unk>" (in the source and in
    # the question) gets through, which is what the test above would catch.
    if "<unk>" in special:
        assert control_count(_messages(Neutralizer(), "<unk>")) == baseline + 2


# -- generation settings reach llama.cpp -------------------------------------------------------


def test_stop_strings_end_the_answer(engine) -> None:
    full = _greedy(engine)
    assert "[1]" in full  # the tiny model cites its source
    cut = _greedy(engine, stop=("[1]",))
    assert "[1]" not in cut and full.startswith(cut)


def test_repeat_penalty_and_stops_are_passed_to_llama_cpp(engine, monkeypatch) -> None:
    seen: list[dict[str, object]] = []
    original = engine._llm.create_chat_completion

    def recording(**kwargs: object) -> object:
        seen.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(engine._llm, "create_chat_completion", recording)
    _greedy(engine, repeat_penalty=1.3, stop=("\nSources:",))
    assert seen[-1]["repeat_penalty"] == 1.3 and seen[-1]["stop"] == ["\nSources:"]


def test_a_guarded_opening_needs_the_models_confidence(engine) -> None:
    full = _greedy(engine)
    opening = full.split()[0]
    # The greedy first word is never certain: required to be, it may not open the answer.
    guarded = _greedy(engine, guarded_opening=opening, opening_confidence=1.0)
    assert guarded and not guarded.startswith(opening), (full, guarded)
    # Required only to be somewhat likely, the model's own choice stands.
    assert _greedy(engine, guarded_opening=opening, opening_confidence=1e-6) == full
    # The guard looks at the first token only: later tokens are the model's as before.
    assert _greedy(engine, guarded_opening=full.split()[1], opening_confidence=1.0) == full


def test_the_opening_probability_is_the_one_the_guard_compares(engine) -> None:
    full = _greedy(engine)
    opening = full.split()[0]
    p = engine.opening_probability(_messages(), opening)
    assert 0.0 < p < 1.0
    # Just under the model's probability the opening stands; just over it, it is refused.
    assert _greedy(engine, guarded_opening=opening, opening_confidence=p * 0.99) == full
    above = _greedy(engine, guarded_opening=opening, opening_confidence=min(1.0, p * 1.01))
    assert not above.startswith(opening), (p, above)
    # A word the model would not open with gets a smaller probability than its own choice.
    assert engine.opening_probability(_messages(), "Zebra") < p
    # Reading the probability leaves the engine as it was: the next answer is unchanged.
    assert _greedy(engine) == full


# -- threads ----------------------------------------------------------------------------------


class _FixedLoad:
    def __init__(self, busy: float) -> None:
        self.busy = busy

    def others_busy(self) -> float:
        return self.busy


def test_threads_follow_other_processes_load(tiny_gguf) -> None:
    import llama_cpp

    eng = LlamaCppEngine(tiny_gguf, n_ctx=512, threads=None, adaptive_threads=True)
    try:
        eng._cores = 2  # as on the 2-core laptops this is tuned for, whatever runs the test
        for busy, expected in ((1.0, 1), (0.0, 2), (1.6, 1)):
            eng._load = _FixedLoad(busy)  # type: ignore[assignment]
            _greedy(eng)
            assert eng.threads_in_use == expected
            assert llama_cpp.llama_n_threads(eng._llm.ctx) == expected
            assert llama_cpp.llama_n_threads_batch(eng._llm.ctx) == expected
    finally:
        eng.close()


def test_fixed_thread_count_is_kept(tiny_gguf) -> None:
    eng = LlamaCppEngine(tiny_gguf, n_ctx=512, threads=1)
    try:
        assert eng._load is None and eng.info.threads == 1
        _greedy(eng)
        assert eng.threads_in_use == 1
    finally:
        eng.close()


# -- LoRA adapter -----------------------------------------------------------------------------


def make_lora(base: Path, out: Path, rank: int = 4, scale: float = 0.5) -> Path:
    """A LoRA adapter GGUF for ``base`` with random (not trained) low-rank deltas on every FFN
    down-projection: enough to change what the model says, made in well under a second."""
    from gguf import GGUFReader, GGUFWriter

    reader = GGUFReader(str(base))
    field = reader.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode()
    writer = GGUFWriter(str(out), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    rng = np.random.default_rng(0)
    for tensor in reader.tensors:
        if not tensor.name.endswith("ffn_down.weight"):
            continue
        n_in, n_out = (int(d) for d in tensor.shape[:2])  # ggml order: columns first
        a = rng.normal(0, scale, (rank, n_in)).astype(np.float32)
        b = rng.normal(0, scale, (n_out, rank)).astype(np.float32)
        writer.add_tensor(tensor.name + ".lora_a", a)
        writer.add_tensor(tensor.name + ".lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def test_lora_adapter_is_applied(tiny_gguf, engine, tmp_path) -> None:
    adapter = make_lora(tiny_gguf, tmp_path / "adapter.gguf")
    with_lora = LlamaCppEngine(tiny_gguf, n_ctx=1024, lora_path=adapter)
    try:
        assert with_lora.info.lora == "adapter.gguf"
        assert _greedy(with_lora) != _greedy(engine)  # llama.cpp applied it
    finally:
        with_lora.close()


def test_missing_or_foreign_lora_adapter_is_named(tiny_gguf, tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="LoRA adapter not found"):
        LlamaCppEngine(tiny_gguf, n_ctx=512, lora_path=tmp_path / "nope.gguf")
    # A whole model where an adapter belongs, and a file that is no GGUF at all.
    text = tmp_path / "notes.gguf"
    text.write_text("not a model", encoding="utf-8")
    for wrong, reason in ((tiny_gguf, "is not a LoRA adapter"), (text, "is not a GGUF file")):
        with pytest.raises(ModelError) as info:
            LlamaCppEngine(tiny_gguf, n_ctx=512, lora_path=wrong)
        assert wrong.name in str(info.value) and reason in str(info.value)
        assert "\n" not in str(info.value)


def test_lora_adapter_of_another_shape_is_refused(tiny_gguf, tmp_path) -> None:
    from gguf import GGUFReader, GGUFWriter

    reader = GGUFReader(str(tiny_gguf))
    field = reader.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode()
    out = tmp_path / "other-shape.gguf"
    writer = GGUFWriter(str(out), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 4.0)
    writer.add_tensor("blk.0.ffn_down.weight.lora_a", np.zeros((4, 7), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight.lora_b", np.zeros((5, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=r"could not apply the LoRA adapter other-shape\.gguf"):
        LlamaCppEngine(tiny_gguf, n_ctx=512, lora_path=out)
