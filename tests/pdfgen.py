"""A tiny, dependency-free PDF writer for tests (valid xref, outlines, encryption)."""

from __future__ import annotations


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build_pdf(
    pages: list[list[str] | None],
    outline: list[tuple[str, int, list]] | None = None,
    *,
    encrypt: bool = False,
) -> bytes:
    """A small valid PDF: one Helvetica line per string, or a filled square (no text) for None.

    ``outline`` items are ``(title, page_index, children)``. ``encrypt`` adds a standard security
    handler whose /U entry no empty password matches, i.e. a password-protected file.
    """
    objects: dict[int, bytes] = {}
    page_ids = [4 + 2 * i for i in range(len(pages))]
    next_id = 4 + 2 * len(pages)
    for page_id, lines in zip(page_ids, pages, strict=True):
        if lines is None:
            content = "0 0 1 rg 72 72 200 200 re f"
        else:
            shown = "\n".join(f"({_pdf_string(line)}) Tj T*" for line in lines)
            content = f"BT /F1 12 Tf 72 720 Td 16 TL\n{shown}\nET"
        stream = content.encode("latin-1")
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
    catalog = "<< /Type /Catalog /Pages 2 0 R"

    def place(items: list[tuple[str, int, list]], parent: int) -> tuple[int, int]:
        nonlocal next_id
        ids = list(range(next_id, next_id + len(items)))
        next_id += len(items)
        for k, (title, page_index, children) in enumerate(items):
            entry = f"/Title ({_pdf_string(title)}) /Parent {parent} 0 R"
            entry += f" /Dest [{page_ids[page_index]} 0 R /XYZ null null null]"
            if k > 0:
                entry += f" /Prev {ids[k - 1]} 0 R"
            if k < len(items) - 1:
                entry += f" /Next {ids[k + 1]} 0 R"
            if children:
                first, last = place(children, ids[k])
                entry += f" /First {first} 0 R /Last {last} 0 R /Count {len(children)}"
            objects[ids[k]] = f"<< {entry} >>".encode()
        return ids[0], ids[-1]

    if outline:
        root = next_id
        next_id += 1
        first, last = place(outline, root)
        objects[root] = f"<< /Type /Outlines /First {first} 0 R /Last {last} 0 R >>".encode()
        catalog += f" /Outlines {root} 0 R"
    objects[1] = (catalog + " >>").encode()
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    trailer = ""
    if encrypt:
        objects[next_id] = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -44 >>" % (
            b"ab" * 32,
            b"cd" * 32,
        )
        trailer = f" /Encrypt {next_id} 0 R /ID [<{'01' * 16}> <{'01' * 16}>]"
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for object_id in sorted(objects):
        offsets[object_id] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (object_id, objects[object_id])
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[i] for i in range(1, size))
    out += f"trailer\n<< /Size {size} /Root 1 0 R{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
