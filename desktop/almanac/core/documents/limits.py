"""How far a reader may inflate a file: the bounds that keep one hostile file from exhausting
memory or time (a zip bomb, an HTML bomb). Chosen to keep an ingest of any single file under
1 GB of peak memory (measured in benchmarks/hostile_files.py), far above what real documents need.
"""

from __future__ import annotations

# DOCX (a ZIP archive). python-docx loads every part of the package into memory, so the total is
# bounded, and each XML part becomes an lxml tree of several times its size.
MAX_ARCHIVE_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 256 * 2**20  # all members together, as declared (zipfile enforces it)
MAX_XML_PART_BYTES = 48 * 2**20
# Word's XML compresses 5-20x; a ratio far past that is a bomb, not a document. Only members
# big enough to matter are judged (tiny parts can have odd ratios).
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_FROM_BYTES = 1 * 2**20

# HTML. BeautifulSoup costs about 1.3 KB of memory per element; the walk recurses per level.
MAX_HTML_ELEMENTS = 200_000
MAX_NESTING_DEPTH = 256
