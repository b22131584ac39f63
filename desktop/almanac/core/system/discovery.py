"""Finding the files under a folder: what to index, what to ignore, and what to report."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Editors' and browsers' transient files: indexing them would add noise, and their disappearance
# a moment later would look like a delete.
_IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_IGNORED_SUFFIXES = (
    ".swp",
    ".swo",
    ".swx",
    ".tmp",
    ".temp",
    ".part",
    ".crdownload",
    ".download",
    ".partial",
    "~",
)


def is_ignored_name(name: str) -> bool:
    """Hidden files, Office lock files (~$x.docx), swap and partial-download files."""
    if not name or name in _IGNORED_NAMES:
        return True
    if name.startswith((".", "~$", ".~lock.")):
        return True
    return name.lower().endswith(_IGNORED_SUFFIXES)


# Names that are not valid UTF-8 (any byte string is a valid POSIX name) are decoded by Python with
# "surrogateescape": each bad byte becomes a lone surrogate U+DC80..U+DCFF, which no UTF-8 encoder,
# LanceDB included, accepts. Keys move those to the last 128 code points of private use plane 16
# instead: valid text, one code point per byte, and reversible (see ``key_path``).
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")
_KEYED_BYTES = re.compile("[\U0010ff80-\U0010ffff]")
_KEY_SHIFT = 0x10FF80 - 0xDC80


def path_key(path: Path | str) -> str:
    """The key of a file in the knowledge base: absolute, ``/``-separated, always valid text."""
    text = Path(os.path.abspath(path)).as_posix()
    return _ESCAPED_BYTES.sub(lambda m: chr(ord(m.group()) + _KEY_SHIFT), text)


def key_path(key: str) -> Path:
    """The file a key names (the inverse of ``path_key``)."""
    if not _KEYED_BYTES.search(key):
        return Path(key)
    escaped = Path(_KEYED_BYTES.sub(lambda m: chr(ord(m.group()) - _KEY_SHIFT), key))
    # A real name may hold those private-use characters itself; it wins when it exists.
    return Path(key) if os.path.lexists(key) and not os.path.lexists(escaped) else escaped


def display_key(key: str) -> str:
    """A key for people: each byte that was not UTF-8 shown as ``\\xNN``."""
    return _KEYED_BYTES.sub(lambda m: f"\\x{ord(m.group()) - 0x10FF00:02x}", key)


class Confinement:
    """The folders a document may be read from: a path qualifies when its real location (every
    symbolic link resolved) is inside one of them, so a link can't lead the indexer elsewhere."""

    def __init__(self, roots: Iterable[Path | str]) -> None:
        self.roots = tuple(sorted({os.path.realpath(r) for r in roots}))

    def allows(self, real: str) -> bool:
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)

    def allows_path(self, path: Path | str) -> bool:
        return self.allows(os.path.realpath(path))


OUTSIDE_FOLDERS = "symbolic link leads outside the indexed folders"


@dataclass(frozen=True, slots=True)
class Found:
    path: Path  # absolute, not resolved (the path as the user sees it)
    source: Path  # the folder it was found under
    error: str = ""  # non-empty when the entry can't be indexed (e.g. a symlink loop)


def walk(root: Path, confinement: Confinement | None = None) -> Iterator[Found]:
    """Every non-ignored entry under ``root`` that is (or should have been) a document.

    Folder links are followed once (loops reported); a link whose target is outside the
    confinement (by default ``root`` itself) is reported, never followed; special files (FIFOs,
    sockets, devices) are reported, never opened.
    """
    root = Path(os.path.abspath(root))
    confinement = confinement or Confinement([root])
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = root.stat()
        seen_dirs.add((st.st_dev, st.st_ino))
    except OSError:
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Found(folder, root, f"cannot list folder: {exc.strerror or exc}")
            continue
        subdirs: list[Path] = []
        for entry in entries:
            if is_ignored_name(entry.name):
                continue
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield Found(
                    path, root, _link_error(exc) if entry.is_symlink() else _stat_error(exc)
                )
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    if entry.is_symlink():
                        yield Found(path, root, "symbolic link loop: folder already indexed")
                    continue
                if entry.is_symlink() and not confinement.allows_path(path):
                    yield Found(path, root, OUTSIDE_FOLDERS)
                    continue
                seen_dirs.add(key)
                subdirs.append(path)
            elif entry.is_symlink() and not confinement.allows_path(path):
                yield Found(path, root, OUTSIDE_FOLDERS)
            elif stat.S_ISREG(st.st_mode):
                yield Found(path, root)
            else:
                yield Found(path, root, special_file_error(st.st_mode))
        stack.extend(reversed(subdirs))


def special_file_error(mode: int) -> str:
    """Why a file that is not a regular file is never opened (opening a FIFO blocks forever)."""
    if stat.S_ISFIFO(mode):
        what = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device file"
    elif stat.S_ISDIR(mode):
        what = "a folder"
    else:
        what = "a special file"
    return f"not a regular file: {what} is never read"


def _stat_error(exc: OSError) -> str:
    return f"cannot access: {exc.strerror or exc}"


def _link_error(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link"
    return f"cannot access: {exc.strerror or exc}"
