"""Inspect a GGUF model file without loading it: what it is, whether it is whole, whether it fits.

Everything here reads the file's header (``gguf_header``: memory-mapped, so even a 5 GB model
costs only the pages of its header) and never starts llama.cpp. That makes it cheap enough to
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

from gguf import GGMLQuantizationType, LlamaFileType
from gguf.constants import GGML_QUANT_SIZES, MODEL_ARCH_NAMES

from almanac.core.llm.base import (
    ModelError,
    ModelNotFoundError,
    ModelTooLargeError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedModelError,
)
from almanac.core.llm.gguf_header import (
    GGUF_MAGIC,
    GgufHeader,
    HeaderError,
    HeaderPastEnd,
    TensorInfo,
    UnsupportedVersion,
    read_gguf_header,
    scalar,
)

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
        header = read_gguf_header(path)
    except HeaderPastEnd as e:
        raise _truncated(path, e.have, e.part, e.needed) from e
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e
    except UnsupportedVersion as e:
        raise UnsupportedModelError(
            f"unsupported GGUF version in {path.name} ({e}); a newer Almanac may read it"
        ) from e
    except HeaderError as e:
        raise NotAModelError(
            f"not a usable GGUF model file ({path.name}: corrupt header: {e})"
        ) from e
    return _info_from_header(path, size, header)


def _truncated(path: Path, have: int, part: str, needed: int) -> TruncatedModelError:
    return TruncatedModelError(
        f"model file is truncated: {path.name} has {have} bytes but its {part} "
        f"runs to at least {needed} (an incomplete download or copy?)"
    )


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


def _int_field(header: GgufHeader, key: str) -> int | None:
    # Per-layer values (head_count_kv in some architectures) are lists: the largest counts.
    value = scalar(header, key)
    if isinstance(value, list):
        ints = [int(v) for v in value if isinstance(v, int | float)]
        return max(ints) if ints else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    return None


def _str_field(header: GgufHeader, key: str) -> str | None:
    value = scalar(header, key)
    return value if isinstance(value, str) and value else None


def _quantization(header: GgufHeader) -> str | None:
    file_type = _int_field(header, "general.file_type")
    if file_type is not None:
        try:
            label = LlamaFileType(file_type).name
        except ValueError:
            return f"file type {file_type}"
        return label.removeprefix("MOSTLY_").removeprefix("ALL_")
    # Older converters left general.file_type out: name the type holding most of the bytes.
    by_type: dict[str, int] = {}
    for tensor in header.tensors:
        name = GGMLQuantizationType(tensor.type).name
        by_type[name] = by_type.get(name, 0) + _n_bytes(tensor)
    return max(by_type, key=by_type.__getitem__) if by_type else None


def _n_bytes(tensor: TensorInfo) -> int:
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(tensor.type)]
    return math.ceil(tensor.n_elements / block) * type_size


def _info_from_header(path: Path, size: int, header: GgufHeader) -> GgufInfo:
    arch = _str_field(header, "general.architecture")
    kind = _str_field(header, "general.type")
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
    if not header.tensors:
        raise NotAModelError(
            f"not a GGUF model file ({path.name} holds no weights; a vocabulary-only file?)"
        )
    if arch not in _KNOWN_ARCHITECTURES:
        raise UnsupportedModelError(
            f"unsupported model architecture {arch!r} in {path.name}: unknown to the GGUF "
            f"library (gguf {_gguf_version()}) that ships with this Almanac"
        )
    unknown = sorted({t.type for t in header.tensors} - {int(q) for q in GGML_QUANT_SIZES})
    if unknown:
        raise UnsupportedModelError(
            f"unsupported model file {path.name}: it uses tensor type {unknown[0]}, which this "
            f"version does not know"
        )
    end = max(t.offset + _n_bytes(t) for t in header.tensors)
    if end > size:
        raise _truncated(path, size, "tensor data", end)

    return GgufInfo(
        path=path,
        size_bytes=size,
        gguf_version=header.version,
        architecture=arch,
        name=_str_field(header, "general.name"),
        context_length=_int_field(header, f"{arch}.context_length"),
        chat_template=_str_field(header, "tokenizer.chat_template"),
        quantization=_quantization(header),
        parameter_count=sum(t.n_elements for t in header.tensors),
        tensor_count=len(header.tensors),
        block_count=_int_field(header, f"{arch}.block_count"),
        embedding_length=_int_field(header, f"{arch}.embedding_length"),
        head_count=_int_field(header, f"{arch}.attention.head_count"),
        head_count_kv=_int_field(header, f"{arch}.attention.head_count_kv"),
        key_length=_int_field(header, f"{arch}.attention.key_length"),
        value_length=_int_field(header, f"{arch}.attention.value_length"),
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
