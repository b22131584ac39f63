"""Inspect a GGUF model file without loading it: what it is, whether it is whole, whether it fits.

Everything here reads the file's header through the ``gguf`` package (memory-mapped, so even a 5 GB
model costs only the pages of its header) and never starts llama.cpp. That makes it cheap enough to
run when the user picks a file, and it turns the usual failures into specific one-line messages
before llama.cpp gets a chance to abort with a generic "failed to load model".

What this module cannot decide is whether the *installed* llama.cpp knows the architecture: the
authoritative check is llama.cpp's own loader. The engine maps llama.cpp's "unknown model
architecture" load failure to :class:`UnsupportedModelError`; here we only flag architectures that
the ``gguf`` package (released together with llama.cpp's converters) has never heard of.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from gguf import GGUFReader, LlamaFileType
from gguf.constants import GGML_QUANT_SIZES, MODEL_ARCH_NAMES

from almanac.core.llm.base import (
    ModelError,
    ModelNotFoundError,
    ModelTooLargeError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedModelError,
)

GGUF_MAGIC = b"GGUF"
# llama.cpp allocates the KV cache as f16 by default: 2 bytes per element for K and for V.
_KV_BYTES_PER_ELEMENT = 2
_KNOWN_ARCHITECTURES = frozenset(MODEL_ARCH_NAMES.values())


@dataclass(frozen=True, slots=True)
class GgufInfo:
    """What a GGUF file says about itself. Sizes in bytes; ``None`` where the file doesn't say."""

    path: Path
    size_bytes: int
    gguf_version: int
    architecture: str
    name: str | None  # general.name, e.g. "Qwen2.5 0.5B Instruct"
    context_length: int | None  # the context the model was trained for
    chat_template: str | None  # tokenizer.chat_template (Jinja), when the file carries one
    quantization: (
        str | None
    )  # "Q4_K_M", "F16", ... (general.file_type, else the dominant tensor type)
    parameter_count: int  # sum of tensor elements: exact for dense models, counts all MoE experts
    tensor_count: int
    block_count: int | None = None  # transformer layers
    embedding_length: int | None = None
    head_count: int | None = None
    head_count_kv: int | None = None  # largest per-layer value when the file gives one per layer
    key_length: int | None = None  # per-head K size; defaults to embedding_length / head_count
    value_length: int | None = None

    @property
    def file_name(self) -> str:
        return self.path.name

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        """Estimated f16 KV cache for ``n_ctx`` tokens, or None when the shape isn't in the file.

        An estimate, not llama.cpp's exact allocation: it ignores sliding-window layers (smaller)
        and compute buffers (a few hundred MB), and uses the largest per-layer KV head count.
        """
        if n_ctx < 1:
            raise ValueError("n_ctx must be at least 1")
        n_kv = self.head_count_kv or self.head_count
        if not (self.block_count and n_kv):
            return None
        k_len = self.key_length or _per_head(self.embedding_length, self.head_count)
        v_len = self.value_length or k_len
        if not (k_len and v_len):
            return None
        return n_ctx * self.block_count * n_kv * (k_len + v_len) * _KV_BYTES_PER_ELEMENT


def _per_head(embedding_length: int | None, head_count: int | None) -> int | None:
    if embedding_length and head_count:
        return embedding_length // head_count
    return None


class _PastEndError(Exception):
    """A header or tensor read reached past the end of the file (raised by _BoundedReader)."""

    def __init__(self, needed: int, have: int, part: str) -> None:
        super().__init__(f"{part} needs {needed} bytes, file has {have}")
        self.needed = needed
        self.have = have
        self.part = part


class _BoundedReader(GGUFReader):
    """GGUFReader that says *where* a cut file ends instead of failing on a short numpy slice.

    The stock reader slices its memory map, and slicing past the end quietly returns fewer bytes;
    the failure then surfaces later as an unrelated reshape or index error. Checking each read's
    end offset here turns every such case into one precise "truncated" signal.
    """

    def _get(
        self,
        offset: int,
        dtype: npt.DTypeLike,
        count: int = 1,
        override_order: Literal["I", "S", "<"] | None = None,
    ) -> npt.NDArray[Any]:
        end = int(offset) + np.dtype(dtype).itemsize * int(count)
        size = int(self.data.shape[0])
        if end > size:
            # data_offset is assigned once the header is parsed, right before tensors are mapped.
            part = "tensor data" if "data_offset" in self.__dict__ else "header"
            raise _PastEndError(end, size, part)
        return super()._get(offset, dtype, count, override_order)


def inspect_gguf(path: Path) -> GgufInfo:
    """Read ``path``'s GGUF header. Raises a :class:`ModelError` subclass with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise NotAModelError(f"not a GGUF model file ({path} is a folder)")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e
    # Check the magic ourselves first: it is the one question we can answer for any file, and
    # naming what the file looks like instead ("a zip archive") tells the user what went wrong.
    if head[:4] != GGUF_MAGIC:
        raise NotAModelError(f"not a GGUF model file ({path.name}: {_describe_non_gguf(head)})")

    try:
        reader = _BoundedReader(path)
    except _PastEndError as e:
        raise TruncatedModelError(
            f"model file is truncated: {path.name} has {e.have} bytes but its {e.part} "
            f"runs to at least {e.needed} (an incomplete download or copy?)"
        ) from e
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e
    except (ValueError, KeyError, IndexError, OverflowError, UnicodeDecodeError) as e:
        raise _header_error(path, e) from e
    try:
        return _info_from_reader(path, size, reader)
    finally:
        # Drop the memory map now: on Windows an open map keeps the file from being moved.
        del reader


def _describe_non_gguf(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if len(head) < 4:
        return f"only {len(head)} bytes long"
    if head[:4] == b"PK\x03\x04":
        return "it is a zip archive, e.g. a PyTorch checkpoint"
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"algg", b"ggml", b"ggmf", b"ggjt", b"ggla"):
        return "it is a legacy GGML file; convert it to GGUF with llama.cpp's tools"
    # safetensors: a little-endian u64 header length, then a JSON object.
    if len(head) >= 9 and head[8:9] == b"{":
        return "it looks like a safetensors file; convert it to GGUF with llama.cpp's tools"
    if head[:1] == b"\x80":
        return "it looks like a Python pickle"
    try:
        head.decode("utf-8")
        return "it looks like a text file"
    except UnicodeDecodeError:
        return f"it starts with bytes {head[:4].hex(' ')}, not 'GGUF'"


def _header_error(path: Path, e: Exception) -> ModelError:
    text = " ".join(str(e).split())
    if "version" in text:
        # e.g. "Sorry, file appears to be version 4 which we cannot handle"
        return UnsupportedModelError(
            f"unsupported GGUF version in {path.name} ({text}); a newer Almanac may read it"
        )
    if "GGMLQuantizationType" in text:
        return UnsupportedModelError(
            f"unsupported model file {path.name}: it uses a tensor type this version does not "
            f"know ({text})"
        )
    return NotAModelError(f"not a usable GGUF model file ({path.name}: corrupt header: {text})")


def _field(reader: GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    if field is None or not field.types:
        return None
    # Scalars come back as Python values; per-layer values (head_count_kv in some architectures)
    # as lists, which _int_field reduces.
    return field.contents()


def _int_field(reader: GGUFReader, key: str) -> int | None:
    value = _field(reader, key)
    if isinstance(value, list):
        ints = [int(v) for v in value if isinstance(v, int | float)]
        return max(ints) if ints else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    return None


def _str_field(reader: GGUFReader, key: str) -> str | None:
    value = _field(reader, key)
    return value if isinstance(value, str) and value else None


def _quantization(reader: GGUFReader) -> str | None:
    file_type = _int_field(reader, "general.file_type")
    if file_type is not None:
        try:
            label = LlamaFileType(file_type).name
        except ValueError:
            return f"file type {file_type}"
        return label.removeprefix("MOSTLY_").removeprefix("ALL_")
    # Older converters left general.file_type out: name the type holding most of the bytes.
    by_type: dict[str, int] = {}
    for tensor in reader.tensors:
        by_type[tensor.tensor_type.name] = by_type.get(tensor.tensor_type.name, 0) + int(
            tensor.n_bytes
        )
    return max(by_type, key=by_type.__getitem__) if by_type else None


def _info_from_reader(path: Path, size: int, reader: GGUFReader) -> GgufInfo:
    version = _int_field(reader, "GGUF.version") or 0
    arch = _str_field(reader, "general.architecture")
    kind = _str_field(reader, "general.type")
    if arch is None:
        raise NotAModelError(
            f"not a usable GGUF model file ({path.name}: it has no general.architecture)"
        )
    if kind == "adapter":
        raise NotAModelError(
            f"not a GGUF model file ({path.name} is a LoRA adapter; choose the base model instead)"
        )
    if kind == "mmproj" or arch == "clip":
        raise NotAModelError(
            f"not a GGUF language model ({path.name} is a vision projector, not a chat model)"
        )
    if not reader.tensors:
        raise NotAModelError(
            f"not a GGUF model file ({path.name} holds no weights; a vocabulary-only file?)"
        )
    if arch not in _KNOWN_ARCHITECTURES:
        raise UnsupportedModelError(
            f"unsupported model architecture {arch!r} in {path.name}: unknown to the GGUF "
            f"library (gguf {_gguf_version()}) that ships with this Almanac"
        )
    _check_tensor_extent(path, size, reader)

    return GgufInfo(
        path=path,
        size_bytes=size,
        gguf_version=version,
        architecture=arch,
        name=_str_field(reader, "general.name"),
        context_length=_int_field(reader, f"{arch}.context_length"),
        chat_template=_str_field(reader, "tokenizer.chat_template"),
        quantization=_quantization(reader),
        parameter_count=sum(int(t.n_elements) for t in reader.tensors),
        tensor_count=len(reader.tensors),
        block_count=_int_field(reader, f"{arch}.block_count"),
        embedding_length=_int_field(reader, f"{arch}.embedding_length"),
        head_count=_int_field(reader, f"{arch}.attention.head_count"),
        head_count_kv=_int_field(reader, f"{arch}.attention.head_count_kv"),
        key_length=_int_field(reader, f"{arch}.attention.key_length"),
        value_length=_int_field(reader, f"{arch}.attention.value_length"),
    )


def _check_tensor_extent(path: Path, size: int, reader: GGUFReader) -> None:
    """Belt and braces for the bounded reader: the last tensor must end inside the file."""
    end = 0
    for t in reader.tensors:
        block, type_size = GGML_QUANT_SIZES[t.tensor_type]
        end = max(end, int(t.data_offset) + math.ceil(int(t.n_elements) / block) * type_size)
    if end > size:
        raise TruncatedModelError(
            f"model file is truncated: {path.name} has {size} bytes but its tensor data "
            f"runs to {end} (an incomplete download or copy?)"
        )


def _gguf_version() -> str:
    try:
        return metadata.version("gguf")
    except metadata.PackageNotFoundError:
        return "unknown version"


# --- Memory -------------------------------------------------------------------------------------


def available_memory_bytes() -> int | None:
    """Memory the system can give a new process without swapping, or None when unknown.

    Linux: MemAvailable (counts reclaimable page cache, unlike MemFree), capped by a cgroup v2 limit
    when running in a container. Windows: ullAvailPhys. Elsewhere: available physical pages where
    sysconf offers them (it does not on macOS, where the check is skipped).
    """
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        available = _meminfo_available(meminfo)
        limit = _cgroup_headroom()
        if available is not None and limit is not None:
            return min(available, limit)
        return available if available is not None else limit
    if sys.platform == "win32":
        return _windows_available()
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the value is in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text(encoding="ascii").strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text(encoding="ascii").strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def _windows_available() -> int | None:  # pragma: no cover - exercised on Windows only
    class _MemoryStatusEx(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = _MemoryStatusEx()
    status.dwLength = ctypes.sizeof(_MemoryStatusEx)
    windll = getattr(ctypes, "windll", None)
    if windll is None or not windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    return int(status.ullAvailPhys)


def _gb(n: int) -> str:
    # Two decimals below 1 GB so small models and small limits don't all print as "0.0 GB".
    return f"{n / 1e9:.2f} GB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def check_fits_memory(info: GgufInfo, n_ctx: int) -> None:
    """Raise :class:`ModelTooLargeError` when the model plus its KV cache won't fit in free RAM.

    Needed = file size (llama.cpp maps all weights) + estimated KV cache for ``n_ctx``. Sized for
    CPU inference; with layers offloaded to a GPU less RAM is needed, so callers may skip it then.
    Does nothing when available memory can't be determined.
    """
    available = available_memory_bytes()
    if available is None:
        return
    kv = info.kv_cache_bytes(n_ctx) or 0
    needed = info.size_bytes + kv
    if needed > available:
        detail = f"model {_gb(info.size_bytes)}"
        if kv:
            detail += f" + {_gb(kv)} for a {n_ctx}-token context"
        raise ModelTooLargeError(
            f"{info.file_name} needs about {_gb(needed)} of memory ({detail}) but only "
            f"{_gb(available)} is available; pick a smaller model or context"
        )


def describe(info: GgufInfo) -> str:
    """One line for logs and the model picker: "qwen2 · Q4_K_M · 494M params · 398 MB"."""
    parts: Sequence[str] = [
        info.name or info.architecture,
        info.quantization or "?",
        _params(info.parameter_count),
        _gb(info.size_bytes),
    ]
    return " · ".join(parts)


def _params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B params"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M params"
    return f"{n} params"
