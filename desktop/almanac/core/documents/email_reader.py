"""E-mail: ``.eml`` (one message) and ``.mbox`` (many). Each message is a section headed by its
subject, sender and date; its text is a header line (From, To, Date, Subject) then the body.

Threads quote themselves: every reply repeats the messages before it. A quoted block (``>`` lines,
or everything after an Outlook "Original Message" separator) is dropped when the message it quotes
is in the same file, so a passage is indexed once, where it was written. A quote of a message the
file does not hold is kept: it is the only copy.

Attachments whose type Almanac reads (PDF, DOCX, XLSX, PPTX, Markdown, text, HTML, CSV, and images
through OCR) are read by the same reader as a file of that type and indexed under their message:
each page of an attachment is its own part of the mail's text, headed ``Attachment: name, page N``
(``Attachment: name`` for unpaged formats), and the attachment's own sections keep their headings
below it. So a citation reads ``mail.eml - subject - sender - date > Attachment: invoice.pdf,
page 2 > heading``: the message, the attachment and the attachment's own page. Attachments live
inside the mail's document, so removing or changing the mail removes or refreshes them with it,
and nothing is ever written out: attachments are parsed from memory. An attachment that cannot be
read (damaged, password-protected, past a size limit) is named in the file's warnings while the
message and its other attachments are indexed. Images are read only when attached as files
(not inline pictures such as signature logos); an image with no text is skipped silently.

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

from almanac.core.documents import DEFAULT_MAX_FILE_BYTES
from almanac.core.documents.errors import (
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    FileTooLargeError,
)
from almanac.core.documents.text import BlockWriter
from almanac.core.records import ParsedDocument, Section

# An mbox holding more than this many messages is read up to it (and says so).
MAX_MESSAGES = 50_000
# Attachments read from one file (an mbox of many messages): more are skipped, and said so.
MAX_ATTACHMENTS = 1_000
# One attachment may be as large as a file the readers accept on its own (its base64 text is a
# third larger still, so a mail within the file-size limit cannot exceed it; this is the guard).
# Each reader then applies its own expansion limits (ZIP bombs, HTML bombs) to it as to a file.
MAX_ATTACHMENT_BYTES = DEFAULT_MAX_FILE_BYTES
# Attachments read by the reader of their type; a mail attached to a mail is not opened.
_DOCUMENT_KINDS = (
    *(".pdf", ".docx", ".xlsx", ".ods", ".pptx", ".csv", ".html", ".htm"),
    *(".md", ".markdown", ".txt", ".text", ".rst"),
)
_IMAGE_KINDS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
# What an attachment may need OCR for: a cheap test before a mail is parsed to find out.
_OCR_HINT = re.compile(
    rb"\.(?:pdf|png|jpe?g|tiff?|webp|bmp)\b|image/|application/pdf", re.IGNORECASE
)

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


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str  # the file name as the mail gives it (display only: nothing is written)
    payload: bytes
    damage: str = ""  # why its transfer encoding cannot be trusted, when it cannot


@dataclass
class Message:
    heading: str
    header_line: str
    own: str  # the text this message wrote
    quotes: list[str] = field(default_factory=list)  # each quoted block, as shown
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class _Builder:
    """The mail's text and sections, built from pieces joined by blank lines."""

    parts: list[str] = field(default_factory=list)
    size: int = 0
    sections: list[Section] = field(default_factory=list)

    def add(self, text: str, sections: list[Section] | tuple[Section, ...]) -> None:
        """Append ``text``; ``sections`` index into it and are shifted to the mail's offsets."""
        if self.parts:
            self.parts.append("\n\n")
            self.size += 2
        offset = self.size
        self.parts.append(text)
        self.size += len(text)
        for s in sections:
            self.sections.append(
                Section(s.text, s.heading_path, None, s.start + offset, s.end + offset)
            )

    def finish(self) -> tuple[str, tuple[Section, ...]]:
        return "".join(self.parts), tuple(self.sections)


def read(data: bytes, kind: str = "eml") -> ParsedDocument:
    raws = _split_mbox(data) if kind == "mbox" else [data]
    messages: list[Message] = []
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
    return render(messages, kind, broken=broken, truncated=len(raws) > MAX_MESSAGES)


def render(
    messages: list[Message],
    kind: str,
    *,
    broken: list[str] | None = None,
    truncated: bool = False,
) -> ParsedDocument:
    """The file's text and sections from its messages (parsed by this module, or from an Outlook
    .msg by msg_reader): quotes of messages the file holds dropped, attachments read."""
    broken = broken or []
    builder = _Builder()
    failed: list[str] = []
    attachments_read = 0
    own_texts = [_normalized(m.own) for m in messages]
    for index, message in enumerate(messages):
        writer = BlockWriter()
        writer.heading(1, message.heading)
        blocks = [message.header_line, message.own]
        others = own_texts[:index] + own_texts[index + 1 :]
        for quote in message.quotes:
            # A quote of a message this file holds is that message again: index it once.
            if not any(_normalized(_unquoted(quote)) in other for other in others if other):
                blocks.append(quote)
        writer.block("\n\n".join(b for b in blocks if b.strip()))
        builder.add(*writer.finish())
        where = f"message {index + 1}, " if kind == "mbox" else ""
        for attachment in message.attachments:
            if attachments_read >= MAX_ATTACHMENTS:
                failed.append(f"{where}{attachment.name}: skipped (over {MAX_ATTACHMENTS:,})")
                continue
            attachments_read += 1
            try:
                document = _attachment_document(attachment)
            except DocumentError as exc:
                failed.append(f"{where}{attachment.name}: {exc}")
                continue
            if document is not None:
                _add_attachment(builder, message.heading, attachment.name, document)
    text, sections = builder.finish()
    warnings: list[str] = []
    if broken:
        warnings.append(f"{len(broken)} broken message(s) skipped: " + "; ".join(broken[:10]))
    if failed:
        shown = "; ".join(failed[:10]) + (
            f"; and {len(failed) - 10} more" if len(failed) > 10 else ""
        )
        warnings.append(f"{len(failed)} attachment(s) not read: {shown}")
    if truncated:
        warnings.append(f"only the first {MAX_MESSAGES:,} messages were read")
    return ParsedDocument(kind, (text,), sections, warnings=tuple(warnings))


def ocr_pending(data: bytes, kind: str = "eml") -> bool:
    """Whether reading this mail would run OCR now: a scanned PDF or an image attached to it
    whose pages the OCR cache doesn't hold yet (ingest then reads the mail in its slow lane)."""
    if not _OCR_HINT.search(data):
        return False
    try:
        raws = _split_mbox(data) if kind == "mbox" else [data]
    except DocumentError:
        return False  # the reader reports it
    messages: list[Message] = []
    for raw in raws[:MAX_MESSAGES]:
        try:
            messages.append(_message(raw))
        except DocumentError:
            continue
    return attachments_need_ocr(messages)


def attachments_need_ocr(messages: list[Message]) -> bool:
    """Whether an attachment of these messages needs OCR the cache doesn't hold yet."""
    from almanac.core.documents import ocr_pending as file_ocr_pending

    for message in messages:
        for attachment in message.attachments:
            if not attachment.damage and file_ocr_pending(
                Path(attachment.name), attachment.payload
            ):
                return True
    return False


def _add_attachment(
    builder: _Builder, message_heading: str, name: str, document: ParsedDocument
) -> None:
    """Each page of the attachment under its own title; its sections keep their own headings."""
    pages = range(1, len(document.pages) + 1) if document.paged else [None]
    for page in pages:
        page_text = document.page_text(page)
        own = [s for s in document.sections if s.page == page]
        if not page_text.strip() or not own:
            continue
        numbered = page is not None and (document.kind != "image" or len(document.pages) > 1)
        title = f"Attachment: {name}" + (f", page {page}" if numbered else "")
        prefix = (message_heading, title)
        # The title is written into the text (a viewer shows it) but, like a heading, is not part
        # of any section's span; the page's text follows it verbatim, so its offsets only shift.
        shift = len(title) + 2
        builder.add(
            f"{title}\n\n{page_text}",
            [
                Section(s.text, (*prefix, *s.heading_path), None, s.start + shift, s.end + shift)
                for s in own
            ],
        )


def _attachment_document(attachment: Attachment) -> ParsedDocument | None:
    """The attachment read by the reader of its type; None when there is nothing to index."""
    from almanac.core.documents import parse_document
    from almanac.core.documents.ocr import NoTextInImageError

    if attachment.damage:
        raise CorruptDocumentError(attachment.damage)
    if len(attachment.payload) > MAX_ATTACHMENT_BYTES:
        size = len(attachment.payload) / 2**20
        limit = MAX_ATTACHMENT_BYTES / 2**20
        raise FileTooLargeError(
            f"attachment too large ({size:,.0f} MB; the limit is {limit:,.0f} MB)"
        )
    if not attachment.payload:
        return None
    try:
        return parse_document(Path(attachment.name), attachment.payload)
    except NoTextInImageError:
        return None  # a photo with no text in it is not an error


def _split_mbox(data: bytes) -> list[bytes]:
    """mbox messages are separated by lines starting ``From `` (mboxrd escapes them in bodies)."""
    starts = [m.start() for m in _MBOX_SEPARATOR.finditer(data)]
    if not starts:
        raise CorruptDocumentError("not an mbox file (no 'From ' separator line)")
    bounds = [*starts, len(data)]
    # The body keeps its line; the separator line itself is not part of the message.
    return [data[data.index(b"\n", bounds[i]) + 1 : bounds[i + 1]] for i in range(len(starts))]


def _message(raw: bytes) -> Message:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    if not any(message.get(h) for h in ("From", "Subject", "Date", "Message-ID", "To")):
        raise BrokenMessage("it has no e-mail headers")
    attached = {id(part): part for part in message.iter_attachments()}
    damaged: dict[int, str] = {}
    for part in message.walk():
        if part.is_multipart():
            _raise_for_defects(part)
            continue
        part.get_payload(decode=True)  # decoding is what records a damaged body's defects
        reason = _defect(part)
        if reason and id(part) in attached:
            damaged[id(part)] = reason  # a damaged attachment costs itself, not the message
        elif reason:
            raise BrokenMessage(reason)
    subject = _header(message, "Subject") or "(no subject)"
    sender = _header(message, "From")
    date = _header(message, "Date")
    heading = " — ".join(p for p in (subject, sender, short_date(date)) if p)
    fields = [("From", sender), ("To", _header(message, "To")), ("Date", date)]
    fields.append(("Subject", subject))
    header_line = " | ".join(f"{k}: {v}" for k, v in fields if v)
    body = _body_text(message)
    own, quotes = split_quotes(body)
    result = Message(heading, header_line, own, quotes)
    for key, part in attached.items():
        name = _file_name(part)
        if not _readable_attachment(part, name):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        result.attachments.append(Attachment(name, data, damaged.get(key, "")))
    return result


def _file_name(part: EmailMessage) -> str:
    """The attachment's own name, without any folder a sender's client put in front of it."""
    try:
        name = part.get_filename() or ""
    except Exception:  # a parameter the policy cannot decode
        return ""
    name = " ".join(name.replace("\\", "/").split("/")[-1].split())
    return "" if name in (".", "..") else name


def _readable_attachment(part: EmailMessage, name: str) -> bool:
    if part.get_content_maintype() in ("multipart", "message"):
        return False  # a forwarded mail: one level of nesting is read, deeper is not
    return readable_name(name, as_file=part.get_content_disposition() == "attachment")


def readable_name(name: str, *, as_file: bool) -> bool:
    """Whether an attachment of this name is read: documents of the types Almanac reads, and
    images attached as files (read by OCR; inline pictures such as logos and signatures are not)."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in _DOCUMENT_KINDS:
        return True
    return suffix in _IMAGE_KINDS and as_file


def _defect(part: object) -> str:
    for defect in getattr(part, "defects", ()):
        reason = _BROKEN_DEFECTS.get(type(defect).__name__)
        if reason:
            return reason
    return ""


def _raise_for_defects(part: object) -> None:
    reason = _defect(part)
    if reason:
        raise BrokenMessage(reason)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header the policy cannot parse: show it raw
        value = message.get_all(name, [""])[0]
    return " ".join(str(value or "").split())


def short_date(value: str) -> str:
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
        return html_text(content)
    return content.replace("\r\n", "\n")


def html_text(markup: str) -> str:
    from almanac.core.documents import html

    try:
        return "\n\n".join(html.read(markup.encode("utf-8"), "html").pages)
    except DocumentError:
        return ""


def split_quotes(body: str) -> tuple[str, list[str]]:
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
