"""Reading a GGUF file's header: its metadata and tensor table, without the tensors.

The ``gguf`` package's reader makes a numpy view of every element of every metadata array; for a
vocabulary of 262,144 tokens (Gemma 3) that took ten seconds on a laptop core, where llama.cpp
loads the whole model in half a second. Almanac asks the header a dozen questions, so arrays are
stepped over (strings by their length prefixes) and decoded only when small, and every read is
checked against the file's size, so a cut file says which part it ends in.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Arrays up to this many items are decoded (per-layer values such as head_count_kv); longer ones
# (the vocabulary, merges, scores) are kept as their type and length.
SMALL_ARRAY = 1024

# GGUF value types: struct format of the fixed-size ones.
_STRING, _ARRAY = 8, 9
_FIXED: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


class HeaderPastEnd(Exception):
    """A read reached past the end of the file: it was cut (``part`` says where)."""

    def __init__(self, needed: int, have: int, part: str) -> None:
        super().__init__(f"{part} needs {needed} bytes, file has {have}")
        self.needed = needed
        self.have = have
        self.part = part


class HeaderError(ValueError):
    """The header is not one this reader can parse (version, value type, text); says which."""


class UnsupportedVersion(HeaderError):
    pass


@dataclass(frozen=True, slots=True)
class SkippedArray:
    """A metadata array too long to be worth decoding: its item type and length."""

    item_type: int
    count: int


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int  # a ggml type number (gguf.GGMLQuantizationType)
    offset: int  # from the start of the file

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class GgufHeader:
    version: int
    fields: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    data_offset: int  # where tensor data starts


class _Cursor:
    def __init__(self, buf: mmap.mmap, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def take(self, n: int) -> int:
        """Advance by ``n`` bytes; returns where they start."""
        start = self.pos
        end = start + n
        if n < 0 or end > self.size:
            raise HeaderPastEnd(end, self.size, "header")
        self.pos = end
        return start

    def unpack(self, fmt: str) -> Any:
        start = self.take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, start)[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        start = self.take(n)
        try:
            return bytes(self.buf[start : start + n]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HeaderError(f"a text value at byte {start} is not UTF-8") from exc

    def skip_strings(self, count: int) -> None:
        buf, size, pos = self.buf, self.size, self.pos
        for _ in range(count):
            if pos + 8 > size:
                raise HeaderPastEnd(pos + 8, size, "header")
            pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
        if pos > size:
            raise HeaderPastEnd(pos, size, "header")
        self.pos = pos

    def value(self, kind: int) -> Any:
        if kind in _FIXED:
            return self.unpack(_FIXED[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.unpack("<I"), self.unpack("<Q")
            if item == _ARRAY:  # llama.cpp refuses them too; here they could recurse unbounded
                raise HeaderError(f"a nested array at byte {self.pos - 12}")
            if count > SMALL_ARRAY:
                if item in _FIXED:
                    self.take(count * struct.calcsize(_FIXED[item]))
                elif item == _STRING:
                    self.skip_strings(count)
                else:
                    raise HeaderError(f"an array of value type {item} is not readable")
                return SkippedArray(item, count)
            return [self.value(item) for _ in range(count)]
        raise HeaderError(f"unknown metadata value type {kind} at byte {self.pos - 4}")


def read_gguf_header(path: Path) -> GgufHeader:
    """The header of the GGUF file at ``path``. Raises :class:`HeaderPastEnd` for a file cut inside
    its header, :class:`HeaderError` for one this reader cannot parse, OSError when unreadable."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        if size < 4:
            raise HeaderPastEnd(24, size, "header")
        # A read-only map pages in only the header, however large the model.
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf, size))


def _parse(c: _Cursor) -> GgufHeader:
    start = c.take(4)
    if bytes(c.buf[start : start + 4]) != GGUF_MAGIC:
        raise HeaderError("GGUF magic invalid")
    version = c.unpack("<I")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0:
            raise UnsupportedVersion("the file is big-endian; this reader reads little-endian")
        raise UnsupportedVersion(f"version {version}; this reader knows versions 2 and 3")
    tensor_count, kv_count = c.unpack("<Q"), c.unpack("<Q")
    fields: dict[str, Any] = {}
    for _ in range(kv_count):
        key = c.string()
        fields[key] = c.value(c.unpack("<I"))
    raw: list[tuple[str, tuple[int, ...], int, int]] = []
    for _ in range(tensor_count):
        name = c.string()
        n_dims = c.unpack("<I")
        if n_dims > 8:
            raise HeaderError(f"tensor {name!r} claims {n_dims} dimensions")
        shape = tuple(c.unpack("<Q") for _ in range(n_dims))
        raw.append((name, shape, c.unpack("<I"), c.unpack("<Q")))
    alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise HeaderError(f"general.alignment {alignment!r} is not a power of two")
    data_offset = -(-c.pos // alignment) * alignment
    tensors = tuple(TensorInfo(n, s, t, data_offset + o) for n, s, t, o in raw)
    return GgufHeader(version, fields, tensors, data_offset)


def scalar(header: GgufHeader, key: str) -> Any:
    """A field's value, or None when it is absent or an array too long to decode."""
    value = header.fields.get(key)
    return None if isinstance(value, SkippedArray) else value
