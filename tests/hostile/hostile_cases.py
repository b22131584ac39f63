"""Hostile files, built on demand in a folder: what the hostile suite and its benchmark share.

Each builder writes one attacker-made file (or link) into ``folder`` and returns its name there.
``GOOD`` documents go beside them: every one of them must be indexed whatever its neighbours do.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GOOD = {
    "printer.md": "# Printer\n\nThe office printer jams when its tray holds over 200 sheets.\n",
    "vpn.txt": "VPN\n===\n\nReconnect the VPN client after every password change.\n",
    "manual/backup.md": "# Backups\n\nNightly backups run at 02:00 and keep thirty days.\n",
}
GOOD_QUERY = "printer tray jams"

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_DOC_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://'
    b'schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
)
_DOC_TAIL = b"</w:body></w:document>"
_PARAGRAPH = b"<w:p><w:r><w:t>The same sentence, again and again, to fill memory.</w:t></w:r></w:p>"


def write_good(folder: Path) -> list[Path]:
    paths = []
    for name, text in GOOD.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _docx(path: Path, document_xml_parts: int) -> None:
    """A valid DOCX whose document.xml repeats one paragraph ``document_xml_parts`` x 16 KiB."""
    block = _PARAGRAPH * (16384 // len(_PARAGRAPH))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(_DOC_HEAD)
            for _ in range(document_xml_parts):
                member.write(block)
            member.write(_DOC_TAIL)


def zip_bomb_docx(folder: Path) -> str:
    """3 MB that inflate to 1 GiB of document.xml (the issue's first bomb)."""
    _docx(folder / "bomb.docx", 65536)
    return "bomb.docx"


def ratio_bomb_docx(folder: Path) -> str:
    """Under every size limit but inflating ~1,000x: 45,000 chunks of one sentence before."""
    _docx(folder / "repeat.docx", 2048)  # 32 MiB of XML from ~60 KB
    return "repeat.docx"


def deep_html(folder: Path) -> str:
    """Nested <div>s, deeper than any page and than Python's recursion limit."""
    depth = 20_000
    html = "<html><body>" + "<div>" * depth + "deep text" + "</div>" * depth + "</body></html>"
    (folder / "deep.html").write_text(html, encoding="utf-8")
    return "deep.html"


def deep_html_50mb(folder: Path) -> str:
    """The issue's 50 MB of nested <div>s."""
    depth = 50 * 2**20 // 11
    with open(folder / "deep50.html", "w", encoding="utf-8") as f:
        f.write("<html><body>" + "<div>" * depth + "x" + "</div>" * depth + "</body></html>")
    return "deep50.html"


def flat_html(folder: Path) -> str:
    """The issue's 50 MB of flat <span>s: one chunk of 3.7 million characters before."""
    count = 50 * 2**20 // 14
    (folder / "flat.html").write_text(
        "<html><body><p>" + "<span>x</span>" * count + "</p></body></html>", encoding="utf-8"
    )
    return "flat.html"


def wide_html(folder: Path) -> str:
    """Under the element limit, but one inline run of 150,000 characters with no space."""
    (folder / "wide.html").write_text(
        "<html><body><p>" + "<b>ab</b>" * 75_000 + "</p></body></html>", encoding="utf-8"
    )
    return "wide.html"


def giant_word(folder: Path) -> str:
    """1 MB without a space: the tokenizer makes it one [UNK], so it was one 1 MB chunk."""
    (folder / "word.txt").write_text("A" * 1_000_000, encoding="utf-8")
    return "word.txt"


def utf16_without_bom(folder: Path) -> str:
    text = "Printer drivers\n\nInstall the Quokka printer driver from the share before use.\n"
    (folder / "utf16.txt").write_bytes(text.encode("utf-16-le"))
    return "utf16.txt"


def non_utf8_name(folder: Path) -> str:
    raw = os.fsencode(folder) + b"/caf\xe9.md"
    with open(raw, "w", encoding="utf-8") as f:
        f.write("# Espresso\n\nThe espresso machine descales every Friday.\n")
    return os.fsdecode(b"caf\xe9.md")


def fifo(folder: Path) -> str:
    os.mkfifo(folder / "p.txt")
    return "p.txt"


def link_out(folder: Path) -> str:
    """A link to a file outside the folder (stands for /etc/shadow)."""
    secret = folder.parent / "outside" / "secret.md"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("# Shadow\n\nroot daemon bin hash secret-token-42\n", encoding="utf-8")
    os.symlink(secret, folder / "notes.md")
    return "notes.md"


def link_out_folder(folder: Path) -> str:
    """A link to a folder outside (stands for /etc)."""
    outside = folder.parent / "outside-tree"
    (outside / "sub").mkdir(parents=True, exist_ok=True)
    (outside / "sub" / "passwd.md").write_text("# Accounts\n\nsecret-token-43\n", encoding="utf-8")
    os.symlink(outside, folder / "etc")
    return "etc"


def link_in(folder: Path) -> str:
    """A link to a document inside the folder: allowed."""
    os.symlink(folder / "printer.md", folder / "printer-link.md")
    return "printer-link.md"


def escape_codes(folder: Path) -> str:
    name = "title\x1b]0;pwned\x07\x1b[2J.md"
    (folder / name).write_text(
        "# Clear \x1b]0;owned\x07\x1b[2J\n\nToner cartridges \x1b[31mare in cabinet B\x1b[0m.\n",
        encoding="utf-8",
    )
    return name


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    build: Callable[[Path], str]
    error: str | None  # a phrase of the expected error, None when the file must be indexed


CASES: tuple[Case, ...] = (
    Case("non-UTF-8 file name", non_utf8_name, None),
    Case("link out (file)", link_out, "outside the indexed folders"),
    Case("link out (folder)", link_out_folder, "outside the indexed folders"),
    Case("link in", link_in, None),
    Case("FIFO", fifo, "named pipe"),
    Case("zip bomb docx (1 GiB)", zip_bomb_docx, "ZIP bomb"),
    Case("ratio bomb docx (32 MiB XML)", ratio_bomb_docx, "inflates"),
    Case("deep HTML (20,000 levels)", deep_html, "nested too deeply"),
    Case("deep HTML (50 MB)", deep_html_50mb, "too complex"),
    Case("flat HTML (50 MB)", flat_html, "too complex"),
    Case("wide HTML (150,000 chars)", wide_html, None),
    Case("giant word (1 MB)", giant_word, None),
    Case("UTF-16 without BOM", utf16_without_bom, None),
    Case("escape codes", escape_codes, None),
)
