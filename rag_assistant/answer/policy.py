"""The answerability policy: the one place that decides whether the retrieved abstracts
answer a question, for the offline answerer and the generated one alike (a refused question
never reaches the model), and that recognizes a model's own refusal.

A question is *answered* when some retrieved abstract states what it asks, *not stated* when
the topic is there but the specific thing asked is not, *off topic* when nothing relevant is
retrieved. The signals, none of them tied to the wording of any question set:

* **coverage** — the IDF-weighted share of the question's content terms a retrieved paper's
  title and abstract hold (a lay word counts when the abstract uses one of its glossary
  terms). Matches are whole words: a question's "capital" is not an abstract's
  "capitalizes", nor "folding" a "7-fold" (the stemmer alone would conflate them). Below
  ``min_evidence`` the question is off topic, unless:
* **meaning** — (with the sentence encoder) a sentence of a retrieved abstract is as close
  to the question in meaning as ``min_meaning``: the question says it in other words. A
  question that names nothing particular (no name with a rare or unknown word, none
  hyphenated: "AI" and "English" are common) is in lay words, and ``min_meaning_lay`` is
  enough; a question naming something must find it. The checks below then look at those
  papers.
* **unknown names** — a name of the question (:func:`~rag_assistant.text.terms.names`) that no
  indexed text uses: the question is about something else.
* **unknown versions** — a name with a version or a size ("FlashAttention-3", "NLLB-54B")
  that no indexed text writes, though its words are known (the corpus has "FlashAttention-2"):
  an unknown name too (``written`` tells, see :meth:`~rag_assistant.index.Index.writes`).
* **named only in passing** — a distinctive word of the question (one that few chunks use)
  that the retrieved papers use only in passing: never in a title, never in a sentence that
  presents a contribution ("we propose X", "X is a ..."), once in the abstract. The question
  asks about a system the corpus only mentions (a baseline, a comparison): its workings, its
  nature or an attribute ("how does X work?", "what is X?", "how many languages does X
  translate?"; "who made X?", however many abstracts name X). Likewise a thing in words
  the question asks to be explained ("what is layer normalization?"; "explain the vanishing
  gradient problem in deep networks": the thing ends where its setting starts) that no relevant
  paper presents or defines: the question asks for knowledge the abstracts only touch. And
  a name the question is about that none of the papers matching the rest of it mentions
  ("which encoders does the Cambrian MLLM use?"): those papers are about something else.
* **quantity not stated** — the question asks for a number ("how many", "what accuracy",
  "how fast"; a year for "in which year", "when was") and no sentence of the relevant
  papers states a number with the quantity asked for, of the question's subject (the
  sentence names it, or its paper is about it: "We present ToolBench ... It holds 16,464
  APIs"); or it asks for an absolute value and the papers only state a change relative to
  a baseline ("from 41% to 92%" states the value reached). A result verb asks for a value
  too ("what pass@1 does X get?"). The sentence itself holds the unit (not only its
  paper's title); a list marker "(1)", a citation's year, a count word joined to another
  word ("Two-dimensional") and, for a score, a model size ("16B") state nothing asked;
  nor does a number the question states itself ("the 1.3B model", "on 128k-token inputs":
  a condition of the question). "How long does it take" asks for a duration.
* **named detail** — the question asks which model, dataset, benchmark ... something uses
  ("which language model does AutoBencher use?") and the relevant papers' sentences on that
  kind of thing (those holding most of the question's clause) name none: "AutoBencher uses a
  language model to search ..." says there is one, not which. An acronym of the kind
  ("LLMs") and the words spelling out the question's own name name nothing.
  A "who made X?" question (who wrote, founded, released ... X) asks for a doer: some
  relevant sentence must state that act with one ("open-sourced by Meta"); an abstract about
  X that never says who made it does not answer who did.

Which papers an answer may quote: those whose evidence is close to the best paper's; and when
the question names a paper (a name of the question that its title holds whole, "R-Tuning",
"SLUE Phase-2", or a distinctive word written as a name in its title), that paper only,
unless the question asks for papers ("Which papers ...").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..text.glossary import expand
from ..text.markers import strip_markers
from ..text.normalize import fold, fold_spaces
from ..text.sentences import sentences
from ..text.terms import STOPWORDS, names, paper_names, phrases, query_terms, stem, terms
from ..types import REFUSAL, Source

Verdict = Literal["answered", "not stated", "off topic"]


@dataclass
class Analysis:
    """What a question asks, as the policy sees it: its content terms (misspellings of
    corpus words corrected), for each lay term the research terms that stand for it, the
    surface words each term was written as, and the quantity asked for, if any."""

    terms: list[str]
    alternates: dict[str, set[str]]
    surface: dict[str, set[str]] = field(default_factory=dict)
    quantity: Quantity | None = None


@dataclass
class Quantity:
    """A question asking for a number: ``units`` are the terms of what is counted or
    measured ("hour", "accuraci"); ``relative`` when it asks for a change ("how much
    faster"), not an absolute value."""

    units: list[str]
    relative: bool
    asked: str = "number"
    """What is asked for, as the question words it ("GPU hours", "accuracy")."""
    year: bool = False
    """It asks when ("in which year", "when was ..."): only a year states it."""
    measure: bool = False
    """It names a measurement ("what latency", "what accuracy"): a count written in words
    ("two LLMs") does not state it."""


@dataclass
class Decision:
    """Whether the sources answer the question, with the evidence: the best and each
    source's coverage, and why it is refused when it is."""

    answerable: bool
    evidence: float
    per_source: list[float]
    analysis: Analysis
    unknown_names: list[str] = field(default_factory=list)
    min_evidence: float = 0.0
    verdict: Verdict = "answered"
    why: str | None = None
    """For 'not stated': what the closest abstracts do say, with ``[n]`` source numbers."""
    relevant: list[int] = field(default_factory=list)
    """The sources (indexes) worth quoting: those whose coverage is near the best, or, for
    a question answered by meaning, those close enough to it in meaning; of them, only the
    papers whose title holds a name the question asks about, when some does (and the
    question does not ask for a list of papers)."""
    joined: dict[int, list[str]] = field(default_factory=dict)
    """Papers added to :attr:`relevant` for the words of the question that none of the
    others holds ("LESS vs MATES": the LESS paper beside the MATES one), with those words."""

    @property
    def reason(self) -> str | None:
        """Why the question is refused, as a clause for the user (None when answerable)."""
        if self.answerable:
            return None
        if self.unknown_names:
            named = ", ".join(f'"{n}"' for n in self.unknown_names)
            return f"no indexed abstract mentions {named}"
        if self.why:
            return self.why
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
    the corpus, ``df`` the number of chunks holding it; ``spelled`` maps a term to the corpus
    word spelled like it (None: unknown); ``written`` whether some indexed text writes a
    name. ``signals`` names the checks in force (all by default; the evaluation measures
    each by leaving it out)."""

    SIGNALS = (
        "whole-words",
        "unknown-names",
        "unknown-versions",
        "rarest",
        "in-passing",
        "quantity",
        "named-detail",
        "complements",
    )

    def __init__(
        self,
        idf: Callable[[str], float],
        *,
        min_evidence: float,
        min_meaning: float = 1.0,
        min_meaning_lay: float | None = None,
        spelled: Callable[[str], str | None] | None = None,
        df: Callable[[str], int] | None = None,
        rare_df: int = 3,
        signals: Sequence[str] = SIGNALS,
        written: Callable[[str], bool] | None = None,
        named: Callable[[Sequence[str]], dict[str, int]] | None = None,
    ) -> None:
        self.idf = idf
        self.min_evidence = min_evidence
        self.min_meaning = min_meaning
        self.min_meaning_lay = min_meaning if min_meaning_lay is None else min_meaning_lay
        self.spelled = spelled
        self.df = df
        self.rare_df = rare_df
        self.signals = frozenset(signals)
        self.written = written
        self.named = named

    # --- what the question asks -----------------------------------------------------------

    def analyze(self, question: str) -> Analysis:
        surface: dict[str, set[str]] = {}
        for word in _words(question):
            if word not in STOPWORDS:
                surface.setdefault(_term(word), set()).add(word)
        qterms = query_terms(question)
        if self.spelled is not None:
            corrected = []
            for t in qterms:
                fixed = self.spelled(t) or t
                if fixed != t:  # a corrected typo: any spelling of the corpus word will do
                    surface.pop(t, None)
                corrected.append(fixed)
            qterms = list(dict.fromkeys(corrected))
        return Analysis(qterms, expand(question).alternates, surface, _quantity(question))

    # --- coverage ------------------------------------------------------------------------

    def coverage(self, analysis: Analysis, text_terms: set[str] | Text) -> float:
        """IDF-weighted share of the question's terms the text holds."""
        total = sum(self.idf(t) for t in analysis.terms)
        if total <= 0:
            return 0.0
        found = sum(self.idf(t) for t in analysis.terms if self.covers(t, text_terms, analysis))
        return found / total

    def covers(self, term: str, text: set[str] | Text, analysis: Analysis) -> bool:
        """``term`` (or a research term that stands for it) is in the text, as a whole word
        (see :func:`compatible`) when the text's words are known."""
        alternates = analysis.alternates.get(term, set())
        if isinstance(text, set):
            return term in text or bool(alternates & text)
        if alternates & text.terms:
            return True
        if term not in text.terms:
            return False
        written = analysis.surface.get(term)
        if not written or "whole-words" not in self.signals:
            return True
        return any(compatible(q, w) for q in written for w in text.surface.get(term, ()))

    def unknown_names(self, question: str) -> list[str]:
        """The names in ``question`` (and the words it capitalizes inside a sentence) that no
        indexed text uses, nor anything spelled almost like them: a question about something
        the corpus never mentions; with "unknown-versions", also the names with a version
        that no indexed text writes ("FlashAttention-3" where the corpus has "-2" only)."""
        spelled, written = self.spelled, self.written
        if "unknown-names" not in self.signals:
            spelled = None
        if "unknown-versions" not in self.signals:
            written = None
        if spelled is None and written is None:
            return []
        unknown = []
        for name in _written_as_names(question):
            words = [t for t in query_terms(name) if not t[0].isdigit() and len(t) >= 3]
            never_used = spelled is not None and any(spelled(t) is None for t in words)
            never_written = (
                written is not None and bool(_VERSIONED.fullmatch(name)) and not written(name)
            )
            if never_used or never_written:
                unknown.append(name)
        return unknown

    # --- the decision --------------------------------------------------------------------

    def decide(
        self, question: str, sources: Sequence[Source], *, asked: str | None = None
    ) -> Decision:
        """``question`` as searched for; ``asked``: the message as the user wrote it, when
        ``question`` is a follow-up condensed with an earlier turn. The subject comes from
        the whole of ``question``; the kind of answer asked for (a number) from ``asked``
        alone: an earlier turn's "how many" is not this turn's."""
        question = _typed(question)
        asked = _typed(asked) if asked is not None else None
        analysis = self.analyze(question)
        if asked is not None:
            analysis.quantity = _quantity(asked)
        texts = [Text.of(s.title + ". " + s.abstract) for s in sources]
        per_source = [self.coverage(analysis, t) for t in texts]
        best = max(per_source, default=0.0)
        unknown = self.unknown_names(question)

        relevant: list[int] = []

        def decision(verdict: Verdict, why: str | None = None) -> Decision:
            return Decision(
                verdict == "answered",
                best,
                per_source,
                analysis,
                unknown,
                self.min_evidence,
                verdict,
                why,
                relevant,
            )

        if not (analysis.terms and sources) or unknown:
            return decision("off topic")
        # a question in other words than the abstracts': few shared words, close in meaning
        floor = self.min_meaning if self._names_something(question) else self.min_meaning_lay
        close = [i for i, s in enumerate(sources) if (s.meaning or 0.0) >= floor]
        if best >= self.min_evidence:
            if "rarest" in self.signals:
                rarest = max(analysis.terms, key=self.idf)
                if not any(
                    self.covers(rarest, texts[i], analysis)
                    for i, c in enumerate(per_source)
                    if c >= self.min_evidence
                ):
                    return decision("off topic")
            relevant = [
                i for i, c in enumerate(per_source) if c >= max(self.min_evidence, 0.6 * best)
            ]
        elif close:
            relevant = close
        else:
            return decision("off topic")
        # a question naming a paper (a name in its title) is answered from that paper, not
        # from the papers beside it that share its words; a list question keeps them all
        if not asks_for_papers(question):
            if _COMPARES.search(asked or question):  # this turn's own words
                # a comparison is answered from each paper it names by its title, however
                # few of its other words that paper holds ("FineTuneBench vs the RAG paper")
                everywhere = list(range(len(sources)))
                titled = self._titled(question, sources, everywhere)
                if titled != everywhere:
                    relevant = sorted(set(relevant) | set(titled))
            named = self._titled(question, sources, relevant)
            if named == relevant:  # no title holds a name of the question whole
                subject = set(self._subject(question, analysis))
                named = [i for i in relevant if subject & set(terms(sources[i].title))]
            relevant = named or relevant
        if "in-passing" in self.signals:
            passing = (
                self._subject_absent(question, analysis, sources, relevant)
                or self._named_in_passing(question, analysis, sources, relevant)
                or _described_by_none(asked or question, sources, relevant, analysis.quantity)
            )
            if passing:
                return decision("not stated", passing)
        if "quantity" in self.signals and analysis.quantity is not None:
            missing = _quantity_not_stated(
                self, question, analysis, sources, relevant, asked=asked or question
            )
            if missing:
                return decision("not stated", missing)
        if "named-detail" in self.signals:
            unnamed = _instance_not_named(
                self, asked or question, analysis, sources, relevant
            ) or _maker_not_stated(asked or question, sources, relevant)
            if unnamed:
                return decision("not stated", unnamed)
        answered = decision("answered")
        if "complements" in self.signals and _joins(asked or question):
            answered.joined = _complements(self, question, analysis, sources, texts, relevant)
            relevant.extend(answered.joined)
        return answered

    def _names_something(self, question: str) -> bool:
        """The question names something particular: a name (or a word capitalized inside
        the sentence) that is hyphenated ("Self-RAG") or holds a word few chunks use, or none
        ("HippoRAG", "Tokyo"). "AI" or "English", common in the corpus, name nothing."""
        df = self.df
        return any(
            "-" in name or df is None or any(df(t) <= self.rare_df for t in query_terms(name))
            for name in _written_as_names(question)
        )

    def _titled(self, question: str, sources: Sequence[Source], relevant: list[int]) -> list[int]:
        """Of ``relevant``, the papers the question names by a name their title holds
        ("INTERS", "R-Tuning", "Adaptive Guidance" in title case; a name in many titles,
        such as "LLMs", or a size, such as "7B", names none): for each name, the papers
        naming most of it ("SLUE Phase-2: ..." before "SLUE: ..."); all of ``relevant`` when
        it names none of them."""
        if self.named is None:
            return relevant
        asked = [n for n in paper_names(question) if not _SIZE.fullmatch(n)]
        kept: set[int] = set()
        # each name apart ("SPLADE vs SparTerm" names two papers); a name inside a longer
        # one ("SLUE" in "SLUE Phase-2") is not one of its own
        for name in asked:
            if any(name != longer and f" {name} " in f" {longer} " for longer in asked):
                continue
            found = self.named([name])
            held = {i: found[sources[i].paper_id] for i in relevant if sources[i].paper_id in found}
            most = max(held.values(), default=None)
            kept.update(i for i in relevant if held.get(i, -1) == most)
        return [i for i in relevant if i in kept] if kept else relevant

    def _distinctive(self, analysis: Analysis) -> list[str]:
        """The question's terms that few chunks hold (a method, a dataset, a system)."""
        if self.df is None:
            return []
        return [t for t in analysis.terms if 0 < self.df(t) <= self.rare_df and len(t) >= 2]

    def _subject(self, question: str, analysis: Analysis) -> list[str]:
        """What the question is about, as the corpus can tell: its distinctive terms that it
        writes as names ("Kosmos-2", "MusicLM") or capitalized inside the sentence
        ("Promptagator", "Wanda")."""
        named = {t for word in _written_as_names(question) for t in query_terms(word)}
        return [t for t in self._distinctive(analysis) if t in named]

    def _named_in_passing(
        self, question: str, analysis: Analysis, sources: Sequence[Source], relevant: Sequence[int]
    ) -> str | None:
        """Every name the question asks about ("how does X work?", "what is X?") is one the
        relevant papers holding it mention only in passing. A name the question itself sets
        in a comparison ("how does it compare with ColBERT?") is a baseline it measures by,
        not what it asks about."""
        passing: list[tuple[str, list[int]]] = []
        asked = asked_about(question) - _only_compared(question)
        # who made a thing: its name, however many abstracts mention it ("Adam", "Claude")
        for term in dict.fromkeys(
            [*self._subject(question, analysis), *self._made(analysis, question)]
        ):
            if term not in asked:
                continue  # a dataset or a unit the question also names, not what it asks
            holders = [i for i in relevant if term in _terms_of(sources[i])]
            if not holders or any(_central(term, sources[i]) for i in holders):
                return None  # a name the papers are about: the question is about them
            passing.append((term, holders))
        if not passing:
            return None
        term, holders = passing[0]
        cited = "".join(f"[{i + 1}]" for i in holders[:3])
        return (
            f'"{_shown(term, analysis, question)}" appears in {cited} only in passing (as a '
            "comparison or an example); no indexed abstract describes it"
        )

    def _made(self, analysis: Analysis, question: str) -> list[str]:
        """The name a "who made X?" question asks the maker of, however many abstracts name
        it ("Adam", "Claude"); of a name in words ("Stable Diffusion"), its rarest word."""
        made = [t for t in _maker_of(question) if t in analysis.terms]
        return [min(made, key=self.df)] if self.df is not None and made else made

    def _subject_absent(
        self, question: str, analysis: Analysis, sources: Sequence[Source], relevant: Sequence[int]
    ) -> str | None:
        """The question names what it is about ("which encoders does the Cambrian MLLM
        use?") and none of the papers that match the rest of it mentions that name: they are
        about something else. A size ("405B") is no subject."""
        subject = [t for t in self._subject(question, analysis) if not _SIZE.fullmatch(t)]
        subject += [t for t in self._made(analysis, question) if t not in subject]
        if not subject or any(t in _terms_of(sources[i]) for i in relevant for t in subject):
            return None
        shown = _shown(subject[0], analysis, question)
        elsewhere = [
            i for i, s in enumerate(sources) if i not in relevant and subject[0] in _terms_of(s)
        ]
        mentioned = "".join(f"[{i + 1}]" for i in elsewhere[:3])
        also = f"; {mentioned} mentions it, not the rest of the question" if mentioned else ""
        return f'the abstracts that match the question do not mention "{shown}"{also}'


# --- the quantity asked and the numbers stated -----------------------------------------


def _quantity_not_stated(
    policy: AnswerabilityPolicy,
    question: str,
    analysis: Analysis,
    sources: Sequence[Source],
    relevant: Sequence[int],
    *,
    asked: str,
) -> str | None:
    """Why the relevant sources do not state the quantity the question asks for, or None
    when one of their sentences states it (the 'quantity' signal, see the module's doc).
    ``asked``: the message as the user wrote it; a number it states ("on 128k-token
    inputs", "the 1.3B model") is a condition of the question, not its answer."""
    quantity = analysis.quantity
    assert quantity is not None
    subject = policy._subject(question, analysis)
    given = _digits(asked)
    stated: list[tuple[int, bool]] = []  # (source index, the number is relative)

    @functools.cache
    def about(term: str, i: int) -> bool:  # the paper is about the subject
        return _central(term, sources[i])

    for i in relevant:
        title = set(terms(sources[i].title))
        # what the question asks beyond the title, for a sentence paraphrasing the unit
        beyond = Analysis([t for t in analysis.terms if t not in title], analysis.alternates)
        # the title states things too ("... Dense Retrieval From 8 Examples")
        for sentence in [sources[i].title, *sentences(sources[i].abstract)]:
            numbers = numbers_in(sentence)
            if quantity.year:
                numbers = [n for n in numbers if _YEAR.fullmatch(n.group(0))]
            if quantity.measure:  # a count in words ("two LLMs") measures nothing
                numbers = [n for n in numbers if not _COUNT_WORD.fullmatch(n.group(0))]
            if quantity.measure and not _SIZE_UNITS & set(quantity.units):
                # nor is a model's size ("16B") a score
                numbers = [n for n in numbers if not _MODEL_SIZE.fullmatch(n.group(0))]
            numbers = [n for n in numbers if not _compound(sentence, n, quantity.units)]
            # a number the question states itself is a condition of it, not its answer
            numbers = [n for n in numbers if not _echoes(n.group(0), given)]
            if not numbers:
                continue
            said = set(terms(sentence))
            held = said | title
            # the sentence itself says what its number counts or measures (a title
            # holding "Experts" does not make every number of the abstract a count of them)
            on_unit = not quantity.units or any(u in said for u in quantity.units)
            # the unit paraphrased: the sentence holds most of what the title does not, a
            # number aside (the question's "125M" in "MobileLLM 125M" is a condition it
            # states, not what the sentence counts)
            if not on_unit:
                words = {t for t in said if not any(c.isdigit() for c in t)}
                if policy.coverage(beyond, words) < 0.5:
                    continue
            if subject and not any(t in held or about(t, i) for t in subject):
                continue
            stated.append((i, all(_relative(sentence, n) for n in numbers)))
    if not stated:
        return f"no retrieved abstract states the {quantity.asked} asked for"
    if not quantity.relative and all(relative for _, relative in stated):
        cited = "".join(dict.fromkeys(f"[{i + 1}]" for i, _ in stated[:3]))
        return f"{cited} reports a change relative to a baseline, not the absolute value asked"
    return None


# --- the thing asked for by its kind, and the names stated --------------------------------

_KIND = re.compile(
    r"\b(?:which|what)\s+((?:[\w-]+\s+){0,3}?)"
    r"(models?|llms?|lms?|backbones?|encoders?|datasets?|corpus|corpora|benchmarks?|"
    r"tokenizers?|optimizers?|retrievers?|baselines?|gpus?)"
    # then the verb, after an aside ("(model names and sizes)", ", e.g. which version,")
    r"(?=(?:\s*\([^)]*\))?(?:\s*,[^,?]*,)?"
    r"\s+(?:and|or|does|do|did|is|are|was|were|has|have|had|can|could|would|will|\w+ed)\b)",
    re.IGNORECASE,
)
# a name: a word with a capital or a digit after its first letter ("GPT-4", "UnrealEgo",
# "BART", "T5"), a lower-case name with a digit ("multilingual-e5-large"), or a word
# capitalized inside the sentence ("Gemini")
_NAME = re.compile(
    r"\b[A-Za-z][\w.]*[A-Z0-9][\w.]*(?:-[\w.]+)*|\b[a-z]+(?:-[\w.]+)*-[a-z]*\d[\w.-]*"
)
# the words a name in parentheses spells out ("Customized Prompts via Language models (CuPL")
_SPELLED_OUT = re.compile(r"(\b[A-Z][\w-]*\s+(?:[\w-]+\s+){0,6})\((\w+)")


def _kind_asked(question: str) -> tuple[list[str], str, str] | None:
    """The kind of thing a "which / what <kind> does X ..." question asks the name of (a
    model, a dataset, a benchmark ...): its terms, its words and the clause that asks it
    ("which public model did best"); None for any other question ("which parts of an LLM",
    "what accuracy do models reach")."""
    m = _KIND.search(question)
    if not m or asks_for_papers(question) or any(fold(w) in STOPWORDS for w in m.group(1).split()):
        return None
    words = f"{m.group(1)}{m.group(2)}"
    kind = m.group(2).rstrip("sS")  # "LLMs" is not stemmed to "llm": both spellings
    return query_terms(f"{kind} {kind}s"), words, question[m.start() :].split("?")[0]


# an abbreviation defined by the words before it: "large language models (LLMs)"
_DEFINED = re.compile(r"((?:[\w-]+\s+){1,6})\(([A-Za-z][\w-]*?)s?\)")


def _generic(abstract: str) -> set[str]:
    """The abbreviations an abstract defines by lowercase words ("large language models
    (LLMs)", "supervised fine-tuning (SFT)"): names of a kind of thing, not of one thing;
    a name is written in capitals ("Low-Rank Adaptation (LoRA)")."""
    found = set()
    for m in _DEFINED.finditer(abstract):
        letters = m.group(2).lower()
        words = m.group(1).split()[-len(letters) :] if len(letters) <= 6 else []
        # the first word may open a sentence ("Large language models (LLMs) ...")
        if words and all(w[0].islower() for w in words[1:]) and words[0][1:].islower():
            found.add(letters)
    return found


def _instances(
    sentence: str, own: set[str], initials: str, generic: set[str] = frozenset()
) -> list[str]:
    """The names ``sentence`` states, other than the question's own words (``own``), the
    words a name of the question spells out, an acronym of the kind asked ("LLMs" for a
    language model is the kind, not one of it) and the abbreviations its abstract defines
    by lowercase words (``generic``, :func:`_generic`)."""

    def spelled_out(m: re.Match[str]) -> str:
        return "" if set(query_terms(m.group(2))) & own else m.group(0)

    said = _SPELLED_OUT.sub(spelled_out, sentence)
    found = []
    for name in [*_NAME.findall(said), *_CAPITALIZED.findall(said)]:
        name_terms = set(query_terms(name))
        stem_ = name.rstrip("s")
        acronym = stem_.lower() if stem_.isupper() else ""  # "LLMs" -> "llm"
        if acronym.endswith(initials) and acronym and len(acronym) <= len(initials) + 2:
            continue
        if stem_.lower() in generic or name.lower() in generic:
            continue  # "LLMs" where the abstract defines it as "large language models"
        if name_terms and not name_terms <= own:
            found.append(name)
    return found


def _instance_not_named(
    policy: AnswerabilityPolicy,
    question: str,
    analysis: Analysis,
    sources: Sequence[Source],
    relevant: Sequence[int],
) -> str | None:
    """The question asks which model, dataset, benchmark ... something uses (:func:`_kind_asked`)
    and the relevant papers' sentences that say so ("AutoBencher uses a language model to
    search ...": those of them that hold most of the question) name none: the abstract says
    that there is one, not which ('named-detail')."""
    kind = _kind_asked(question)
    if kind is None:
        return None
    kind_terms, kind_words, clause = kind
    own = set(analysis.terms) | set(query_terms(question))
    asked = policy.analyze(clause)  # the clause, not the rest of a two-part question
    words = kind_words.split()
    initials = "".join(w[0] for w in words).lower()
    if len(words) == 1 and words[0].rstrip("s").isupper():  # "LLM": the kind is an acronym
        initials = words[0].rstrip("s").lower()
    said: list[tuple[float, int, str]] = []
    for i in relevant:
        for sentence in sentences(sources[i].abstract):
            text = Text.of(sentence)
            if any(k in text.terms for k in kind_terms):
                said.append((policy.coverage(asked, text), i, sentence))
    if not said:
        return None  # the abstracts do not speak of the kind: not this check's to judge
    best = max(c for c, _, _ in said)
    closest = [(i, s) for c, i, s in said if c >= NAMED_SHARE * best]
    generic = {i: _generic(sources[i].abstract) for i, _ in closest}  # once a paper
    if any(_instances(s, own, initials, generic[i]) for i, s in closest):
        return None
    cited = "".join(dict.fromkeys(f"[{i + 1}]" for i, _ in closest[:3]))
    return f"{cited} mentions the {kind_words.lower()} but does not name it"


def _complements(
    policy: AnswerabilityPolicy,
    question: str,
    analysis: Analysis,
    sources: Sequence[Source],
    texts: Sequence[Text],
    relevant: Sequence[int],
) -> dict[int, list[str]]:
    """The retrieved papers, in rank order, about a name of the question that no relevant
    paper holds (:func:`_central`: in its title or its contribution), with the words of the
    question only they hold ('complements'): a question joining two subjects ("how do
    PreSelect and MATES differ ...") is answered from a paper for each, not from the paper
    holding the most of its words alone."""
    named = {t for word in _written_as_names(question) for t in query_terms(word)}
    total = sum(policy.idf(t) for t in analysis.terms) or 1.0
    covered = {t for i in relevant for t in analysis.terms if policy.covers(t, texts[i], analysis)}
    joined: dict[int, list[str]] = {}
    for i, text in enumerate(texts):
        if i in relevant:
            continue
        new = [t for t in analysis.terms if t not in covered and policy.covers(t, text, analysis)]
        if sum(policy.idf(t) for t in new) / total < COMPLEMENT:
            continue
        if any(t in named and _central(t, sources[i]) for t in new):
            joined[i] = new
            covered.update(new)
    return joined


COMPLEMENT = 0.15
"""A paper joins the relevant ones for a name of the question none of them holds when the
words it alone holds weigh at least this share of the question (IDF): 0.15 chosen on
eval/dev.jsonl over 0.05 (README)."""
NAMED_SHARE = 0.75
"""The sentences on the kind asked that hold at least this share of the best one's coverage
of the question are the ones that must name it."""


# the acts a "who ...?" question asks the doer of, each with the words a sentence states it by
_ACTS = {
    "write": r"wr[io]t\w*|author\w*",
    "found": r"found(?:ed|s|ing)?|co-?found\w*",
    "make": r"made|mak\w*|creat\w*|invent\w*|releas\w*|open[- ]?sourc\w*|publish\w*|launch\w*|"
    r"develop\w*|propos\w*|introduc\w*|buil[dt]\w*|train\w*|design\w*|own\w*|behind",
}
# the doer, as an abstract writes one: "by Meta", "by the Allen Institute", "Meta's"
_DOER = re.compile(r"\bby\s+(?:the\s+)?[A-Z][\w.&-]*|\b[A-Z][\w.&-]*['\u2019]s\b")


# "Who won ...?", "who coined ...?", "and who is behind it?": a question (or a clause of one)
# that opens with "who" asks for a doer, whatever the act; "people who stutter" does not
_WHO_DID = re.compile(
    r"(?:^|[.?!;:,]\s+|\band\s+)who\s+"
    r"(?:(?:is|are|was|were|has|have|had|did|does|do|first|originally|actually)\s+)*"
    r"(?:the\s+|an?\s+)?(?P<verb>[a-z]+)\s+(?P<subject>(?:[\w.+-]+\s+){0,3}[\w.+-]+)",
    re.IGNORECASE,
)


def _maker_not_stated(
    question: str, sources: Sequence[Source], relevant: Sequence[int]
) -> str | None:
    """A "who did X?" question (who wrote, founded, released, won ... X; which company makes
    X) asks for a doer: a person, a company, a lab. The relevant papers must state that act
    with its doer ("open-sourced by Meta", "Meta's ... released") in a sentence; an abstract
    about X that never says who made it ("unlearning the Harry Potter books", "Yi: Open
    Foundation Models by 01.AI" for who founded 01.AI) does not answer who did
    ('named-detail'). An act of none of the groups of :data:`_ACTS` ("won") must be stated
    in its own word."""
    m = _ASKS_WHO.search(question) or _WHO_DID.search(question)
    if m is None or not relevant:
        return None
    asking = question[m.start() : m.end()]  # "who are the people behind X": "behind"
    act, done = next(
        ((a, d) for a, w in _ACTS.items() if (d := re.search(rf"\b(?:{w})\b", asking, re.I))),
        (None, None),
    )
    own = m.groupdict().get("verb")  # an act of no group ("won"), in its own word
    if act is not None:  # what follows the act, as the question writes it ("the ... books")
        said, verb, start = _ACTS[act], done.group(0), m.start() + done.end()
    elif own is not None:
        said, verb, start = re.escape(own) + r"\w*", own, m.end("verb")
    else:  # "who came up with X"
        said, verb, start = _ACTS["make"], "made", m.start("subject")
    stated = re.compile(rf"\b(?:{said})\b", re.IGNORECASE)
    for i in relevant:
        for sentence in sentences(sources[i].abstract):
            if stated.search(sentence) and _DOER.search(sentence):
                return None
    cited = "".join(f"[{i + 1}]" for i in relevant[:3])
    what = re.sub(r"(?:\s+(?:for|of|in|on|to|with|and|at|by))+$", "", question[start : m.end()])
    does = "does" if len(relevant) == 1 else "do"
    return f"{cited} {does} not say who {verb} {what.strip()}"


# --- texts and words ---------------------------------------------------------------------


@dataclass
class Text:
    """A text's terms, and for each term the words it was written as."""

    terms: set[str]
    surface: dict[str, set[str]]

    @classmethod
    def of(cls, text: str) -> Text:
        surface: dict[str, set[str]] = {}
        for word in _words(text):
            if word not in STOPWORDS and (len(word) >= 2 or word.isdigit()):
                surface.setdefault(_term(word), set()).add(word)
        return cls(set(surface), surface)


_WORD = re.compile(r"\d+(?:\.\d+)+|\w+")
_FOLD_MULTIPLIER = re.compile(
    r"\b(\d+(?:\.\d+)?|two|three|four|five|six|seven|eight|nine|ten|hundred|many|several|"
    r"[kn])\s*-\s*(fold)\b",
    re.IGNORECASE,
)


def _words(text: str) -> list[str]:
    """The folded words of ``text``; a multiplier such as "7-fold" is one word ("7fold"), so
    its "fold" is not the verb."""
    return _WORD.findall(fold(_FOLD_MULTIPLIER.sub(r"\1\2", text)))


def _term(word: str) -> str:
    return word if word[0].isdigit() else stem(word)


INFLECTIONS = frozenset(
    "s es ed d e ing ion ions er ers ly al ally ation ations ness ity ities ive ies y ment "
    "ments".split()
)
"""Endings that keep a word's meaning; "capital" + "izes" is another word."""


def compatible(a: str, b: str) -> bool:
    """Two words of one stem that are the same word inflected ("model"/"models",
    "compress"/"compression"), not two words that share a stem by accident
    ("capital"/"capitalizes")."""
    if a == b:
        return True
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    tails = (a[shared:], b[shared:])
    # a doubled consonant or dropped "e" before the ending ("running", "encoding")
    return all(t == "" or t in INFLECTIONS or t[1:] in INFLECTIONS for t in tails)


# --- contributions, quantities ------------------------------------------------------------

_VERSIONED = re.compile(r"[A-Za-z]\w*[A-Za-z][-_.]v?\d[\w.]*", re.IGNORECASE)
"""A name with a version or a size after a separator ("FlashAttention-3", "Llama-3.1",
"NLLB-54B"): each of its words can be known while the name is not."""

_CAPITALIZED = re.compile(r"(?<=[a-z,;:]\s)[A-Z][a-z]+[A-Za-z]*")
"""A capitalized word inside a sentence (after a lower-case word): written as a name."""

CONTRIBUTION = re.compile(
    r"\b(we|this paper|this work|our)\b.{0,40}\b(propos|present|introduc|develop|design|"
    r"build|buil|releas|construct|creat|call|name|dub|term)|\b(called|named|dubbed|termed)\b",
    re.IGNORECASE,
)


def _typed(question: str) -> str:
    """``question`` with the apostrophes users leave out or curl put back as the checks read
    them: "whats" is "what's", "what’s" is "what's"."""
    return re.sub(r"\bwhats\b", "what's", question.replace("\u2019", "'"), flags=re.IGNORECASE)


_ASKS_ABOUT = re.compile(
    r"\b(?:how\s+(?:does|do|did|is|are|was|were|can|could|would|will)|"
    r"what(?:'s|\s+(?:is|are|was|were|does|do|did))|explain|describe|tell\s+me\s+about)\s+"
    r"(?P<subject>(?:[\w.+-]+\s+){0,3}[\w.+-]+)",
    re.IGNORECASE,
)


_ASKS_OF = re.compile(
    r"\b(?:what|which|how\s+many|how\s+much)\s+(?:[\w-]+\s+){0,3}?"
    r"(?:does|do|did|is|are|was|were)\s+(?P<subject>(?:[\w.+-]+\s+){0,3}[\w.+-]+)",
    re.IGNORECASE,
)


# "who created X", "which company makes X": the maker of X is an attribute of X
_ASKS_WHO = re.compile(
    r"\b(?:who|which\s+(?:compan(?:y|ies)|organi[sz]ations?|labs?|teams?|groups?|"
    r"institutions?|universit(?:y|ies)|people|researchers|authors?))\s+(?:\w+\s+){0,2}?"
    r"(?:made|makes?|creat\w*|invent\w*|releas\w*|develop\w*|propos\w*|introduc\w*|found(?:ed|s)|"
    r"buil[dt]s?|wr[io]tes?|written|trains?|trained|design\w*|came\s+up\s+with|"
    r"(?:is|are|was|were)\s+behind|owns?)\s+(?:the\s+)?(?P<subject>(?:[\w.+-]+\s+){0,3}[\w.+-]+)",
    re.IGNORECASE,
)


# words that stand for something named elsewhere: no thing asked about of their own
_PRONOUNS = r"(?:each|it|its|they|them|this|that|these|those|both|either|one|we|you)\b"
_PRONOUN = re.compile(_PRONOUNS, re.IGNORECASE)


def asked_about(question: str) -> set[str]:
    """The terms of what a question asks the workings, the nature or an attribute of: the few
    words after "how does", "what is", "explain" ("how does the H3 architecture work" → h3,
    architectur), or after the verb of "what / which / how many ... does X" ("how many
    languages does NLLB-54B translate" → nllb, 54b, translat), or after the verb of "who
    made X" ("which company makes the Claude models" → claud, model); empty for other
    questions (a list of papers)."""
    found = (
        _ASKS_ABOUT.finditer(question),
        _ASKS_OF.finditer(question),
        _ASKS_WHO.finditer(question),
    )
    return {
        t
        for matches in found
        for m in matches
        # "what does it do to ChatGLM2 perplexity?": the question asks about "it" (what it
        # refers to), and what follows is what it does, not a thing asked about
        if not _PRONOUN.match(m.group("subject"))
        for t in query_terms(m.group("subject"))
    }


def _maker_of(question: str) -> list[str]:
    """The terms of the names a "who made X?" question asks the maker of ("Who released
    Stable Diffusion?" → stabl, diffus)."""
    written = {t for word in _written_as_names(question) for t in query_terms(word)}
    found = (query_terms(m.group("subject")) for m in _ASKS_WHO.finditer(question))
    return [t for subject in found for t in subject if t in written]


_WHAT_IS = re.compile(
    r"\bwhat(?:\s+is|\s+are|'s|\u2019s)\s+(?P<subject>[\w.+-]+)(?!['\u2019]s)", re.IGNORECASE
)
# "what is knowledge distillation?", "how does speculative decoding work?": a thing in words
_CONCEPT = re.compile(
    r"\b(?:what\s+(?:is|are)|what's|what\u2019s|explain|how\s+(?:does|do)"
    # "how does each speed up decoding?": a pronoun is no thing to explain
    rf"(?!\s+{_PRONOUNS}))"
    r"\s+(?:the\s+|an?\s+)?"
    r"(?:difference\s+between\s+(?:the\s+|an?\s+)?)?"  # "... between X and Y": X is asked about
    r"(?P<phrase>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,3}?)(?=\s+work\b|\s*[?,.;]|\s+and\b|\s*$)",
    re.IGNORECASE,
)
# "explain the vanishing gradient problem in deep networks": the thing, then where
_EXPLAIN = re.compile(
    r"\bexplain\s+(?:the\s+|an?\s+)?(?P<phrase>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,3}?)"
    r"(?=\s+(?:in|of|for|on|with|to)\s|\s*[?,.;]|\s+and\b|\s*$)",
    re.IGNORECASE,
)
_COPULA = r"(?:\s*\([^)]{1,40}\))?,?\s+(?:is|are|represents?|refers\s+to|denotes|means)\b"


def asks_to_define(question: str) -> set[str]:
    """The terms of the name a question asks to be defined ("What is HyperAttention?" →
    hyperattent); empty when what follows "what is" is not a name ("what is the accuracy of
    X" asks for a number)."""
    written = set(_written_as_names(question))
    return {
        t
        for m in _WHAT_IS.finditer(question)
        if m.group("subject") in written
        for t in query_terms(m.group("subject"))
    }


def defines(question: str, sentence: str) -> bool:
    """``sentence`` says what the question asks to be defined: it presents the name asked
    about ("We present ... named HyperAttention" for "What is HyperAttention?"), or opens
    with the thing asked about and says what it is ("Speculative decoding represents a
    lossless approach ..." for "How does speculative decoding work?")."""
    named, openings = _definition(question)
    if named and named & set(terms(sentence)) and CONTRIBUTION.search(sentence):
        return True
    return any(opening.match(sentence) for opening in openings)


@functools.lru_cache(maxsize=256)
def _definition(question: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """What :func:`defines` looks for, read from the question once (it is asked of each
    quoted sentence): the name's terms, and the openings that define the thing in words."""
    openings = tuple(
        re.compile(r"^\W*(?:the\s+|an?\s+)?" + re.escape(m.group("phrase")) + _COPULA, re.I)
        for m in _concepts(question)
    )
    return frozenset(asks_to_define(question)), openings


def _concepts(question: str) -> list[re.Match[str]]:
    """The things in words a question asks to be explained (the ``phrase`` group); a phrase
    holding a pronoun is none ("the guidance trick it uses": a clause about what "it"
    refers to, which the conversation named)."""
    found = [*_CONCEPT.finditer(question), *_EXPLAIN.finditer(question)]
    return [m for m in found if not any(_PRONOUN.fullmatch(w) for w in m.group("phrase").split())]


_PAPERS = re.compile(
    r"\b(?:which|what|any|are\s+there|is\s+there|list|name)\b[^?]{0,30}\b(?:papers?|work|works|"
    r"studies|approaches|methods)\b",
    re.IGNORECASE,
)


def _described_by_none(
    question: str,
    sources: Sequence[Source],
    relevant: Sequence[int],
    quantity: Quantity | None = None,
) -> str | None:
    """The thing in words a question asks to be explained ("what is layer normalization?",
    "how does beam search work?") is described by none of the relevant papers: none holds
    all its words in its title, or in a sentence presenting a contribution or saying what
    the thing is. The question asks for knowledge the abstracts only touch. ``quantity``:
    the one the question asks for, if any (its measure is no thing to explain)."""
    if asks_for_papers(question):
        return None
    for match in _concepts(question):
        phrase = match.group("phrase")
        wanted = set(query_terms(phrase))
        if not wanted or _written_as_names(phrase):
            continue  # a name: see _named_in_passing
        if quantity is not None and wanted & set(quantity.units):
            continue  # "what's the speedup?" asks for a number: the 'quantity' check's
        holders = [i for i in relevant if wanted <= _terms_of(sources[i])]
        if any(_describes(question, wanted, sources[i]) for i in holders):
            continue
        if not holders:
            return f'no indexed abstract describes "{phrase}"'
        cited = "".join(f"[{i + 1}]" for i in holders[:3])
        return f'"{phrase}" appears in {cited} only in passing; no indexed abstract describes it'
    return None


def _describes(question: str, wanted: set[str], source: Source) -> bool:
    if wanted <= set(terms(source.title)):
        return True
    return any(
        wanted <= set(terms(sentence))
        and (CONTRIBUTION.search(sentence) or defines(question, sentence))
        for sentence in sentences(source.abstract)
    )


_COMPARES = re.compile(
    r"\b(?:compare[sd]?|comparison|differ|differs|difference|versus|vs)\b", re.IGNORECASE
)


def asks_for_papers(question: str) -> bool:
    """The question asks for a list of papers ("Which papers ...", "Is there work on ...")."""
    return bool(_PAPERS.search(question))


_JOINED = re.compile(r"([\w.-]+)\s+(?:and|&|or)\s+([\w.-]+)")


def _joins(question: str) -> bool:
    """The question joins two subjects: it compares ("X vs Y", "how do X and Y differ") or
    writes two names with "and" / "or" between them ("LM-Infinite and InfLLM")."""
    if _COMPARES.search(question):
        return True
    written = set(_written_as_names(question))
    return any(a in written and b in written for a, b in _JOINED.findall(question))


def _written_as_names(question: str) -> list[str]:
    """The words a question writes as names: :func:`names` ("RAPTOR", "Yi-34B"), then words
    capitalized inside the sentence ("the population of Tokyo"), each once."""
    return list(dict.fromkeys([*names(question), *_CAPITALIZED.findall(question)]))


_SIZE = re.compile(r"\d+(?:\.\d+)?[A-Za-z]?")  # "7B", "13b": a size names no paper


def _terms_of(source: Source) -> frozenset[str]:
    return _terms_of_text(source.title + " " + source.abstract)


@functools.lru_cache(maxsize=256)
def _terms_of_text(text: str) -> frozenset[str]:
    """Cached: the in-passing checks ask it of the same papers once per name and per paper."""
    return frozenset(terms(text))


_OWN = frozenset("our we this new novel propose proposed introduce introduces".split())


# words that set a name beside the paper's own work: "faster than D4", "baselines like DSIR"
_COMPARED = frozenset(
    "than over vs versus like unlike against compared outperform outperforms outperformed "
    "outperforming surpass surpasses surpassing beat beats beating superior baseline "
    "baselines compare comparing comparison".split()
)


# words that give a name as an example of something: "(e.g. H3, Mamba, RWKV)", "such as"
_EXAMPLE = re.compile(r"\b(?:e g|such as|including|for example|for instance)\b")


def _compared(words: Sequence[str], i: int) -> bool:
    """``words[i]`` is set beside something as a comparison, or given as an example of
    something: a comparison word ("than", "unlike") or an example's ("e.g.", "such as") is
    among the three words before it."""
    before = words[max(0, i - 3) : i]
    return bool(_COMPARED & set(before)) or bool(_EXAMPLE.search(" ".join(before)))


def _shown(term: str, analysis: Analysis, question: str) -> str:
    """``term`` as the question writes it ("France", not "france")."""
    shown = sorted(analysis.surface.get(term) or {term})[0]
    words = [*re.findall(r"[\w-]+", question), *re.findall(r"\w+", question)]  # "NLLB-54B"
    word = next((w for w in words if fold(w) == shown), shown)
    # a word of a name in title case shows the whole name ("Stable Diffusion")
    return next((p for p in phrases(question) if word in p.split()), word)


def _only_compared(text: str) -> set[str]:
    """The terms ``text`` uses only in comparisons ("how does it compare with ColBERT?")."""
    words = _words(text)
    compared = {_term(w) for i, w in enumerate(words) if _compared(words, i)}
    return compared - {_term(w) for i, w in enumerate(words) if not _compared(words, i)}


_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|io|ai|net)/\S*")


def _central(term: str, source: Source) -> bool:
    """``term`` is what the paper is about: in its title, in a sentence presenting its
    contribution, right after "our"/"we" ("our RATD datasets"), or used more than once. A
    use within three words after a comparison ("than D4", "baselines like DSIR and D4",
    "outperforms D4") does not count: that is a baseline, however often it is named."""
    if term in set(terms(source.title)):
        return True
    count = 0
    for sentence in sentences(source.abstract):
        # a link is no mention: "github.com/reka-ai/reka-vibe-eval" does not use "Reka"
        words = _words(_URL.sub(" ", sentence))
        at = [
            i
            for i, w in enumerate(words)
            if w not in STOPWORDS and _term(w) == term and not _compared(words, i)
        ]
        if not at:
            continue
        count += len(at)
        if CONTRIBUTION.search(sentence) or re.match(r"^\W*\w+\W*(is|are)\b", sentence):
            return True
        if any(_OWN & set(words[max(0, i - 4) : i]) for i in at):
            return True
    return count > 1


# counts written in words: numbers, but they measure nothing ("two LLMs")
_COUNT_WORDS = (
    r"two|three|four|five|six|seven|eight|nine|ten|hundreds?|thousands?|millions?|billions?"
)
_NUMBER = re.compile(
    r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?(?:%|x\b|×|times\b|k\b|m\b|b\b|[kmgt]i?b\b|ms\b|s\b|h\b))?"
    r"(?![\w])"
    rf"|\b({_COUNT_WORDS}|twice|double|half)\b",
    re.IGNORECASE,
)
_NAME_WITH_DIGITS = re.compile(
    r"\b[\w]*[A-Za-z][\w]*[-_]?\d[\w.-]*"
    r"|(?<![\d.])\b\d+(?!(?:\.\d+)?\s?(?:[KMGT]B|ms|[smhkKMB]|[xX]|×)\b)[A-Za-z]\w*"
)


# numbers that state nothing measured: a list's markers ("(1)", "(ii)") and a citation's
# year ("(Devlin et al., 2019)", "Kusupati et al. (2022)", "(2019)")
_NOT_QUANTITY = re.compile(
    r"\(\s*(?:\d{1,2}|[ivx]{1,4}|[a-h])\s*\)"
    r"|\bet\s+al\.?,?\s*\(?(?:19|20)\d\d[a-z]?\)?"
    r"|\(\s*(?:19|20)\d\d[a-z]?\s*\)",
    re.IGNORECASE,
)


def _without_names(sentence: str) -> str:
    """A sentence without the words that hold digits as part of a name ("Llama2-7B",
    "GPT-4", "H100"), a list's markers and a citation's year: what is left of its numbers
    are quantities."""
    return _NAME_WITH_DIGITS.sub(" ", _NOT_QUANTITY.sub(" ", sentence))


_RELATIVE = re.compile(
    r"\b(improv\w*|better|higher|lower|faster|slower|fewer|less|more|gains?|increas\w*|"
    r"decreas\w*|reduc\w*|outperform\w*|relative|speed-?ups?|boost\w*|drops?|"
    r"cuts?|saves?|savings?|smaller|larger|up to)\b",
    re.IGNORECASE,
)


_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")


def _digits(text: str) -> set[str]:
    """The numbers written in digits in ``text`` ("2:4 sparsity" -> {"2", "4"}); the
    empty set for a count in words."""
    return set(_DIGITS.findall(text))


def _echoes(number: str, given: set[str]) -> bool:
    """``number`` is one of the question's own (``given``: its numbers in digits)."""
    digits = _digits(number)
    return bool(digits) and digits <= given


def numbers_in(sentence: str) -> list[re.Match[str]]:
    """The quantities a sentence states (numbers that are not part of a name)."""
    return list(_NUMBER.finditer(_without_names(sentence)))


# "surpasses Kosmos-2 by 24.7%", "beats it by 3 points": a difference, whatever the verb
_BY_DIFFERENCE = re.compile(r"\bby\s+$", re.IGNORECASE)
_DIFFERENCE_UNIT = re.compile(r"\s*(?:points?\b|pp\b|p\.p\.)", re.IGNORECASE)


def _compound(sentence: str, number: re.Match[str], units: Sequence[str]) -> bool:
    """A count word joined to the word after it ("Two-dimensional", "three-stage"): a
    quantity only of that word, when it is the unit asked for."""
    if not _COUNT_WORD.fullmatch(number.group(0)):
        return False
    after = re.match(r"-(\w+)", _without_names(sentence)[number.end() :])
    return bool(after) and not set(terms(after.group(1))) & set(units)


# "improves accuracy from 1% to 92%": the value reached, though a change word is near
_REACHED = re.compile(
    r"(?<!\bup)\s+to\s+(?:more\s+than\s+|over\s+|about\s+|nearly\s+|almost\s+|around\s+)?$",
    re.IGNORECASE,
)


def _relative(sentence: str, number: re.Match[str]) -> bool:
    """A number stated as a change (a speed-up "3x", "12% better", "reduces ... by 40%",
    "+4.03%"): a multiplier, a sign, a change word within a few words of it, a percentage
    or points right after "by" ("surpasses Kosmos-2 by 24.7%"), or any number right after
    "by" when a change word comes before it in its clause ("outperforms ... by 26.79
    perplexity")."""
    text = _without_names(sentence)
    if re.search(r"x|×|times|fold", number.group(0), re.IGNORECASE):
        return True
    if text[max(0, number.start() - 1) : number.start()] in ("+", "±"):
        return True  # "+4.03% Recall@50 over a strong baseline": a signed number is a change
    before = text[: number.start()]
    if _REACHED.search(before):
        return False
    if _BY_DIFFERENCE.search(before) and (
        "%" in number.group(0)
        or _DIFFERENCE_UNIT.match(text, number.end())
        # "outperforms the state-of-the-art Wanda by 26.79 perplexity": a change word in
        # the clause before "by" makes whatever follows it a difference
        or _RELATIVE.search(re.split(r"[,;:()]", before)[-1])
    ):
        return True
    window = text[max(0, number.start() - 40) : number.end() + 30]
    return bool(_RELATIVE.search(window))


_QUANTITY = re.compile(
    r"\b(?:how\s+(?P<how>many|much|long|fast|large|big|often|quickly|small|accurate)"
    r"(?P<how_more>\s+(?:faster|better|more|less|smaller|larger|higher|lower|cheaper))?"
    r"|what(?:'s|\s+(?:is|was|are|were))?\s+(?P<det>the\s+|its\s+|their\s+|[\w.-]+'s\s+)?"
    r"(?P<what>(?:[\w']+(?:-[\w']+)*[\s@-]){0,2}?\b(?:accuracy|score|scores|bleu|rouge|f1|recall|precision|"
    r"perplexity|latency|speed|speedup|throughput|size|number|percentage|rate|cost|error|"
    r"auc|map|ndcg|mrr|em|win\s+rate))\b"
    r"|by\s+how\s+much|how\s+much\s+(?:faster|better|smaller|less|more))",
    re.IGNORECASE,
)
_COMPARATIVE = re.compile(
    r"\b(faster|better|improv\w*|more|less|smaller|larger|higher|lower|cheaper|gains?|"
    r"increase|reduce|reduction|compared|versus|vs|than|speed-?up|save|saves|saving|cut|cuts|"
    r"drop|drops|lose|loses|shrinks?|compress\w*|beats?|outperform\w*|surpass\w*|by\s+how\s+much)\b",
    re.IGNORECASE,
)


_COUNT_WORD = re.compile(_COUNT_WORDS, re.IGNORECASE)
_MODEL_SIZE = re.compile(r"\d+(?:\.\d+)?\s?[bm]", re.IGNORECASE)
_SIZE_UNITS = frozenset(query_terms("size sizes parameters parameter params"))
_WHEN = re.compile(r"\b(?:which|what)\s+year\b|\bwhen\s+(?:was|were|did)\b", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d\d")


# "how long does it take to train X": a duration, stated in a unit of time
_TAKES = re.compile(r"\bhow\s+long\s+(?:does|did|do|would|will)\s+(?:\w+\s+){1,3}?take\b", re.I)
_DURATION = tuple(
    dict.fromkeys(query_terms("second seconds minute minutes hour hours day days week weeks ms"))
)
# "what context limit in tokens was measured": the unit it is asked in
_IN_UNIT = re.compile(
    r"\bin\s+(tokens?|seconds?|minutes?|hours?|days?|milliseconds?|ms|gb|mb|tb|"
    r"percent(?:age)?|points?|words?|parameters?|dollars?|flops?|gpu[\s-]hours?)\b",
    re.IGNORECASE,
)
_ASKS_WHAT = re.compile(r"\b(?:what|which|how)\b", re.IGNORECASE)

# "what pass@1 does CodeSim get", "which FID does it reach": a result verb asks for its value
_VALUE_OF = re.compile(
    r"\b(?:what|which)\s+(?P<what>(?:[\w@.'-]+\s+){0,5}?[\w@.'-]+)\s+"
    r"(?:does|do|did|can|could|would|will)\s+(?:[\w.+-]+\s+){1,5}?"
    r"(?:achieve|reach|attain|obtain|score|get|hit)\b",
    re.IGNORECASE,
)


def _quantity(question: str) -> Quantity | None:
    """The quantity a question asks for, or None when it asks for no number."""
    # an aside says what a name is ("CuPL (the LLM-generated prompts method)"), not what is asked
    question = re.sub(r"\s*\([^)]*\)", "", question)
    match = _QUANTITY.search(question)
    value = _VALUE_OF.search(question)
    if match is None and value is not None:
        # "what Pearson correlation with ChatBot Arena rankings": the head, before "with"
        head = re.split(r"\s+(?:with|on|of|for|in|at|from|to|over|under)\s+", value.group("what"))
        word = head[0].split()[-1]
        if _RELATIVE.fullmatch(word) or _COMPARATIVE.fullmatch(word):
            return Quantity([], True, word)  # "what savings does it get": any change
        unit = [t for t in query_terms(word) if not t[0].isdigit()]
        return Quantity(unit, bool(_COMPARATIVE.search(question)), word, measure=True)
    took = _TAKES.search(question)
    if took is not None:
        return Quantity(list(_DURATION), bool(_COMPARATIVE.search(question)), "time", measure=True)
    unit = _IN_UNIT.search(question)
    if match is None and unit is not None and _ASKS_WHAT.search(question):
        return Quantity(query_terms(unit.group(1)), False, unit.group(1), measure=True)
    if match is None and _WHEN.search(question):
        return Quantity([], False, "year", year=True)
    if match is None:
        return None
    relative = bool(_COMPARATIVE.search(question))
    how = (match.group("how") or "").lower()
    if how in ("fast", "quickly") or match.group("how_more"):
        return Quantity([], True)  # any number said of the subject will do: "3x faster"
    if how in ("many", "much"):
        words = [w for w in re.findall(r"[\w-]+", question[match.end() :])[:2]]
        words = [w for w in words if w.lower() not in STOPWORDS]
        unit = [t for t in query_terms(" ".join(words)) if not t[0].isdigit()][:2]
        if how == "many" and unit:
            return Quantity(unit, relative, " ".join(words))
        return Quantity([], relative)
    if match.group("what"):
        if not match.group("det") and not question[match.end() :].strip(" ?!.\n"):
            return None  # "what is critical batch size?", "what is perplexity": a concept
        word = match.group("what").split()[-1]
        unit = [t for t in query_terms(word) if t not in ("number", "rate")]
        return Quantity(
            unit, relative, word if unit else "number", measure=word.lower() != "number"
        )
    return Quantity([], relative)


def is_refusal(text: str) -> bool:
    """True when a model's reply is (or starts with) the refusal sentence."""
    return fold_spaces(strip_markers(text)).startswith(fold_spaces(REFUSAL).rstrip("."))
