"""Lay words mapped to the words abstracts use, for questions asked the way people talk.

Users ask "how do I make my chatbot cheaper?" of abstracts that say "efficient LLM
inference". BM25 cannot bridge that and the offline dense model (LSA fitted on the corpus)
only partly does, so a small hand-kept glossary (``glossary.txt`` beside this module) adds
the research terms to the question: retrieval searches for them too, and the evidence check
counts a lay word as covered when an abstract uses one of its research terms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from .terms import stem, terms, words

GLOSSARY_FILE = Path(__file__).with_name("glossary.txt")


@dataclass
class Expansion:
    """Research terms for a question: ``extra`` in order, and for each stemmed question term
    a phrase of the glossary explains, the terms that stand for it."""

    extra: list[str] = field(default_factory=list)
    alternates: dict[str, set[str]] = field(default_factory=dict)
    phrases: list[str] = field(default_factory=list)


def _stems(text: str) -> tuple[str, ...]:
    return tuple(w if w[0].isdigit() else stem(w) for w in words(text))


@dataclass(frozen=True)
class Entry:
    """One line of the glossary: the lay phrase as stemmed words (how it is found in a
    question), its content terms (analyzed as a question's terms are), and the research
    words as written with their terms."""

    key: tuple[str, ...]
    phrase_terms: tuple[str, ...]
    written: str
    expansion_terms: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def entries() -> list[Entry]:
    out = []
    for raw in GLOSSARY_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        phrase, _, expansion = line.partition("=")
        key = _stems(phrase)
        if key and expansion.strip():
            out.append(Entry(key, tuple(terms(phrase)), expansion.strip(), tuple(terms(expansion))))
    return out


def expand(question: str) -> Expansion:
    """The glossary entries whose lay phrase occurs in ``question`` (as whole words)."""
    seq = _stems(question)
    found = Expansion()
    for entry in entries():
        n = len(entry.key)
        if not any(seq[i : i + n] == entry.key for i in range(len(seq) - n + 1)):
            continue
        found.phrases.append(entry.written)
        for t in entry.expansion_terms:
            if t not in found.extra:
                found.extra.append(t)
        # keyed by the phrase's terms as the question's terms are analyzed (the stems of
        # ``key`` stemmed again would not match them: "precis" is not "precision"'s term)
        for t in entry.phrase_terms:
            found.alternates.setdefault(t, set()).update(entry.expansion_terms)
    return found
