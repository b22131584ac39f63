"""OCR quality and speed: known text rendered into images and image-only PDFs, read back through
``almanac ingest`` (the real CLI), compared with the text that was drawn.

    .venv/bin/python benchmarks/ocr_quality.py                       # everything (~15 min)
    .venv/bin/python benchmarks/ocr_quality.py --big-pages 20 --json benchmarks/out/ocr.json
    .venv/bin/python benchmarks/ocr_quality.py --only cer    # cer | retrieval | big | fresh

* ``cer``: character error rate per kind of page (fonts and sizes, a table, a page scanned
  sideways, a skewed page, a low-resolution fax), each as a PNG and as an image-only PDF. The
  known text and the OCR text are compared with runs of whitespace made one space (line breaks
  and cell gaps are layout, not characters). Targets: CER <= 2 % on clean 300-dpi pages,
  <= 8 % on the fax.
* ``retrieval``: the held-out answer KB (benchmarks/answer_kb) indexed twice, once with its text
  PDF and once with the PDF's scanned twin (every page rendered at 300 dpi into an image-only
  PDF); its PDF questions asked through ``almanac search --jsonl -k 3``; a hit is the right file
  and page. Target: hit@3 on the scan >= 0.9 x the text PDF's.
* ``big``: one N-page scanned PDF (300 dpi) through ``almanac ingest`` end to end: pages/s; the
  100-page figure is extrapolated when N < 100 (said in the output).
* ``fresh``: live sync (FolderSync, real watcher) on a folder with a Markdown manual and an
  N-page scan; while the OCR lane reads the scan, a line is added to the manual R times and the
  time from the save until a search finds it is measured (only edits made and found while the
  scan was still being read count). Target: p95 < 2 s.

The OCR cache is a fresh folder for every ingest (``XDG_CACHE_HOME``), so every page is really
recognised. The read-back text is the ingest's own: read_document is served from that cache.
The CPU is shared: the load average is printed around each phase.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from _common import REPO_ROOT, load_note, machine_info, print_table, save_json

sys.path.insert(0, str(REPO_ROOT / "tests"))
from ocrgen import cer

ALMANAC = str(Path(sys.executable).with_name("almanac"))
PNG_TOO = ("sans 11 pt", "fax 204x98 dpi")
FONTS = "/usr/share/fonts/truetype/dejavu/"
A4_300 = (2480, 3508)
_WORDS = [
    "router",
    "reset",
    "firmware",
    "update",
    "cradle",
    "adapter",
    "warranty",
    "return",
    "invoice",
    "refund",
    "account",
    "password",
    "network",
    "signal",
    "channel",
    "antenna",
    "battery",
    "charger",
    "display",
    "error",
    "code",
    "support",
    "ticket",
    "device",
    "install",
    "setting",
    "schedule",
    "backup",
    "restore",
    "license",
    "customer",
    "order",
    "shipping",
    "address",
    "thermostat",
    "sensor",
    "heating",
    "cooling",
    "humidity",
    "calibration",
    "replacement",
    "voltage",
    "outlet",
    "switch",
]


# --- material -----------------------------------------------------------------------------------


def sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 11))]
    words[0] = words[0].capitalize()
    if rng.random() < 0.5:
        words.insert(rng.randrange(1, len(words)), rng.choice(["TR-7", "E42", "v2.1", "X-200"]))
    if rng.random() < 0.4:
        words.insert(rng.randrange(1, len(words)), f"{rng.randint(2, 240)}")
    return " ".join(words) + rng.choice([".", ".", ".", "?", ":"])


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if font.getlength(trial) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def text_page(
    rng: random.Random, font_file: str, points: float, dpi: int = 300, n_lines: int = 30
) -> tuple[Image.Image, str]:
    """An A4 page of wrapped paragraphs: the image and the text that was drawn."""
    size = (round(A4_300[0] * dpi / 300), round(A4_300[1] * dpi / 300))
    px = round(points * dpi / 72)
    font = ImageFont.truetype(FONTS + font_file, px)
    margin = round(size[0] * 0.08)
    lines: list[str] = []
    while len(lines) < n_lines:
        lines += wrap(" ".join(sentence(rng) for _ in range(3)), font, size[0] - 2 * margin)
    lines = lines[:n_lines]
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    step = round(px * 1.5)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * step), line, font=font, fill=0)
    return image, "\n".join(lines)


def table_page(rng: random.Random) -> tuple[Image.Image, str]:
    """A ruled price / compatibility table, 4 columns x 16 rows, 10 pt."""
    image = Image.new("L", A4_300, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONTS + "DejaVuSans.ttf", round(10 * 300 / 72))
    cols = [200, 800, 1400, 1850, 2280]
    header = ["Model", "Compatible with", "Price EUR", "Stock"]
    rows = [header] + [
        [
            f"{rng.choice(['TR', 'HX', 'KL'])}-{rng.randint(2, 99)}",
            f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}",
            f"{rng.randint(9, 499)}.{rng.randint(0, 99):02d}",
            str(rng.randint(0, 80)),
        ]
        for _ in range(15)
    ]
    top, height = 250, 110
    for r, row in enumerate(rows):
        y = top + r * height
        draw.line([(cols[0], y), (cols[-1], y)], fill=0, width=3)
        for c, cell in enumerate(row):
            draw.text((cols[c] + 25, y + 30), cell, font=font, fill=0)
    bottom = top + len(rows) * height
    draw.line([(cols[0], bottom), (cols[-1], bottom)], fill=0, width=3)
    for x in cols:
        draw.line([(x, top), (x, bottom)], fill=0, width=3)
    return image, "\n".join(" ".join(row) for row in rows)


def fax(image: Image.Image, rng: random.Random) -> Image.Image:
    """A standard-resolution fax: 204 x 98 dpi, 1 bit, speckles, then back to the page size."""
    w, h = image.size
    low = image.resize((round(w * 204 / 300), round(h * 98 / 300)), Image.Resampling.BILINEAR)
    pixels = low.load()
    for _ in range(low.width * low.height // 400):  # 0.25 % speckle noise
        pixels[rng.randrange(low.width), rng.randrange(low.height)] = rng.choice((0, 255))
    bilevel = low.point(lambda v: 255 if v > 150 else 0).convert("1")
    return bilevel.convert("L").resize((w, h), Image.Resampling.NEAREST)


def material(rng: random.Random) -> dict[str, tuple[Image.Image, str]]:
    pages = {
        "sans 11 pt": text_page(rng, "DejaVuSans.ttf", 11),
        "serif 11 pt": text_page(rng, "DejaVuSerif.ttf", 11),
        "mono 10 pt": text_page(rng, "DejaVuSansMono.ttf", 10),
        "sans 8 pt": text_page(rng, "DejaVuSans.ttf", 8, n_lines=40),
        "bold 16 pt": text_page(rng, "DejaVuSans-Bold.ttf", 16, n_lines=20),
        "table": table_page(rng),
    }
    image, text = text_page(rng, "DejaVuSans.ttf", 11)
    pages["rotated 90 deg"] = (image.rotate(90, expand=True, fillcolor=255), text)
    image, text = text_page(rng, "DejaVuSerif.ttf", 11)
    pages["skewed 2 deg"] = (
        image.rotate(2, expand=False, fillcolor=255, resample=Image.Resampling.BICUBIC),
        text,
    )
    image, text = text_page(rng, "DejaVuSans.ttf", 11)
    pages["fax 204x98 dpi"] = (fax(image, rng), text)
    image, text = text_page(rng, "DejaVuSerif.ttf", 12)
    pages["photo-like (blur, grey)"] = (
        image.filter(ImageFilter.GaussianBlur(1.2)).point(lambda v: 60 + v * 0.6),
        text,
    )
    return pages


def image_only_pdf(images: list[Image.Image], dpi: int = 300) -> bytes:
    out = io.BytesIO()
    first, *rest = [im.convert("L") for im in images]
    first.save(out, format="PDF", save_all=True, append_images=rest, resolution=dpi)
    return out.getvalue()


# --- running the CLI ----------------------------------------------------------------------------


CPU_SECONDS: dict[str, float] = {}  # CPU time of the last CLI run, by its first argument


def cli(args: list[str], cache: Path, timeout: float = 3600) -> tuple[float, str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), HF_HUB_OFFLINE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [ALMANAC, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS[args[0]] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"almanac {' '.join(args)} failed:\n{done.stderr}\n{done.stdout}")
    return seconds, done.stdout


def read_back(path: Path, cache: Path) -> list[str]:
    """The pages the ingest produced (served from its OCR cache, so nothing is re-recognised)."""
    os.environ["XDG_CACHE_HOME"] = str(cache)
    from almanac.core.documents import read_document

    return list(read_document(path).pages)


def one_line(text: str) -> str:
    return " ".join(text.split())


def ocr_cer(work: Path, rng: random.Random) -> dict[str, object]:
    docs = work / "cer-docs"
    docs.mkdir()
    pages = material(rng)
    names: dict[str, tuple[str, str]] = {}
    for index, (kind, (image, text)) in enumerate(pages.items()):
        stem = f"{index:02d}"
        # Every kind as a scanned PDF; two also as PNG (the image path skips PDF rendering).
        if kind in PNG_TOO:
            image.save(docs / f"{stem}.png")
        (docs / f"{stem}.pdf").write_bytes(image_only_pdf([image]))
        names[stem] = (kind, text)
    cache = work / "cache-cer"
    note = load_note("before cer ingest")
    seconds, _ = cli(["ingest", str(docs), "--kb", str(work / "kb-cer")], cache)
    page_count = len(pages) + len(PNG_TOO)
    _, status = cli(["status", "--kb", str(work / "kb-cer"), "--json"], cache)
    rows = []
    results = {}
    for stem, (kind, truth) in names.items():
        row: dict[str, float] = {}
        for ext in ("png", "pdf"):
            if (docs / f"{stem}.{ext}").exists():
                found = "\n".join(read_back(docs / f"{stem}.{ext}", cache))
                row[ext] = cer(one_line(found), one_line(truth))
        results[kind] = row
        shown = [f"{100 * row[e]:.2f}" if e in row else "-" for e in ("pdf", "png")]
        rows.append([kind, *shown])
    print_table("character error rate, %", ["page (A4, 300 dpi)", "image-only PDF", "PNG"], rows)
    print(
        f"ingest of {page_count} pages: {seconds:.1f} s = {page_count / seconds:.3f} pages/s "
        "(includes CLI start and embedding)"
    )
    return {
        "cer": results,
        "ingest_s": seconds,
        "pages": page_count,
        "load": note,
        "status": json.loads(status),
    }


def retrieval(work: Path) -> dict[str, object]:
    import pypdfium2 as pdfium

    source = REPO_ROOT / "benchmarks" / "answer_kb"
    questions = [
        q
        for q in json.loads((source / "questions.json").read_text())["questions"]
        if str(q.get("file", "")).endswith(".pdf")
    ]
    results = {}
    for variant in ("text", "scan"):
        docs = work / f"kb-docs-{variant}"
        shutil.copytree(source / "docs", docs)
        if variant == "scan":
            for pdf_path in docs.rglob("*.pdf"):
                pdf = pdfium.PdfDocument(pdf_path.read_bytes())
                images = [
                    pdf[i].render(scale=300 / 72, grayscale=True).to_pil() for i in range(len(pdf))
                ]
                pdf.close()
                pdf_path.write_bytes(image_only_pdf(images))
        cache = work / f"cache-{variant}"
        seconds, _ = cli(["ingest", str(docs), "--kb", str(work / f"kb-{variant}")], cache)
        queries = "".join(
            json.dumps({"id": q["id"], "text": q["question"]}) + "\n" for q in questions
        )
        env = dict(os.environ, XDG_CACHE_HOME=str(cache))
        out = subprocess.run(
            [ALMANAC, "search", "--jsonl", "-k", "3", "--kb", str(work / f"kb-{variant}")],
            input=queries,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        by_id = {q["id"]: q for q in questions}
        hits = 0
        for line in out.splitlines():
            answer = json.loads(line)
            q = by_id[answer["id"]]
            want = str(docs / q["file"])
            if any(
                h["path"].endswith(q["file"]) and h["page"] == q["page"] for h in answer["hits"]
            ):
                hits += 1
            del want
        results[variant] = {"hit_at_3": hits / len(questions), "ingest_s": seconds}
    ratio = results["scan"]["hit_at_3"] / max(results["text"]["hit_at_3"], 1e-9)
    print_table(
        f"retrieval, {len(questions)} PDF questions of benchmarks/answer_kb, hit@3 (file + page)",
        ["variant", "hit@3", "ingest s"],
        [[k, f"{v['hit_at_3']:.3f}", f"{v['ingest_s']:.1f}"] for k, v in results.items()],
    )
    print(f"scan / text hit@3 ratio: {ratio:.3f} (target >= 0.9)")
    return {"variants": results, "ratio": ratio, "questions": len(questions)}


def big_scan(work: Path, rng: random.Random, n_pages: int) -> dict[str, object]:
    docs = work / "big-docs"
    docs.mkdir()
    images = [text_page(rng, "DejaVuSans.ttf", 11, n_lines=40)[0] for _ in range(n_pages)]
    (docs / "scanned-manual.pdf").write_bytes(image_only_pdf(images))
    del images
    note = load_note("before big ingest")
    seconds, _ = cli(["ingest", str(docs), "--kb", str(work / "kb-big")], work / "cache-big")
    after = load_note("after big ingest")
    _, status = cli(["status", "--kb", str(work / "kb-big"), "--json"], work / "cache-big")
    entry = json.loads(status)["files"][0]
    if entry["status"] != "indexed" or not entry["chunks"]:
        # A refused file costs no OCR: its "pages per second" would be meaningless.
        raise SystemExit(f"the scan was not indexed: {entry['status']}: {entry.get('error')}")
    rate = n_pages / seconds
    cpu = CPU_SECONDS["ingest"]
    print(
        f"\nCPU time of that ingest: {cpu:.1f} s ({cpu / n_pages:.1f} s a page; OCR runs on "
        f"{max(1, (os.cpu_count() or 2) - 1)} thread(s), so on an otherwise idle machine the "
        f"wall time is about the CPU time: {n_pages / cpu:.3f} pages/s)"
    )
    print(
        f"\n{n_pages}-page scanned PDF (A4, 300 dpi, 40 lines a page), almanac ingest end to "
        f"end: {seconds:.1f} s = {rate:.3f} pages/s"
    )
    if n_pages < 100:
        print(
            f"  100 pages extrapolated (linear in pages): {100 / rate / 60:.1f} min at this "
            f"load, {100 * cpu / n_pages / 60:.1f} min of CPU"
        )
    return {
        "pages": n_pages,
        "seconds": seconds,
        "pages_per_s": rate,
        "cpu_s": cpu,
        "load_before": note,
        "load_after": after,
    }


def freshness(work: Path, rng: random.Random, n_pages: int, repeats: int) -> dict[str, object]:
    """Save -> searchable for a Markdown edit while live sync's OCR lane reads a big scan."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from _common import latency_summary
    from almanac.app.services import build_services
    from almanac.core.indexing.sync import FolderSync
    from sync_latency import marker_line, page, wait_searchable

    os.environ["XDG_CACHE_HOME"] = str(work / "cache-fresh")
    docs = work / "fresh-docs"
    docs.mkdir()
    pages = [page(rng, n) for n in range(10)]
    manual = docs / "manual.md"
    manual.write_text("# Manual\n\n" + "".join(pages), encoding="utf-8")
    images = [text_page(rng, "DejaVuSans.ttf", 11, n_lines=40)[0] for _ in range(n_pages)]
    (docs / "scanned-manual.pdf").write_bytes(image_only_pdf(images))
    del images
    services = build_services(work / "kb-fresh")
    lane = services.ingestor.ocr_lane
    sync = FolderSync(services.ingestor, [docs], quiet_period=0.3)
    note = load_note("before freshness")
    sync.start()
    try:
        if not sync.wait_idle(600):
            raise SystemExit("start-up reconciliation did not finish")
        services.searcher.search("warm up", k=8)
        times: list[float] = []
        during: list[bool] = []
        for i in range(repeats):
            tag = f"F{i:03d}X{rng.randrange(10**6):06d}"
            edited = list(pages)
            edited[5] = edited[5] + marker_line(tag)
            busy_before = lane.busy
            start = time.perf_counter()
            manual.write_text("# Manual\n\n" + "".join(edited), encoding="utf-8")
            if not wait_searchable(services, tag, 120):
                raise SystemExit(f"edit {i}: not searchable after 120 s")
            times.append(time.perf_counter() - start)
            during.append(busy_before and lane.busy)
            time.sleep(0.5)
        progress = lane.progress
    finally:
        lane.stop()
        sync.stop()
    summary = latency_summary([t for t, d in zip(times, during, strict=True) if d])
    print(
        f"\nfreshness while a {n_pages}-page scan was being read by OCR: {summary['n']} of "
        f"{repeats} edits landed with the scan still being read; save -> searchable p50 "
        f"{summary['p50_ms']:.0f} ms, p95 {summary['p95_ms']:.0f} ms, "
        f"max {summary['max_ms']:.0f} ms (target p95 < 2 s); "
        f"OCR lane at page {progress.pages_done}/{progress.pages_total}"
    )
    return {"summary": summary, "all_s": times, "during_ocr": during, "load": note}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", choices=("cer", "retrieval", "big", "fresh"), action="append")
    p.add_argument("--fresh-pages", type=int, default=40, help="pages of the scan (40)")
    p.add_argument("--repeats", type=int, default=20, help="timed edits (20)")
    p.add_argument("--big-pages", type=int, default=100, help="pages of the big scan (100)")
    p.add_argument("--json", type=Path, help="also save the figures as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)
    parts = args.only or ["cer", "retrieval", "big", "fresh"]
    rng = random.Random(17)
    work = Path(tempfile.mkdtemp(prefix="almanac-ocr-bench-"))
    figures: dict[str, object] = {"machine": machine_info()}
    try:
        if "cer" in parts:
            figures["cer"] = ocr_cer(work, rng)
        if "retrieval" in parts:
            figures["retrieval"] = retrieval(work)
        if "big" in parts:
            figures["big"] = big_scan(work, rng, args.big_pages)
        if "fresh" in parts:
            figures["fresh"] = freshness(work, rng, args.fresh_pages, args.repeats)
        save_json(args.json, figures)
        return 0
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
