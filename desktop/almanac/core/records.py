"""Typed, immutable records passed between layers.

The UI and CLI render these; they never re-derive them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Section:
    """A contiguous span of extracted text under one heading path.

    Invariant: ``document.page_text(page)[start:end] == text``.
    """

    text: str
    heading_path: tuple[str, ...]
    page: int | None  # 1-based for paged formats (PDF); None otherwise
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """The text extracted from one file.

    ``pages`` holds the extracted text of each page (PDF) or a single entry for unpaged formats.
    Section offsets index into ``pages[page - 1]`` (or ``pages[0]`` when page is None).
    """

    kind: str
    pages: tuple[str, ...]
    sections: tuple[Section, ...]
    paged: bool = False
    warnings: tuple[str, ...] = ()

    def page_text(self, page: int | None) -> str:
        if page is None:
            return self.pages[0] if self.pages else ""
        return self.pages[page - 1]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document sized for the embedder, with its exact location."""

    doc_path: str  # absolute, POSIX-style path of the source file
    ordinal: int
    text: str  # the exact extracted span (what a citation shows)
    heading_path: tuple[str, ...]
    page: int | None
    start: int
    end: int
    chunk_hash: str  # hash of the text the embedder sees (heading context + text)

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)


class DocumentStatus(enum.StrEnum):
    INDEXED = "indexed"
    PENDING = "pending"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One row of the documents table."""

    path: str  # absolute POSIX path (the key)
    source: str  # the folder it was ingested from
    rel_path: str  # path relative to ``source``
    sha256: str
    size: int
    mtime: float
    kind: str
    status: DocumentStatus
    error: str
    chunk_count: int
    indexed_at: float
    pipeline: str = ""  # fingerprint of the reader/chunker setup that produced its chunks


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a chunk with its scores."""

    chunk_id: str
    path: str
    page: int | None
    start: int
    end: int
    heading: str
    text: str
    score: float  # fused score used for ranking
    vector_score: float | None = None  # cosine similarity, when found by vector search
    text_score: float | None = None  # BM25 score, when found by full-text search

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "heading": self.heading,
            "score": round(self.score, 6),
            "vector_score": None if self.vector_score is None else round(self.vector_score, 6),
            "text_score": None if self.text_score is None else round(self.text_score, 6),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    hits: tuple[Hit, ...]
    relevant: bool  # False when nothing cleared the relevance floor
    best_similarity: float | None = None


@dataclass(frozen=True, slots=True)
class SearchFilters:
    path_prefix: str | None = None  # absolute folder or file prefix
    kinds: tuple[str, ...] = ()  # e.g. ("pdf", "md")
    modified_after: float | None = None  # POSIX timestamp
    modified_before: float | None = None


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """A progress report; emitted often, cheap to build."""

    files_total: int
    files_done: int
    files_failed: int
    files_skipped: int
    chunks_done: int
    chunks_embedded: int
    elapsed: float
    current: str = ""

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class FileError:
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: tuple[FileError, ...] = ()
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class AnswerMode(enum.StrEnum):
    MODEL = "model"  # written by the language model from the sources
    SOURCES_ONLY = "sources-only"  # no model configured: the best passages, cited
    NOT_FOUND = "not-found"  # nothing relevant retrieved: an honest "not in your documents"
    GENERAL = "general"  # nothing relevant, general-knowledge answer allowed and labelled


@dataclass(frozen=True, slots=True)
class Citation:
    number: int  # the [n] marker in the answer text
    path: str
    page: int | None
    start: int
    end: int
    heading: str
    score: float
    text: str

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "path": self.path,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "heading": self.heading,
            "score": round(self.score, 6),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    text: str
    mode: AnswerMode
    citations: tuple[Citation, ...]  # sources the answer cites, by marker number
    also_retrieved: tuple[Citation, ...]  # sources given to the model but not cited
    grounded: bool  # every answer sentence is supported by a passage it cites
    unsupported_sentences: tuple[str, ...] = ()
    invalid_markers: tuple[int, ...] = ()  # [n] markers that pointed at no source (removed)
    stopped: bool = False  # the user stopped generation
    retrieval_query: str = ""
    seconds_to_first_token: float | None = None
    seconds_total: float = 0.0
    tokens_generated: int = 0
    # The model's text when no sentence of it was supported by the passages it cites: withheld
    # (``text`` is then the refusal and the passages), shown only on request, labelled.
    unsupported_text: str = ""
    loop_cut: bool = False  # the model started repeating itself; the repetition was cut

    @property
    def withheld(self) -> bool:
        return bool(self.unsupported_text)

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "answer": self.text,
            "mode": self.mode.value,
            "grounded": self.grounded,
            "unsupported_text": self.unsupported_text or None,
            "loop_cut": self.loop_cut,
            "unsupported_sentences": list(self.unsupported_sentences),
            "invalid_markers": list(self.invalid_markers),
            "stopped": self.stopped,
            "citations": [c.to_json() for c in self.citations],
            "also_retrieved": [c.to_json() for c in self.also_retrieved],
            "retrieval_query": self.retrieval_query,
            "seconds_to_first_token": self.seconds_to_first_token,
            "seconds_total": round(self.seconds_total, 3),
        }
