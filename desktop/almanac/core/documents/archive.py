"""ZIP-based formats (DOCX, PPTX, XLSX) checked as hostile input before any member is inflated."""

from __future__ import annotations

import io
import zipfile

from almanac.core.documents.errors import (
    CorruptDocumentError,
    EncryptedDocumentError,
    ExpansionLimitError,
)
from almanac.core.documents.limits import (
    MAX_ARCHIVE_MEMBERS,
    MAX_COMPRESSION_RATIO,
    MAX_UNPACKED_BYTES,
    MAX_XML_PART_BYTES,
    RATIO_CHECK_FROM_BYTES,
)

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def check_office_zip(data: bytes, label: str, old_format: str) -> None:
    """Refuse what is not a sound Office ZIP package: encrypted, legacy binary, damaged, or a bomb.

    Office saves a password-protected file as an OLE container holding "EncryptedPackage"; any
    other OLE file is the legacy binary format (``old_format`` names it for the user)."""
    if data.startswith(OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise EncryptedDocumentError(f"{label} is password-protected")
        raise CorruptDocumentError(
            f"this is an old {old_format} file, not {label}; save it as .{label.lower()}"
        )
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CorruptDocumentError(f"not a valid {label} file (not a ZIP archive)")
    check_expansion(data, label)


def check_expansion(data: bytes, label: str) -> None:
    """Refuse a ZIP bomb from its directory, before anything is inflated. The declared sizes are
    binding: zipfile never inflates a member past its declared size (it fails the CRC instead)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise CorruptDocumentError(f"not a valid {label} file (damaged ZIP archive)") from exc
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise ExpansionLimitError(
            f"{label} refused as a ZIP bomb: {len(members):,} parts (the limit is "
            f"{MAX_ARCHIVE_MEMBERS:,})"
        )
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED_BYTES:
        raise ExpansionLimitError(
            f"{label} refused as a ZIP bomb: it unpacks to {total / 2**20:,.0f} MiB (the limit "
            f"is {MAX_UNPACKED_BYTES / 2**20:.0f} MiB)"
        )
    for member in members:
        name = member.filename
        if name.lower().endswith((".xml", ".rels")) and member.file_size > MAX_XML_PART_BYTES:
            raise ExpansionLimitError(
                f"{label} refused: {name} is {member.file_size / 2**20:,.0f} MiB of XML (the "
                f"limit is {MAX_XML_PART_BYTES / 2**20:.0f} MiB)"
            )
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size >= RATIO_CHECK_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ExpansionLimitError(
                f"{label} refused as a ZIP bomb: {name} inflates {ratio:,.0f} times (the limit "
                f"is {MAX_COMPRESSION_RATIO})"
            )
