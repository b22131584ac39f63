"""Per-format readers: extracted text, heading paths, exact offsets, and specific errors."""

from __future__ import annotations

import codecs
import io
import os
import zipfile
from pathlib import Path

import pytest

from almanac.core.documents import (
    BinaryContentError,
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    FileTooLargeError,
    UnreadableFileError,
    UnsupportedFormatError,
    read_document,
)
from almanac.core.documents.encoding import decode_text
from almanac.core.records import ParsedDocument

from pdfgen import build_pdf

# --- helpers -----------------------------------------------------------------------------------


def check_spans(doc: ParsedDocument) -> None:
    """The invariants every reader promises, for every section."""
    assert doc.sections
    last: tuple[int, int] = (0, -1)
    for section in doc.sections:
        assert doc.page_text(section.page)[section.start : section.end] == section.text
        assert section.text == section.text.strip() and section.text
        assert (section.page is not None) == doc.paged
        position = (section.page or 0, section.start)
        assert position >= last, "sections must be in document order and must not overlap"
        last = (section.page or 0, section.end)
    for page in doc.pages:
        assert "\r" not in page


def by_heading(doc: ParsedDocument) -> dict[tuple[str, ...], str]:
    merged: dict[tuple[str, ...], str] = {}
    for section in doc.sections:
        merged[section.heading_path] = (
            merged.get(section.heading_path, "") + "\n" + section.text
        ).strip()
    return merged


def write(directory: Path, name: str, data: bytes | str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# --- encodings ---------------------------------------------------------------------------------

SAMPLE = "Café crème \u2013 “quoted” €5"


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("utf-8", SAMPLE.encode("utf-8")),
        ("utf-8 bom", codecs.BOM_UTF8 + SAMPLE.encode("utf-8")),
        ("utf-16 le bom", codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le")),
        ("utf-16 be bom", codecs.BOM_UTF16_BE + SAMPLE.encode("utf-16-be")),
        ("utf-32 le bom", codecs.BOM_UTF32_LE + SAMPLE.encode("utf-32-le")),
        ("cp1252", SAMPLE.encode("cp1252")),
    ],
)
def test_decode_text_encodings(label: str, data: bytes) -> None:
    assert decode_text(data) == (SAMPLE, ()), label


def test_decode_latin1_is_not_treated_as_damaged_utf8() -> None:
    assert decode_text(b"caf\xe9 cr\xe8me") == ("café crème", ())
    assert (
        decode_text("naïve façade résumé déjà vu".encode("latin-1"))[0]
        == "naïve façade résumé déjà vu"
    )


def test_decode_ascii_with_one_cp1252_quote() -> None:
    # charset-normalizer alone guesses a CJK code page for this.
    assert decode_text(b"It\x92s on page 5") == ("It\u2019s on page 5", ())


def test_decode_non_western_legacy_text() -> None:
    text = "Привет мир, как дела? Это тест кодировки."
    assert decode_text(text.encode("cp1251"))[0] == text


def test_decode_mostly_utf8_with_a_few_bad_bytes_warns() -> None:
    data = ("Größe über Maß. " * 4).encode("utf-8") + b"\xff\xfe tail \x80"
    text, warnings = decode_text(data)
    assert warnings == ("3 undecodable bytes replaced",)
    assert text.startswith("Größe über Maß. ")
    assert text.endswith("\ufffd\ufffd tail \ufffd")


def test_decode_normalizes_line_endings() -> None:
    assert decode_text(b"a\r\nb\rc\nd")[0] == "a\nb\nc\nd"
    assert decode_text(codecs.BOM_UTF16_LE + "x\r\ny".encode("utf-16-le"))[0] == "x\ny"


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", bytes(range(1, 9)) * 100 + b"some text"],
    ids=["nul-bytes", "control-characters"],
)
def test_decode_rejects_binary(data: bytes) -> None:
    with pytest.raises(BinaryContentError, match="binary data, not text"):
        decode_text(data)


def test_binary_file_named_txt(tmp_path: Path) -> None:
    path = write(tmp_path, "photo.txt", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)))
    with pytest.raises(BinaryContentError, match="binary data, not text"):
        read_document(path)


def test_txt_with_a_few_bad_bytes_is_read_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path, "notes.txt", "Überblick: Größe und Maß.\n".encode() + b"bad \xc3( byte\n"
    )
    doc = read_document(path)
    assert doc.warnings == ("1 undecodable byte replaced",)
    assert doc.pages[0] == "Überblick: Größe und Maß.\nbad \ufffd( byte\n"
    check_spans(doc)


# --- generic errors (read_document) ------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty file \(0 bytes\)"):
        read_document(write(tmp_path, "empty.md", b""))


def test_whitespace_only_file(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match="no text found in this TXT file"):
        read_document(write(tmp_path, "blank.txt", b" \n\n\t\n"))


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"unsupported file type \.xyz"):
        read_document(write(tmp_path, "data.xyz", b"hello"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="cannot read file"):
        read_document(tmp_path / "gone.txt")


def test_too_large_file(tmp_path: Path) -> None:
    with pytest.raises(FileTooLargeError, match="file too large"):
        read_document(write(tmp_path, "big.txt", b"x" * 2000), max_bytes=1000)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not stop root from reading the file",
)
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.txt", b"top secret")
    path.chmod(0)
    try:
        with pytest.raises(UnreadableFileError, match="permission denied"):
            read_document(path)
    finally:
        path.chmod(0o644)


def test_path_with_unicode_and_spaces(tmp_path: Path) -> None:
    path = write(
        tmp_path, "Dossier été/Guide d\u2019installation ☃.md", "# Démarrage\n\nÇa marche.\n"
    )
    doc = read_document(path)
    assert [(s.heading_path, s.text) for s in doc.sections] == [(("Démarrage",), "Ça marche.")]


# --- plain text and reStructuredText -----------------------------------------------------------


def test_txt_single_section(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "a.txt", b"\n\n  First para.\r\n\r\nSecond para.\r\n\n"))
    assert doc.kind == "txt" and not doc.paged
    assert doc.pages == ("\n\n  First para.\n\nSecond para.\n\n",)
    assert [(s.text, s.heading_path, s.page) for s in doc.sections] == [
        ("First para.\n\nSecond para.", (), None)
    ]
    check_spans(doc)


RST = """\
==========
User Guide
==========

Intro text.

Installation
============

Install it.

Windows
-------

Run setup.exe::

    # not a heading
    ----------------

Linux
-----

Use apt.

----------

Usage
=====

Run it.
"""


def test_rst_titles_and_levels(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "guide.rst", RST))
    assert doc.kind == "rst"
    check_spans(doc)
    sections = by_heading(doc)
    assert list(sections) == [
        ("User Guide",),
        ("User Guide", "Installation"),
        ("User Guide", "Installation", "Windows"),
        ("User Guide", "Installation", "Linux"),
        ("User Guide", "Usage"),
    ]
    assert sections[("User Guide",)] == "Intro text."
    assert sections[("User Guide", "Installation", "Windows")].startswith("Run setup.exe::")
    assert "# not a heading" in sections[("User Guide", "Installation", "Windows")]
    # Heading lines are not section text; a transition line is.
    assert "=====" not in "".join(s.text for s in doc.sections)
    assert sections[("User Guide", "Installation", "Linux")] == "Use apt.\n\n----------"


# --- Markdown ----------------------------------------------------------------------------------

MARKDOWN = """\
---
title: Front matter title
tags: [a, b]
---

Preface text.

# Installation

Get the installer.

## Windows

Run it:

```sh
# this is a comment, not a heading
setup.exe --quiet
```

Linux *setup*
-------------

Use the package.

    # indented code, not a heading

- # heading inside a list item is content

# Usage `cli`

Run `almanac`.
"""


def test_markdown_headings_and_offsets(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "guide.md", MARKDOWN))
    assert doc.kind == "md"
    assert doc.pages == (MARKDOWN,)  # offsets index the raw source
    check_spans(doc)
    sections = by_heading(doc)
    assert list(sections) == [
        (),
        ("Installation",),
        ("Installation", "Windows"),
        ("Installation", "Linux setup"),
        ("Usage cli",),
    ]
    assert sections[()] == "Preface text."  # front matter excluded
    assert sections[("Installation",)] == "Get the installer."
    windows = sections[("Installation", "Windows")]
    assert windows.startswith("Run it:\n\n```sh\n# this is a comment, not a heading\n")
    assert "# indented code, not a heading" in sections[("Installation", "Linux setup")]
    assert "- # heading inside a list item" in sections[("Installation", "Linux setup")]
    assert sections[("Usage cli",)] == "Run `almanac`."
    assert not any("Front matter" in s.text or s.text.startswith("#") for s in doc.sections)


def test_markdown_without_headings(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "plain.markdown", "Just text.\n\nMore text.\n"))
    assert [(s.heading_path, s.text) for s in doc.sections] == [((), "Just text.\n\nMore text.")]


# --- HTML --------------------------------------------------------------------------------------

HTML = """\
<!DOCTYPE html>
<html><head><title>Site title</title><style>p { color: red }</style>
<script>var secret = "script text";</script></head>
<body>
<header><a href="/">Site banner</a></header>
<nav><ul><li>Home</li><li>Nav link</li></ul></nav>
<main>
  <article>
    <header><h1>Product Guide</h1></header>
    <p>Welcome   to the
       product.</p>
    <div hidden>Hidden div</div>
    <p aria-hidden="true">Aria hidden</p>
    <p style="display: none">Display none</p>
    <h2>Install <a class="headerlink" href="#install">¶</a></h2>
    <p>Line one<br>Line two &amp; more</p>
    <pre>  code  block
    indented</pre>
    <ul><li>First item</li><li>Second <b>bold</b> item</li></ul>
    <h3>Options</h3>
    <table><tr><th>Name</th><th>Value</th></tr><tr><td>mode</td><td>fast</td></tr></table>
    <h2>Support</h2>
    <div>Loose div text<p>Nested paragraph</p>tail text</div>
    <!-- a comment -->
  </article>
  <aside>Related links</aside>
  <form><input name="q"><label>Search label</label></form>
  <noscript>Enable JS</noscript><template><p>Template text</p></template>
</main>
<footer>Copyright footer</footer>
</body></html>
"""


def test_html_noise_removed_and_headings(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "guide.html", HTML))
    assert doc.kind == "html"
    check_spans(doc)
    text = doc.pages[0]
    for noise in (
        "script text", "color: red", "Site banner", "Nav link", "Hidden div", "Aria hidden",
        "Display none", "¶", "Related links", "Search label", "Enable JS", "Template text",
        "Copyright footer", "a comment", "Site title",
    ):  # fmt: skip
        assert noise not in text, noise
    sections = by_heading(doc)
    assert list(sections) == [
        ("Product Guide",),
        ("Product Guide", "Install"),
        ("Product Guide", "Install", "Options"),
        ("Product Guide", "Support"),
    ]
    assert sections[("Product Guide",)] == "Welcome to the product."
    assert sections[("Product Guide", "Install")] == (
        "Line one\nLine two & more\n\n  code  block\n    indented\n\nFirst item\n\nSecond bold item"
    )
    assert sections[("Product Guide", "Install", "Options")] == "Name | Value\nmode | fast"
    assert sections[("Product Guide", "Support")] == (
        "Loose div text\n\nNested paragraph\n\ntail text"
    )
    # Headings are in the extracted text but outside the sections' spans.
    assert text.startswith("Product Guide\n\nWelcome to the product.")


def test_html_title_used_only_without_h1(tmp_path: Path) -> None:
    html = "<html><head><title> Help  Center </title></head><body><p>Intro.</p>"
    html += "<h2>FAQ</h2><p>Answers.</p></body></html>"
    doc = read_document(write(tmp_path, "faq.htm", html))
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Help Center",), "Intro."),
        (("Help Center", "FAQ"), "Answers."),
    ]
    check_spans(doc)


def test_html_declared_charset(tmp_path: Path) -> None:
    html = '<html><head><meta charset="windows-1252"></head>'
    html += "<body><p>Caf\xe9 \x93ok\x94</p></body></html>"
    doc = read_document(write(tmp_path, "legacy.html", html.encode("latin-1")))
    assert doc.sections[0].text == "Café “ok”"


# --- DOCX --------------------------------------------------------------------------------------


def _make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Handbook", level=0)
    document.add_paragraph("About this handbook.")
    document.add_heading("Installation", level=1)
    document.add_paragraph("Before you start.")
    document.add_heading("Windows", level=2)
    document.add_paragraph("Run the installer.")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([["Key", "Value", "Note"], ["mode", "fast", ""], ["merged", "", ""]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 0).merge(table.cell(2, 2))
    document.add_paragraph("After the table.")
    document.add_heading("Usage", level=1)
    document.add_paragraph("Line one")
    document.add_paragraph("")
    document.add_paragraph("Line two")
    document.save(str(path))


def test_docx_headings_tables_and_order(tmp_path: Path) -> None:
    path = tmp_path / "handbook.docx"
    _make_docx(path)
    doc = read_document(path)
    assert doc.kind == "docx"
    check_spans(doc)
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Handbook",), "About this handbook."),
        (("Handbook", "Installation"), "Before you start."),
        (
            ("Handbook", "Installation", "Windows"),
            "Run the installer.\n\nKey | Value | Note\nmode | fast\nmerged\n\nAfter the table.",
        ),
        (("Handbook", "Usage"), "Line one\n\nLine two"),
    ]
    assert doc.pages[0].startswith("Handbook\n\nAbout this handbook.\n\nInstallation\n\n")


def test_docx_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(CorruptDocumentError, match=r"not a valid DOCX file \(not a ZIP archive\)"):
        read_document(write(tmp_path, "broken.docx", b"This is not a zip file at all."))


def test_docx_zip_without_word_document(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(CorruptDocumentError, match="not a valid DOCX file"):
        read_document(write(tmp_path, "empty-zip.docx", buffer.getvalue()))


def test_docx_truncated(tmp_path: Path) -> None:
    path = tmp_path / "good.docx"
    _make_docx(path)
    data = path.read_bytes()
    with pytest.raises(CorruptDocumentError, match="not a valid DOCX file"):
        read_document(write(tmp_path, "cut.docx", data[: len(data) // 2]))


def test_docx_password_protected(tmp_path: Path) -> None:
    ole = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500 + "EncryptedPackage".encode("utf-16-le")
    )
    with pytest.raises(EncryptedDocumentError, match="DOCX is password-protected"):
        read_document(write(tmp_path, "locked.docx", ole))


# --- PDF ---------------------------------------------------------------------------------------

PDF_PAGES: list[list[str] | None] = [
    ["Product Manual", "Welcome to the manual."],
    ["Installation", "Install the package (v2).", "Windows", "Run setup.exe as admin."],
    ["Continued Windows notes."],
    ["Troubleshooting", "Check the logs."],
]
PDF_OUTLINE: list[tuple[str, int, list]] = [
    ("Installation", 1, [("Windows", 1, [])]),
    ("Troubleshooting", 3, []),
]


def test_pdf_pages_and_outline_headings(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "manual.pdf", build_pdf(PDF_PAGES, PDF_OUTLINE)))
    assert doc.kind == "pdf" and doc.paged
    assert doc.pages == (
        "Product Manual\nWelcome to the manual.",
        "Installation\nInstall the package (v2).\nWindows\nRun setup.exe as admin.",
        "Continued Windows notes.",
        "Troubleshooting\nCheck the logs.",
    )
    check_spans(doc)
    assert [(s.page, s.heading_path, s.text) for s in doc.sections] == [
        (1, (), "Product Manual\nWelcome to the manual."),
        (2, ("Installation",), "Install the package (v2)."),
        (2, ("Installation", "Windows"), "Run setup.exe as admin."),
        (3, ("Installation", "Windows"), "Continued Windows notes."),
        (4, ("Troubleshooting",), "Check the logs."),
    ]


def test_pdf_without_outline(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "plain.pdf", build_pdf([["Alpha text."], ["Beta text."]])))
    assert [(s.page, s.heading_path, s.text) for s in doc.sections] == [
        (1, (), "Alpha text."),
        (2, (), "Beta text."),
    ]


def test_pdf_bookmark_title_not_on_page(tmp_path: Path) -> None:
    outline: list[tuple[str, int, list]] = [("Chapter One", 0, []), ("Appendix", 1, [])]
    data = build_pdf([["Chapter One", "Body one."], ["Reference tables.", "More."]], outline)
    doc = read_document(write(tmp_path, "book.pdf", data))
    assert [(s.page, s.heading_path, s.text) for s in doc.sections] == [
        (1, ("Chapter One",), "Body one."),
        (2, ("Appendix",), "Reference tables.\nMore."),
    ]


def test_pdf_offsets_map_to_pdfium_chars(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    from almanac.core.documents.pdf import char_range

    data = build_pdf(PDF_PAGES, PDF_OUTLINE)
    doc = read_document(write(tmp_path, "manual.pdf", data))
    section = doc.sections[2]  # page 2, "Run setup.exe as admin."
    pdf = pdfium.PdfDocument(data)
    try:
        page = pdf[section.page - 1]
        textpage = page.get_textpage()
        index, count = char_range(textpage, section.start, section.end)
        assert textpage.get_text_range(index, count) == section.text
        left, bottom, right, top = textpage.get_charbox(index)
        assert right > left and top > bottom  # a real glyph box, ready to highlight
        textpage.close()
        page.close()
    finally:
        pdf.close()


def test_pdf_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptDocumentError, match=r"not a valid PDF file \(no PDF header\)"):
        read_document(write(tmp_path, "fake.pdf", b"<html>not a pdf</html>"))
    truncated = build_pdf(PDF_PAGES)[:300]
    with pytest.raises(
        CorruptDocumentError, match=r"not a valid PDF file \(damaged or truncated\)"
    ):
        read_document(write(tmp_path, "cut.pdf", truncated))


def test_pdf_password_protected(tmp_path: Path) -> None:
    data = build_pdf([["Secret text."]], encrypt=True)
    with pytest.raises(EncryptedDocumentError, match="PDF is password-protected"):
        read_document(write(tmp_path, "locked.pdf", data))


def test_pdf_scanned_has_no_text(tmp_path: Path) -> None:
    # Pages with no text layer are read by OCR; a filled square has no text either way.
    with pytest.raises(EmptyDocumentError, match=r"no text found: blank pages, or scans OCR"):
        read_document(write(tmp_path, "scan.pdf", build_pdf([None, None])))


def test_pdf_partly_scanned_warns(tmp_path: Path) -> None:
    doc = read_document(write(tmp_path, "mixed.pdf", build_pdf([["Typed page."], None])))
    assert doc.pages == ("Typed page.", "")
    assert doc.warnings == ("1 page(s) have no text: 2",)
    assert [s.page for s in doc.sections] == [1]


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_rows_as_lines(tmp_path: Path) -> None:
    data = 'Name,Port,Notes\nweb,8080,"multi\nline"\ndb,,primary\n,,\nextra,1,2,3\n'
    doc = read_document(write(tmp_path, "hosts.csv", data))
    assert doc.kind == "csv"
    assert doc.pages == (
        "Name: web; Port: 8080; Notes: multi line\n"
        "Name: db; Notes: primary\n"
        "Name: extra; Port: 1; Notes: 2; Column 4: 3",
    )
    check_spans(doc)
    assert [s.heading_path for s in doc.sections] == [()]


def test_csv_semicolon_dialect_and_latin1(tmp_path: Path) -> None:
    data = "Ville;Café\nParis;crème\nLyon;thé\n".encode("latin-1")
    doc = read_document(write(tmp_path, "villes.csv", data))
    assert doc.pages == ("Ville: Paris; Café: crème\nVille: Lyon; Café: thé",)


def test_csv_malformed_reports_line(tmp_path: Path) -> None:
    data = 'a,b\n1,2\n3,"unterminated\n4,5\n'
    with pytest.raises(CorruptDocumentError, match=r"malformed CSV at line \d+"):
        read_document(write(tmp_path, "bad.csv", data))
    data = 'a,b\n1,2\n3,"x"y\n'
    with pytest.raises(CorruptDocumentError, match="malformed CSV at line 3"):
        read_document(write(tmp_path, "bad2.csv", data))


def test_csv_header_only(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match="CSV has no data rows"):
        read_document(write(tmp_path, "header.csv", "a,b,c\n"))
