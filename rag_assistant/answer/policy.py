"""The answerability policy: the one place that decides whether the retrieved abstracts
answer a question, for the offline answerer and the generated one alike (a refused question
never reaches the model), and that recognizes a model's own refusal.

Evidence is measured as IDF-weighted coverage: the share of the question's content terms
(weighted by how rare they are in the corpus) that a retrieved paper's title and abstract
contain; a lay word counts as covered when the abstract uses one of its glossary terms. A
question is refused when the best coverage is below ``min_evidence``, or when it names
something (:func:`~rag_assistant.text.terms.names`) that no indexed text mentions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..text.glossary import expand
from ..text.markers import strip_markers
from ..text.normalize import fold_spaces
from ..text.terms import names, query_terms, terms
from ..types import REFUSAL, Source


@dataclass
class Analysis:
    """What a question asks, as the policy sees it: its content terms (misspellings of
    corpus words corrected) and, for each lay term, the research terms that stand for it."""

    terms: list[str]
    alternates: dict[str, set[str]]


@dataclass
class Decision:
    """Whether the sources answer the question, with the evidence: the best and each
    source's coverage, and the names no indexed text mentions."""

    answerable: bool
    evidence: float
    per_source: list[float]
    analysis: Analysis
    unknown_names: list[str] = field(default_factory=list)

    min_evidence: float = 0.0

    @property
    def reason(self) -> str | None:
        """Why the question is refused, as a clause for the user (None when answerable)."""
        if self.answerable:
            return None
        if self.unknown_names:
            named = ", ".join(f'"{n}"' for n in self.unknown_names)
            return f"no indexed abstract mentions {named}"
        return (
            "the retrieved abstracts match too little of the question "
            f"(evidence {self.evidence:.2f} < {self.min_evidence:.2f})"
        )

    @property
    def notice(self) -> str | None:
        """:attr:`reason` as a sentence."""
        reason = self.reason
        return f"{reason[0].upper()}{reason[1:]}." if reason else None


class AnswerabilityPolicy:
    """Decides from the question and the retrieved sources. ``idf`` gives a term's rarity in
    the corpus; ``spelled`` maps a term to the corpus word spelled like it (None: unknown)."""

    def __init__(
        self,
        idf: Callable[[str], float],
        *,
        min_evidence: float,
        spelled: Callable[[str], str | None] | None = None,
    ) -> None:
        self.idf = idf
        self.min_evidence = min_evidence
        self.spelled = spelled

    def analyze(self, question: str) -> Analysis:
        qterms = query_terms(question)
        if self.spelled is not None:
            qterms = list(dict.fromkeys(self.spelled(t) or t for t in qterms))
        return Analysis(qterms, expand(question).alternates)

    def coverage(self, analysis: Analysis, text_terms: set[str]) -> float:
        """IDF-weighted share of the question's terms found in ``text_terms``."""
        total = sum(self.idf(t) for t in analysis.terms)
        if total <= 0:
            return 0.0
        found = sum(self.idf(t) for t in analysis.terms if covers(t, text_terms, analysis))
        return found / total

    def unknown_names(self, question: str) -> list[str]:
        """The names in ``question`` that no indexed text uses, nor anything spelled almost
        like them: a question about something the corpus never mentions."""
        if self.spelled is None:
            return []
        unknown = []
        for name in names(question):
            words = [t for t in query_terms(name) if not t[0].isdigit() and len(t) >= 3]
            if any(self.spelled(t) is None for t in words):
                unknown.append(name)
        return unknown

    def decide(self, question: str, sources: Sequence[Source]) -> Decision:
        analysis = self.analyze(question)
        per_source = [
            self.coverage(analysis, set(terms(s.title + " " + s.abstract))) for s in sources
        ]
        best = max(per_source, default=0.0)
        unknown = self.unknown_names(question)
        answerable = bool(analysis.terms and sources) and best >= self.min_evidence
        return Decision(
            answerable and not unknown, best, per_source, analysis, unknown, self.min_evidence
        )


def covers(term: str, text_terms: set[str], analysis: Analysis) -> bool:
    """``term`` is in the text, or one of the research terms that stand for it is."""
    if term in text_terms:
        return True
    return bool(analysis.alternates.get(term, set()) & text_terms)


def is_refusal(text: str) -> bool:
    """True when a model's reply is (or starts with) the refusal sentence."""
    return fold_spaces(strip_markers(text)).startswith(fold_spaces(REFUSAL).rstrip("."))
