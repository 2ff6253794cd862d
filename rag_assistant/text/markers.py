"""The one grammar of citation markers.

An answer refers to its numbered sources with markers: ``[1]``, a group ``[1, 2]``,
``[1; 3]``, ``[1 and 2]``, a range ``[2-4]`` (or with an en dash), and runs of markers such
as ``[1][2]``. Everything that reads, strips, resolves or checks markers uses the patterns
and functions here.
"""

from __future__ import annotations

import re

_NUMBER = r"\d{1,3}"
_SEPARATOR = r"\s*(?:,|;|–|-|and)\s*"
GROUP = rf"{_NUMBER}(?:{_SEPARATOR}{_NUMBER})*"
MARKER = re.compile(rf"\[({GROUP})\]")
"""One marker; group 1 holds its numbers as written."""

TRAILING_MARKERS = r"(?:\s*\[\d[\d,;\s–-]*\])*"
"""Markers after a sentence's final punctuation (they stay with the sentence they follow)."""

OPEN_MARKER = re.compile(r"\[[\d\s,;–\-and]{0,24}$")
"""Text at the end of a stream piece that may still become a marker (held back)."""

_PART = re.compile(r"\s*(?:,|;|and)\s*")
_RANGE = re.compile(r"(\d+)\s*[–-]\s*(\d+)")
MAX_RANGE = 20


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


def marker_numbers(text: str) -> list[int]:
    """Every number the markers of ``text`` stand for, in order, repeats kept."""
    return [n for m in MARKER.finditer(text) for n in numbers_of(m.group(1))]


_WITH_SPACE = re.compile(rf"\s*{MARKER.pattern}(?=(\w)?)")


def strip_markers(text: str) -> str:
    """``text`` without its markers and the white space before each ("good [1]." →
    "good."); a marker glued to the next word leaves a space ("a [1]b" → "a b")."""
    return _WITH_SPACE.sub(lambda m: " " if m.group(2) else "", text).strip()
