"""Per-file reading errors. Messages are shown to users as-is: say what is wrong with this file."""

from __future__ import annotations


class DocumentError(Exception):
    """A file could not be read. The message is specific and user-facing."""


class UnsupportedFormatError(DocumentError):
    pass


class EmptyDocumentError(DocumentError):
    pass


class CorruptDocumentError(DocumentError):
    pass


class EncryptedDocumentError(DocumentError):
    pass


class BinaryContentError(DocumentError):
    pass


class FileTooLargeError(DocumentError):
    pass


class UnreadableFileError(DocumentError):
    pass


class NotRegularFileError(UnreadableFileError):
    """A FIFO, socket or device: never opened for reading (a FIFO would block forever)."""


class OutsideFoldersError(UnreadableFileError):
    """A symbolic link whose target is outside the folders being indexed."""


class ExpansionLimitError(DocumentError):
    """The file would inflate past what a reader may build (a zip bomb, an HTML bomb)."""
