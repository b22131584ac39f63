"""Loss masking (assistant turns only), the step schedule, device choice, and exact resume.

A micro Llama (1 layer, 32 wide) with a byte-level BPE tokenizer and the ChatML template is built
in a temporary folder: real transformers + PEFT, a few milliseconds per step.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from almanac.core.llm.base import ChatMessage
from almanac.devtools.tiny_model import CHAT_TEMPLATE, IM_END, IM_START
from almanac.finetune.encoding import IGNORE, encode_conversation, load_tokenizer
from almanac.finetune.errors import FinetuneError
from almanac.finetune.recipe import LoraSettings, Recipe, TrainSettings
from almanac.finetune.train import (
    latest_checkpoint,
    micro_batches,
    pick_device,
    total_steps,
    train_lora,
)

CORPUS = [
    "You are a support assistant. Sources: [1] manual.pdf, page 4 - Password reset",
    "The reset link expires after 30 minutes [1]. How long is the link valid?",
    "I couldn't find that in your documents. Which ports does LAN sync use?",
    "UDP port 47310 and TCP port 47311 [2]. user assistant system",
]


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("micro-base")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=IM_END)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        initializer_range=0.3,  # embeddings large enough for a confident next-token guess
    )
    LlamaForCausalLM(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def tokenizer(micro_dir):
    return load_tokenizer(micro_dir)


def conversation(answer="The reset link expires after 30 minutes [1]."):
    return [
        ChatMessage("system", "You are a support assistant. Sources: [1] manual.pdf"),
        ChatMessage("user", "How long is the link valid?"),
        ChatMessage("assistant", answer),
    ]


def test_only_the_assistant_answer_and_its_end_token_are_targets(tokenizer):
    messages = conversation()
    encoded = encode_conversation(tokenizer, messages)
    assert len(encoded.labels) == len(encoded.input_ids)
    targets = [i for i, label in enumerate(encoded.labels) if label != IGNORE]
    # One contiguous span, and its labels are the input tokens themselves.
    assert targets == list(range(targets[0], targets[-1] + 1))
    assert all(encoded.labels[i] == encoded.input_ids[i] for i in targets)
    span = tokenizer.decode([encoded.input_ids[i] for i in targets])
    assert span == messages[-1].content + IM_END + "\n"
    prefix = tokenizer.decode(encoded.input_ids[: targets[0]])
    assert prefix.endswith(f"{IM_START}assistant\n")
    assert "How long is the link valid?" in prefix and "support assistant" in prefix


def test_every_assistant_turn_is_a_target_and_user_turns_between_are_not(tokenizer):
    messages = [
        ChatMessage("user", "How long is the link valid?"),
        ChatMessage("assistant", "30 minutes [1]."),
        ChatMessage("user", "Which ports does LAN sync use?"),
        ChatMessage("assistant", "UDP port 47310 [2]."),
    ]
    encoded = encode_conversation(tokenizer, messages)
    kept = tokenizer.decode([t for t in encoded.labels if t != IGNORE])
    assert kept == f"30 minutes [1].{IM_END}\nUDP port 47310 [2].{IM_END}\n"


def test_a_template_that_rewrites_earlier_turns_is_refused(micro_dir):
    tokenizer = load_tokenizer(micro_dir)
    # Like reasoning templates that drop earlier assistant text once a later turn follows.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
        "{{ '<|im_start|>assistant\n<|im_end|>\n' }}{% else %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    messages = [*conversation()[1:], ChatMessage("user", "And?"), ChatMessage("assistant", "Yes.")]
    with pytest.raises(FinetuneError, match="renders earlier turns differently"):
        encode_conversation(tokenizer, messages)


def test_steps_follow_epochs_unless_max_steps_is_set():
    recipe = Recipe(train=TrainSettings(epochs=2, batch_size=2, grad_accum=3))
    assert total_steps(recipe, 13) == 2 * 3  # ceil(13 / 6) per epoch
    assert total_steps(Recipe(train=TrainSettings(max_steps=7)), 13) == 7


def test_micro_batches_cover_each_epoch_once_and_are_a_function_of_the_step():
    first = micro_batches(10, 3, seed=1, start=0, count=4)  # one epoch: 4 micro-batches
    assert sorted(i for b in first for i in b) == list(range(10))
    later = micro_batches(10, 3, seed=1, start=2, count=4)
    assert later[:2] == first[2:]  # the same data, however the run was cut
    assert micro_batches(10, 3, seed=2, start=0, count=4) != first


def test_cpu_without_a_gpu_and_bf16_or_fp16_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == ("cpu", torch.float32)
    with pytest.raises(FinetuneError, match="no CUDA GPU"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert pick_device("auto") == ("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert pick_device("auto") == ("cuda", torch.float16)
    assert pick_device("cpu") == ("cpu", torch.float32)


def _rows(tokenizer):
    answers = [
        "The reset link expires after 30 minutes [1].",
        "UDP port 47310 and TCP port 47311 [2].",
        "I couldn't find that in your documents.",
        "30 minutes [1].",
        "TCP port 47311 [1].",
    ]
    return [encode_conversation(tokenizer, conversation(a)) for a in answers]


def _recipe(steps=6):
    return Recipe(
        lora=LoraSettings(r=4, alpha=8, dropout=0.1),  # dropout: the RNG state must resume too
        train=TrainSettings(
            learning_rate=1e-2,
            max_steps=steps,
            batch_size=2,
            grad_accum=2,
            checkpoint_every=2,
            threads=1,  # a micro model only loses from threads (and shared CPUs stall them)
        ),
    )


def test_interrupted_training_resumes_to_the_same_adapter(micro_dir, tokenizer, tmp_path):
    rows = _rows(tokenizer)
    recipe = _recipe()
    straight = train_lora(
        micro_dir, rows, recipe, tmp_path / "a", fingerprint="f", model_type="llama", progress=False
    )
    assert straight.steps == 6 and len(straight.losses) == 6

    def interrupt_at_3(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lora(
            micro_dir,
            rows,
            recipe,
            tmp_path / "b",
            fingerprint="f",
            model_type="llama",
            progress=False,
            on_step=interrupt_at_3,
        )
    checkpoint = latest_checkpoint(tmp_path / "b" / "checkpoints")
    assert checkpoint is not None and checkpoint.name == "step-000003"
    assert not (tmp_path / "b" / "adapter").exists()

    with pytest.raises(FinetuneError, match="--resume"):
        train_lora(
            micro_dir, rows, recipe, tmp_path / "b", fingerprint="f", model_type="llama",
            progress=False,
        )  # fmt: skip
    with pytest.raises(FinetuneError, match="other training data or settings"):
        train_lora(
            micro_dir, rows, recipe, tmp_path / "b", fingerprint="other", model_type="llama",
            resume=True, progress=False,
        )  # fmt: skip

    resumed = train_lora(
        micro_dir,
        rows,
        recipe,
        tmp_path / "b",
        fingerprint="f",
        model_type="llama",
        resume=True,
        progress=False,
    )
    assert resumed.resumed_from == 3
    assert resumed.steps == straight.steps == 6
    assert [s for s, _ in resumed.losses] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in resumed.losses] == pytest.approx([v for _, v in straight.losses])
    a = load_file(str(straight.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    config = json.loads((resumed.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and set(config["target_modules"]) >= {"q_proj", "down_proj"}
    # Old checkpoints are pruned to keep_checkpoints (2).
    names = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert names == ["step-000004", "step-000006"]


def test_training_lowers_the_loss_on_the_answers(micro_dir, tokenizer, tmp_path):
    rows = _rows(tokenizer)
    result = train_lora(
        micro_dir, rows, _recipe(steps=30), tmp_path, fingerprint="f", model_type="llama",
        progress=False,
    )  # fmt: skip
    first = sum(loss for _, loss in result.losses[:3]) / 3
    assert result.final_loss is not None and result.final_loss < 0.7 * first
    assert result.trainable_parameters < result.total_parameters
