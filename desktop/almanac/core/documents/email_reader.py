"""E-mail: ``.eml`` (one message) and ``.mbox`` (many). Each message is a section headed by its
subject, sender and date; its text is a header line (From, To, Date, Subject) then the body.

Threads quote themselves: every reply repeats the messages before it. A quoted block (``>`` lines,
or everything after an Outlook "Original Message" separator) is dropped when the message it quotes
is in the same file, so a passage is indexed once, where it was written. A quote of a message the
file does not hold is kept: it is the only copy.

Attachments whose type Almanac reads (PDF, DOCX, spreadsheets, ...) are read with their own reader
and indexed under the message: a section headed ``subject > Attachment: name``. Images are left
out here (OCR belongs to its own, slower lane, not inside a mail's parse).

A broken message in an mbox (no headers, a damaged base64 body) is reported by number in the
file's warnings while the good ones are indexed; a file whose every message is broken fails.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path, PurePosixPath

from almanac.core.documents.errors import CorruptDocumentError, DocumentError, EmptyDocumentError
from almanac.core.documents.text import BlockWriter
from almanac.core.records import ParsedDocument

# An mbox holding more than this many messages is read up to it (and says so).
MAX_MESSAGES = 50_000
# Attachments nest (a mail attached to a mail): one level is read, deeper ones are not.
_ATTACHMENT_KINDS = (".pdf", ".docx", ".xlsx", ".pptx", ".md", ".txt", ".csv", ".html", ".htm")

_MBOX_SEPARATOR = re.compile(rb"^From [^\r\n]*\r?\n", re.MULTILINE)
_ATTRIBUTION = re.compile(r"^(On .{0,200}wrote:|.{0,200} schrieb:|Le .{0,200} a écrit ?:)\s*$")
_ORIGINAL = re.compile(r"^-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.I)
_BROKEN_DEFECTS = {
    "InvalidBase64CharactersDefect": "its base64 body is damaged",
    "InvalidBase64PaddingDefect": "its base64 body is damaged",
    "InvalidBase64LengthDefect": "its base64 body is damaged",
    "MissingHeaderBodySeparatorDefect": "its headers are damaged",
}


class BrokenMessage(CorruptDocumentError):
    pass


@dataclass
class _Message:
    heading: str
    header_line: str
    own: str  # the text this message wrote
    quotes: list[str] = field(default_factory=list)  # each quoted block, as shown
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (name, text)


def read(data: bytes, kind: str = "eml") -> ParsedDocument:
    raws = _split_mbox(data) if kind == "mbox" else [data]
    messages: list[_Message] = []
    broken: list[str] = []
    for number, raw in enumerate(raws[:MAX_MESSAGES], start=1):
        try:
            messages.append(_message(raw))
        except BrokenMessage as exc:
            if kind != "mbox":
                raise BrokenMessage(f"not a readable e-mail message: {exc}") from exc
            broken.append(f"message {number}: {exc}")
    if not messages:
        if broken:
            raise CorruptDocumentError("no readable message: " + "; ".join(broken[:5]))
        raise EmptyDocumentError("no e-mail messages in this file")
    writer = BlockWriter()
    own_texts = [_normalized(m.own) for m in messages]
    for index, message in enumerate(messages):
        writer.heading(1, message.heading)
        blocks = [message.header_line, message.own]
        others = own_texts[:index] + own_texts[index + 1 :]
        for quote in message.quotes:
            # A quote of a message this file holds is that message again: index it once.
            if not any(_normalized(_unquoted(quote)) in other for other in others if other):
                blocks.append(quote)
        writer.block("\n\n".join(b for b in blocks if b.strip()))
        for name, text in message.attachments:
            writer.heading(2, f"Attachment: {name}")
            writer.block(text)
    text, sections = writer.finish()
    warnings: list[str] = []
    if broken:
        warnings.append(f"{len(broken)} broken message(s) skipped: " + "; ".join(broken[:10]))
    if len(raws) > MAX_MESSAGES:
        warnings.append(f"only the first {MAX_MESSAGES:,} messages were read")
    return ParsedDocument(kind, (text,), tuple(sections), warnings=tuple(warnings))


def _split_mbox(data: bytes) -> list[bytes]:
    """mbox messages are separated by lines starting ``From `` (mboxrd escapes them in bodies)."""
    starts = [m.start() for m in _MBOX_SEPARATOR.finditer(data)]
    if not starts:
        raise CorruptDocumentError("not an mbox file (no 'From ' separator line)")
    bounds = [*starts, len(data)]
    # The body keeps its line; the separator line itself is not part of the message.
    return [data[data.index(b"\n", bounds[i]) + 1 : bounds[i + 1]] for i in range(len(starts))]


def _message(raw: bytes) -> _Message:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    if not any(message.get(h) for h in ("From", "Subject", "Date", "Message-ID", "To")):
        raise BrokenMessage("it has no e-mail headers")
    for part in message.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)  # decoding is what records a damaged body's defects
        _raise_for_defects(part)
    subject = _header(message, "Subject") or "(no subject)"
    sender = _header(message, "From")
    date = _header(message, "Date")
    heading = " — ".join(p for p in (subject, sender, _short_date(date)) if p)
    fields = [("From", sender), ("To", _header(message, "To")), ("Date", date)]
    fields.append(("Subject", subject))
    header_line = " | ".join(f"{k}: {v}" for k, v in fields if v)
    body = _body_text(message)
    own, quotes = _split_quotes(body)
    result = _Message(heading, header_line, own, quotes)
    for part in message.iter_attachments():
        name = part.get_filename() or ""
        if name and PurePosixPath(name).suffix.lower() in _ATTACHMENT_KINDS:
            text = _attachment_text(part, name)
            if text:
                result.attachments.append((name, text))
    return result


def _raise_for_defects(part: object) -> None:
    for defect in getattr(part, "defects", ()):
        reason = _BROKEN_DEFECTS.get(type(defect).__name__)
        if reason:
            raise BrokenMessage(reason)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header the policy cannot parse: show it raw
        value = message.get_all(name, [""])[0]
    return " ".join(str(value or "").split())


def _short_date(value: str) -> str:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return value
    return parsed.strftime("%Y-%m-%d %H:%M")


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return _html_text(content)
    return content.replace("\r\n", "\n")


def _html_text(markup: str) -> str:
    from almanac.core.documents import html

    try:
        return "\n\n".join(html.read(markup.encode("utf-8"), "html").pages)
    except DocumentError:
        return ""


def _split_quotes(body: str) -> tuple[str, list[str]]:
    """(what this message wrote, its quoted blocks with their attribution lines)."""
    own: list[str] = []
    quotes: list[str] = []
    current: list[str] = []
    lines = body.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if _ORIGINAL.match(line.strip()):
            quotes.append("\n".join(lines[index:]).strip())
            break
        if line.lstrip().startswith(">"):
            if own and _ATTRIBUTION.match(own[-1].strip()) and not current:
                current.append(own.pop())
            current.append(line)
        else:
            if current:
                quotes.append("\n".join(current).strip())
                current = []
            own.append(line)
        index += 1
    if current:
        quotes.append("\n".join(current).strip())
    return "\n".join(own).strip(), [q for q in quotes if q]


def _unquoted(quote: str) -> str:
    lines = []
    for line in quote.split("\n"):
        stripped = line.lstrip()
        if _ATTRIBUTION.match(stripped) or _ORIGINAL.match(stripped):
            continue
        while stripped.startswith(">"):
            stripped = stripped[1:].lstrip()
        lines.append(stripped)
    return "\n".join(lines)


def _normalized(text: str) -> str:
    return " ".join(text.split()).lower()


def _attachment_text(part: EmailMessage, name: str) -> str:
    from almanac.core.documents import parse_document

    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return ""
    try:
        document = parse_document(Path(PurePosixPath(name).name), payload)
    except DocumentError:
        return ""  # an unreadable attachment costs itself, not the message
    return "\n\n".join(page for page in document.pages if page.strip())
