"""Scanned-looking test material: text rendered into images (Pillow) and image-only PDFs."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"


def font(size: int, name: str = "DejaVuSans.ttf") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_DIR + name, size)


def render_lines(
    lines: Sequence[str],
    *,
    size: int = 36,
    name: str = "DejaVuSans.ttf",
    width: int = 1700,
    margin: int = 60,
    spacing: float = 1.8,
    height: int | None = None,
) -> Image.Image:
    """Black text on white, one line per string, like a page on a scanner."""
    face = font(size, name)
    step = int(size * spacing)
    height = height or margin * 2 + step * len(lines)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * step), line, font=face, fill=0)
    return image


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def image_pdf(images: Sequence[Image.Image], dpi: float = 300.0) -> bytes:
    """An image-only PDF (no text layer), one image per page, as a scanner writes it."""
    out = io.BytesIO()
    first, *rest = [im.convert("RGB") for im in images]
    first.save(out, format="PDF", save_all=True, append_images=rest, resolution=dpi)
    return out.getvalue()


def merge_pdfs(parts: Sequence[bytes]) -> bytes:
    import pypdfium2 as pdfium

    merged = pdfium.PdfDocument.new()
    for part in parts:
        merged.import_pages(pdfium.PdfDocument(part))
    out = io.BytesIO()
    merged.save(out)
    return out.getvalue()


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(found: str, expected: str) -> float:
    """Character error rate: edits to turn the OCR text into the known text, per known char."""
    return edit_distance(found, expected) / max(1, len(expected))
