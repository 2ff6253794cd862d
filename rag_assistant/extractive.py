"""The offline answerer: picks the sentences of the retrieved abstracts that best answer the
question and cites each one; refuses when the evidence is weak.

Evidence is measured as IDF-weighted coverage: the share of the question's content terms
(weighted by how rare they are in the corpus) that a retrieved paper's title and abstract
contain. A question whose distinctive words the corpus never uses scores low, which is what
makes refusals on near-miss questions work without a language model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .answers import REFUSAL
from .chunking import sentences
from .glossary import expand
from .retrieval import Source
from .terms import names, query_terms, terms

# Sentences that state what a paper does or found read better as answers than background.
_CUES = re.compile(
    r"\b(we (propose|present|introduce|develop|design|show|find|demonstrate|achieve)|"
    r"our (method|approach|model|framework|results|experiments)|achiev|outperform|"
    r"reduc|improv|speed|faster|fewer|accura|results? (show|demonstrate))",
    re.IGNORECASE,
)
_BACKGROUND = re.compile(
    r"^(however|while|although|recent|existing|despite|in recent)\b", re.IGNORECASE
)


@dataclass
class Picked:
    paper_index: int  # position in the sources list
    position: int  # sentence position in the abstract
    text: str
    score: float


@dataclass
class Extract:
    """The extractive answer before citations are resolved: text with ``[n]`` where n is the
    source's position (from 1), the evidence score, and whether it refused."""

    text: str
    refused: bool
    evidence: float
    picked: list[Picked]
    unknown_names: list[str] = field(default_factory=list)


class ExtractiveAnswerer:
    """Sentence selection over retrieved abstracts. ``idf`` gives a term's rarity."""

    def __init__(
        self,
        idf: Callable[[str], float],
        *,
        min_evidence: float,
        spelled: Callable[[str], str | None] | None = None,
        max_sentences: int = 5,
        max_papers: int = 4,
        per_paper: int = 2,
    ) -> None:
        self.idf = idf
        self.spelled = spelled
        self.min_evidence = min_evidence
        self.max_sentences = max_sentences
        self.max_papers = max_papers
        self.per_paper = per_paper

    def coverage(
        self,
        question_terms: Sequence[str],
        text_terms: set[str],
        alternates: dict[str, set[str]] | None = None,
    ) -> float:
        """IDF-weighted share of ``question_terms`` found in ``text_terms``; a term also
        counts as found when the text uses one of its ``alternates`` (the glossary's)."""
        total = sum(self.idf(t) for t in question_terms)
        if total <= 0:
            return 0.0
        return sum(self.idf(t) for t in question_terms if _found(t, text_terms, alternates)) / total

    def evidence(self, question: str, sources: Sequence[Source]) -> tuple[float, list[float]]:
        """The best paper coverage among the sources, and each source's coverage."""
        return self._evidence(self.question_terms(question), expand(question).alternates, sources)

    def _evidence(
        self, qterms: Sequence[str], alternates: dict[str, set[str]], sources: Sequence[Source]
    ) -> tuple[float, list[float]]:
        per_source = [
            self.coverage(qterms, set(terms(s.title + " " + s.abstract)), alternates)
            for s in sources
        ]
        return max(per_source, default=0.0), per_source

    def question_terms(self, question: str) -> list[str]:
        """The question's content terms, misspellings of corpus words corrected."""
        qterms = query_terms(question)
        if self.spelled is None:
            return qterms
        return list(dict.fromkeys(self.spelled(t) or t for t in qterms))

    def unknown_names(self, question: str) -> list[str]:
        """The names in ``question`` (see :func:`terms.names`) that no indexed text uses,
        nor anything spelled almost like them."""
        if self.spelled is None:
            return []
        unknown = []
        for name in names(question):
            words = [t for t in query_terms(name) if not t[0].isdigit() and len(t) >= 3]
            if any(self.spelled(t) is None for t in words):
                unknown.append(name)
        return unknown

    def answer(
        self,
        question: str,
        sources: Sequence[Source],
        *,
        focus: str | None = None,
        avoid: Sequence[str] = (),
    ) -> Extract:
        """Quote the sentences of ``sources`` that answer ``question``. For a follow-up,
        ``question`` is the standalone one (it decides evidence and relevant papers), ``focus``
        the message as asked (what the sentences must answer now) and ``avoid`` the sentences
        the previous answer already quoted."""
        qterms = self.question_terms(question)
        alternates = expand(question).alternates
        best, per_source = self._evidence(qterms, alternates, sources)
        # Sentences about neighbouring papers would answer a question about something else.
        unknown = self.unknown_names(question)
        if not qterms or not sources or best < self.min_evidence or unknown:
            return Extract(REFUSAL, True, best, [], unknown)

        # Papers worth quoting: close to the best coverage and well ranked.
        relevant = [
            i for i, cov in enumerate(per_source) if cov >= max(self.min_evidence, 0.6 * best)
        ][: self.max_papers]
        total_idf = sum(self.idf(t) for t in qterms) or 1.0
        fterms = self.question_terms(focus) if focus else []
        focus_idf = sum(self.idf(t) for t in fterms) or 1.0
        f_alternates = expand(focus).alternates if focus else {}
        quoted = {_key(a) for a in avoid}
        candidates: list[Picked] = []
        for i in relevant:
            source = sources[i]
            title_terms = set(terms(source.title))
            rank_prior = 1.0 / (1.0 + 0.3 * i)
            for pos, sentence in enumerate(sentences(source.abstract)):
                s_terms = set(terms(sentence))
                if len(s_terms) < 3:
                    continue
                lexical = (
                    sum(self.idf(t) for t in qterms if _found(t, s_terms, alternates)) / total_idf
                )
                # Words of the question that the title explains count for the paper's
                # sentences that name its method (the title is context the reader sees).
                titled = (
                    sum(self.idf(t) for t in qterms if t in title_terms and t not in s_terms)
                    / total_idf
                )
                if fterms:
                    # A follow-up asks something new of the same papers.
                    lexical = 0.3 * lexical + 0.7 * (
                        sum(self.idf(t) for t in fterms if _found(t, s_terms, f_alternates))
                        / focus_idf
                    )
                repeat = -0.5 if _key(sentence) in quoted else 0.0
                cue = 0.1 if _CUES.search(sentence) else 0.0
                background = -0.08 if _BACKGROUND.match(sentence) else 0.0
                length = -0.1 if len(sentence) > 450 else 0.0
                score = (
                    lexical
                    + 0.25 * titled * (1.0 if cue else 0.4)
                    + 0.15 * rank_prior * per_source[i]
                    + cue
                    + background
                    + length
                    + repeat
                )
                candidates.append(Picked(i, pos, sentence, score))

        chosen: list[Picked] = []
        # One sentence from each relevant paper first, then the best of the rest.
        for i in relevant:
            best_of = max(
                (c for c in candidates if c.paper_index == i), key=lambda c: c.score, default=None
            )
            if best_of is not None:
                chosen.append(best_of)
        top_score = max((c.score for c in candidates), default=0.0)
        for cand in sorted(candidates, key=lambda c: -c.score):
            if len(chosen) >= self.max_sentences:
                break
            if cand in chosen or cand.score < 0.55 * top_score:
                continue
            if sum(c.paper_index == cand.paper_index for c in chosen) >= self._limit(relevant):
                continue
            if any(_similar(cand.text, c.text) for c in chosen):
                continue
            chosen.append(cand)
        chosen = chosen[: self.max_sentences]
        if not chosen:
            return Extract(REFUSAL, True, best, [])

        order = sorted(chosen, key=lambda c: (relevant.index(c.paper_index), c.position))
        paragraphs: list[str] = []
        current = -1
        for c in order:
            piece = f"{c.text} [{c.paper_index + 1}]"
            if c.paper_index != current:
                paragraphs.append(piece)
                current = c.paper_index
            else:
                paragraphs[-1] += " " + piece
        return Extract("\n\n".join(paragraphs), False, best, order)

    def _limit(self, relevant: list[int]) -> int:
        # A question one paper answers may quote it more; several papers share the space.
        return self.per_paper + 1 if len(relevant) == 1 else self.per_paper


def _found(term: str, text_terms: set[str], alternates: dict[str, set[str]] | None) -> bool:
    if term in text_terms:
        return True
    return bool(alternates and alternates.get(term, set()) & text_terms)


def _key(sentence: str) -> str:
    return " ".join(re.sub(r"\[\d+\]", " ", sentence).split()).lower()


def _similar(a: str, b: str) -> bool:
    ta, tb = set(terms(a)), set(terms(b))
    if not ta or not tb:
        return False
    return len(ta & tb) / math.sqrt(len(ta) * len(tb)) > 0.7
