"""OCR of scanned pages and images with RapidOCR (PP-OCRv4 detection + recognition, ONNX models
inside the ``rapidocr-onnxruntime`` wheel, run on onnxruntime): offline, nothing downloaded.

A page's OCR text is its recognised lines in reading order: boxes on the same row joined by a
space, rows by a newline. Each box keeps its character span in that text and its position as
fractions of the page, so a cited span maps back to the boxes that hold it (the source viewer
tints them exactly as it tints a text PDF's characters).

Results are cached on disk by the SHA-256 of the page image and the engine version: a re-index
(a rename, a reader upgrade) never reads a page twice, and the viewer finds the boxes of a cited
page without running the models again.

Long OCR work reports progress and is cancelled through ``ocr_context``: the ingest pipeline sets
it around a file it reads in its slow lane; without one, OCR runs to the end.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.core.documents.errors import DocumentError

ENGINE = "rapidocr-onnxruntime-1.4.4/PP-OCRv4/space-aware-ctc-0.1/no-cls/turned-pages"
# Shown in a citation's heading: the user should know the words were read from an image.
OCR_HEADING = "text read by OCR"
# A PDF page with fewer letters and digits than this in its text layer is read by OCR (a scan
# with a stamped page number or a one-word header still counts as a scan).
MIN_TEXT_LAYER_CHARS = 20
# Recognition confidence below which a line is dropped as noise (dust, stamps, photo texture).
MIN_LINE_SCORE = 0.5
# Longest side of the image the detector sees: PP-OCR's default 2000 px reads 8-pt text on an
# A4 page (about 170 dpi); more costs time quadratically (benchmarks/ocr_quality.py).
MAX_SIDE_PX = 2000


class OcrCancelled(Exception):
    """The ingest asked to stop while a file was being read by OCR (not a file error)."""


class NoTextInImageError(DocumentError):
    pass


@dataclass(frozen=True, slots=True)
class OcrBox:
    start: int  # span of this box's text in the page text
    end: int
    left: float  # fractions of the page width / height
    top: float
    right: float
    bottom: float


@dataclass(frozen=True, slots=True)
class OcrPage:
    text: str
    boxes: tuple[OcrBox, ...]

    def boxes_for(self, start: int, end: int) -> list[OcrBox]:
        """The boxes holding any character of ``text[start:end]``."""
        return [b for b in self.boxes if b.start < end and start < b.end]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "boxes": [[b.start, b.end, b.left, b.top, b.right, b.bottom] for b in self.boxes],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> OcrPage:
        boxes = tuple(
            OcrBox(int(s), int(e), float(x0), float(y0), float(x1), float(y1))
            for s, e, x0, y0, x1, y1 in data["boxes"]
        )
        return OcrPage(str(data["text"]), boxes)


# --- progress and cancellation --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OcrContext:
    cancel: threading.Event | None = None
    progress: Callable[[int, int], None] | None = None  # (pages done, pages to read)


_CONTEXT: contextvars.ContextVar[OcrContext | None] = contextvars.ContextVar(
    "almanac_ocr_context", default=None
)


@contextlib.contextmanager
def ocr_context(
    cancel: threading.Event | None = None, progress: Callable[[int, int], None] | None = None
) -> Iterator[None]:
    """Within this block (in this thread), OCR reports progress and stops when ``cancel`` is set."""
    token = _CONTEXT.set(OcrContext(cancel, progress))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def check_cancelled() -> None:
    context = _CONTEXT.get()
    if context is not None and context.cancel is not None and context.cancel.is_set():
        raise OcrCancelled("OCR cancelled")


def report_progress(done: int, total: int) -> None:
    context = _CONTEXT.get()
    if context is not None and context.progress is not None:
        context.progress(done, total)


# --- the engine ---------------------------------------------------------------------------------

_ENGINE_LOCK = threading.Lock()
_engine: Any = None


def ocr_threads() -> int:
    """One core is left to the rest of the app (the fast ingest lane, the window, the model):
    OCR is the background work, never the thing the user waits on."""
    return max(1, (os.cpu_count() or 2) - 1)


def _get_engine() -> Any:
    global _engine  # one set of ONNX sessions per process: ~0.3 s and ~60 MB to build
    if _engine is None:
        # opencv-python (a RapidOCR dependency) points Qt at its own plugins on import; restore
        # the environment so the app's PySide6 keeps finding its own.
        saved = {k: os.environ.get(k) for k in _QT_VARS}
        try:
            from rapidocr_onnxruntime import RapidOCR
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        threads = ocr_threads()
        _engine = RapidOCR(
            max_side_len=MAX_SIDE_PX,
            det_intra_op_num_threads=threads,
            cls_intra_op_num_threads=threads,
            rec_intra_op_num_threads=threads,
            det_inter_op_num_threads=1,
            cls_inter_op_num_threads=1,
            rec_inter_op_num_threads=1,
        )
        recognizer = _engine.text_rec
        recognizer.postprocess_op = SpaceAwareDecoder(recognizer.postprocess_op.character)
        # A page is one engine call of several seconds: looking at the cancel event before each
        # model run (detection, then every batch of 6 lines) stops it within one batch.
        recognizer.session = _Cancellable(recognizer.session)
        _engine.text_det.infer = _Cancellable(_engine.text_det.infer)
    return _engine


class _Cancellable:
    """An onnxruntime session that raises ``OcrCancelled`` instead of running once cancelled."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def __call__(self, *args: Any) -> Any:
        check_cancelled()
        return self._session(*args)


_QT_VARS = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR", "LD_LIBRARY_PATH")

# A CTC "blank" column becomes a space when the space is its most likely character and at least
# this likely. PP-OCRv4's recognizer (trained mostly on Chinese, where lines have no spaces) rarely
# lets a space win outright on English text: greedy decoding gives "ResettheTR-7router" and a CER
# of 10-45 %; with this rule the same lines read exactly (benchmarks/ocr_quality.py).
SPACE_PROBABILITY = 0.1


class SpaceAwareDecoder:
    """Greedy CTC decoding of the recognizer's output, keeping the spaces it is unsure about."""

    def __init__(self, characters: Sequence[str]) -> None:
        self.characters = list(characters)
        self.space = self.characters.index(" ")

    def __call__(self, preds: Any, return_word_box: bool = False, **_: Any) -> list[Any]:
        import numpy as np

        results: list[tuple[str, float]] = []
        for probs in preds:
            best = probs.argmax(axis=1)
            best_char = probs[:, 1:].argmax(axis=1) + 1  # index 0 is the CTC blank
            spaced = (
                (best == 0) & (best_char == self.space) & (probs[:, self.space] > SPACE_PROBABILITY)
            )
            best = np.where(spaced, self.space, best)
            keep = best != 0
            keep[1:] &= best[1:] != best[:-1]  # CTC: repeats without a blank between are one
            chosen = best[keep]
            text = " ".join("".join(self.characters[i] for i in chosen).split())
            letters = probs[keep][chosen != self.space, chosen[chosen != self.space]]
            results.append((text, float(letters.mean()) if letters.size else 0.0))
        return results


def page_key(data_sha256: str, page_index: int, variant: str) -> str:
    """The cache key of one page of one file's content: a file is recognised once, wherever it
    lives and whatever it is called, and a lookup needs no rendering."""
    raw = f"{ENGINE}|{variant}|{MAX_SIDE_PX}|{data_sha256}|{page_index}"
    return hashlib.sha256(raw.encode()).hexdigest()


def recognize(image: Any, key: str) -> OcrPage:
    """OCR one page image (a PIL image); the result is cached under ``key``."""
    cached = load_cached(key)
    if cached is not None:
        return cached
    rgb = image.convert("RGB")
    with _ENGINE_LOCK:  # the sessions are shared; one page at a time is all 2 cores can do
        page = _upright_page(rgb)
    store_cached(key, page)
    return page


# PP-OCR's line-angle classifier turned a third of the lines of a clean 11-pt page upside down
# (their text then failed the score and vanished: CER 33 %, 0.1 % without it), so it is off.
# Whole pages scanned sideways or upside down are handled here instead: when most lines come out
# taller than wide, or read poorly, the page is read again turned, and the better reading wins.
_SIDEWAYS_SHARE = 0.5
_POOR_SCORE = 0.8


def _upright_page(rgb: Any) -> OcrPage:
    best_angle, best = 0, _read(rgb)
    if _score(best) >= _POOR_SCORE and _sideways(best) < _SIDEWAYS_SHARE:
        return _layout(best, rgb.width, rgb.height)
    if not best:  # nothing read at all: sideways lines are often not even detected
        angles: tuple[int, ...] = (270, 90, 180)
    elif _sideways(best) >= _SIDEWAYS_SHARE:
        angles = (270, 90)
    else:
        angles = (180,)
    first = best
    if angles != (180,):
        # Vertical lines may read well (tall crops are turned one by one), but their order
        # would be columns: a turned page that reads at all is preferred.
        best = []
    for angle in angles:
        check_cancelled()
        found = _read(rgb.rotate(angle, expand=True))
        if _sideways(found) >= _SIDEWAYS_SHARE:
            continue  # still turned a quarter: its lines would be read as columns
        if _score(found) * len(found) > _score(best) * len(best):
            best_angle, best = angle, found
    if best_angle == 0:
        return _layout(best or first, rgb.width, rgb.height)
    turned = rgb.rotate(best_angle, expand=True)
    page = _layout(best, turned.width, turned.height)
    return OcrPage(page.text, tuple(_unrotate(box, best_angle) for box in page.boxes))


def _read(rgb: Any) -> list[Any]:
    import numpy as np

    result, _ = _get_engine()(np.asarray(rgb), use_cls=False)
    return [r for r in result or [] if float(r[2]) >= MIN_LINE_SCORE]


def _score(result: list[Any]) -> float:
    return sum(float(r[2]) for r in result) / len(result) if result else 0.0


def _sideways(result: list[Any]) -> float:
    def tall(points: Any) -> bool:
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        return (max(ys) - min(ys)) > 1.5 * (max(xs) - min(xs))

    return sum(tall(r[0]) for r in result) / len(result) if result else 0.0


def _unrotate(box: OcrBox, angle: int) -> OcrBox:
    """A box found on the page turned ``angle`` degrees counter-clockwise, on the page as it is."""
    left, top, right, bottom = box.left, box.top, box.right, box.bottom
    if angle == 90:
        left, top, right, bottom = 1 - bottom, left, 1 - top, right
    elif angle == 270:
        left, top, right, bottom = top, 1 - right, bottom, 1 - left
    elif angle == 180:
        left, top, right, bottom = 1 - right, 1 - bottom, 1 - left, 1 - top
    return OcrBox(box.start, box.end, left, top, right, bottom)


def _layout(result: Sequence[Any], width: int, height: int) -> OcrPage:
    """Lines in reading order: boxes grouped into rows by vertical overlap, rows top to bottom,
    boxes in a row left to right."""
    items = []
    for points, text, score in result:
        text = " ".join(str(text).split())
        if not text or float(score) < MIN_LINE_SCORE:
            continue
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        items.append((min(xs), min(ys), max(xs), max(ys), text))
    items.sort(key=lambda item: (item[1] + item[3]) / 2)
    rows: list[list[tuple[float, float, float, float, str]]] = []
    for item in items:
        center = (item[1] + item[3]) / 2
        if rows:
            last = rows[-1]
            top = min(i[1] for i in last)
            bottom = max(i[3] for i in last)
            if top <= center <= bottom:
                last.append(item)
                continue
        rows.append([item])
    parts: list[str] = []
    boxes: list[OcrBox] = []
    size = 0
    for row_index, row in enumerate(rows):
        if row_index:
            parts.append("\n")
            size += 1
        for index, (x0, y0, x1, y1, text) in enumerate(sorted(row, key=lambda i: i[0])):
            if index:
                parts.append(" ")
                size += 1
            boxes.append(
                OcrBox(size, size + len(text), x0 / width, y0 / height, x1 / width, y1 / height)
            )
            parts.append(text)
            size += len(text)
    return OcrPage("".join(parts), tuple(boxes))


# --- cache ----------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Per-user cache (``$XDG_CACHE_HOME/Almanac/ocr`` on Linux): results are rebuildable, so
    they live with caches, not with the knowledge base."""
    import platformdirs

    return platformdirs.user_cache_path("Almanac", appauthor=False) / "ocr"


def load_cached(key: str) -> OcrPage | None:
    path = cache_dir() / key[:2] / f"{key}.json"
    try:
        return OcrPage.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: read the page again


def store_cached(key: str, page: OcrPage) -> None:
    folder = cache_dir() / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        temporary.write_text(json.dumps(page.to_json()), encoding="utf-8")
        os.replace(temporary, folder / f"{key}.json")  # readers never see half a file
    except OSError:
        pass  # a read-only or full cache costs speed, never the index
