"""Runtime LoRA adapter vs no adapter, Q4_1 vs Q4_0: what the default model's loading costs.

A merged model has the base's shapes and quantization, so the base alone measures what a merged
default model would answer at; the adapter run measures what the shipped default (base + adapter
applied by llama.cpp at load time) costs on top. Same prompt (the app's system prompt with five
sample-KB sources, ~840 tokens), same thread count, runs interleaved, a fixed number of tokens
generated (end-of-text suppressed so both generate the same count).

    .venv/bin/python benchmarks/adapter_speed.py [--repeats 3] [--tokens 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
from pathlib import Path

from almanac.app.environment import model_cache_dir
from almanac.core.answering.prompting import Source, build_messages, default_system_prompt
from almanac.core.llm.default_model import resolve_default_model

REPO = Path(__file__).resolve().parents[1]


def prompt_messages() -> list[dict[str, str]]:
    faq = (REPO / "resources" / "sample-kb" / "faq.md").read_text(encoding="utf-8")
    parts = [p.strip() for p in faq.split("\n## ") if p.strip()]
    sources = [Source(i, f"faq.md - part {i}", parts[i][:900]) for i in range(1, 6)]
    messages = build_messages(
        default_system_prompt(), sources, [], "How long is the password reset link valid?"
    )
    return [{"role": m.role, "content": m.content} for m in messages]


def run_once(llm, messages, tokens: int) -> tuple[float, float, float]:
    llm.reset()  # no prefix reuse between runs: every run reads the whole prompt
    eos = llm.token_eos()
    started = time.perf_counter()
    cpu_started = time.process_time()
    first = None
    first_cpu = 0.0
    count = 0
    for _ in llm.create_chat_completion(
        messages=messages,
        max_tokens=tokens,
        temperature=0.0,
        stream=True,
        logit_bias={eos: -1e9},
    ):
        if first is None:
            first = time.perf_counter() - started
            first_cpu = time.process_time() - cpu_started
        count += 1
    total = time.perf_counter() - started
    assert first is not None
    return first, (count - 1) / max(1e-9, total - first), first_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import llama_cpp

    default = resolve_default_model(cache_dir=model_cache_dir())
    assert default.adapter is not None, "the default model has no adapter"
    runtime = default.prepare(model_cache_dir())
    kind = default.runtime.quantization if runtime.derived and default.runtime else "base"
    messages = prompt_messages()
    models = {}
    for name, path, lora in (
        (f"{default.quantization} base (= merged shape)", default.path, None),
        (f"{default.quantization} base + runtime adapter", default.path, default.adapter),
        (f"runtime {kind} (= merged shape)", runtime.path, None),
        (
            f"runtime {kind} + adapter",
            runtime.path,
            default.adapter,
        ),
    ):
        kwargs = {"lora_path": str(lora)} if lora else {}
        with contextlib.redirect_stderr(io.StringIO()):
            started = time.perf_counter()
            models[name] = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=2048,
                n_threads=args.threads,
                n_threads_batch=args.threads,
                n_batch=512,
                verbose=False,
                **kwargs,
            )
            load = time.perf_counter() - started
        print(f"{name}: loaded in {load:.2f} s")
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, llm in models.items():
            results[name].append(run_once(llm, messages, args.tokens))
    print()
    print(
        f"| model ({args.threads} threads) | first token p50 (s) | CPU s to first token p50 "
        "| generation tok/s p50 |"
    )
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        first = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        print(f"| {name} | {first:.2f} | {cpu:.2f} | {rate:.1f} |")


if __name__ == "__main__":
    main()
