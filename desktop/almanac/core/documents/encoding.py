"""Bytes of a text-like file to ``str``: BOMs, UTF-8, legacy code pages, binary detection."""

from __future__ import annotations

import codecs
import re

from almanac.core.documents.errors import BinaryContentError

_SAMPLE_BYTES = 64 * 1024
_MAX_CONTROL_SHARE = 0.10
_MIN_MULTIBYTE_EVIDENCE = 16

# UTF-32 LE must be tested before UTF-16 LE: its BOM starts with the UTF-16 LE BOM.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Tab, LF, VT, FF, CR and ESC (ANSI colours in logs) are normal in text files; other C0/C1 controls
# are not, so a high share of them means the bytes are not text in the encoding we tried.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_ESCAPED_BYTE = re.compile(r"[\udc80-\udcff]")
_LINE_BREAK = re.compile(r"\r\n?")


def decode_text(data: bytes) -> tuple[str, tuple[str, ...]]:
    """Decode ``data`` and normalize line endings to ``\\n``. Returns ``(text, warnings)``.

    Raises ``BinaryContentError`` when the bytes are not text.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text, warnings = _decode_replacing(data[len(bom) :], encoding)
            break
    else:
        if b"\x00" in data:
            # NULs mean a binary file, unless they sit in every other byte: UTF-16 without a BOM
            # (what some Windows tools write), its Latin text has a zero high byte per character.
            utf16 = _bomless_utf16(data)
            if utf16 is None:
                raise BinaryContentError("binary data, not text")
            text, warnings = _decode_replacing(data, utf16)
        else:
            text, warnings = _decode_unmarked(data)
    _reject_binary(text)
    return _LINE_BREAK.sub("\n", text), warnings


def _bomless_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when the NULs of ``data`` fall on one byte parity only."""
    sample = data[: _SAMPLE_BYTES - (_SAMPLE_BYTES % 2)]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nuls, odd_nuls = even.count(0), odd.count(0)
    # Mostly Latin text: nearly every high byte is zero; the low bytes almost never are.
    if odd_nuls >= 0.3 * len(odd) and even_nuls <= 0.01 * len(even):
        return "utf-16-le"
    if even_nuls >= 0.3 * len(even) and odd_nuls <= 0.01 * len(odd):
        return "utf-16-be"
    return None


def _decode_replacing(data: bytes, encoding: str) -> tuple[str, tuple[str, ...]]:
    try:
        return data.decode(encoding), ()
    except UnicodeDecodeError:
        text = data.decode(encoding, errors="replace")
        return text, ("some undecodable bytes replaced",)


def _decode_unmarked(data: bytes) -> tuple[str, tuple[str, ...]]:
    try:
        return data.decode("utf-8"), ()
    except UnicodeDecodeError:
        pass
    # surrogateescape turns each invalid byte into one lone surrogate, "ignore" drops it: the
    # length difference counts invalid bytes exactly, at C speed even for large files.
    escaped = data.decode("utf-8", errors="surrogateescape")
    valid = data.decode("utf-8", errors="ignore")
    invalid = len(escaped) - len(valid)
    multibyte = len(valid) - len(valid.encode("ascii", errors="ignore"))
    # Real UTF-8 with a little damage has more valid multi-byte characters than bad bytes;
    # legacy 8-bit text (e.g. Latin-1 "caf\xe9") has almost none, so it is decoded as a code page.
    if multibyte >= invalid:
        noun = "byte" if invalid == 1 else "bytes"
        return _ESCAPED_BYTE.sub("\ufffd", escaped), (f"{invalid} undecodable {noun} replaced",)
    return _decode_legacy(data), ()


def _decode_legacy(data: bytes) -> str:
    encoding = _guess_legacy_encoding(data)
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            pass
        else:
            # With a handful of high bytes a multi-byte (CJK) code page "fits" English text with
            # one stray cp1252 quote ("it\x92s" -> a Han character); it takes many to be credible.
            multibyte = len(text) < len(data)
            if not multibyte or sum(byte >= 0x80 for byte in data) >= _MIN_MULTIBYTE_EVIDENCE:
                return text
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        # latin-1 maps every byte, so this cannot fail.
        return data.decode("latin-1")


def _guess_legacy_encoding(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    matches = list(results)
    if not matches:
        return None
    best_chaos = min(match.chaos for match in matches)
    tied = [match for match in matches if match.chaos <= best_chaos + 0.01]
    # Short Western text fits dozens of code pages equally well and charset-normalizer then picks
    # an arbitrary one (cp1006 for "café"); prefer cp1252 whenever it is among the best fits.
    if any("cp1252" in match.could_be_from_charset for match in tied):
        return "cp1252"
    best = results.best()
    return str(best.encoding) if best is not None else None


def _reject_binary(text: str) -> None:
    sample = text[:_SAMPLE_BYTES]
    if not sample:
        return
    controls = len(_CONTROL.findall(sample))
    if "\x00" in sample or controls / len(sample) > _MAX_CONTROL_SHARE:
        raise BinaryContentError("binary data, not text")
