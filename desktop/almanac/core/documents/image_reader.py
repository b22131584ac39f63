"""Images (PNG, JPEG, TIFF, WebP, BMP) read by OCR: a screenshot of an error dialog, a photo of a
label, a faxed page. Each frame is a page (multi-page TIFF faxes), 1-based in citations; the text
is marked as read by OCR.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from almanac.core.documents import ocr
from almanac.core.documents.errors import CorruptDocumentError, DocumentError, ExpansionLimitError
from almanac.core.records import ParsedDocument, Section

# Decoded pixels are what an image inflates to; a 30 000 x 30 000 PNG is a few KB on disk and
# 2.7 GB decoded. 60 megapixels is an A0 poster at 150 dpi or an A3 page at 600 dpi.
MAX_PIXELS = 60_000_000
MAX_FRAMES = 500


def read(data: bytes, kind: str = "image") -> ParsedDocument:
    image = _open(data)
    sha = hashlib.sha256(data).hexdigest()
    pages: list[str] = []
    sections: list[Section] = []
    frames = _frame_count(image)
    try:
        for index in range(frames):
            ocr.check_cancelled()
            ocr.report_progress(index, frames)
            image.seek(index)
            text = ocr.recognize(_upright(image), ocr.page_key(sha, index, "image")).text
            pages.append(text)
            if text.strip():
                sections.append(Section(text, (ocr.OCR_HEADING,), index + 1, 0, len(text)))
        ocr.report_progress(frames, frames)
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged pixel data
        raise CorruptDocumentError(f"image data is damaged ({exc})") from exc
    if not sections:
        raise ocr.NoTextInImageError("no text found in this image (OCR read nothing)")
    warnings: tuple[str, ...] = ()
    if frames < _declared_frames(image):
        warnings = (f"only the first {MAX_FRAMES} frames were read",)
    return ParsedDocument(kind, tuple(pages), tuple(sections), paged=True, warnings=warnings)


def _open(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise CorruptDocumentError("not a readable image (unknown or damaged format)") from exc
    except Image.DecompressionBombError as exc:
        raise ExpansionLimitError(f"image refused: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptDocumentError(f"not a readable image ({exc})") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ExpansionLimitError(
            f"image refused: {width} x {height} pixels is over the "
            f"{MAX_PIXELS / 1e6:.0f}-megapixel limit"
        )
    return image


def _declared_frames(image: Any) -> int:
    return int(getattr(image, "n_frames", 1) or 1)


def _frame_count(image: Any) -> int:
    return min(_declared_frames(image), MAX_FRAMES)


def _upright(image: Any) -> Any:
    """The frame as the user sees it: camera rotation applied, transparency on white."""
    from PIL import Image, ImageOps

    frame = ImageOps.exif_transpose(image)
    if frame.mode in ("RGBA", "LA", "P"):
        frame = frame.convert("RGBA")
        background = Image.new("RGBA", frame.size, (255, 255, 255, 255))
        frame = Image.alpha_composite(background, frame)
    return frame.convert("RGB")


def ocr_page_of_file(
    data: bytes, page_number: int, *, cached_only: bool = False
) -> tuple[Any, ocr.OcrPage | None]:
    """Frame ``page_number`` (1-based) as the OCR saw it (an RGB PIL image) and its OCR lines;
    with ``cached_only``, None for lines the cache doesn't hold."""
    image = _open(data)
    if not 1 <= page_number <= _frame_count(image):
        raise IndexError(f"the image has {_frame_count(image)} page(s)")
    image.seek(page_number - 1)
    frame = _upright(image)
    key = ocr.page_key(hashlib.sha256(data).hexdigest(), page_number - 1, "image")
    return frame, ocr.load_cached(key) if cached_only else ocr.recognize(frame, key)


def ocr_pending(data: bytes) -> bool:
    """Whether reading this image would run OCR now (a frame not in the OCR cache)."""
    try:
        frames = _frame_count(_open(data))
    except DocumentError:
        return False  # the reader reports it
    sha = hashlib.sha256(data).hexdigest()
    return any(ocr.load_cached(ocr.page_key(sha, i, "image")) is None for i in range(frames))


def frame_count_of_file(data: bytes) -> int:
    return _frame_count(_open(data))
