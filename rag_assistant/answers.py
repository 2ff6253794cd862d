"""What an answer is: text with ``[n]`` markers, the citations those numbers resolve to (titles
from the index), the checked claims, and the events a streamed answer is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .retrieval import Source

REFUSAL = "The indexed abstracts do not answer this."
"""The one refusal sentence: written by the offline answerer, asked of the model by the
prompt, recognized in model output, and used by the tests."""

OFFLINE_NOTICE = (
    "Offline extractive answer: the sentences below are quoted from the indexed abstracts; "
    "no language model was used."
)


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
class Claim:
    """One answer sentence, the citations it carries, and whether they support it."""

    text: str
    citations: list[int]
    supported: bool
    score: float
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "citations": self.citations,
            "supported": self.supported,
            "score": round(self.score, 3),
            "reason": self.reason,
        }


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def to_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


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

    @property
    def unsupported_claims(self) -> list[Claim]:
        return [c for c in self.claims if not c.supported]

    def citation(self, number: int) -> Citation | None:
        return next((c for c in self.citations if c.number == number), None)

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
        }

    def render(self) -> str:
        """Plain text for a terminal: notices, the answer, then the numbered sources."""
        return "\n".join([*(f"({n})" for n in self.notices), self.text]) + self.render_tail()

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
