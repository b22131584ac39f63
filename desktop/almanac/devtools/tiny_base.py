"""A tiny Hugging Face chat *base* model folder, built offline, for the fine-tuning recipe's tests.

It shares the tiny test model's pieces (``almanac.devtools.tiny_model``: SentencePiece tokenizer
trained on the sample knowledge base, ChatML template, 2-layer Llama) but is trained differently:
on the knowledge base's text and on plain question/answer chats, with no sources, no ``[n]``
citations and no refusals. That is the behaviour ``almanac finetune`` then teaches, so the
before/after evaluation has something to measure.

The folder has what a downloaded model has: config.json, model.safetensors, tokenizer.model (for
llama.cpp's converter), tokenizer.json (for transformers; it tokenizes exactly like llama.cpp, see
:func:`write_tokenizer_json`) and tokenizer_config.json with the chat template.

    python -m almanac.devtools.tiny_base [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from almanac.devtools import tiny_model as tm

log = logging.getLogger(__name__)

WINDOW_WORDS = 60  # knowledge-base text is cut into windows of this many words


@dataclass(frozen=True, slots=True)
class BaseConfig:
    vocab_size: int = 1536
    steps: int = 500
    batch_size: int = 8
    lr: float = 3e-3
    warmup: int = 16


def tiny_base_key(cfg: BaseConfig | None = None) -> str:
    """Changes with this file, the shared tiny-model code, the library versions and the texts
    (not with gguf_export.py: nothing here is exported)."""
    cfg = cfg or BaseConfig()
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(tm.__file__)):
        digest.update(source.read_bytes())
    parts = [tm._versions(), asdict(cfg), _texts()]
    digest.update(json.dumps(parts, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def ensure_tiny_base(cache_dir: Path = tm.DEFAULT_CACHE, cfg: BaseConfig | None = None) -> Path:
    """The tiny base model folder in ``cache_dir``, built first if needed (~1 min)."""
    cfg = cfg or BaseConfig()
    target = cache_dir / f"tiny-base-{tiny_base_key(cfg)}"
    if (target / "config.json").is_file():
        return target
    with tm._workdir(cache_dir, "tiny-base") as work:
        hf_dir = work / "hf"
        hf_dir.mkdir()
        _build(cfg, hf_dir)
        try:
            os.replace(hf_dir, target)
        except OSError:
            if not (target / "config.json").is_file():  # another process finished first
                raise
    return target


def _chats() -> list[str]:
    """Plain support chats in ChatML: a question and a one-sentence answer, nothing cited."""
    out = []
    for item in tm._load_json(tm.QUESTIONS):
        question = str(item["question"])
        answer = tm.ANSWERS.get(question, str(item["must_contain"])).rstrip(" .") + "."
        out.append(
            f"{tm.IM_START}user\n{question}{tm.IM_END}\n{tm.IM_START}assistant\n{answer}{tm.IM_END}"
        )
    return out


def _texts() -> list[str]:
    windows = []
    for passage in tm.kb_passages():
        words = passage.text.split()
        for start in range(0, len(words), WINDOW_WORDS):
            windows.append(" ".join(words[start : start + WINDOW_WORDS]))
    return windows + _chats()


def write_tokenizer_json(hf_dir: Path) -> None:
    """tokenizer.json for the SentencePiece model in ``hf_dir``, matching llama.cpp's tokenizer.

    transformers cannot convert the .model file here (its converter needs protobuf >= 5), and
    its Llama tokenizer adds the "▁" word prefix only at the start of the text, where llama.cpp
    adds it to every piece of text after a special token. A BPE model with merges ranked like the
    SentencePiece scores and a ``Prepend("▁")`` normalizer (run on each piece between special
    tokens) gives the same ids as llama.cpp.
    """
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    sp = spm.SentencePieceProcessor(model_file=str(hf_dir / "tokenizer.model"))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    special = ["<unk>", "<s>", "</s>", tm.IM_START, tm.IM_END]
    merges: list[tuple[int, int, int, str, str]] = []
    for piece, pid in vocab.items():
        if piece in special or sp.is_byte(pid):
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                merges.append((pid, vocab[left], vocab[right], left, right))
    merges.sort()
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=[(left, right) for *_, left, right in merges],
            unk_token="<unk>",
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tokenizer.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tokenizer.save(str(hf_dir / "tokenizer.json"))
    config_file = hf_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    # The generic fast tokenizer uses tokenizer.json as it is (LlamaTokenizer would rebuild it).
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _build(cfg: BaseConfig, hf_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    started = time.monotonic()
    examples = tm.training_examples()
    sp_vocab = tm._train_tokenizer(tm._corpus(examples), cfg.vocab_size, hf_dir)
    write_tokenizer_json(hf_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    shape = tm._tiny_shape(tm.TinyConfig(vocab_size=cfg.vocab_size), sp_vocab)
    tm._seed_everything(tm.SEED)
    # One thread: a 2-layer model gains nothing from more, and on a shared CPU they stall.
    torch.set_num_threads(1)
    model = LlamaForCausalLM(tm._llama_config(shape, eos_token_id=4, pad_token_id=4))
    rows: tm.Rows = []
    for text in _texts():
        ids = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
        rows.append((ids, ids))  # plain language modelling: every token is a target
    train_cfg = tm.TinyConfig(
        vocab_size=cfg.vocab_size,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup=cfg.warmup,
    )
    tm._train(model, rows, train_cfg, pad=4)
    model.save_pretrained(hf_dir)
    (hf_dir / "corpus.txt").unlink(missing_ok=True)
    log.info("built the tiny base model (%d texts) in %.0fs", len(rows), time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m almanac.devtools.tiny_base",
        description="Build (once) the tiny Hugging Face base model folder and print its path.",
    )
    parser.add_argument("--cache", type=Path, default=tm.DEFAULT_CACHE, help="cache folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(ensure_tiny_base(args.cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
