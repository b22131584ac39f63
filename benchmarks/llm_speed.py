"""LLM speed: Almanac's streaming path vs a bare llama_decode loop on the same model and prompt.

Figures: time to first token (cold prompt), generation tokens/s, their ratio, and time to first
token for a follow-up question with the same sources (prefix reuse) and with different sources.
Then the thread settings idle and with one core kept busy by another process (a Python busy
loop): the old fixed thread count (every core for prompt and generation) against the engine's
default (threads fitted to the cores other processes leave free, re-checked while generating),
measured interleaved, round by round, so that a noisy machine affects both alike.

    .venv/bin/python benchmarks/llm_speed.py [--model GGUF] [--tokens 128] [--load-only]

Without --model it uses a GGUF with the shapes of Qwen2.5-0.5B and random weights (built once,
cached under build/test-models): random weights cost exactly what real ones do.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bare_decode_loop(model_path: Path, tokens: list[int], n_gen: int, threads: int, n_ctx: int):
    """The floor: llama.cpp's C API driven directly, greedy sampling, no Python streaming layer."""
    import llama_cpp as l

    l.llama_backend_init()
    mp = l.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = l.llama_model_load_from_file(str(model_path).encode(), mp)
    cp = l.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = 512
    cp.n_ubatch = 512
    cp.n_threads = threads
    cp.n_threads_batch = threads
    ctx = l.llama_init_from_model(model, cp)
    chain = l.llama_sampler_chain_init(l.llama_sampler_chain_default_params())
    l.llama_sampler_chain_add(chain, l.llama_sampler_init_greedy())
    arr = (l.llama_token * len(tokens))(*tokens)
    size = ctypes.sizeof(l.llama_token)
    start = time.perf_counter()
    for i in range(0, len(tokens), 512):
        n = min(512, len(tokens) - i)
        ptr = ctypes.cast(ctypes.addressof(arr) + i * size, ctypes.POINTER(l.llama_token))
        if l.llama_decode(ctx, l.llama_batch_get_one(ptr, n)) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
    token = l.llama_sampler_sample(chain, ctx, -1)
    ttft = time.perf_counter() - start
    one = (l.llama_token * 1)()
    gen_start = time.perf_counter()
    for _ in range(n_gen - 1):
        one[0] = token
        if l.llama_decode(ctx, l.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("llama_decode failed")
        token = l.llama_sampler_sample(chain, ctx, -1)
    gen = time.perf_counter() - gen_start
    l.llama_sampler_free(chain)
    l.llama_free(ctx)
    l.llama_model_free(model)
    return {"ttft_s": ttft, "gen_tokens": n_gen - 1, "gen_s": gen, "tok_per_s": (n_gen - 1) / gen}


def engine_stream(engine, messages, n_gen: int) -> dict:
    """Almanac's path: LlamaCppEngine.stream_chat (template, sampler, streaming, stop checks).

    Time to first token is taken when the first token is *sampled*, as in the bare loop: a model
    with random weights mostly emits padding tokens that print nothing, so the first visible
    piece would measure luck, not latency.
    """
    from almanac.core.llm.base import GenerationConfig

    llm = engine._llm
    sampled: list[float] = []
    original = llm.sample

    def timed_sample(*args, **kwargs):
        token = original(*args, **kwargs)
        sampled.append(time.perf_counter())
        return token

    llm.sample = timed_sample
    start = time.perf_counter()
    try:
        cfg = GenerationConfig(max_tokens=n_gen, temperature=0.2, seed=1)
        for _piece in engine.stream_chat(messages, cfg, threading.Event()):
            pass
    finally:
        del llm.sample  # back to the class method
    if not sampled:
        raise RuntimeError("no token was sampled")
    gen_s = sampled[-1] - sampled[0]
    return {
        "ttft_s": sampled[0] - start,
        "gen_tokens": len(sampled) - 1,
        "gen_s": gen_s,
        "tok_per_s": (len(sampled) - 1) / gen_s if gen_s > 0 else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF (default: 0.5B-shaped random weights)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens to generate")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--load-only", action="store_true", help="only the idle / one-core-busy thread comparison"
    )
    args = parser.parse_args()

    from almanac.app.services import build_services, sample_kb_folder
    from almanac.core.answering.prompting import (
        Source,
        build_messages,
        default_system_prompt,
        source_label,
    )
    from almanac.core.llm.llama_engine import LlamaCppEngine
    from almanac.core.system.hardware import physical_cores

    threads = args.threads or physical_cores()
    model = args.model
    if model is None:
        from almanac.devtools.tiny_model import ensure_shaped_model

        model = ensure_shaped_model(REPO / "build" / "test-models")
    size_mb = model.stat().st_size / 1e6
    print(f"model: {model} ({size_mb:.0f} MB), threads {threads}, ctx {args.ctx}")

    work = Path(tempfile.mkdtemp(prefix="almanac-llm-bench-"))
    try:
        docs = work / "docs"
        shutil.copytree(sample_kb_folder(), docs)
        services = build_services(work / "kb")
        services.ingestor.ingest([docs])
        system = default_system_prompt()

        def messages_for(question: str, k: int = 5, offset: int = 0):
            hits = services.searcher.search(question, k + offset).hits[offset:]
            sources = [
                Source(i, source_label(h.path, h.page, h.heading, str(docs)), h.text)
                for i, h in enumerate(hits, 1)
            ]
            return build_messages(system, sources, [], question)

        q1 = "How do I reset my password?"
        if args.load_only:
            m1 = messages_for(q1)
            figures = {"model": str(model), "load": load_comparison(model, m1, args)}
            if args.json:
                args.json.write_text(json.dumps(figures, indent=1))
            return 0
        engine = LlamaCppEngine(model, n_ctx=args.ctx, threads=threads)
        print(f"engine: {engine.info.backend}, chat template {engine.info.chat_template}")
        m1 = messages_for(q1)
        prompt_tokens = engine._llm.tokenize(engine.render(m1).encode(), add_bos=True, special=True)
        print(f"prompt: {len(prompt_tokens)} tokens; generating {args.tokens}")

        bare_runs = [
            bare_decode_loop(model, prompt_tokens, args.tokens, threads, args.ctx)
            for _ in range(args.repeats)
        ]
        eng_runs = []
        for _ in range(args.repeats):
            engine._llm.reset()  # cold: no cached prefix
            eng_runs.append(engine_stream(engine, m1, args.tokens))

        # Follow-ups, each measured right after the first question was answered.
        same_sources, new_sources = [], []
        for _ in range(args.repeats):
            engine._llm.reset()
            engine_stream(engine, m1, 8)
            same = build_messages(system, _sources_of(m1), [], "How long is the reset link valid?")
            same_sources.append(engine_stream(engine, same, 8)["ttft_s"])
            engine._llm.reset()
            engine_stream(engine, m1, 8)
            lan = messages_for("Which ports does LAN sync use?")
            new_sources.append(engine_stream(engine, lan, 8)["ttft_s"])
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    figures = {
        "model": str(model),
        "prompt_tokens": len(prompt_tokens),
        "threads": threads,
        "bare": {"ttft_s": med(bare_runs, "ttft_s"), "tok_per_s": med(bare_runs, "tok_per_s")},
        "almanac": {"ttft_s": med(eng_runs, "ttft_s"), "tok_per_s": med(eng_runs, "tok_per_s")},
        "follow_up_same_sources_ttft_s": statistics.median(same_sources),
        "follow_up_new_sources_ttft_s": statistics.median(new_sources),
    }
    figures["ratio_ttft"] = figures["almanac"]["ttft_s"] / figures["bare"]["ttft_s"]
    figures["ratio_time_per_token"] = figures["bare"]["tok_per_s"] / figures["almanac"]["tok_per_s"]
    bare, ours = figures["bare"], figures["almanac"]
    print()
    print(f"{'path':34} {'TTFT s':>8} {'tokens/s':>9}")
    print(f"{'bare llama_decode loop (greedy)':34} {bare['ttft_s']:8.2f} {bare['tok_per_s']:9.1f}")
    print(f"{'almanac engine stream_chat':34} {ours['ttft_s']:8.2f} {ours['tok_per_s']:9.1f}")
    print(
        f"ratio almanac/bare: TTFT {figures['ratio_ttft']:.3f}, "
        f"time per token {figures['ratio_time_per_token']:.3f} (aim <= 1.05)"
    )
    same = figures["follow_up_same_sources_ttft_s"]
    new = figures["follow_up_new_sources_ttft_s"]
    print(f"follow-up TTFT, same sources (prefix reuse): {same:.2f} s")
    print(f"follow-up TTFT, different sources:           {new:.2f} s")
    figures["load"] = load_comparison(model, m1, args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


def load_comparison(model: Path, messages, args) -> dict:
    """First-token time and tokens/s, idle and with one core busy, old vs chosen thread settings.

    Each engine is loaded once; every round measures each variant on a cold prompt (no cached
    prefix), variants interleaved. The busy core is a separate process spinning in Python."""
    from _common import spin_one_core
    from almanac.core.llm.llama_engine import LlamaCppEngine
    from almanac.core.system.hardware import physical_cores

    cores = args.threads or physical_cores()
    variants = {
        f"old: {cores} threads fixed": LlamaCppEngine(model, n_ctx=args.ctx, threads=cores),
        "chosen: fitted to free cores": LlamaCppEngine(model, n_ctx=args.ctx),
    }
    results: dict = {}
    try:
        for state in ("idle", "one core busy"):
            busy = spin_one_core() if state != "idle" else None
            try:
                if busy is not None:
                    time.sleep(1.0)  # let the scheduler see it before the first reading
                runs: dict[str, list[dict]] = {name: [] for name in variants}
                for _ in range(args.repeats):
                    for name, engine in variants.items():
                        engine._llm.reset()
                        run = engine_stream(engine, messages, args.tokens)
                        run["threads"] = engine.threads_in_use
                        runs[name].append(run)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            results[state] = {
                name: {
                    "ttft_s": statistics.median(r["ttft_s"] for r in rs),
                    "tok_per_s": statistics.median(r["tok_per_s"] for r in rs),
                    "threads": sorted({r["threads"] for r in rs}),
                }
                for name, rs in runs.items()
            }
    finally:
        for engine in variants.values():
            engine.close()
    print()
    print(f"{'state':15} {'settings':32} {'threads':>8} {'TTFT s':>8} {'tokens/s':>9}")
    for state, by_name in results.items():
        for name, r in by_name.items():
            threads = ",".join(map(str, r["threads"]))
            print(f"{state:15} {name:32} {threads:>8} {r['ttft_s']:8.2f} {r['tok_per_s']:9.1f}")
    return results


def _sources_of(messages):
    from almanac.core.answering.prompting import Source

    body = messages[0].content.split("Sources:", 1)[1].strip()
    out = []
    for block in body.split("\n\n"):
        head, text = block.split("\n", 1)
        number = int(head[1 : head.index("]")])
        out.append(Source(number, head[head.index("]") + 2 :], text))
    return out


if __name__ == "__main__":
    sys.exit(main())
