"""Opening a document file as hostile input: only regular files, only inside the indexed folders.

The checks are made on the *opened descriptor*, not on the name before opening, so a file swapped
for a FIFO or a link between the look and the open can do no harm: the open itself never blocks
(``O_NONBLOCK``), never follows a last-component link (``O_NOFOLLOW`` on the resolved path), and
``fstat`` plus the kernel's own name for the descriptor decide what was really opened.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from almanac.core.documents.errors import (
    FileTooLargeError,
    NotRegularFileError,
    OutsideFoldersError,
    UnreadableFileError,
)
from almanac.core.system.discovery import OUTSIDE_FOLDERS, Confinement, special_file_error

_READ_CHUNK = 1 << 20
_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO or a tty would block open() itself
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


@dataclass(frozen=True, slots=True)
class OpenedFile:
    handle: BinaryIO
    size: int
    mtime: float

    def sha256(self) -> str:
        """Streamed in constant memory, from the start of the file."""
        self.handle.seek(0)
        digest = hashlib.sha256()
        while block := self.handle.read(_READ_CHUNK):
            digest.update(block)
        return digest.hexdigest()

    def read_all(self, max_bytes: int) -> bytes:
        """The whole file; never more than ``max_bytes`` (it may have grown since fstat)."""
        self.handle.seek(0)
        data = self.handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise too_large(len(data), max_bytes)
        return data


def too_large(size: int, max_bytes: int) -> FileTooLargeError:
    return FileTooLargeError(
        f"file too large: {size / 2**20:.0f} MiB exceeds the {max_bytes / 2**20:.0f} MiB limit"
    )


@contextlib.contextmanager
def open_document_file(path: Path, confinement: Confinement | None = None) -> Iterator[OpenedFile]:
    """Open ``path`` for reading, or raise a ``DocumentError`` that says why it is refused."""
    try:
        st = os.stat(path)
        real = os.path.realpath(path)
    except OSError as exc:
        raise _unreadable(exc) from exc
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(special_file_error(st.st_mode))
    if confinement is not None and not confinement.allows(real):
        raise OutsideFoldersError(OUTSIDE_FOLDERS)
    try:
        fd = os.open(real, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since realpath
            raise UnreadableFileError("file changed while it was being opened") from exc
        raise _unreadable(exc) from exc
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotRegularFileError(special_file_error(opened.st_mode))
        if confinement is not None:
            where = _descriptor_path(fd)
            if where is not None and not confinement.allows(where):
                # A folder on the way was swapped for a link after realpath.
                raise OutsideFoldersError(OUTSIDE_FOLDERS)
        handle = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield OpenedFile(handle, opened.st_size, opened.st_mtime)


def _descriptor_path(fd: int) -> str | None:
    """The kernel's name for what ``fd`` is, where the platform tells it."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    if sys.platform == "darwin":  # pragma: no cover - macOS
        import fcntl

        try:
            raw = fcntl.fcntl(fd, 50, b"\0" * 1024)  # F_GETPATH
        except OSError:
            return None
        return os.fsdecode(raw.split(b"\0", 1)[0])
    return None  # pragma: no cover - elsewhere the realpath check before opening stands alone


def _unreadable(exc: OSError) -> UnreadableFileError:
    if isinstance(exc, PermissionError):
        return UnreadableFileError("permission denied: this file is not readable")
    if exc.errno == errno.ELOOP:
        return UnreadableFileError("symbolic link loop")
    return UnreadableFileError(f"cannot read file: {exc.strerror or exc}")
