"""The one text normalizer: every comparison of texts (terms, titles, key facts, quoted
sentences) starts from :func:`fold`.

Invisible format characters (zero-width spaces and joiners, bidirectional controls, the
BOM) are dropped, so text that looks the same compares the same (and :func:`visible` drops
them from what is stored and shown); NFKC turns compatibility forms into their plain
equivalents ("ﬁ" → "fi", full-width "［７］" → "[7]"); case is folded.
"""

from __future__ import annotations

import re
import unicodedata

INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
"""Characters that render as nothing (or only steer direction): soft hyphen, zero-width
space / (non-)joiner, word joiner, bidirectional marks, embeddings, overrides and isolates,
variation selectors, the BOM."""


def visible(text: str) -> str:
    """``text`` without the invisible format characters (otherwise as written: "ℓ" stays
    "ℓ"): what is stored and shown of titles and abstracts."""
    return INVISIBLE.sub("", text)


def fold(text: str) -> str:
    """``text`` as compared: :func:`visible`, NFKC, case-folded."""
    return unicodedata.normalize("NFKC", visible(text)).casefold()


def fold_spaces(text: str) -> str:
    """:func:`fold` with runs of white space collapsed to one space and the ends stripped."""
    return " ".join(fold(text).split())
