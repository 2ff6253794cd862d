"""The types that travel between the layers: papers and chunks (corpus and store), sources
(retrieval), answers with their citations and claims (answering), the events a streamed
answer is made of, conversation turns, support verdicts, and what ingest and the index
report.

Standard library only: importing this module loads neither numpy, sqlite3 nor chromadb, so
code that only reads answers (a UI, a script, the tests) stays light.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

REFUSAL = "The indexed abstracts do not answer this."
"""The one refusal sentence: written by the offline answerer, asked of the model by the
prompt, recognized in model output, and used by the tests."""

OFFLINE_NOTICE = (
    "Offline extractive answer: the sentences below are quoted from the indexed abstracts; "
    "no language model was used."
)
OFFLINE_REFUSAL_NOTICE = (
    "Offline extractive answer: the indexed abstracts were checked for a sentence that "
    "answers the question; no language model was used."
)

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``: ingest reports 'reading', 'embedding' and 'lexical';
the evaluation reports 'questions'. ``total`` is None while unknown."""


def no_progress(stage: str, done: int, total: int | None) -> None:
    return None


# --- papers and chunks -------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class Paper:
    """One paper: what the index stores and what answers cite."""

    paper_id: str
    title: str
    abstract: str
    url: str | None = None
    authors: list[str] = field(default_factory=list)
    date: str | None = None
    sources: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        """Changes when the text that is chunked and embedded changes."""
        return _digest(self.title + "\x1f" + self.abstract)

    @property
    def meta_hash(self) -> str:
        """Changes when displayed metadata changes (url, authors, date, categories)."""
        return _digest(json.dumps([self.url, self.authors, self.date, self.categories]))


@dataclass
class Skipped:
    """An entry that was not ingested, and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class Chunk:
    """A piece of one paper's abstract, as stored in Chroma and the lexical index."""

    chunk_id: str
    paper_id: str
    ordinal: int
    text: str
    title: str

    @property
    def index_text(self) -> str:
        """What is embedded and searched: the title, then the chunk (every chunk carries it)."""
        return f"{self.title}\n{self.text}"


def chunk_id(paper: Paper, ordinal: int) -> str:
    """Deterministic: a changed abstract gives new ids, so stale chunks are found by id."""
    return f"{paper.paper_id}::{paper.content_hash[:10]}::{ordinal}"


def paper_id_of(chunk_id_: str) -> str:
    """The paper id a chunk id belongs to."""
    return chunk_id_.split("::", 1)[0]


# --- retrieval ---------------------------------------------------------------------------


@dataclass
class ChunkHit:
    """One retrieved chunk with the evidence for it."""

    chunk_id: str
    text: str
    ordinal: int
    score: float
    lexical_rank: int | None = None
    dense_rank: int | None = None
    dense_similarity: float | None = None


@dataclass
class Source:
    """A retrieved paper. ``title`` always comes from the index."""

    paper_id: str
    title: str
    score: float
    text: str
    abstract: str
    chunks: list[ChunkHit] = field(default_factory=list)
    url: str | None = None
    authors: list[str] = field(default_factory=list)
    date: str | None = None
    rank: int = 0
    meaning: float | None = None
    """The cosine between the question and the paper's sentence closest to it in meaning
    (the sentence encoder's; None without it)."""
    sentence_meaning: dict[str, float] = field(default_factory=dict)
    """For each sentence of the abstract (by its text), with the encoder: its cosine to the
    question read in the paper's context (the sentence encoded after the title), or alone
    where the index has no such vectors yet."""

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "paper_id": self.paper_id,
            "title": self.title,
            "score": round(self.score, 4),
            "text": self.text,
            "url": self.url,
            "date": self.date,
        }


# --- answers -----------------------------------------------------------------------------


@dataclass
class Citation:
    """``[number]`` in the answer text refers to this paper."""

    number: int
    paper_id: str
    title: str
    url: str | None = None

    def to_dict(self) -> dict:
        return {"number": self.number, "title": self.title, "paper_id": self.paper_id}


@dataclass
class Verdict:
    """A support judge's decision on one claim. ``failed``: the judge could not decide (an
    unparseable LLM reply); the evaluation counts such verdicts apart, never as 0."""

    supported: bool
    score: float
    reason: str = ""
    failed: bool = False


@dataclass
class Claim:
    """One answer sentence, the citations it carries, and whether they support it.

    ``basis`` says what ``supported`` means: "judged", a judge checked the sentence against
    the abstracts it cites (generated answers); "quoted", the sentence is quoted from the
    abstract it cites (offline answers: true by construction, so it says nothing about the
    question) — then ``addresses`` says whether the sentence holds what the question asks
    about (its terms), which is what a reader wants to know of a quote."""

    text: str
    citations: list[int]
    supported: bool
    score: float
    reason: str = ""
    basis: Literal["judged", "quoted"] = "judged"
    addresses: bool | None = None
    failed: bool = False
    """The judge could not decide (its verdict is left out of shares, never counted as 0)."""

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "citations": self.citations,
            "supported": self.supported,
            "basis": self.basis,
            "addresses": self.addresses,
            "score": round(self.score, 3),
            "reason": self.reason,
            "failed": self.failed,
        }


@dataclass
class Usage:
    """Tokens of one answer. ``estimated``: the endpoint reported none (a streamed reply from
    a server that sends no usage chunk, such as llama.cpp), so they were counted here with
    tiktoken."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "estimated": self.estimated,
        }


@dataclass
class Fallback:
    """Why a model's answer was replaced by the offline extractive answer for the same
    sources, and that answer of the model (its text with citations resolved, its citations
    and checked claims), kept for whoever wants to read it."""

    reason: Literal["no-citation", "unsupported", "echo"]
    message: str
    supported: int
    claims: int
    threshold: float
    text: str
    citations: list[Citation] = field(default_factory=list)
    model_claims: list[Claim] = field(default_factory=list)

    @property
    def supported_share(self) -> float | None:
        """Supported claims / claims the judge decided (None when it decided none)."""
        return self.supported / self.claims if self.claims else None

    def to_dict(self) -> dict:
        share = self.supported_share
        return {
            "reason": self.reason,
            "message": self.message,
            "supported_claims": self.supported,
            "claims": self.claims,
            "supported_share": None if share is None else round(share, 3),
            "threshold": self.threshold,
            "model_text": self.text,
            "model_citations": [c.to_dict() for c in self.citations],
            "model_claims": [c.to_dict() for c in self.model_claims],
        }


@dataclass
class Answer:
    """An answer to one question. ``text`` carries ``[n]`` markers that ``citations`` resolve;
    every number in the text has a citation and every citation's title comes from the index."""

    question: str
    text: str
    citations: list[Citation]
    refused: bool
    mode: Literal["offline", "llm"]
    claims: list[Claim] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    usage: Usage | None = None
    model: str | None = None
    standalone_question: str | None = None
    evidence: float = 0.0
    fallback: Fallback | None = None
    """Set when the model's answer was mostly unsupported and ``text`` is the offline
    extractive answer for the same sources (its first line says so)."""

    @property
    def unsupported_claims(self) -> list[Claim]:
        return [c for c in self.claims if not c.supported]

    def to_dict(self) -> dict:
        """The ``--json`` shape: text, citations, refused, mode, plus the checked details."""
        return {
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "refused": self.refused,
            "mode": self.mode,
            "claims": [c.to_dict() for c in self.claims],
            "warnings": self.warnings,
            "notices": self.notices,
            "usage": self.usage.to_dict() if self.usage else None,
            "model": self.model,
            "question": self.question,
            "standalone_question": self.standalone_question,
            "sources": [s.to_dict() for s in self.sources],
            "fallback": self.fallback.to_dict() if self.fallback else None,
        }

    def render(self) -> str:
        """Plain text for a terminal: notices (one ``note:`` line each: a notice may hold
        parentheses of its own), the answer, then the numbered sources."""
        return "\n".join([*(f"note: {n}" for n in self.notices), self.text]) + self.render_tail()

    def render_tail(self) -> str:
        """What follows the answer text: sources (or closest papers for a refusal),
        unsupported claims, warnings."""
        lines: list[str] = []
        if self.citations:
            lines += ["", "Sources:"]
            lines += [f"[{c.number}] {c.title}" for c in self.citations]
        elif self.refused and self.sources:
            lines += ["", "Closest papers (not cited):"]
            lines += [f"- {s.title}" for s in self.sources[:3]]
        unsupported = self.unsupported_claims
        if unsupported and not self.refused:
            lines += ["", f"Not supported by the cited abstracts ({len(unsupported)}):"]
            lines += [f"- {c.text}" for c in unsupported]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(["", *lines]) if lines else ""


# --- the events of a streamed answer -------------------------------------------------------


@dataclass
class TextDelta:
    """A piece of answer text, in order, with citation numbers already resolved (a number
    that maps to no source never appears); the deltas of a stream add up to the final
    ``Answer.text`` up to whitespace."""

    text: str


@dataclass
class Status:
    """Something to show while the answer comes: progress ('retrieving') or, with kind
    'notice', a notice that is also in the final answer (offline mode, bootstrap ingest)."""

    message: str
    kind: Literal["progress", "notice"] = "progress"


@dataclass
class Final:
    """The last event of a stream: the checked answer."""

    answer: Answer


Event = TextDelta | Status | Final


def final_answer(events: Iterable[Event]) -> Answer:
    """Drain a stream of events and return the answer of its :class:`Final`."""
    answer = None
    for event in events:
        if isinstance(event, Final):
            answer = event.answer
    if answer is None:
        raise RuntimeError("the answer stream ended without a Final event")
    return answer


@dataclass
class Turn:
    """One exchange: what the user typed, what was searched for, and the answer."""

    question: str
    standalone_question: str
    answer: Answer


# --- what the index reports ------------------------------------------------------------------


@dataclass
class IngestReport:
    """What an ingest changed. ``skipped`` lists entries that were not read, with reasons;
    ``filtered`` counts records a ``--category`` filter left out."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    filtered: int = 0
    entries: int = 0
    files: int = 0
    papers: int = 0
    chunks: int = 0
    embedded: int = 0
    encoded: int = 0
    """Chunks whose sentences the sentence encoder encoded (new ones, or an index's first or
    missing vectors)."""
    refitted: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: 'catalog' (reading, chunking, committing), 'fit' (the dense model),
    'dense' (embedding and Chroma writes), 'lexical', 'manifest' (switch and clean-up)."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        head = (
            f"added: {self.added}, updated: {self.updated}, unchanged: {self.unchanged}, "
            f"removed: {self.removed}, skipped: {len(self.skipped)}"
        )
        if self.filtered:
            head += f", left out by the category filter: {self.filtered}"
        tail = (
            f"{self.entries} entries in {self.files} file(s); the index holds {self.papers} "
            f"papers in {self.chunks} chunks"
        )
        if not self.changed and self.encoded:  # an index's missing sentence vectors
            tail += f"; no paper changed, the sentences of {self.encoded} chunks were encoded"
        elif not self.changed:
            tail += "; nothing changed"
        return f"{head}\n{tail} ({self.seconds:.1f} s)"

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [str(s) for s in self.skipped],
            "filtered": self.filtered,
            "entries": self.entries,
            "files": self.files,
            "papers": self.papers,
            "chunks": self.chunks,
            "warnings": self.warnings,
            "seconds": self.seconds,
        }


@dataclass
class IndexStatus:
    """What the status line and ``rag-assistant index status`` show."""

    home: str
    papers: int
    chunks: int
    embedding: str
    dimensions: int
    tokenizer: str
    chunking: str
    chroma: str
    generation: int
    pending_vectors: int
    lexical_stale: bool
    sources: int
    interrupted: str = ""
    """One line when an ingest or rebuild was interrupted and its work is not complete (or
    one is running in another process): what is not searchable yet. "" otherwise."""

    def line(self) -> str:
        return (
            f"{self.papers} papers, {self.chunks} chunks · {self.embedding} ({self.dimensions}d) "
            f"· Chroma {self.chroma}"
        )


@dataclass
class Recovery:
    """What :meth:`rag_assistant.Assistant.resume_interrupted` found and did.

    ``state``: ``"none"`` (nothing was interrupted), ``"completed"`` (an interrupted ingest,
    or the switch of an interrupted rebuild, was completed), ``"busy"`` (another process is
    writing; what it adds becomes searchable when it finishes) or ``"left"`` (something was
    found that starting does not finish: ``message`` says what). ``message`` is one line for
    a status line or stderr ("" for ``"none"``); ``embedded``: chunks embedded meanwhile."""

    state: Literal["none", "completed", "busy", "left"]
    message: str = ""
    embedded: int = 0


@dataclass
class Problem:
    """One inconsistency found by an index check."""

    part: str
    message: str
    repairable: bool = True
