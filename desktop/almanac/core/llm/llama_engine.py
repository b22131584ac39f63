"""llama.cpp through llama-cpp-python: a local GGUF chat model on CPU or GPU.

One worker thread owns an engine: the llama.cpp context is not thread-safe. Prefix reuse is
llama-cpp-python's own: it keeps the evaluated tokens and only decodes where a new prompt diverges,
which is why prompts put fixed text first (see prompting.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from almanac.core.hardware import physical_cores
from almanac.core.llm.base import (
    ChatMessage,
    EngineInfo,
    GenerationConfig,
    ModelError,
    UnsupportedModelError,
)
from almanac.core.llm.gguf_file import check_fits_memory, inspect_gguf

FALLBACK_TEMPLATE_NAME = "chatml"
# Used only for models whose GGUF carries no chat template of its own.
_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

GpuLayers = int | str  # "auto" | "all" | "none" | a number of layers


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
    ) -> None:
        path = Path(model_path)
        # Static checks first: they name the problem (not a GGUF, truncated, too large) where
        # llama.cpp's loader only says that loading failed.
        self.file_info = inspect_gguf(path)
        check_fits_memory(self.file_info, n_ctx)
        import llama_cpp

        gpu = gpu_backend_name()
        n_gpu_layers = resolve_gpu_layers(gpu_layers, gpu is not None)
        n_threads = threads or physical_cores()
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise _load_error(path, exc) from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        eos_id = self._llm.token_eos()
        bos_id = self._llm.token_bos()
        eos = self._llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = self._llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not template:
            # No template in the file: ChatML, and stop on its end-of-turn marker too.
            im_end = self._llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
            stop_ids = [eos_id] + (im_end if len(im_end) == 1 else [])
            self._formatter: Any = Jinja2ChatFormatter(
                _CHATML_TEMPLATE, eos, bos, stop_token_ids=stop_ids
            )
            template_source = f"fallback: {FALLBACK_TEMPLATE_NAME}"
        else:
            self._formatter = Jinja2ChatFormatter(template, eos, bos, stop_token_ids=[eos_id])
            template_source = "gguf"
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
            threads=n_threads,
            gpu_layers=offloaded,
        )
        self._closed = False

    @property
    def info(self) -> EngineInfo:
        return self._info

    def render(self, messages: Sequence[ChatMessage]) -> str:
        payload: Any = [{"role": m.role, "content": m.content} for m in messages]
        response = self._formatter(messages=payload)
        return str(response.prompt)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        prompt = self.render(messages)
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        return len(tokens)

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
        payload: Any = [{"role": m.role, "content": m.content} for m in messages]
        chunks = self._llm.create_chat_completion(
            messages=payload,
            stream=True,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
        )
        try:
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
                # Checked after every token: a stop request costs at most the token in flight.
                if stop is not None and stop.is_set():
                    break
        finally:
            chunks.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._llm.close()


def _load_error(path: Path, exc: Exception) -> ModelError:
    text = str(exc)
    if "architecture" in text.lower():
        return UnsupportedModelError(
            f"{path.name}: model architecture not supported by this llama.cpp"
        )
    return ModelError(
        f"llama.cpp could not load {path.name} (damaged, truncated or unsupported file)"
    )
