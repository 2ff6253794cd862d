"""Term analysis shared by BM25, the LSA embedding, the extractive answerer and the
support checker: one definition of "the words of a text", so they all agree.

A term is a word or number of the text as :func:`~rag_assistant.text.normalize.fold` gives
it, stop words removed, stemmed with the Snowball English stemmer (PyStemmer). Decimal
numbers stay whole ("7.66").
"""

from __future__ import annotations

import functools
import re

from .normalize import fold

ANALYZER_VERSION = "1"
"""Bumped whenever :func:`terms` changes what it returns: stored terms must be rebuilt."""

# Comparative and superlative forms the Snowball stemmer leaves alone ("faster" stays
# "faster"), mapped to their base so "how fast" finds "2x faster".
_BASE_FORMS = {
    "faster": "fast",
    "fastest": "fast",
    "quicker": "quick",
    "slower": "slow",
    "cheaper": "cheap",
    "cheapest": "cheap",
    "smaller": "small",
    "smallest": "small",
    "larger": "large",
    "largest": "large",
    "bigger": "big",
    "biggest": "big",
    "longer": "long",
    "longest": "long",
    "shorter": "short",
    "lower": "low",
    "lowest": "low",
    "higher": "high",
    "highest": "high",
    "fewer": "few",
    "better": "good",
    "best": "good",
    "stronger": "strong",
    "weaker": "weak",
    "easier": "easy",
    "harder": "hard",
    "deeper": "deep",
    "wider": "wide",
    "simpler": "simple",
}

_TOKEN = re.compile(r"\d+(?:\.\d+)+|\w+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%|x|×)?")

# NLTK's English stop words (as shipped by bm25s, STOPWORDS_EN_PLUS), copied so that
# analyzing text does not import bm25s.
STOPWORDS = frozenset(
    """a about above after again against ain all am an and any are aren aren't as at be because
    been before being below between both but by can couldn couldn't d did didn didn't do does
    doesn doesn't doing don don't down during each few for from further had hadn hadn't has hasn
    hasn't have haven haven't having he her here hers herself him himself his how i if in into
    is isn isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my
    myself needn needn't no nor not now o of off on once only or other our ours ourselves out
    over own re s same shan shan't she she's should should've shouldn shouldn't so some such t
    than that that'll the their theirs them themselves then there these they this those through
    to too under until up ve very was wasn wasn't we were weren weren't what when where which
    while who whom why will with won won't wouldn wouldn't y you you'd you'll you're you've your
    yours yourself yourselves""".split()
)

# Words that carry no topic in a question about papers ("which papers propose a method
# for ..."). Ignored when measuring how much of a question the evidence covers.
QUESTION_NOISE = frozenset(
    """paper papers work works study studies article articles research researcher approach
    approaches method methods propose proposes proposed present presents introduce introduces
    anything something tell explain describe know show shows find use uses using used way ways
    make makes made get gets give gives say says said mention mentions mentioned talk talks
    corpus abstract abstracts author authors could would might may also like well good help
    exist exists existing recent new main idea ideas kind kinds type types thing things one
    someone somebody anyone please compare comparison versus vs difference differ
    whats hows whos really actually basically simply anybody lot lots much many""".split()
) | frozenset(
    # The function words of scikit-learn's English list that our index keeps (it keeps them
    # because abstracts use a few as content: "system", "first token", "two passes"); in a
    # question they are how people talk ("everything else", "without breaking", "enough").
    """across afterwards almost along already although always among amongst anyhow anything
    anyway anywhere around became become becomes becoming beforehand behind beside besides
    beyond cannot cant could couldnt either else elsewhere enough etc even ever every everyone
    everything everywhere except get give go hence however indeed less might moreover mostly
    must namely neither never nevertheless nobody none noone nothing nowhere often otherwise
    perhaps per please put rather see seem seemed seeming seems several since somehow someone
    something sometime sometimes somewhere still take thereby therefore though throughout thus
    toward towards upon via whatever whenever whereas whereby wherever whether whoever whole
    within without would yet""".split()
)


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball English stem of one lower-case word, comparatives reduced to their base
    (cached: vocabularies are small)."""
    return _stemmer().stemWord(_BASE_FORMS.get(word, word))


def words(text: str) -> list[str]:
    """The lower-cased words and numbers of ``text``, stop words kept, not stemmed."""
    return _TOKEN.findall(fold(text))


def terms(text: str) -> list[str]:
    """The stemmed content terms of ``text``, in order, repeats kept."""
    out = []
    for word in _TOKEN.findall(fold(text)):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        out.append(word if word[0].isdigit() else stem(word))
    return out


def query_terms(text: str) -> list[str]:
    """The content terms of a question, question-noise words removed (unless written as a
    name: "LESS" is a method, "less" is not), repeats removed."""
    named = {w for name in names(text) for w in _TOKEN.findall(fold(name))}
    seen: dict[str, None] = {}
    for word in _TOKEN.findall(fold(text)):
        noise = word in QUESTION_NOISE and word not in named
        if word in STOPWORDS or noise or (len(word) < 2 and not word.isdigit()):
            continue
        seen.setdefault(word if word[0].isdigit() else stem(word), None)
    return list(seen)


_WORDISH = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*[A-Za-z0-9]")


def names(text: str) -> list[str]:
    """The words of ``text`` written like names ("RAPTOR", "HyDE", "Yi-34B", "WMT14"): a
    capital after the first letter, or letters mixed with digits. A question that names
    something the corpus never mentions is about something else."""
    found: dict[str, None] = {}
    for word in _WORDISH.findall(text):
        letters = [c for c in word if c.isalpha()]
        if not letters:
            continue
        inner_capital = any(c.isupper() for c in word[1:])
        mixed = any(c.isdigit() for c in word)
        if inner_capital or mixed:
            found.setdefault(word, None)
    return list(found)


_PHRASE = re.compile(r"(?<=[a-z,;:]\s)[A-Z][\w-]*(?:\s+[A-Z][\w-]*)+")


def phrases(text: str) -> list[str]:
    """Runs of two or more capitalized words inside a sentence ("how much does Adaptive
    Guidance save?"): a name written in title case, as people write a method's name."""
    return list(dict.fromkeys(_PHRASE.findall(text)))


def paper_names(text: str) -> list[str]:
    """The names ``text`` may give a paper by: :func:`names` ("R-Tuning") and
    :func:`phrases` in title case ("Adaptive Guidance")."""
    return [*names(text), *phrases(text)]


def numbers(text: str) -> set[str]:
    """The numbers written in ``text`` ("7.66", "70%", "2x"), normalized for comparison."""
    found = set()
    for match in _NUMBER.findall(fold(text)):
        value = match.replace(",", "").replace(" ", "").replace("×", "x")
        found.add(value.rstrip("%x") or value)
    return found
