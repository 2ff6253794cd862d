"""The one grammar of citation markers.

An answer refers to its numbered sources with markers: ``[1]``, a group ``[1, 2]``,
``[1; 3]``, ``[1 and 2]``, a range ``[2-4]`` (or with an en dash), and runs of markers such
as ``[1][2]``. Models also write them loosely, and each loose form is read here as the
numbers it stands for: ``[ 7 ]``, full-width ``［7］`` and ``［７］``, superscript ``[⁷]``,
invisible characters inside (``[\\u200b7]``), a label (``[Source 1]``, ``[S7]``, ``[#7]``,
``[^1]``, ``[ref. 2]``), double brackets ``[[7]]`` and lenticular ``【1】``. A bracketed token
that looks like a marker but names no source number (``[7a]``, ``[x1]``) is *unresolvable*,
and so is a marker left open (``[1`` at the end of the text, or before a word). Everything
that reads, strips, resolves or checks markers uses the functions here, so that no marker-like
text reaches the user without being mapped to a source or removed with a warning.

Text quoted from an abstract carries the abstract's own references (``[12]``): they name the
abstract's bibliography, not our sources, so :func:`neutralise` removes them before an answer
adds its own markers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from .normalize import INVISIBLE, visible

_INVISIBLE = INVISIBLE.pattern[1:-1]  # the characters of the class, to embed in others
_OPEN = r"\[［【〔〖⟦"
_CLOSE = r"\]］】〕〗⟧"
_SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_DIGIT = rf"[\d{_SUPERSCRIPT}]"
_SPACE = rf"[ \t{_INVISIBLE}]"
_NUMERIC = rf"(?:[\d{_SUPERSCRIPT} \t,;–&{_INVISIBLE}-]|and)"
"""A character (or the word "and") of a purely numeric group, as written."""

_SEPARATOR = r"\s*(?:,|;|&|–|-|and)\s*"
GROUP = rf"\d+(?:{_SEPARATOR}\d+)*"
MARKER = re.compile(rf"\[({GROUP})\]")
"""A canonical marker, as code writes it after resolving (``[1]``, ``[1, 2]``); group 1
holds its numbers."""

TRAILING_MARKERS = r"(?:\s*\[\d[\d,;\s–-]*\])*"
"""Markers after a sentence's final punctuation (they stay with the sentence they follow)."""

MAX_CONTENT = 40
"""A bracketed text longer than this that is not purely numeric is not a marker."""

_LABEL = (
    r"(?:sources?|src|s|refs?|references?|docs?|documents?|papers?|abstracts?|citations?"
    r"|cite|no|nr|#|\^)"
)
_TOKEN = re.compile(
    rf"\[\[(?P<double>[^\[\]\n]{{1,{MAX_CONTENT}}})\]\]"
    rf"|[{_OPEN}](?P<numeric>{_NUMERIC}+)[{_CLOSE}]"
    rf"|[{_OPEN}](?P<single>[^{_OPEN}{_CLOSE}\n]{{1,{MAX_CONTENT}}})[{_CLOSE}]"
    # an open marker before sentence punctuation, a word or another marker: "fast [1. It"
    rf"|[{_OPEN}](?P<open>{_SPACE}*(?i:{_LABEL}\.?{_SPACE}*)?{_DIGIT}{_NUMERIC}*){_SPACE}*"
    rf"(?=[.,;:!?](?![ \t]*\d)|\n|[ \t]+[^\W\d_]|[{_OPEN}])"
)

_LABELLED = re.compile(
    rf"(?:{_LABEL}\.?\s*)?\d+(?:{_SEPARATOR}(?:{_LABEL}\.?\s*)?\d+)*", re.IGNORECASE
)
_LABEL_BEFORE_NUMBER = re.compile(rf"{_LABEL}\.?\s*(?=\d)", re.IGNORECASE)
_OPEN_AT_END = re.compile(
    rf"[{_OPEN}](?P<open>{_SPACE}*(?:{_LABEL}\.?{_SPACE}*)?{_DIGIT}{_NUMERIC}*)$", re.IGNORECASE
)
_TAG = r"(?:[a-z#^]{1,10}\.?\s*)?\d+[a-z]{0,3}"
_MARKER_LIKE = re.compile(rf"{_TAG}(?:{_SEPARATOR}{_TAG})*", re.IGNORECASE)
_MARKER_LIKE_CHARS = 24

_HELD = re.compile(
    rf"(?:\[\[[^\[\]\n]{{0,{MAX_CONTENT}}}\]?"
    rf"|[{_OPEN}]{_NUMERIC}*(?:an?)?"
    rf"|[{_OPEN}][^{_OPEN}{_CLOSE}\n]{{0,{MAX_CONTENT}}})$"
)
"""Text at the end of a stream piece that may still become a marker (held back)."""

_PART = re.compile(r"\s*(?:,|;|&|and)\s*")
_RANGE = re.compile(r"(\d+)\s*[–-]\s*(\d+)")
MAX_RANGE = 20


@dataclass(frozen=True)
class Marker:
    """One marker-like token of a text: where it is, as written, and the source numbers it
    stands for (empty when it is unresolvable). ``closed`` is False for a marker left open."""

    start: int
    end: int
    raw: str
    numbers: tuple[int, ...]
    closed: bool = True

    @property
    def shown(self) -> str:
        """The token as a warning quotes it (invisible characters dropped)."""
        return visible(self.raw).strip()


def numbers_of(group: str) -> list[int]:
    """The numbers a marker's group stands for, in order: ``"1, 3"`` → [1, 3],
    ``"2-4"`` → [2, 3, 4] (a range spanning more than :data:`MAX_RANGE` gives its two ends)."""
    out: list[int] = []
    for part in _PART.split(group):
        span = _RANGE.fullmatch(part.strip())
        if span:
            lo, hi = int(span.group(1)), int(span.group(2))
            out.extend(range(lo, hi + 1) if 0 < hi - lo < MAX_RANGE else (lo, hi))
        elif part.strip().isdigit():
            out.append(int(part))
    return out


def _plain(content: str) -> str:
    return unicodedata.normalize("NFKC", visible(content)).strip()


def _read(content: str) -> tuple[int, ...] | None:
    """The numbers of a bracketed text; () when it looks like a marker but names no
    number; None when it is not a marker at all ("[CLS]", "[0.5, 1]", "[see above]")."""
    plain = _plain(content)
    if _LABELLED.fullmatch(plain):
        return tuple(numbers_of(_LABEL_BEFORE_NUMBER.sub("", plain)))
    if len(plain) <= _MARKER_LIKE_CHARS and _MARKER_LIKE.fullmatch(plain):
        return ()
    return None


def find_markers(text: str, *, at_end: bool = True) -> list[Marker]:
    """Every marker-like token of ``text``, in order. ``at_end``: the text is complete, so a
    marker open at its very end (``fast [1``) is one too (a stream piece passes False)."""
    found: list[Marker] = []
    for match in _TOKEN.finditer(text):
        open_group = match.group("open")
        if open_group is not None:
            numbers = tuple(numbers_of(_LABEL_BEFORE_NUMBER.sub("", _plain(open_group))))
            found.append(Marker(match.start(), match.end(), match.group(), numbers, False))
            continue
        content = match.group("double") or match.group("numeric") or match.group("single")
        numbers = _read(content)
        if numbers is not None:
            found.append(Marker(match.start(), match.end(), match.group(), numbers))
    if at_end:
        tail = _OPEN_AT_END.search(text)
        if tail and (not found or found[-1].end <= tail.start()):
            numbers = tuple(numbers_of(_LABEL_BEFORE_NUMBER.sub("", _plain(tail.group("open")))))
            found.append(Marker(tail.start(), tail.end(), tail.group(), numbers, False))
    return found


def replace_markers(text: str, replace: Callable[[Marker], str], *, at_end: bool = True) -> str:
    """``text`` with each marker-like token replaced by ``replace(marker)``."""
    out, pos = [], 0
    for marker in find_markers(text, at_end=at_end):
        out += [text[pos : marker.start], replace(marker)]
        pos = marker.end
    out.append(text[pos:])
    return "".join(out)


def held_back(text: str) -> int:
    """Where the text at the end of a stream piece that may still become a marker starts
    (``len(text)`` when none may): it is held back until the marker closes or cannot."""
    held = _HELD.search(text)
    cut = held.start() if held else len(text)
    # a marker left open just before the held text is decided by what the held text becomes
    while (before := _OPEN_AT_END.search(text, 0, cut)) is not None:
        cut = before.start()
    return cut


def marker_numbers(text: str) -> list[int]:
    """Every number the markers of ``text`` stand for, in order, repeats kept."""
    return [n for m in find_markers(text) for n in m.numbers]


def strip_markers(text: str) -> str:
    """``text`` without its marker-like tokens and the white space before each ("good [1]."
    → "good."); a marker glued to the next word leaves a space ("a [1]b" → "a b")."""
    out, pos = [], 0
    for marker in find_markers(text):
        before = text[pos : marker.start].rstrip()
        glued = marker.end < len(text) and (text[marker.end].isalnum() or text[marker.end] == "_")
        out += [before, " " if glued else ""]
        pos = marker.end
    out.append(text[pos:])
    return "".join(out).strip()


def neutralise(quoted: str) -> str:
    """Text quoted from an abstract without the abstract's own reference markers (its "[12]"
    names the abstract's bibliography, not a source of the answer), so that only the
    answer's own markers are read as citations."""
    return strip_markers(quoted)
