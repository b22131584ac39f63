"""Finding the files under a folder: what to index, what to ignore, and what to report."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
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


@dataclass(frozen=True, slots=True)
class Found:
    path: Path  # absolute, not resolved (the path as the user sees it)
    source: Path  # the folder it was found under
    error: str = ""  # non-empty when the entry can't be indexed (e.g. a symlink loop)


def walk(root: Path) -> Iterator[Found]:
    """Every non-ignored file under ``root``, following folder symlinks once (loops reported)."""
    root = Path(os.path.abspath(root))
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
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError as exc:
                yield Found(path, root, _link_error(exc))
                continue
            if is_dir:
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    yield Found(path, root, _link_error(exc))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    if entry.is_symlink():
                        yield Found(path, root, "symbolic link loop: folder already indexed")
                    continue
                seen_dirs.add(key)
                subdirs.append(path)
            elif is_file:
                yield Found(path, root)
            elif entry.is_symlink():
                yield Found(path, root, _dangling_error(path))
        stack.extend(reversed(subdirs))


def _link_error(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot access: {exc.strerror or exc}"


def _dangling_error(path: Path) -> str:
    try:
        path.stat()
    except OSError as exc:
        return _link_error(exc) if exc.errno == errno.ELOOP else "broken symbolic link"
    return "not a regular file"
