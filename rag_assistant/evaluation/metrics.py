"""Evaluation metrics: pure functions over :class:`~rag_assistant.types.Answer` objects and
gold data. The runner (:mod:`rag_assistant.evaluation.runner`) applies them to a Q&A file.

- retrieval: hit@1, hit@5, MRR@10, recall@10 of the ranked titles against the gold titles;
- citation validity: the share of citations that resolve to a retrieved paper (with the
  index's title), and phantom markers (``[n]`` in the text with no citation);
- faithfulness, after ALCE (Gao et al. 2023, "Enabling Large Language Models to Generate Text
  with Citations"): citation recall, citation precision, and the share of sentences some
  retrieved abstract supports, each judged by a pluggable :class:`SupportJudge`;
- correctness: key-fact recall and SQuAD-style token F1 against the reference answer, and
  the share of the gold papers the answer cites (a comparison of two papers citing one);
- refusals: whether an answer counts as correct, and the rates built from that.

A judge verdict marked ``failed`` (an unparseable LLM reply) is never scored: the sentence or
citation it concerns is left out and counted in ``judge_failures``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..answer.judges import SupportJudge
from ..corpus import clean_abstract
from ..text.markers import marker_numbers, strip_markers
from ..text.normalize import fold, fold_spaces
from ..types import Answer, Verdict

RETRIEVAL_METRICS = ("hit@1", "hit@5", "mrr@10", "recall@10")
CITATION_METRICS = ("citation_validity", "phantom_citations", "removed_citations")
FAITHFULNESS_METRICS = ("citation_recall", "citation_precision", "grounded")
CORRECTNESS_METRICS = ("key_fact_recall", "token_f1", "gold_cited")
REFUSAL_METRICS = ("refusal_accuracy", "false_refusal_rate", "answer_precision", "answer_accuracy")
METRICS = (
    *RETRIEVAL_METRICS,
    *CITATION_METRICS,
    *FAITHFULNESS_METRICS,
    *CORRECTNESS_METRICS,
    *REFUSAL_METRICS,
    "judge_failures",
)
LOWER_IS_BETTER = frozenset(
    {"phantom_citations", "removed_citations", "false_refusal_rate", "judge_failures"}
)

CORRECT_MIN_KEY_FACTS = 0.5
"""An answer to an answerable question is correct when it is not a refusal, cites a gold
paper, and states at least this share of the key facts."""

_DASHES = re.compile(r"[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uFE58\uFE63\uFF0D-]")
_TIMES = re.compile(r"(\d)\s*(?:×|times(?:\b|(?=\d)))")
_NOT_DECIMAL_POINT = re.compile(r"(?<!\d)\.|\.(?!\d)")
_PUNCT = re.compile(r"[^\w\s.%]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# --- retrieval -----------------------------------------------------------------------------


def title_key(title: str) -> str:
    """A title as compared with gold titles (:func:`~rag_assistant.text.normalize.fold`,
    white space collapsed)."""
    return fold_spaces(title)


def retrieval_scores(ranked_titles: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """hit@1, hit@5 (a gold title in the top 1 / 5), MRR@10 (1 / rank of the first gold title
    in the top 10, else 0) and recall@10 (share of the gold titles in the top 10).

    ``gold`` must not be empty: retrieval is not scored on unanswerable questions.
    """
    wanted = {title_key(t) for t in gold}
    if not wanted:
        raise ValueError("retrieval_scores needs at least one gold title")
    ranked = [title_key(t) for t in ranked_titles]
    first = next((i for i, t in enumerate(ranked[:10], start=1) if t in wanted), None)
    return {
        "hit@1": float(any(t in wanted for t in ranked[:1])),
        "hit@5": float(any(t in wanted for t in ranked[:5])),
        "mrr@10": 1.0 / first if first else 0.0,
        "recall@10": len(wanted & set(ranked[:10])) / len(wanted),
    }


# --- citations -----------------------------------------------------------------------------


@dataclass
class CitationCheck:
    """``valid`` of ``total`` citations name a retrieved paper with the index's title;
    ``phantoms``: markers in the text that no citation resolves; ``removed``: numbers the
    answerer wrote that mapped to no source and were removed before the answer was shown."""

    total: int
    valid: int
    phantoms: int
    removed: int

    @property
    def validity(self) -> float | None:
        return self.valid / self.total if self.total else None


def citation_check(answer: Answer) -> CitationCheck:
    sources = {s.paper_id: s.title for s in answer.sources}
    valid = sum(1 for c in answer.citations if sources.get(c.paper_id) == c.title)
    numbers = {c.number for c in answer.citations}
    used = marker_numbers(answer.text)
    removed = sum(1 for w in answer.warnings if w.startswith("removed citation"))
    return CitationCheck(
        total=len(answer.citations),
        valid=valid,
        phantoms=sum(1 for n in used if n not in numbers),
        removed=removed,
    )


# --- faithfulness (ALCE) -------------------------------------------------------------------


@dataclass
class SentenceScore:
    """One answer sentence. ``supported``: its cited abstracts together support it (None when
    the judge failed); ``precise``/``cited``: its citations that are needed, of those judged;
    ``grounded``: some retrieved abstract alone supports it (None when undecided)."""

    text: str
    citations: list[int]
    supported: bool | None
    precise: int
    cited: int
    grounded: bool | None


@dataclass
class Faithfulness:
    """Per-answer ALCE scores; each is None when there is nothing judged to score."""

    sentences: list[SentenceScore] = field(default_factory=list)
    judge_failures: int = 0

    @property
    def citation_recall(self) -> float | None:
        judged = [s for s in self.sentences if s.supported is not None]
        return sum(s.supported for s in judged) / len(judged) if judged else None

    @property
    def citation_precision(self) -> float | None:
        cited = sum(s.cited for s in self.sentences)
        return sum(s.precise for s in self.sentences) / cited if cited else None

    @property
    def grounded(self) -> float | None:
        judged = [s for s in self.sentences if s.grounded is not None]
        return sum(s.grounded for s in judged) / len(judged) if judged else None


class _Counted:
    """A judge that counts failed verdicts."""

    def __init__(self, judge: SupportJudge) -> None:
        self.judge = judge
        self.failures = 0

    def __call__(self, claim: str, evidence: Sequence[str]) -> Verdict:
        verdict = self.judge.judge(claim, list(evidence))
        if verdict.failed:
            self.failures += 1
        return verdict


def alce_scores(answer: Answer, judge: SupportJudge) -> Faithfulness:
    """ALCE citation recall and precision of ``answer`` (its ``claims``: sentences with their
    citation numbers), and the share of its sentences some retrieved abstract supports.

    Recall: a sentence counts when the abstracts it cites, together, support it; a sentence
    without citations is unsupported. Precision (ALCE's definition): a citation of a supported
    sentence is needed when its abstract alone supports the sentence, or when the sentence's
    other citations without it no longer do; every citation of an unsupported sentence is
    not needed. A refused answer has no sentences and scores nothing (None).
    """
    ask = _Counted(judge)
    out = Faithfulness()
    abstracts = {s.paper_id: s.abstract for s in answer.sources}
    by_number = {c.number: c.paper_id for c in answer.citations}
    retrieved = [s.abstract for s in answer.sources]
    if answer.refused:
        return out

    def evidence(numbers: Sequence[int]) -> list[str]:
        papers = [by_number[n] for n in numbers if n in by_number]
        return [abstracts[p] for p in papers if p in abstracts]

    for claim in answer.claims:
        sentence = strip_markers(claim.text)
        cites = list(dict.fromkeys(claim.citations))
        supported: bool | None = False
        precise = cited = 0
        if cites:
            joint = ask(sentence, evidence(cites))
            supported = None if joint.failed else joint.supported
            if supported is False:
                cited = len(cites)
            elif supported and len(cites) == 1:
                precise = cited = 1
            elif supported:
                for n in cites:
                    alone = ask(sentence, evidence([n]))
                    if alone.failed:
                        continue
                    if alone.supported:
                        precise, cited = precise + 1, cited + 1
                        continue
                    rest = ask(sentence, evidence([m for m in cites if m != n]))
                    if rest.failed:
                        continue
                    cited += 1
                    precise += not rest.supported
        grounded: bool | None = False
        undecided = False
        for abstract in retrieved:
            verdict = ask(sentence, [abstract])
            if verdict.failed:
                undecided = True
            elif verdict.supported:
                grounded = True
                break
        if grounded is False and undecided:
            grounded = None
        out.sentences.append(SentenceScore(claim.text, cites, supported, precise, cited, grounded))
    out.judge_failures = ask.failures
    return out


# --- correctness -----------------------------------------------------------------------------


def normalize_fact(text: str) -> str:
    """Text as key facts are matched: NFKC; LaTeX cleaned as abstracts are at ingest, then
    any backslash, brace or dollar left removed; case-folded; citation markers removed;
    unicode dashes and punctuation turned to spaces (decimal points and % kept);
    "2.86\\times" and "3.6×" written "2.86x", "3.6x"."""
    text = clean_abstract(fold(text))
    text = strip_markers(text).replace("\\", "")
    text = re.sub(r"[{}$~^_]", " ", text)
    text = _DASHES.sub(" ", text)
    text = _TIMES.sub(r"\1x", text)
    text = _NOT_DECIMAL_POINT.sub(" ", text)
    text = _PUNCT.sub(" ", text)
    return " ".join(text.split())


def key_fact_recall(text: str, key_facts: Sequence[str]) -> float | None:
    """The share of ``key_facts`` found in ``text`` as whole words after
    :func:`normalize_fact`; None when there are no key facts."""
    if not key_facts:
        return None
    haystack = f" {normalize_fact(text)} "
    found = sum(1 for fact in key_facts if f" {normalize_fact(fact)} " in haystack)
    return found / len(key_facts)


def gold_cited(answer: Answer, gold_titles: Sequence[str]) -> float | None:
    """The share of ``gold_titles`` the answer cites (0 for a refusal); None when there are
    none (an unanswerable question)."""
    wanted = {title_key(t) for t in gold_titles}
    if not wanted:
        return None
    if answer.refused:
        return 0.0
    return len(wanted & {title_key(c.title) for c in answer.citations}) / len(wanted)


def squad_tokens(text: str) -> list[str]:
    """SQuAD's answer normalization: lower case, punctuation and articles removed, split on
    white space (citation markers are dropped first)."""
    text = strip_markers(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between ``prediction`` and ``reference``."""
    pred, ref = squad_tokens(prediction), squad_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- refusals --------------------------------------------------------------------------------


def is_correct(answer: Answer, gold_titles: Sequence[str], key_fact_recall_: float | None) -> bool:
    """An unanswerable question (no gold titles) is answered correctly by a refusal. An
    answerable one by an answer that is not a refusal, cites a gold paper, and states at
    least :data:`CORRECT_MIN_KEY_FACTS` of the key facts (when it has any)."""
    cited = gold_cited(answer, gold_titles)
    if cited is None:
        return answer.refused
    enough = key_fact_recall_ is None or key_fact_recall_ >= CORRECT_MIN_KEY_FACTS
    return cited > 0 and enough  # a refusal cites none


@dataclass
class RefusalCounts:
    """Counts over a set of questions, and the rates built from them."""

    answerable: int = 0
    unanswerable: int = 0
    refused_answerable: int = 0
    refused_unanswerable: int = 0
    correct: int = 0
    correct_answered: int = 0

    def add(self, *, answerable: bool, refused: bool, correct: bool) -> None:
        if answerable:
            self.answerable += 1
            self.refused_answerable += refused
        else:
            self.unanswerable += 1
            self.refused_unanswerable += refused
        self.correct += correct
        self.correct_answered += correct and not refused

    @property
    def answered(self) -> int:
        return (
            self.answerable
            + self.unanswerable
            - self.refused_answerable
            - (self.refused_unanswerable)
        )

    def rates(self) -> dict[str, float | None]:
        """refusal_accuracy: refusals among unanswerable questions; false_refusal_rate:
        refusals among answerable ones; PaperQA2's pair, answer_precision = correct / answered
        and answer_accuracy = correct / all (a refusal is not "answered")."""
        total = self.answerable + self.unanswerable

        def share(a: int, b: int) -> float | None:
            return a / b if b else None

        return {
            "refusal_accuracy": share(self.refused_unanswerable, self.unanswerable),
            "false_refusal_rate": share(self.refused_answerable, self.answerable),
            "answer_precision": share(self.correct_answered, self.answered),
            "answer_accuracy": share(self.correct, total),
        }
