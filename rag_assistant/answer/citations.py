"""Citations checked by code.

The answer text refers to the numbered sources it was given with markers
(:mod:`rag_assistant.text.markers`). Here each number is mapped to a source paper; a number
that maps to nothing is removed and counted in the warnings; the rest are renumbered 1..m in
order of first use. Each sentence then becomes a :class:`~rag_assistant.types.Claim` whose
support by the abstracts it cites is decided by a judge (:mod:`.judges`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..text.markers import MARKER, OPEN_MARKER, marker_numbers, numbers_of, strip_markers
from ..text.sentences import split_sentences
from ..text.terms import terms
from ..types import REFUSAL, Citation, Claim, Source
from .judges import SupportJudge

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


class CitationMap:
    """Maps source numbers to citation numbers (1..m in order of first use) across calls, so
    a streamed answer can be resolved piece by piece with the same numbering as the whole."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.order: dict[int, int] = {}  # source number -> citation number
        self.phantoms: list[int] = []

    def _replace(self, match: re.Match[str]) -> str:
        kept = []
        for n in numbers_of(match.group(1)):
            if 1 <= n <= len(self.sources):
                new = self.order.setdefault(n, len(self.order) + 1)
                if new not in kept:
                    kept.append(new)
            else:
                self.phantoms.append(n)
        return "".join(f"[{n}]" for n in kept)

    def sub(self, text: str) -> str:
        """``text`` with its markers renumbered and unknown numbers removed."""
        return MARKER.sub(self._replace, text)

    def citations(self) -> list[Citation]:
        out = []
        for source_number, number in sorted(self.order.items(), key=lambda kv: kv[1]):
            src = self.sources[source_number - 1]
            out.append(Citation(number, src.paper_id, src.title, src.url))
        return out

    def warnings(self) -> list[str]:
        return [
            f"removed citation [{n}]: it refers to no source (the answer had {len(self.sources)})"
            for n in self.phantoms
        ]


def tidy(text: str) -> str:
    """Whitespace left by removed markers: doubled spaces, a space before punctuation."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()


class StreamResolver:
    """Resolves citations in a text that arrives in pieces: text that could be the start of
    a marker (``[1, ``) is held back until the marker closes, so no delta shows a number the
    final answer does not have."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.map = CitationMap(sources)
        self._pending = ""

    def feed(self, delta: str) -> str:
        text = self._pending + delta
        held = OPEN_MARKER.search(text)
        cut = held.start() if held else len(text)
        self._pending = text[cut:]
        return self.map.sub(text[:cut])

    def finish(self) -> str:
        text, self._pending = self._pending, ""
        return self.map.sub(text)


def resolve(text: str, sources: Sequence[Source]) -> tuple[str, list[Citation], list[str]]:
    """Map the markers of ``text`` (n = position in ``sources``, from 1) to papers.

    Returns the text with markers renumbered 1..m in order of first use and unknown numbers
    removed, the citations (titles from the index), and one warning per removed number.
    """
    cmap = CitationMap(sources)
    cleaned = tidy(cmap.sub(text))
    return cleaned, cmap.citations(), cmap.warnings()


def claims(
    text: str, citations: Sequence[Citation], sources: Sequence[Source], judge: SupportJudge
) -> list[Claim]:
    """Every sentence of ``text`` with its citation numbers and the judge's verdict against the
    full abstracts of the papers it cites. A sentence without a citation is unsupported.

    A sentence made only of citation markers (a model putting them on their own line)
    lends them to the sentence before it.
    """
    by_number = {c.number: c for c in citations}
    abstracts = {s.paper_id: s.abstract for s in sources}
    out: list[Claim] = []
    for start, end in split_sentences(text):
        sentence = text[start:end].strip()
        numbers_ = marker_numbers(sentence)
        bare = strip_markers(sentence).strip(" .;,")
        if not bare:
            if out and numbers_:
                out[-1].citations.extend(n for n in numbers_ if n not in out[-1].citations)
            continue
        if bare == REFUSAL.rstrip("."):
            continue
        out.append(Claim(sentence, list(dict.fromkeys(numbers_)), False, 0.0))
    for claim in out:
        evidence = [
            abstracts[by_number[n].paper_id]
            for n in claim.citations
            if n in by_number and by_number[n].paper_id in abstracts
        ]
        verdict = judge.judge(strip_markers(claim.text), evidence)
        claim.supported, claim.score = verdict.supported, verdict.score
        claim.reason = verdict.reason
    return out


def evidence_spans(claim: str, abstract: str, *, min_share: float = 0.5) -> list[tuple[int, int]]:
    """The sentences of ``abstract`` (as ``(start, end)`` spans, in order) that back ``claim``:
    the one sharing the largest part of the claim's content terms, and any other sharing at
    least ``min_share`` of them. None when no sentence shares a term (what the UI highlights)."""
    claim_terms = set(terms(strip_markers(claim)))
    if not claim_terms:
        return []
    scored = []
    for start, end in split_sentences(abstract):
        share = len(claim_terms & set(terms(abstract[start:end]))) / len(claim_terms)
        if share > 0:
            scored.append((share, start, end))
    if not scored:
        return []
    best = max(scored, key=lambda s: s[0])
    return sorted({(s, e) for share, s, e in scored if share >= min_share or (share, s, e) == best})
