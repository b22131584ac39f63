"""Regenerate the PDF and DOCX documents of the held-out answer-quality knowledge base.

The Markdown, HTML, text and CSV documents under ``docs/`` are written by hand; this script writes
the binary ones from the text held below. The generated files are committed, so nobody needs to
run it to use the benchmark; run it after editing the text, then run
``tests/unit/test_answer_kb_questions.py`` (it checks that every expected answer still occurs in
its document) and commit the regenerated files together with the change::

    .venv/bin/python benchmarks/answer_kb/build.py

Output is deterministic: the PDF is written by a small writer below (no dates, no random file
identifier, core fonts only) and the DOCX files get fixed metadata dates and fixed ZIP timestamps
(the sample knowledge base's normalizer), so re-running reproduces the same bytes with the same
python-docx version.

The product (the "Larkspur TR-7" payment terminal by "Larkspur Systems") is fictional, and is
deliberately not the sample knowledge base's Northwind Sync: the fine-tuning data is built from the
sample knowledge base, and this set must stay unseen by training. All text was written for this
benchmark.
"""

from __future__ import annotations

import io
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DOCS = Path(__file__).resolve().parent / "docs"
PDF_PATH = DOCS / "manual" / "tr7-hardware-guide.pdf"
WARRANTY_PATH = DOCS / "policies" / "warranty-and-repairs.docx"
ROLES_PATH = DOCS / "admin" / "roles-and-permissions.docx"
FIXED_DATE = datetime(2025, 3, 14, 9, 0, 0)

# Block kinds: ("title", text), ("h1", text), ("h2", text) (both go into the PDF outline / Word
# heading styles), ("p", text), ("bullets", [text, ...]), ("steps", [text, ...]),
# ("table", [[cell, ...], ...]) with a header row first.
Block = tuple[str, object]

# -- the hardware guide (PDF, one list of blocks per page) ----------------------------------------

MANUAL_PAGES: list[list[Block]] = [
    [
        ("title", "Larkspur TR-7 Terminal Hardware Guide"),
        ("p", "Document TR7-HG-3, March 2025, Larkspur Systems Ltd."),
        ("h1", "1. About the TR-7"),
        (
            "p",
            "The TR-7 is a handheld payment and point-of-sale terminal with a built-in receipt "
            "printer. It takes chip, contactless and magnetic stripe cards and runs the Larkspur "
            "till software. Stores manage their terminals, cashiers and settings in Larkspur Hub, "
            "the web back office.",
        ),
        (
            "p",
            "There are two models. The TR-7 connects by Wi-Fi, or by Ethernet through its "
            "charging cradle. The TR-7L has the same features and adds 4G mobile data for stores "
            "without a reliable network, such as market stalls and food trucks.",
        ),
        ("h2", "1.1 In the box"),
        (
            "bullets",
            [
                "The TR-7 or TR-7L terminal with its battery fitted.",
                "A charging cradle (model CR-2) and its 24 V power adapter.",
                "One starter roll of thermal paper.",
                "A quick start card with the enrolment steps.",
            ],
        ),
        (
            "p",
            "Keep the box: repairs are shipped in it or in a repair box that Larkspur sends you.",
        ),
    ],
    [
        ("h1", "2. Specifications"),
        (
            "p",
            "Screen: 8-inch colour touch screen, 1280 x 800 pixels, readable in direct sunlight "
            "and usable with thin gloves.",
        ),
        (
            "p",
            "Battery: a full charge lasts about 11 hours of typical store use (around 300 "
            "payments with receipts). Charging from empty to full takes 3.5 hours in the cradle.",
        ),
        ("p", "Weight: 640 g with the battery and a full paper roll."),
        (
            "p",
            "Operating temperature: 0 to 40 degrees Celsius. Storage temperature: -20 to 60 "
            "degrees Celsius. Below freezing the battery stops charging until it warms up.",
        ),
        (
            "p",
            "Dust and water: rated IP54, so the terminal survives splashes and dust. It is not "
            "waterproof and must not be cleaned under running water.",
        ),
        (
            "p",
            "Card reader: EMV chip, contactless (NFC, including phone and watch wallets) and "
            "magnetic stripe.",
        ),
        (
            "p",
            "Receipt printer: direct thermal, printing at 70 mm per second. A typical receipt "
            "takes under 2 seconds.",
        ),
    ],
    [
        ("h1", "3. Getting started"),
        (
            "p",
            "Before first use, put the terminal in its cradle and charge it for at least 2 "
            "hours, even if the battery shows a charge: new batteries are shipped half full.",
        ),
        ("h2", "3.1 Enrolling a terminal"),
        (
            "steps",
            [
                "Hold the power button for 3 seconds to turn the terminal on.",
                "Choose the language and connect to the store's Wi-Fi, or leave the terminal in "
                "the cradle with an Ethernet cable plugged in.",
                "In Larkspur Hub, open Devices > Add terminal. Hub shows an enrolment code of 8 "
                "letters and digits. A code is valid for 24 hours and can enrol one terminal.",
                "Type the enrolment code on the terminal. It downloads the store's settings and "
                "the current firmware; the first time this can take up to 20 minutes.",
                "Cashiers then sign in with their own PIN.",
            ],
        ),
        (
            "p",
            "If the code is refused, check that it was typed without spaces and that it has not "
            "expired; create a new one in Hub if needed.",
        ),
    ],
    [
        ("h1", "4. Connectivity"),
        (
            "p",
            "Wi-Fi: Wi-Fi 6 (802.11ax) on the 2.4 GHz and 5 GHz bands. The network settings that "
            "a store network must allow are listed on the network requirements page.",
        ),
        (
            "p",
            "Mobile data (TR-7L only): 4G LTE with a nano-SIM card. The SIM slot is under the "
            "battery cover; turn the terminal off before inserting or removing a SIM. Any "
            "operator's data SIM works if it has no PIN lock.",
        ),
        (
            "p",
            "Connection order: when several connections are available, the terminal uses "
            "Ethernet first, then Wi-Fi, then mobile data, and switches back automatically when "
            "a preferred connection returns.",
        ),
        (
            "p",
            "Bluetooth: Bluetooth 5.2 for barcode scanners and keyboards. Up to 2 Bluetooth "
            "devices can be connected to one terminal at the same time.",
        ),
        (
            "p",
            "USB: the USB-C port on the side of the terminal charges it and accepts a USB "
            "barcode scanner. It cannot be used to transfer files.",
        ),
    ],
    [
        ("h1", "5. Firmware updates"),
        (
            "p",
            "Terminals install firmware updates automatically between 02:00 and 04:00 local "
            "store time, when they are in the cradle. Leave terminals in their cradles overnight "
            "so that they stay up to date.",
        ),
        ("h2", "5.1 Updating by hand"),
        (
            "steps",
            [
                "Put the terminal in its cradle.",
                "Open Settings > About > Check for updates and tap Install.",
                "Wait until the terminal restarts and shows the sign-in screen.",
            ],
        ),
        (
            "p",
            "An update needs a battery charged to at least 30 percent and takes about 12 "
            "minutes. Do not lift the terminal out of the cradle while its light flashes blue: "
            "an interrupted update is retried, but the terminal cannot take payments until it "
            "finishes.",
        ),
        (
            "p",
            "The firmware version of a terminal is shown under Settings > About; the changes in "
            "each version are listed in the release notes.",
        ),
    ],
    [
        ("h1", "6. Care and maintenance"),
        ("h2", "6.1 Loading paper"),
        (
            "p",
            "Pull the latch on the right side of the terminal to open the paper compartment, "
            "drop the roll in so that the paper comes off the bottom of the roll towards the "
            "screen, pull out about 2 cm of paper and close the lid.",
        ),
        ("h2", "6.2 Cleaning"),
        (
            "p",
            "Clean the screen and case with a soft cloth slightly dampened with water or with "
            "isopropyl alcohol wipes. Never use cleaners that contain bleach or ammonia: they "
            "damage the screen coating.",
        ),
        ("h2", "6.3 Factory reset"),
        (
            "p",
            "A factory reset erases the enrolment, the signed-in cashiers and any offline "
            "payments that have not been uploaded. Use Settings > System > Reset, or, if the "
            "terminal does not start, hold the power and volume-down buttons together for 15 "
            "seconds. After a reset the terminal must be enrolled again.",
        ),
        ("h2", "6.4 Storing a terminal"),
        (
            "p",
            "If a terminal will not be used for more than a month, charge it to about 50 "
            "percent, turn it off and store it in a dry place. Charge it fully before using it "
            "again.",
        ),
    ],
]

# -- warranty and repairs (DOCX) ------------------------------------------------------------------

WARRANTY_DOC: list[Block] = [
    ("title", "Larkspur Warranty and Repairs Policy"),
    (
        "p",
        "This policy applies to Larkspur TR-7 and TR-7L terminals and Larkspur accessories bought "
        "from Larkspur Systems or an authorised reseller. Effective from 1 January 2025.",
    ),
    ("h1", "Warranty periods"),
    (
        "bullets",
        [
            "Terminals: 24 months from the date of delivery.",
            "Charging cradles, batteries and other accessories: 12 months from the date of "
            "delivery.",
            "A repaired or replaced terminal keeps the remaining warranty of the original, or 90 "
            "days, whichever is longer.",
        ],
    ),
    ("h1", "What the warranty does not cover"),
    (
        "p",
        "Physical damage such as a cracked screen or a broken case, liquid damage, damage caused "
        "by third-party chargers or paper, and normal wear of the printer platen roller are not "
        "covered. Such repairs are charged at the prices below.",
    ),
    ("h1", "Requesting a repair"),
    (
        "p",
        "Open a repair request in Larkspur Hub under Devices > select the terminal > Request "
        "repair. You receive a return number made of the letters RMA followed by 7 digits; write "
        "it on the outside of the parcel. A prepaid shipping label is emailed within 1 business "
        "day.",
    ),
    (
        "p",
        "Remove the paper roll and any SIM card before shipping. Terminals are wiped when they "
        "arrive at the repair centre. The repaired or replacement terminal is shipped within 10 "
        "business days of the faulty one arriving.",
    ),
    ("h1", "Advance replacement"),
    (
        "p",
        "On the Premium plan a replacement terminal is shipped on the next business day after "
        "the repair request, before the faulty one is returned. The faulty terminal must reach "
        "the repair centre within 14 days of the replacement's delivery; otherwise its full "
        "price of £249 is charged.",
    ),
    ("h1", "Repair prices outside the warranty"),
    (
        "table",
        [
            ["Repair", "Price (excluding VAT)"],
            ["Screen replacement", "£89"],
            ["Card reader module", "£110"],
            ["Printer mechanism", "£60"],
            ["Diagnosis when no fault is found", "£25"],
        ],
    ),
]

# -- roles and permissions (DOCX) -----------------------------------------------------------------

ROLES_DOC: list[Block] = [
    ("title", "Roles and Permissions in Larkspur Hub"),
    (
        "p",
        "Every person who uses a terminal or Larkspur Hub has one role. The role decides what "
        "they may do on the terminals and in Hub. Roles are assigned in Hub under Team.",
    ),
    ("h1", "The four roles"),
    (
        "table",
        [
            ["Role", "Terminals", "Larkspur Hub"],
            ["Owner", "everything", "everything, including billing and bank details"],
            ["Manager", "sales, refunds, voids, cash counts", "reports, team, devices"],
            ["Cashier", "sales, refunds up to the cashier limit", "no access"],
            ["Trainee", "training sales only", "no access"],
        ],
    ),
    (
        "p",
        "Each account has exactly one Owner. Transferring ownership to another person needs an "
        "identity check by Larkspur support.",
    ),
    ("h1", "Refunds and voids"),
    (
        "p",
        "A Cashier may refund up to £50 per sale on their own. A larger refund needs a Manager to "
        "approve it on the terminal with their PIN.",
    ),
    (
        "p",
        "A sale can be voided until the end of the shift in which it was made. After the shift "
        "is closed it can only be refunded.",
    ),
    ("h1", "PINs and signing in"),
    (
        "bullets",
        [
            "Every cashier signs in with a personal PIN of 6 digits.",
            "After 5 wrong PIN attempts the cashier is locked out for 15 minutes; a Manager can "
            "unlock them earlier in Hub.",
            "A new PIN may not repeat any of the cashier's last 3 PINs.",
            "Terminals sign a cashier out automatically after 2 minutes without activity.",
        ],
    ),
    ("h1", "Training mode"),
    (
        "p",
        "Sales made by a Trainee are printed with the word TRAINING and are never sent to the "
        "payment host, so no money moves. Training sales are left out of every report.",
    ),
    ("h1", "Audit log"),
    (
        "p",
        "Hub records every sign-in, refund, void, price change and role change in the audit log, "
        "which is kept for 400 days. Owners and Managers can export it under Reports > Audit.",
    ),
]


# -- a small deterministic PDF writer -------------------------------------------------------------

_PAGE_W, _PAGE_H = 612, 792
_LEFT, _TOP, _BOTTOM = 60, 740, 60
# Helvetica 10 pt averages under 5.6 pt a character in running text: 86 characters stay inside
# the 492 pt text width without needing the font's width tables.
_WRAP = 86
_STYLES = {"title": ("F2", 18, 26), "h1": ("F2", 14, 22), "h2": ("F2", 11.5, 18)}
_BODY = ("F1", 10, 14)


def _pdf_string(text: str) -> str:
    text.encode("ascii")  # core fonts + ASCII keep the text layer extracting exactly
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@dataclass(frozen=True, slots=True)
class _Line:
    font: str
    size: float
    leading: float
    text: str
    gap_before: float = 0.0


def _layout(blocks: list[Block]) -> tuple[list[_Line], list[tuple[int, str]]]:
    """Lines of one page and its outline entries (level, title)."""
    lines: list[_Line] = []
    outline: list[tuple[int, str]] = []
    for kind, value in blocks:
        if kind in _STYLES:
            font, size, leading = _STYLES[kind]
            lines.append(_Line(font, size, leading, str(value), gap_before=6 if lines else 0))
            if kind != "title":
                outline.append((0 if kind == "h1" else 1, str(value)))
        elif kind == "p":
            for i, text in enumerate(textwrap.wrap(str(value), _WRAP, break_on_hyphens=False)):
                lines.append(_Line(*_BODY, text, gap_before=4 if i == 0 else 0))
        elif kind in ("bullets", "steps"):
            assert isinstance(value, list)
            for n, item in enumerate(value, 1):
                mark = "-" if kind == "bullets" else f"{n}."
                wrapped = textwrap.wrap(str(item), _WRAP - 4, break_on_hyphens=False)
                for i, text in enumerate(wrapped):
                    shown = f"{mark} {text}" if i == 0 else f"   {text}"
                    lines.append(_Line(*_BODY, shown, gap_before=3 if i == 0 else 0))
        else:
            raise ValueError(f"block kind {kind!r} is not supported in the PDF")
    return lines, outline


def build_pdf(pages: list[list[Block]], title: str) -> bytes:
    objects: dict[int, bytes] = {}
    page_ids = [5 + 2 * i for i in range(len(pages))]
    outline: list[tuple[int, str, int]] = []  # level, title, page object id
    for number, (page_id, blocks) in enumerate(zip(page_ids, pages, strict=True), 1):
        lines, entries = _layout(blocks)
        outline += [(level, text, page_id) for level, text in entries]
        ops = ["BT", f"{_LEFT} {_TOP} Td"]
        y = _TOP
        previous = 0.0
        for line in lines:
            step = previous + line.gap_before if previous else 0.0
            y -= step
            ops.append(
                f"/{line.font} {line.size:g} Tf 0 {-step:g} Td ({_pdf_string(line.text)}) Tj"
            )
            previous = line.leading
        ops.append("ET")
        if y < _BOTTOM:
            raise ValueError(f"page {number} overflows by {_BOTTOM - y:.0f} pt: move text on")
        stream = "\n".join(ops).encode("ascii")
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_W} {_PAGE_H}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
    objects[2] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>"
    ).encode()
    # WinAnsi: the fonts' default StandardEncoding would extract "'" as a typographic quote.
    for object_id, font in ((3, "Helvetica"), (4, "Helvetica-Bold")):
        objects[object_id] = (
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>"
        ).encode()
    next_id = 5 + 2 * len(pages)
    root = next_id
    ids = list(range(root + 1, root + 1 + len(outline)))
    # Two levels: each h2 hangs under the h1 before it (every page of this guide opens with h1).
    parents: dict[int, int] = {}
    last_top: int | None = None
    for oid, (level, _title, _page) in zip(ids, outline, strict=True):
        if level == 0 or last_top is None:
            parents[oid] = root
            last_top = oid
        else:
            parents[oid] = last_top
    children: dict[int, list[int]] = {}
    for oid in ids:
        children.setdefault(parents[oid], []).append(oid)
    for oid, (_level, text, page_id) in zip(ids, outline, strict=True):
        siblings = children[parents[oid]]
        k = siblings.index(oid)
        entry = f"/Title ({_pdf_string(text)}) /Parent {parents[oid]} 0 R"
        entry += f" /Dest [{page_id} 0 R /XYZ null null null]"
        if k > 0:
            entry += f" /Prev {siblings[k - 1]} 0 R"
        if k < len(siblings) - 1:
            entry += f" /Next {siblings[k + 1]} 0 R"
        kids = children.get(oid)
        if kids:
            entry += f" /First {kids[0]} 0 R /Last {kids[-1]} 0 R /Count {len(kids)}"
        objects[oid] = f"<< {entry} >>".encode()
    top = children[root]
    objects[root] = (
        f"<< /Type /Outlines /First {top[0]} 0 R /Last {top[-1]} 0 R /Count {len(top)} >>"
    ).encode()
    objects[1] = f"<< /Type /Catalog /Pages 2 0 R /Outlines {root} 0 R >>".encode()
    info = max(objects) + 1
    objects[info] = f"<< /Title ({_pdf_string(title)}) /Producer (answer_kb/build.py) >>".encode()
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for object_id in sorted(objects):
        offsets[object_id] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (object_id, objects[object_id])
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[i] for i in range(1, size))
    out += (
        f"trailer\n<< /Size {size} /Root 1 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


# -- DOCX -----------------------------------------------------------------------------------------


def _normalize_zip(data: bytes) -> bytes:
    # The sample knowledge base's builder already pins ZIP timestamps and attributes; reuse it so
    # both sets stay reproducible the same way.
    resources = Path(__file__).resolve().parents[2] / "resources"
    sys.path.insert(0, str(resources))
    try:
        from build_sample_kb import _normalize_zip as normalize
    finally:
        sys.path.remove(str(resources))
    return normalize(data)


def build_docx(blocks: list[Block], title: str, subject: str) -> bytes:
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = title
    props.subject = subject
    props.author = "Larkspur Systems Support"
    props.last_modified_by = "Larkspur Systems Support"
    props.comments = "Held-out benchmark document for Almanac (fictional product)."
    props.revision = 1
    props.created = FIXED_DATE
    props.modified = FIXED_DATE
    props.last_printed = FIXED_DATE
    for kind, value in blocks:
        if kind == "title":
            document.add_heading(str(value), level=0)
        elif kind in ("h1", "h2"):
            document.add_heading(str(value), level=1 if kind == "h1" else 2)
        elif kind == "p":
            document.add_paragraph(str(value))
        elif kind in ("bullets", "steps"):
            assert isinstance(value, list)
            style = "List Bullet" if kind == "bullets" else "List Number"
            for item in value:
                document.add_paragraph(str(item), style=style)
        elif kind == "table":
            assert isinstance(value, list)
            table = document.add_table(rows=len(value), cols=len(value[0]))
            table.style = "Table Grid"
            for r, row in enumerate(value):
                for c, text in enumerate(row):
                    table.cell(r, c).text = text
                    if r == 0:
                        for run in table.cell(r, c).paragraphs[0].runs:
                            run.bold = True
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalize_zip(buffer.getvalue())


def main() -> None:
    outputs = {
        PDF_PATH: build_pdf(MANUAL_PAGES, "Larkspur TR-7 Terminal Hardware Guide"),
        WARRANTY_PATH: build_docx(WARRANTY_DOC, "Larkspur Warranty and Repairs Policy", "Repairs"),
        ROLES_PATH: build_docx(ROLES_DOC, "Roles and Permissions in Larkspur Hub", "Roles"),
    }
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path.relative_to(DOCS.parent)} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
