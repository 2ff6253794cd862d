"""Citations checked by code.

The answer text refers to the numbered sources it was given with markers
(:mod:`rag_assistant.text.markers`, the one grammar). Here each number is mapped to a source
paper; a number that maps to nothing, and a marker-like token that names no number, is
removed and counted in the warnings; the rest are renumbered 1..m in order of first use.
Titles a model writes into its text ("[1] Title: ...") are removed too: titles shown to the
user come from the index. Each sentence that states something then becomes a
:class:`~rag_assistant.types.Claim` whose support by the abstracts it cites is decided by a
judge (:mod:`.judges`); list numbering and headings are not claims.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..text.markers import (
    MARKER,
    Marker,
    held_back,
    marker_numbers,
    replace_markers,
    strip_markers,
)
from ..text.sentences import split_sentences
from ..text.terms import terms
from ..types import REFUSAL, Citation, Claim, Source
from .judges import SupportJudge

_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?])")


class CitationMap:
    """Maps source numbers to citation numbers (1..m in order of first use) across calls, so
    a streamed answer can be resolved piece by piece with the same numbering as the whole."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.order: dict[int, int] = {}  # source number -> citation number
        self.phantoms: list[int] = []
        self._warnings: list[str] = []

    def _replace(self, marker: Marker) -> str:
        if not marker.closed:
            self._warnings.append(f"removed citation {marker.shown!r}: the marker was never closed")
            return ""
        if not marker.numbers:
            self._warnings.append(f"removed citation {marker.shown!r}: it names no source number")
            return ""
        kept = []
        for n in marker.numbers:
            if 1 <= n <= len(self.sources):
                new = self.order.setdefault(n, len(self.order) + 1)
                if new not in kept:
                    kept.append(new)
            else:
                self.phantoms.append(n)
                self._warnings.append(
                    f"removed citation [{n}]: it refers to no source "
                    f"(the answer had {len(self.sources)})"
                )
        return "".join(f"[{n}]" for n in kept)

    def sub(self, text: str, *, at_end: bool = True) -> str:
        """``text`` with its markers renumbered and the others removed. ``at_end``: nothing
        follows ``text``, so a marker open at its end is removed too."""
        return replace_markers(text, self._replace, at_end=at_end)

    def verify(self, text: str) -> str:
        """``text`` (already resolved) with any marker that is not a citation of this map
        removed, with a warning: one formed by removing another ("[[7]1]" → "[1]")."""
        cited = set(self.order.values())

        def keep(marker: Marker) -> str:
            if MARKER.fullmatch(marker.raw) and set(marker.numbers) <= cited:
                return marker.raw
            self._warnings.append(f"removed citation {marker.shown!r}: it names no citation")
            return ""

        return replace_markers(text, keep)

    def citations(self) -> list[Citation]:
        out = []
        for source_number, number in sorted(self.order.items(), key=lambda kv: kv[1]):
            src = self.sources[source_number - 1]
            out.append(Citation(number, src.paper_id, src.title, src.url))
        return out

    def warnings(self) -> list[str]:
        return list(self._warnings)


def tidy(text: str) -> str:
    """Whitespace left by removed markers and titles: doubled spaces, a space before
    punctuation, runs of blank lines."""
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", re.sub(r"[ \t]{2,}", " ", text))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n(?:[ \t]*\n)+", "\n\n", text).strip()


def _prefixes(word: str) -> str:
    """A pattern matching any non-empty prefix of ``word``: ``t(?:i(?:t)?)?`` for "tit"."""
    pattern = ""
    for char in reversed(word[1:]):
        pattern = f"(?:{re.escape(char)}{pattern})?"
    return re.escape(word[0]) + pattern


_LABEL = r"\**(?:paper[ \t]+)?title\**[ \t]*:"
_LINE_LEAD = r"[ \t]*(?:[-*•][ \t]*)?(?:\[[^\]\n]{1,40}\][ \t]*)*"
TITLE_LINE = re.compile(rf"(?:(?<=\n){_LINE_LEAD})?(?<!\w){_LABEL}[^\n]*", re.IGNORECASE)
"""A title the model wrote: "Title: ..." to the end of its line, with the markers and bullet
that lead its line ("[1] Title: Speculative Prefill ...")."""

_PARTIAL_LABEL = rf"\**(?:(?:{_prefixes('paper title')}|{_prefixes('title')})\**[ \t]*)?"
_TITLE_HELD = re.compile(
    rf"(?:\n[ \t]*(?:[-*•][ \t]*)?(?:\[[^\]\n]{{0,40}}\]?[ \t]*)*(?:{_PARTIAL_LABEL})?"
    rf"|(?<!\w)(?=[*pt]){_PARTIAL_LABEL})$",
    re.IGNORECASE,
)


_CONTEXT = 40
"""Characters of the text before a stream piece that title matching looks back at."""


def strip_titles(text: str, before: str = "\n") -> str:
    """``text`` without the titles a model wrote into it (see :data:`TITLE_LINE`);
    ``before``: the characters before it (a line starts the answer)."""
    whole, out, pos = before + text, [], len(before)
    for match in TITLE_LINE.finditer(whole, len(before)):
        out.append(whole[pos : match.start()])
        pos = match.end()
    out.append(whole[pos:])
    return "".join(out)


def _title_cut(text: str, before: str) -> int:
    """Where the text that may still be (part of) a model-written title starts: a title
    whose line has not ended, or the start of a line or word that may still become one."""
    whole = before + text
    cut = len(whole)
    match = TITLE_LINE.search(whole, max(whole.rfind("\n") + 1, len(before)))
    if match:
        cut = match.start()
    held = _TITLE_HELD.search(whole, max(len(before) - 1, 0))
    if held:
        cut = min(cut, held.start())
    return max(cut - len(before), 0)


class StreamResolver:
    """Resolves citations in a text that arrives in pieces: text that could still become a
    marker (``[1, 2, 3``, of any length) or a title label (``[1] Tit``) is held back until it
    is complete, so no delta shows a number or a title the final answer does not have; the
    deltas add up to :func:`resolve`'s text of the whole."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.map = CitationMap(sources)
        self._raw = ""  # model text not yet cleared of titles
        self._before = "\n"  # the model text before it (its end)
        self._titled = ""  # cleared of titles, not yet resolved

    def feed(self, delta: str) -> str:
        text = self._raw + delta
        cut = _title_cut(text, self._before)
        released, self._raw = text[:cut], text[cut:]
        text = self._titled + strip_titles(released, self._before)
        self._before = (self._before + released)[-_CONTEXT:]
        cut = held_back(text)
        self._titled = text[cut:]
        return self.map.sub(text[:cut], at_end=False)

    def finish(self) -> str:
        text = self._titled + strip_titles(self._raw, self._before)
        self._raw, self._titled = "", ""
        return self.map.sub(text)


def resolve(text: str, sources: Sequence[Source]) -> tuple[str, list[Citation], list[str]]:
    """Map the markers of ``text`` (n = position in ``sources``, from 1) to papers.

    Returns the text with titles the model wrote removed, markers renumbered 1..m in order
    of first use and unknown numbers and unresolvable markers removed, the citations
    (titles from the index), and one warning per removed marker.
    """
    cmap = CitationMap(sources)
    cleaned = tidy(cmap.verify(cmap.sub(strip_titles(text))))
    return cleaned, cmap.citations(), cmap.warnings()


_LIST_NUMBER = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[-*•]|#{1,6})(?:\s+|$)")
_NUMBER_AFTER_MARKER = re.compile(r"(?<=\])\s*\d{1,2}[.)]\s*$")


def claim_text(sentence: str) -> str:
    """What a sentence states, as the judge reads it: its markers, the list numbering that
    leads it ("2. It ...") and the next item's number glued after its markers ("... [1] 3.")
    removed."""
    sentence = _NUMBER_AFTER_MARKER.sub("", sentence)
    return _LIST_NUMBER.sub("", strip_markers(sentence)).strip()


def is_vacuous(statement: str) -> bool:
    """True for a fragment that states nothing: no content words ("1. [1]"), or a heading
    ending in a colon ("Speculative Prefill:")."""
    bare = statement.strip(" \t*_")
    return not terms(bare) or bare.endswith(":")


def _sentences(text: str):
    """The sentences of ``text`` line by line (a list item or heading is its own unit)."""
    for line in text.split("\n"):
        for start, end in split_sentences(line):
            yield line[start:end].strip()


def claims(
    text: str, citations: Sequence[Citation], sources: Sequence[Source], judge: SupportJudge
) -> list[Claim]:
    """Every sentence of ``text`` that states something, with its citation numbers and the
    judge's verdict against the full abstracts of the papers it cites. A sentence without a
    citation is unsupported.

    A sentence made only of citation markers (a model putting them on their own line)
    lends them to the sentence before it; list numbering and headings are not claims.
    """
    by_number = {c.number: c for c in citations}
    abstracts = {s.paper_id: s.abstract for s in sources}
    out: list[Claim] = []
    for sentence in _sentences(text):
        numbers_ = marker_numbers(sentence)
        if not strip_markers(sentence).strip(" .;,"):
            if out and numbers_:
                out[-1].citations.extend(n for n in numbers_ if n not in out[-1].citations)
            continue
        stated = claim_text(sentence)
        if is_vacuous(stated) or stated.rstrip(".") == REFUSAL.rstrip("."):
            continue
        out.append(Claim(sentence, list(dict.fromkeys(numbers_)), False, 0.0))
    for claim in out:
        evidence = [
            abstracts[by_number[n].paper_id]
            for n in claim.citations
            if n in by_number and by_number[n].paper_id in abstracts
        ]
        verdict = judge.judge(claim_text(claim.text), evidence)
        claim.supported, claim.score = verdict.supported, verdict.score
        claim.reason = verdict.reason
        claim.failed = verdict.failed
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
