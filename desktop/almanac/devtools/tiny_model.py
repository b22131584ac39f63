"""A tiny chat model (a few MB GGUF) built offline and reproducibly, for tests and benchmarks.

Everything comes from the project itself: a SentencePiece tokenizer trained on the sample knowledge
base, the system prompt and the training conversations; a small Llama trained for a few hundred
steps on support conversations in the app's exact prompt format
(``almanac.core.answering.prompting``); then
llama.cpp's own converter and quantizer (``almanac.tooling.gguf_export``). It does not know facts,
but
run through llama.cpp with its ChatML template it answers an in-domain question with one sentence
that ends in a source marker like ``[1]`` and stops at ``<|im_end|>``.

``ensure_shaped_model`` builds a GGUF with the tensor shapes of a real 0.5B chat model and random
weights, for speed benchmarks (random weights cost the same to run as trained ones).

    python -m almanac.devtools.tiny_model [--cache DIR] [--shaped qwen2.5-0.5b]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from almanac.core.answering.prompting import (
    Source,
    build_messages,
    default_system_prompt,
    source_label,
)
from almanac.core.documents import DocumentError, is_supported, read_document
from almanac.core.llm.base import ChatMessage
from almanac.tooling import gguf_export

log = logging.getLogger(__name__)

Rows = list[tuple[list[int], list[int]]]  # (input ids, labels) per training example

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CACHE = REPO / "build" / "test-models"
SAMPLE_KB = REPO / "resources" / "sample-kb"
QUESTIONS = REPO / "tests" / "data" / "sample_kb_questions.json"
UNANSWERABLE = REPO / "tests" / "data" / "sample_kb_unanswerable.json"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Identical to llama-cpp-python's CHATML_CHAT_TEMPLATE (and Qwen's, minus the default system turn).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NOT_FOUND = "I couldn't find that in your documents."
SEED = 20250611

# Short answers for the sample questions (keyed by question). A question without an entry gets
# its ``must_contain`` text as the answer. Facts are taken from the sample knowledge base.
ANSWERS: dict[str, str] = {
    "How long is the password reset link valid?": (
        "The reset link expires after 30 minutes and can be used only once"
    ),
    "How do I install Northwind Sync silently for all users on Windows?": (
        "Run msiexec /i NorthwindSync-4.2.1-x64.msi /qn from an elevated command prompt"
    ),
    "How do I install the Northwind Sync client on Ubuntu?": (
        "Install the .deb package with sudo apt install ./northwind-sync_4.2.1_amd64.deb"
    ),
    "How do I reset the Northwind Sync client on macOS?": (
        "Quit Northwind Sync, hold the Option key while you open it, and click Reset and sign out"
    ),
    "How do I reset the Northwind Sync client on Windows?": (
        "Quit the client, then run %LOCALAPPDATA%\\NorthwindSync\\NorthwindSync.exe --reset"
    ),
    "Which network ports does LAN sync use?": (
        "LAN sync uses UDP port 47310 to find computers and TCP port 47311 to transfer data"
    ),
    "How long do share links stay valid on the Free plan?": (
        "On the Free plan, share links are view-only and expire after 7 days"
    ),
    "How long does a file lock last before it is released automatically?": (
        "A lock is released automatically after 8 hours"
    ),
    "How do I reset my password?": (
        "Click Forgot password?, enter your email and open the reset link, "
        "which expires after 30 minutes"
    ),
    "How do I uninstall Northwind Sync on Linux?": (
        "Run sudo apt remove northwind-sync on Debian and Ubuntu"
    ),
    "What does error NW-611 mean?": (
        "NW-611 means there is less than 1 GB of free space on the disk of the sync folder"
    ),
    "What causes error NW-418?": (
        "NW-418 almost always means a firewall or antivirus program inspects TLS traffic"
    ),
    "Can I get a refund for an annual subscription?": (
        "Yes, if you cancel within 30 days of purchase you get the full amount back"
    ),
    "What happens to my files after I close my account?": (
        "They can be downloaded read-only for 30 days, then they are permanently deleted"
    ),
    "What is the first response time for a Severity 1 issue on the Business plan?": (
        "On the Business plan, Severity 1 issues get a first response within 1 hour (24/7)"
    ),
    "What monthly uptime does Northwind commit to for Business subscriptions?": (
        "Northwind commits to a monthly uptime of 99.9% for Business subscriptions"
    ),
    "How much can be downloaded through share links per day on the Team plan?": (
        "On the Team plan, share links can serve 200 GB of downloads per day"
    ),
    "When was version 4.2.0 of the desktop client released?": (
        "Version 4.2.0 was released on 2025-04-08"
    ),
    "How long is a SCIM token valid?": (
        "A SCIM token is shown only once and is valid for 365 days"
    ),
    "What are the support hours on the Team plan?": (
        "Team plan support is available Mon-Fri 08:00-18:00 CET"
    ),
}


@dataclass(frozen=True, slots=True)
class TinyConfig:
    vocab_size: int = 1536  # SentencePiece target; the model's vocab is padded to a multiple of 256
    hidden_size: int = 256
    intermediate_size: int = 768
    num_layers: int = 2
    num_heads: int = 4
    max_position_embeddings: int = 2048
    passage_words: int = 48  # passages are clipped around the answer to keep sequences short
    variants: int = 2  # conversations per sample question (different sources, marker positions)
    steps: int = 300
    batch_size: int = 4
    lr: float = 3e-3
    warmup: int = 20
    qtype: str = "Q4_K_M"


@dataclass(frozen=True, slots=True)
class ModelShape:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope_theta: float


SHAPES: dict[str, ModelShape] = {
    "qwen2.5-0.5b": ModelShape(
        hidden_size=896,
        intermediate_size=4864,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        vocab_size=151936,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        rope_theta=1000000.0,
    ),
}


@dataclass(frozen=True, slots=True)
class Passage:
    rel_path: str
    page: int | None
    heading: str
    text: str  # whitespace-collapsed

    def source(self, number: int) -> Source:
        label = source_label(
            str(SAMPLE_KB / self.rel_path), self.page, self.heading, root=str(SAMPLE_KB)
        )
        return Source(number=number, label=label, text=self.text)


@dataclass(frozen=True, slots=True)
class Example:
    messages: tuple[ChatMessage, ...]
    answer: str


# ----------------------------------------------------------------------------- training data


def kb_passages(root: Path = SAMPLE_KB) -> list[Passage]:
    """Every section of the sample knowledge base, in a stable order."""
    out: list[Passage] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_supported(p)):
        try:
            doc = read_document(path)
        except DocumentError:
            continue
        rel = path.relative_to(root).as_posix()
        for section in doc.sections:
            text = " ".join(section.text.split())
            if text:
                out.append(Passage(rel, section.page, " > ".join(section.heading_path), text))
    return out


def _clip(text: str, anchor: str, words: int) -> str:
    """About ``words`` words of ``text`` around ``anchor`` (from the start if it is absent)."""
    tokens = text.split()
    if len(tokens) <= words:
        return text
    at = text.find(anchor)
    first = len(text[:at].split()) if at >= 0 else 0
    start = max(0, min(first - words // 3, len(tokens) - words))
    return " ".join(tokens[start : start + words])


def _load_json(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [d for d in data if isinstance(d, dict)]


def training_examples(cfg: TinyConfig | None = None) -> list[Example]:
    """Support conversations in the app's prompt format, deterministic for a given config."""
    cfg = cfg or TinyConfig()
    rng = random.Random(SEED)
    system = default_system_prompt()
    passages = kb_passages()
    examples: list[Example] = []
    for item in _load_json(QUESTIONS):
        question = str(item["question"])
        needle = str(item["must_contain"])
        rel = str(item["path"])
        found = [p for p in passages if p.rel_path == rel and needle in f"{p.heading} {p.text}"]
        if not found:
            continue
        right = found[0]
        right = Passage(
            right.rel_path, right.page, right.heading, _clip(right.text, needle, cfg.passage_words)
        )
        others = [p for p in passages if p.rel_path != rel or p.heading != right.heading]
        answer_text = ANSWERS.get(question, needle).rstrip(" .")
        for variant in range(cfg.variants):
            count = 1 if variant == 0 else rng.randint(2, 4)
            position = 1 if variant == 0 else rng.randint(1, count)
            distractors = [
                Passage(p.rel_path, p.page, p.heading, _clip(p.text, "", cfg.passage_words))
                for p in rng.sample(others, count - 1)
            ]
            chosen = [*distractors[: position - 1], right, *distractors[position - 1 :]]
            sources = [p.source(i) for i, p in enumerate(chosen, start=1)]
            messages = build_messages(system, sources, [], question)
            examples.append(Example(tuple(messages), f"{answer_text} [{position}]."))
    for item in _load_json(UNANSWERABLE):
        messages = build_messages(system, [], [], str(item["question"]))
        examples.append(Example(tuple(messages), NOT_FOUND))
    return examples


def sample_messages(index: int = 0) -> list[ChatMessage]:
    """A training conversation's prompt, exactly as the app builds it.

    Index 0 is an in-domain question with one source, the right one, as ``[1]``.
    """
    return list(training_examples()[index].messages)


def render_chatml(messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
    """What ``CHAT_TEMPLATE`` renders (kept in step with it by a test)."""
    text = "".join(f"{IM_START}{m.role}\n{m.content}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def _corpus(examples: Sequence[Example]) -> list[str]:
    lines = [default_system_prompt()]
    lines += [p.text for p in kb_passages()]
    for ex in examples:
        lines += [m.content for m in ex.messages] + [ex.answer]
    # SentencePiece reads one sentence per line; newlines become byte tokens.
    return [row.strip() for text in lines for row in text.splitlines() if row.strip()]


# ----------------------------------------------------------------------------- caching


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("transformers", "sentencepiece", "llama-cpp-python", "torch"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def _key(*parts: object) -> str:
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(gguf_export.__file__)):
        digest.update(source.read_bytes())
    digest.update(json.dumps(_versions(), sort_keys=True).encode())
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]


def tiny_model_key(cfg: TinyConfig | None = None) -> str:
    cfg = cfg or TinyConfig()
    examples = training_examples(cfg)
    data = [([(m.role, m.content) for m in ex.messages], ex.answer) for ex in examples]
    return _key(asdict(cfg), data, _corpus(examples))


def ensure_tiny_model(cache_dir: Path = DEFAULT_CACHE, cfg: TinyConfig | None = None) -> Path:
    """The tiny chat GGUF in ``cache_dir``, built first if it is not there yet (~2-3 min)."""
    cfg = cfg or TinyConfig()
    target = cache_dir / f"tiny-chat-{tiny_model_key(cfg)}.gguf"
    if target.is_file():
        return target
    with _build_lock(cache_dir, target.name):
        if target.is_file():  # another process built it while this one waited
            return target
        with _workdir(cache_dir, "tiny") as work:
            _build_tiny(cfg, work, target, cache_dir)
    return target


def ensure_shaped_model(cache_dir: Path = DEFAULT_CACHE, shape: str = "qwen2.5-0.5b") -> Path:
    """A Q4_K_M GGUF with the tensor shapes of ``shape`` and random weights (speed benchmarks)."""
    dims = SHAPES.get(shape)
    if dims is None:
        raise ValueError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})")
    target = cache_dir / f"shaped-{shape}-{_key(asdict(dims), shape)}.gguf"
    if target.is_file():
        return target
    with _build_lock(cache_dir, target.name):
        if target.is_file():
            return target
        with _workdir(cache_dir, "shaped") as work:
            _build_shaped(dims, work, target, cache_dir)
    return target


@contextmanager
def _build_lock(cache_dir: Path, name: str) -> Iterator[None]:
    # Test runs started together (pytest sessions, benchmarks) would each build the same model;
    # on 2 cores, N parallel builds take N times as long for all of them. One builds, the rest
    # wait for its file.
    import fcntl

    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{name}.lock", "wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _workdir(cache_dir: Path, name: str) -> Iterator[Path]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=cache_dir))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- tokenizer


def _train_tokenizer(corpus: Sequence[str], vocab_size: int, out_dir: Path) -> int:
    """Train a byte-fallback BPE SentencePiece model; write HF Llama tokenizer files to out_dir.

    Returns the SentencePiece vocabulary size. Ids: 0 <unk>, 1 <s>, 2 </s>, 3 <|im_start|>,
    4 <|im_end|>, then the 256 byte pieces, then merges.
    """
    import sentencepiece as spm

    corpus_file = out_dir / "corpus.txt"
    corpus_file.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    prefix = out_dir / "tokenizer"
    spm.SentencePieceTrainer.Train(
        input=str(corpus_file),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=[IM_START, IM_END],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    corpus_file.unlink()
    (out_dir / "tokenizer.vocab").unlink(missing_ok=True)
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    im_start, im_end = sp.piece_to_id(IM_START), sp.piece_to_id(IM_END)
    if (im_start, im_end) != (3, 4):
        raise RuntimeError(f"unexpected chat token ids {im_start}, {im_end}")

    def added(content: str) -> dict[str, object]:
        return {
            "content": content,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "single_word": False,
            "special": True,
        }

    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": IM_END,
        "unk_token": "<unk>",
        "pad_token": IM_END,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": True,
        "legacy": False,
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {"3": added(IM_START), "4": added(IM_END)},
        "chat_template": CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": "<s>", "eos_token": IM_END, "unk_token": "<unk>", "pad_token": IM_END}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2), "utf-8")
    return int(sp.get_piece_size())


class _GGUFTokenizer:
    """llama.cpp's own tokenizer (from a vocab-only GGUF), so training sees run-time token ids."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        from almanac.core.llm.llama_log import route_llama_log

        self._lib = llama_cpp
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        # llama.cpp logs the whole vocabulary summary: debug records (see llama_log).
        route_llama_log()
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load the vocabulary in {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)

    def __call__(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (self._lib.llama_token * size)()
        n = int(self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, True))
        if n < 0:
            raise RuntimeError("llama.cpp tokenization failed")
        return [int(t) for t in buf[:n]]

    def close(self) -> None:
        if self._model:
            self._lib.llama_model_free(self._model)
            self._model = None


# ----------------------------------------------------------------------------- model


def _llama_config(
    shape: ModelShape, *, eos_token_id: int, bos_token_id: int = 1, pad_token_id: int | None = None
) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        tie_word_embeddings=shape.tie_word_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def _tiny_shape(cfg: TinyConfig, sp_vocab: int) -> ModelShape:
    return ModelShape(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_heads,
        vocab_size=math.ceil(sp_vocab / 256) * 256,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def _tokenize_examples(examples: Sequence[Example], tokenize: _GGUFTokenizer) -> Rows:
    """(input ids, labels) per example; labels are -100 except on the answer and <|im_end|>."""
    rows: Rows = []
    for ex in examples:
        prompt = tokenize(render_chatml(ex.messages))
        full = tokenize(render_chatml(ex.messages) + ex.answer + IM_END)
        if full[: len(prompt)] != prompt:
            raise RuntimeError("the prompt tokenizes differently with the answer appended")
        rows.append((full, [-100] * len(prompt) + full[len(prompt) :]))
    return rows


def _batches(rows: Rows, size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches of similar length (little padding), in random order."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i][0]), rng.random()))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def _train(model: Any, rows: Rows, cfg: TinyConfig, pad: int) -> None:
    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=0.0)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    rng = random.Random(SEED)
    queue: list[list[int]] = []
    model.train()
    started = time.monotonic()
    for step in range(cfg.steps):
        if not queue:
            queue = _batches(rows, cfg.batch_size, rng)
        batch = [rows[i] for i in queue.pop()]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
            mask[i, : len(ids)] = 1
        # The output layer only where there is a target (the answer): most positions are prompt.
        hidden = model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        logits = model.lm_head(hidden[:, :-1][keep])
        loss = F.cross_entropy(logits.float(), targets[keep])
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if step % 25 == 0 or step == cfg.steps - 1:
            log.info(
                "step %d/%d loss %.4f (%.0fs)",
                step + 1,
                cfg.steps,
                float(loss.detach()),
                time.monotonic() - started,
            )
    model.eval()


def _export(
    model_dir: Path, work: Path, target: Path, cache_dir: Path, qtypes: Sequence[str]
) -> None:
    f16 = gguf_export.convert_hf_to_gguf(model_dir, work / "model-f16.gguf", "f16", cache=cache_dir)
    errors: list[str] = []
    for qtype in qtypes:
        out = work / f"model-{qtype}.gguf"
        try:
            gguf_export.quantize(f16, out, qtype)
            gguf_export.verify_quantized(out, qtype)
        except gguf_export.ExportError as exc:
            errors.append(str(exc))
            continue
        os.replace(out, target)
        return
    raise gguf_export.ExportError("; ".join(errors))


def _build_tiny(cfg: TinyConfig, work: Path, target: Path, cache_dir: Path) -> None:
    import torch
    from transformers import LlamaForCausalLM

    started = time.monotonic()
    examples = training_examples(cfg)
    hf_dir = work / "hf"
    hf_dir.mkdir()
    sp_vocab = _train_tokenizer(_corpus(examples), cfg.vocab_size, hf_dir)
    shape = _tiny_shape(cfg, sp_vocab)
    _seed_everything(SEED)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    config = _llama_config(shape, eos_token_id=4, pad_token_id=4)
    model = LlamaForCausalLM(config)
    model.save_pretrained(hf_dir)  # the converter needs weights even for the vocab-only file
    vocab = gguf_export.convert_hf_to_gguf(
        hf_dir, work / "vocab.gguf", "f16", cache=cache_dir, vocab_only=True
    )
    tokenizer = _GGUFTokenizer(vocab)
    try:
        rows = _tokenize_examples(examples, tokenizer)
    finally:
        tokenizer.close()
    longest = max(len(ids) for ids, _ in rows)
    log.info(
        "tiny model: %d examples, longest %d tokens, vocab %d (sp %d), %.1fM params",
        len(rows),
        longest,
        shape.vocab_size,
        sp_vocab,
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    _train(model, rows, cfg, pad=4)
    model.save_pretrained(hf_dir)
    _export(hf_dir, work, target, cache_dir, (cfg.qtype, "Q8_0"))
    log.info("built %s in %.0fs", target.name, time.monotonic() - started)


def _build_shaped(dims: ModelShape, work: Path, target: Path, cache_dir: Path) -> None:
    import torch
    from transformers import LlamaForCausalLM

    started = time.monotonic()
    hf_dir = work / "hf"
    hf_dir.mkdir()
    # A real tokenizer file keeps the GGUF usable with chat templates; the converter pads the
    # token list to the model's vocabulary size with [PADn] entries.
    _train_tokenizer(_corpus(training_examples()), TinyConfig().vocab_size, hf_dir)
    _seed_everything(SEED)
    config = _llama_config(dims, eos_token_id=4)
    # Random init in half precision: ~1 GB for 0.5B parameters instead of ~2 GB in float32.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    try:
        with torch.no_grad():
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(hf_dir)
    del model
    _export(hf_dir, work, target, cache_dir, ("Q4_K_M",))
    log.info(
        "built %s (%.0f MB) in %.0fs",
        target.name,
        target.stat().st_size / 1e6,
        time.monotonic() - started,
    )


# ----------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m almanac.devtools.tiny_model",
        description="Build (once) the tiny test chat model and print its path.",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder")
    parser.add_argument(
        "--shaped",
        metavar="SHAPE",
        choices=sorted(SHAPES),
        help="build the random-weight model of this shape instead (for speed benchmarks)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        if args.shaped:
            path = ensure_shaped_model(args.cache, args.shaped)
        else:
            path = ensure_tiny_model(args.cache)
    except (gguf_export.ExportError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
