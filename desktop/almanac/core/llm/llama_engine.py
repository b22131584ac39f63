"""llama.cpp through llama-cpp-python: a local GGUF chat model on CPU or GPU.

One worker thread owns an engine: the llama.cpp context is not thread-safe. Prefix reuse is
llama-cpp-python's own: it keeps the evaluated tokens and only decodes where a new prompt diverges,
which is why prompts put fixed text first (see prompting.py).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from almanac.core.llm.base import (
    ChatMessage,
    EngineInfo,
    GenerationConfig,
    ModelError,
    ModelNotFoundError,
    UnsupportedModelError,
)
from almanac.core.llm.chat_templates import ChatTemplateError, choose_chat_template
from almanac.core.llm.cpu_load import CpuLoad, threads_for_load
from almanac.core.llm.gguf_file import check_fits_memory, inspect_gguf
from almanac.core.llm.llama_log import route_llama_log, take_errors
from almanac.core.system.hardware import physical_cores

FALLBACK_TEMPLATE_NAME = "chatml"  # used only for a GGUF without a template of its own

GpuLayers = int | str  # "auto" | "all" | "none" | a number of layers

# Prompt processing: see benchmarks/llm_speed.py for the measurements behind these.
N_BATCH = 512
N_UBATCH = 512
FLASH_ATTENTION = False
RECHECK_SECONDS = 0.5
# The prompt is evaluated in slices sized to take about this long, with a look at the stop flag
# between them: one llama_decode call can't be interrupted, and a whole prompt in one call took
# 10 s on a busy 2-core laptop, so Stop waited that long. The first slice is small (the speed is
# not known yet); the next ones are sized from it. benchmarks/close_latency.py measures Stop.
PREFILL_SECONDS = 0.2
PREFILL_FIRST = 16
PREFILL_MIN = 8
# Each llama_decode call has a fixed cost, which tiny slices pay per token: SmolLM2-135M +
# adapter, 1 thread, an 840-token prompt, CPU seconds to the first token (load 4 on 2 cores):
# 8-token slices 4.02, 16 3.02, 32 2.78, 64-512 2.6-2.95. On a busy machine a wall-clock target
# alone shrank the slices to 8 tokens (the engine cost 35 % more CPU than llama.cpp's own path),
# so slices are at least this many tokens as long as that takes under PREFILL_MAX_SECONDS.
PREFILL_EFFICIENT = 32
PREFILL_MAX_SECONDS = 0.5
# Slices start on multiples of this many tokens and hold at least this many: then the numbers do
# not depend on how the prompt was sliced. llama.cpp's CPU kernels for repacked quantized weights
# take activation rows in groups, and rows left over from a group or a slice of a few tokens go
# another way with other rounding: slicing by wall time made one prompt give logits 0.4-1.0 apart
# from run to run (Gemma-3-270M Q4_K_M, 723 tokens), enough to flip a sampled answer. Aligned
# slices of 8 or more: bit-identical logits for any slice sizes (tests/integration/
# test_prefill_determinism.py).
PREFILL_ALIGN = 8
# Token attributes that make llama.cpp's tokenizer (special=True) match a token by its text.
_SPECIAL_ATTRS = 1 << 3 | 1 << 0  # LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN
_USER_DEFINED = 1 << 4  # LLAMA_TOKEN_ATTR_USER_DEFINED
_MARKUP = frozenset("<>[]|{}")


def prefill_slice(seconds_per_token: float) -> int:
    """Tokens in the next prompt slice: about PREFILL_SECONDS of work, at least
    PREFILL_EFFICIENT tokens unless that would take over PREFILL_MAX_SECONDS, at most N_BATCH."""
    per_token = max(seconds_per_token, 1e-6)
    efficient = min(PREFILL_EFFICIENT, int(PREFILL_MAX_SECONDS / per_token))
    return min(N_BATCH, max(PREFILL_MIN, efficient, int(PREFILL_SECONDS / per_token)))


def slice_end(start: int, total: int, wanted: int) -> int:
    """Where the prompt slice from ``start`` (a multiple of PREFILL_ALIGN) ends: about ``wanted``
    tokens, on a multiple of PREFILL_ALIGN, or at ``total`` when fewer than PREFILL_ALIGN tokens
    would be left for a last slice (never past N_BATCH, which llama.cpp would split again)."""
    size = max(PREFILL_ALIGN, min(wanted, N_BATCH - PREFILL_ALIGN))
    end = start + size - size % PREFILL_ALIGN
    return total if total - end < PREFILL_ALIGN else end


def token_probability(logits: Any, token: int) -> float:
    """``token``'s probability under the softmax of ``logits`` (one row of the vocabulary)."""
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(values - values.max())
    return float(shifted[token] / shifted.sum())


def _payload(messages: Sequence[ChatMessage]) -> Any:
    """Messages as llama-cpp-python's chat formatter takes them."""
    return [{"role": m.role, "content": m.content} for m in messages]


def resolve_gpu_layers(setting: GpuLayers, gpu_available: bool) -> int:
    """llama.cpp's n_gpu_layers for a user setting; -1 means every layer."""
    if isinstance(setting, int):
        if setting < -1:
            raise ValueError("GPU layers must be a number >= 0, 'auto', 'all' or 'none'")
        return setting if gpu_available else 0
    value = setting.strip().lower()
    if value in ("auto", "all"):
        return -1 if gpu_available else 0
    if value == "none":
        return 0
    if value.isdigit():
        return int(value) if gpu_available else 0
    raise ValueError(f"GPU layers must be 'auto', 'all', 'none' or a number, not {setting!r}")


def gpu_backend_name() -> str | None:
    """The GPU backend compiled into llama.cpp, or None for a CPU-only build."""
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return None
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").upper()
    for name in ("CUDA", "METAL", "VULKAN", "HIP", "SYCL", "OPENCL"):
        if name in info:
            return name
    return "GPU"


class LlamaCppEngine:
    """A loaded GGUF model. Construct it on the worker thread that will use it."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        gpu_layers: GpuLayers = "auto",
        threads: int | None = None,
        seed: int = 0,
        lora_path: Path | None = None,
        adaptive_threads: bool | None = None,
        chat_format: str | None = None,
    ) -> None:
        """``threads`` None: every physical core, fewer while other processes keep cores busy
        (``adaptive_threads``, default on exactly when ``threads`` is None). A fixed number is
        used as given. ``lora_path``: a LoRA adapter GGUF applied on top of the model.
        ``chat_format``: the built-in template (``chat_templates.BUILTIN``: "gemma", "chatml")
        for a GGUF that carries no template of its own; a file's own template always wins, and
        without either the vocabulary's turn markers choose (see ``choose_chat_template``)."""
        path = Path(model_path)
        # Static checks first: they name the problem (not a GGUF, truncated, too large) where
        # llama.cpp's loader only says that loading failed.
        self.file_info = inspect_gguf(path)
        check_fits_memory(self.file_info, n_ctx)
        lora = None if lora_path is None else Path(lora_path)
        if lora is not None:
            check_lora(lora, self.file_info.architecture)
        import llama_cpp

        route_llama_log()
        take_errors()  # what an earlier model's load left is not this one's reason
        gpu = gpu_backend_name()
        n_gpu_layers = resolve_gpu_layers(gpu_layers, gpu is not None)
        self._cores = threads or physical_cores()
        self._adaptive = (threads is None) if adaptive_threads is None else adaptive_threads
        self._load = CpuLoad() if self._adaptive and n_gpu_layers == 0 else None
        self._threads_now = self._cores
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=self._cores,
                n_threads_batch=self._cores,
                n_batch=N_BATCH,
                n_ubatch=N_UBATCH,
                flash_attn=FLASH_ATTENTION,
                lora_path=None if lora is None else str(lora),
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            if lora is not None and "lora" in str(exc).lower():
                raise _lora_error(lora, path) from exc
            raise _load_error(path, exc) from exc
        # llama-cpp-python tests the adapter handle against None, which a NULL ctypes pointer
        # is not: a rejected adapter (tensor shapes of another model) would pass silently.
        if lora is not None and not self._llm._lora_adapter:
            self._llm.close()
            raise _lora_error(lora, path)
        template = self._llm.metadata.get("tokenizer.chat_template")
        eos_id = self._llm.token_eos()
        bos_id = self._llm.token_bos()
        eos = self._llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = self._llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            choice = choose_chat_template(
                template, chat_format, lambda text: _single_token(self._llm, text) is not None
            )
        except ChatTemplateError as exc:
            self._llm.close()
            raise ModelError(str(exc)) from exc
        stop_ids = [eos_id]
        if choice.end_of_turn is not None:
            # Stop on the template's end-of-turn marker too (ChatML's <|im_end|>, Gemma's
            # <end_of_turn>): a base model's EOS is not the end of a turn.
            end = _single_token(self._llm, choice.end_of_turn)
            stop_ids += [end] if end is not None and end != eos_id else []
        self._formatter: Any = Jinja2ChatFormatter(
            choice.template, eos, bos, stop_token_ids=stop_ids
        )
        template_source = choice.source
        # One formatter renders both the prompts we count and the prompts we generate from.
        self._llm.chat_handler = self._formatter.to_chat_handler()
        layers = int(
            self._llm.metadata.get(
                f"{self._llm.metadata.get('general.architecture', '')}.block_count", 0
            )
            or 0
        )
        offloaded = (
            0 if n_gpu_layers == 0 else (layers if n_gpu_layers < 0 else min(n_gpu_layers, layers))
        )
        backend = (
            f"llama.cpp ({gpu}, {offloaded}/{layers} layers on GPU)"
            if offloaded
            else "llama.cpp (CPU)"
        )
        self._info = EngineInfo(
            backend=backend,
            model=path.name,
            n_ctx=int(self._llm.n_ctx()),
            chat_template=template_source,
            threads=self._cores,
            gpu_layers=offloaded,
            lora=None if lora is None else lora.name,
        )
        self._special_tokens = _special_tokens(self._llm)
        self._closed = False

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def special_tokens(self) -> frozenset[str]:
        """The text of every control token of the model's vocabulary ("<|im_start|>",
        "<filename>", ...): what untrusted text must never spell out (prompting.Neutralizer)."""
        return self._special_tokens

    @property
    def threads_in_use(self) -> int:
        """Threads of the latest generation (the adaptive choice; ``info.threads`` is the most)."""
        return self._threads_now

    def _fit_threads(self) -> None:
        """One thread per core that other processes leave free (see cpu_load)."""
        if self._load is None:
            return
        wanted = threads_for_load(self._cores, self._load.others_busy())
        if wanted != self._threads_now:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self._llm.ctx, wanted, wanted)
            self._threads_now = wanted

    def render(self, messages: Sequence[ChatMessage]) -> str:
        payload = _payload(messages)
        response = self._formatter(messages=payload)
        return str(response.prompt)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        # Counted as generation will tokenize it: a template that writes BOS itself (Gemma's)
        # gets no second one, which llama.cpp would also warn about on every question.
        payload = _payload(messages)
        return len(self._prompt_tokens(payload))

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        config: GenerationConfig,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        if self._closed:
            raise ModelError("the model was closed")
        if stop is not None and stop.is_set():
            return
        payload = _payload(messages)
        self._fit_threads()
        # Always in slices, stop flag or not: the same prompt gives the same numbers everywhere.
        if not self._prefill(payload, stop or threading.Event()):
            return
        # Generation ends at the template's end of turn without a stop string: llama-cpp-python
        # stops on every end-of-generation token of the vocabulary (llama_vocab_is_eog: EOS,
        # <|im_end|>, <|eot_id|>, <end_of_turn>) and on the formatter's stop_token_ids.
        chunks = self._llm.create_chat_completion(
            messages=payload,
            stream=True,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
            repeat_penalty=config.repeat_penalty,
            stop=list(config.stop) or None,
            logits_processor=self._opening_guard(messages, config),
        )
        last_check = time.monotonic()
        try:
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
                # Checked after every token: a stop request costs at most the token in flight.
                if stop is not None and stop.is_set():
                    break
                # Load changes mid-answer too (a build starts): re-fit the threads now and then,
                # from the window since the last reading, so it costs no waiting.
                if self._load is not None and time.monotonic() - last_check >= RECHECK_SECONDS:
                    last_check = time.monotonic()
                    self._fit_threads()
        finally:
            chunks.close()

    def _prefill(self, payload: Any, stop: threading.Event) -> bool:
        """Evaluate the prompt (all but its last token) in short slices, checking ``stop`` between
        them; False when stopped. llama-cpp-python then finds the prompt in its cache (it keeps
        the evaluated tokens and decodes only where a prompt diverges) and decodes one token."""
        tokens = self._prompt_tokens(payload)[:-1]
        llm = self._llm
        cached = 0
        for have, want in zip(llm._input_ids, tokens, strict=False):
            if have != want:
                break
            cached += 1
        # Back to a slice boundary (see PREFILL_ALIGN): at most 7 tokens evaluated again.
        cached -= cached % PREFILL_ALIGN
        if cached < llm.n_tokens and not llm._ctx.kv_cache_seq_rm(-1, cached, -1):
            cached = 0  # this model's cache can't be cut: start over
        llm.n_tokens = cached
        size = PREFILL_FIRST
        while cached < len(tokens):
            if stop.is_set():
                return False
            part = tokens[cached : slice_end(cached, len(tokens), size)]
            started = time.monotonic()
            llm.eval(part)
            cached += len(part)
            per_token = (time.monotonic() - started) / len(part)
            size = prefill_slice(per_token)
        return not stop.is_set()

    def opening_probability(self, messages: Sequence[ChatMessage], opening: str) -> float:
        """The probability the model gives ``opening``'s first token as its answer's first token
        (what ``GenerationConfig.opening_confidence`` is compared with): for calibrating that
        floor on questions with known answers. NaN when the opening has no token of its own."""
        if self._closed:
            raise ModelError("the model was closed")
        import numpy as np

        token = self._opening_token(messages, opening)
        if token is None:
            return float("nan")
        payload = _payload(messages)
        self._fit_threads()
        self._prefill(payload, threading.Event())
        self._llm.eval(self._prompt_tokens(payload)[-1:])
        # llama-cpp-python keeps no scores without logits_all: read the context's own logits.
        logits = self._llm._ctx.get_logits()
        return token_probability(np.ctypeslib.as_array(logits, shape=(self._llm.n_vocab(),)), token)

    def _prompt_tokens(self, payload: Any) -> list[int]:
        """The prompt's tokens exactly as llama-cpp-python's chat handler makes them, so that
        its prefix cache finds what ``_prefill`` evaluated."""
        rendered = self._formatter(messages=payload)
        return list(
            self._llm.tokenize(
                rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
            )
        )

    def _opening_token(self, messages: Sequence[ChatMessage], opening: str) -> int | None:
        """``opening``'s first token as it follows this prompt (a SentencePiece vocabulary
        tokenizes a word differently at the start of a text than after the prompt's newline)."""
        prompt = self.render(messages)
        before = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        after = self._llm.tokenize((prompt + opening).encode("utf-8"), add_bos=False, special=True)
        if len(after) <= len(before) or after[: len(before)] != before:
            return None
        return int(after[len(before)])

    def _opening_guard(self, messages: Sequence[ChatMessage], config: GenerationConfig) -> Any:
        """A logits processor that lets ``config.guarded_opening``'s first token open the answer
        only with at least ``config.opening_confidence`` probability (None when not asked)."""
        if not config.guarded_opening or config.opening_confidence <= 0.0:
            return None
        import numpy as np
        from llama_cpp import LogitsProcessorList

        token = self._opening_token(messages, config.guarded_opening)
        if token is None:
            return None
        floor = config.opening_confidence
        first = [True]

        def guard(_input_ids: Any, scores: Any) -> Any:
            if first[0]:  # the answer's first token only
                first[0] = False
                if token_probability(scores, token) < floor:
                    scores[token] = -np.inf
            return scores

        return LogitsProcessorList([guard])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._llm.close()


def _single_token(llm: Any, text: str) -> int | None:
    """The id of the one control token spelled ``text``, or None when the vocabulary has none."""
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    return int(ids[0]) if len(ids) == 1 else None


def _special_tokens(llm: Any) -> frozenset[str]:
    """Texts of the vocabulary's control and unknown tokens, and of user-defined tokens that look
    like markup. Plain user-defined pieces ("    ", a common word some vocabularies add) are left
    alone: they tokenize differently but control nothing, and defusing them would garble text."""
    import llama_cpp

    vocab = llm._model.vocab
    found: set[str] = set()
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        attr = int(llama_cpp.llama_vocab_get_attr(vocab, token))
        if not attr & (_SPECIAL_ATTRS | _USER_DEFINED):
            continue
        raw = llama_cpp.llama_vocab_get_text(vocab, token)
        text = raw.decode("utf-8", "replace") if raw else ""
        if attr & _SPECIAL_ATTRS or _MARKUP.intersection(text):
            found.add(text)
    return frozenset(t for t in found if t.strip())


def check_lora(lora: Path, architecture: str) -> None:
    """A LoRA adapter GGUF for ``architecture``, or a ModelError saying what it is instead.
    (inspect_gguf is for models: it refuses adapters by design.)"""
    from almanac.core.llm.gguf_header import HeaderError, HeaderPastEnd, read_gguf_header, scalar

    if not lora.is_file():
        raise ModelNotFoundError(f"LoRA adapter not found: {lora}")
    try:
        with lora.open("rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise ModelError(f"LoRA adapter {lora.name} is not a GGUF file")
        header = read_gguf_header(lora)
    except OSError as exc:
        raise ModelError(f"cannot read LoRA adapter {lora}: {exc.strerror or exc}") from exc
    except (HeaderError, HeaderPastEnd) as exc:
        raise ModelError(f"LoRA adapter {lora.name} is damaged or truncated ({exc})") from exc
    fields = {
        k: scalar(header, k) for k in ("general.type", "adapter.type", "general.architecture")
    }
    if fields["general.type"] != "adapter" or fields["adapter.type"] != "lora":
        raise ModelError(
            f"{lora.name} is not a LoRA adapter (general.type {fields['general.type']!r}, "
            f"adapter.type {fields['adapter.type']!r})"
        )
    if fields["general.architecture"] != architecture:
        raise ModelError(
            f"LoRA adapter {lora.name} is for {fields['general.architecture']} models, "
            f"not this {architecture} model"
        )


def _lora_error(lora: Path, model: Path) -> ModelError:
    return ModelError(
        f"llama.cpp could not apply the LoRA adapter {lora.name} to {model.name} "
        "(made for another base model?)"
    )


def _load_error(path: Path, exc: Exception) -> ModelError:
    # llama-cpp-python's exception says only that loading failed; llama.cpp logged why.
    said = take_errors()
    text = " ".join([str(exc), *said])
    if "architecture" in text.lower():
        return UnsupportedModelError(
            f"{path.name}: model architecture not supported by this llama.cpp"
        )
    # The first error is the cause ("error loading model: ... tensor 'x' not found"), the
    # last one the generic "failed to load model"; the function name in front says nothing.
    first = re.sub(r"^\w+: ", "", " ".join(said[0].split())) if said else ""
    reason = f": llama.cpp says {first[:200]}" if first else ""
    return ModelError(
        f"llama.cpp could not load {path.name} (damaged, truncated or unsupported file){reason}"
    )
