"""Outlook ``.msg`` e-mails, read like ``.eml``: one section headed ``subject — sender — date``, a
From/To/Date/Subject line, then the body; quotes and attachments go through the e-mail reader
(``email_reader.render``), so a .msg's attachments are read, cited and reported exactly as a
.eml's.

A .msg is an OLE compound file holding the message's MAPI properties ([MS-OXMSG]): strings and
binaries in ``__substg1.0_IIIITTTT`` streams (property id, type), fixed-size values such as the
sent date in ``__properties_version1.0``, one ``__attach_version1.0_#N`` storage per attachment.
The container is read with olefile (BSD-licensed, pure Python, the OLE reader of oletools); the
properties are read here. extract-msg, the full-featured reader, is GPL-licensed and pulls in
RTF and encoding packages, so it is not used (see the README's format table).

The body is the plain-text body (PR_BODY), else the HTML body (PR_HTML) as text. A message whose
only body is compressed RTF (rare: Outlook writes a plain-text body beside it) is indexed by its
headings and attachments. S/MIME-encrypted and rights-protected (IRM) messages are refused as
encrypted. Attached Outlook items (a forwarded .msg inside a .msg) are not opened.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import struct
from email.parser import HeaderParser
from typing import Any

from almanac.core.documents.email_reader import (
    Attachment,
    Message,
    html_text,
    readable_name,
    render,
    short_date,
    split_quotes,
)
from almanac.core.documents.errors import (
    CorruptDocumentError,
    DocumentError,
    EncryptedDocumentError,
)
from almanac.core.records import ParsedDocument

# Attachment storages read from one message: more are skipped (the e-mail reader's own cap on
# attachments read applies after this).
MAX_ATTACHMENT_STORAGES = 1_000

_PT_UNICODE = "001F"
_PT_STRING8 = "001E"
_PT_BINARY = "0102"
_PT_SYSTIME = 0x0040
_PT_LONG = 0x0003

PR_MESSAGE_CLASS = 0x001A
PR_SUBJECT = 0x0037
PR_CLIENT_SUBMIT_TIME = 0x0039
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D
PR_SENDER_NAME = 0x0C1A
PR_SENDER_EMAIL_ADDRESS = 0x0C1F
PR_SENDER_SMTP_ADDRESS = 0x5D01
PR_DISPLAY_TO = 0x0E04
PR_MESSAGE_DELIVERY_TIME = 0x0E06
PR_BODY = 0x1000
PR_HTML = 0x1013
PR_MESSAGE_CODEPAGE = 0x3FFD
PR_ATTACH_DATA = 0x3701
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_CONTENT_ID = 0x3712
PR_DISPLAY_NAME = 0x3001
ATTACH_EMBEDDED_MSG = 5


def read(data: bytes, kind: str = "msg") -> ParsedDocument:
    return render([parse(data)], kind)


def ocr_pending(data: bytes) -> bool:
    """Whether reading this message would run OCR now (a scan or an image attached)."""
    from almanac.core.documents.email_reader import attachments_need_ocr

    try:
        message = parse(data)
    except DocumentError:
        return False  # the reader reports it
    return attachments_need_ocr([message])


def parse(data: bytes) -> Message:
    import olefile

    if not olefile.isOleFile(data=data):
        raise CorruptDocumentError("not an Outlook .msg file (not an OLE compound file)")
    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:  # olefile reports a damaged container with various errors
        raise CorruptDocumentError(
            f"Outlook .msg file is damaged ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        return _message(_Storage(ole, []))
    except DocumentError:
        raise
    except (OSError, ValueError, struct.error, IndexError, KeyError) as exc:
        raise CorruptDocumentError(
            f"Outlook .msg file is damaged ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        ole.close()


class _Storage:
    """The MAPI properties of one storage (the message, or an attachment) in the OLE file."""

    def __init__(self, ole: Any, path: list[str], header_bytes: int = 32) -> None:
        self.ole = ole
        self.path = path
        self.header_bytes = header_bytes
        self._fixed: dict[int, tuple[int, bytes]] | None = None

    def stream(self, name: str) -> bytes | None:
        path = [*self.path, name]
        if not self.ole.exists("/".join(path)):
            return None
        data: bytes = self.ole.openstream(path).read()
        return data

    def string(self, prop: int, codepage: str = "cp1252") -> str:
        raw = self.stream(f"__substg1.0_{prop:04X}{_PT_UNICODE}")
        if raw is not None:
            return raw.decode("utf-16-le", "replace").split("\0", 1)[0]
        raw = self.stream(f"__substg1.0_{prop:04X}{_PT_STRING8}")
        if raw is not None:
            return raw.decode(codepage, "replace").split("\0", 1)[0]
        return ""

    def binary(self, prop: int) -> bytes | None:
        return self.stream(f"__substg1.0_{prop:04X}{_PT_BINARY}")

    def fixed(self, prop: int) -> tuple[int, bytes] | None:
        """(type, 8-byte value) of a fixed-size property in ``__properties_version1.0``."""
        if self._fixed is None:
            self._fixed = {}
            raw = self.stream("__properties_version1.0") or b""
            for at in range(self.header_bytes, len(raw) - 15, 16):
                ptype, pid = struct.unpack_from("<HH", raw, at)
                self._fixed[pid] = (ptype, raw[at + 8 : at + 16])
        return self._fixed.get(prop)

    def time(self, prop: int) -> dt.datetime | None:
        entry = self.fixed(prop)
        if entry is None or entry[0] != _PT_SYSTIME:
            return None
        ticks = struct.unpack("<Q", entry[1])[0]
        if not ticks:
            return None
        try:
            return dt.datetime(1601, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ticks // 10)
        except OverflowError:
            return None

    def long(self, prop: int) -> int | None:
        entry = self.fixed(prop)
        if entry is None or entry[0] != _PT_LONG:
            return None
        value: int = struct.unpack("<i", entry[1][:4])[0]
        return value


def _message(root: _Storage) -> Message:
    names = [entry[0] for entry in root.ole.listdir(streams=True, storages=True)]
    if not any(name.startswith("__substg1.0_") for name in names):
        raise CorruptDocumentError(
            "not an Outlook message (an OLE file of another kind, such as an old Word .doc)"
        )
    codepage = _codepage(root)
    message_class = root.string(PR_MESSAGE_CLASS, codepage)
    upper = message_class.upper()
    if upper.startswith("IPM.NOTE.SMIME") and "MULTIPARTSIGNED" not in upper:
        raise EncryptedDocumentError("this e-mail is encrypted (S/MIME)")
    if ".RPMSG" in upper:
        raise EncryptedDocumentError("this e-mail is rights-protected (IRM)")
    headers = HeaderParser(policy=email.policy.compat32).parsestr(
        root.string(PR_TRANSPORT_MESSAGE_HEADERS, codepage)
    )
    subject = _clean(root.string(PR_SUBJECT, codepage)) or "(no subject)"
    sender = _sender(root, codepage) or _clean(str(headers.get("From", "")))
    to = _clean(root.string(PR_DISPLAY_TO, codepage)) or _clean(str(headers.get("To", "")))
    sent = root.time(PR_CLIENT_SUBMIT_TIME) or root.time(PR_MESSAGE_DELIVERY_TIME)
    date = (
        sent.strftime("%a, %d %b %Y %H:%M:%S +0000")
        if sent
        else _clean(str(headers.get("Date", "")))
    )
    heading = " — ".join(p for p in (subject, sender, short_date(date)) if p)
    fields = [("From", sender), ("To", to), ("Date", date), ("Subject", subject)]
    header_line = " | ".join(f"{k}: {v}" for k, v in fields if v)
    own, quotes = split_quotes(_body(root, codepage))
    message = Message(heading, header_line, own, quotes)
    message.attachments.extend(_attachments(root, names, codepage))
    return message


def _codepage(root: _Storage) -> str:
    value = root.long(PR_MESSAGE_CODEPAGE)
    if value in (None, 1200, 65001):
        return "utf-8" if value == 65001 else "cp1252"
    name = f"cp{value}"
    try:
        "".encode(name)
    except LookupError:
        return "cp1252"
    return name


def _sender(root: _Storage, codepage: str) -> str:
    name = _clean(root.string(PR_SENDER_NAME, codepage))
    address = _clean(root.string(PR_SENDER_SMTP_ADDRESS, codepage))
    if not address:
        address = _clean(root.string(PR_SENDER_EMAIL_ADDRESS, codepage))
        if address.startswith("/"):  # an Exchange (X.500) address means nothing to a reader
            address = ""
    if name and address and name != address:
        return f"{name} <{address}>"
    return name or address


def _body(root: _Storage, codepage: str) -> str:
    text = root.string(PR_BODY, codepage)
    if text.strip():
        return text.replace("\r\n", "\n")
    markup = root.binary(PR_HTML)
    if markup is None:
        markup = root.string(PR_HTML, codepage).encode("utf-8") or None
    if markup:
        return html_text(markup.decode("utf-8", "replace"))
    return ""


def _attachments(root: _Storage, names: list[str], codepage: str) -> list[Attachment]:
    storages = sorted({n for n in names if n.startswith("__attach_version1.0_#")})
    found: list[Attachment] = []
    for storage_name in storages[:MAX_ATTACHMENT_STORAGES]:
        storage = _Storage(root.ole, [storage_name], header_bytes=8)
        if storage.long(PR_ATTACH_METHOD) == ATTACH_EMBEDDED_MSG:
            continue  # an attached Outlook item: not opened, as a mail inside a .eml is not
        name = _file_name(
            storage.string(PR_ATTACH_LONG_FILENAME, codepage)
            or storage.string(PR_ATTACH_FILENAME, codepage)
            or storage.string(PR_DISPLAY_NAME, codepage)
        )
        inline = bool(storage.string(PR_ATTACH_CONTENT_ID, codepage))
        if not readable_name(name, as_file=not inline):
            continue
        found.append(Attachment(name, storage.binary(PR_ATTACH_DATA) or b""))
    return found


def _file_name(name: str) -> str:
    name = " ".join(name.replace("\\", "/").split("/")[-1].split())
    return "" if name in (".", "..") else name


def _clean(value: str) -> str:
    return " ".join(value.split())
