"""The names a question writes, looked up in the index: the papers a name is the name of
(their titles), and whether any indexed text writes a name at all."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from ..text.normalize import fold
from ..text.terms import query_terms
from ..types import paper_id_of
from .catalog import Catalog, ChunkRow


class Searched(Protocol):
    """What the lookups read of the index: its catalog and its BM25 search; ``names_seen``
    keeps what was learnt of names (whether a name is its titled papers' own), emptied
    when the index changes."""

    names_seen: dict[tuple[str, tuple[str, ...]], bool]

    @property
    def catalog(self) -> Catalog: ...

    def lexical_search(self, query_terms: Sequence[str], n: int) -> list[tuple[str, float]]: ...


_WORD = re.compile(r"\w+")


def _title_name(title: str) -> str:
    """The name a title leads with: its words before a colon, when they are few ("SLUE
    Phase-2" of "SLUE Phase-2: A Benchmark Suite ..."); else nothing."""
    head, colon, _ = title.partition(":")
    return head if colon and len(head.split()) <= 4 else ""


def _written(name: str) -> re.Pattern[str] | None:
    """``name`` as indexed text may write it (folded): case, and a hyphen, a dot or a space
    between its parts, aside ("KV-cache", "kv cache"); None for a name without parts."""
    parts = [p for p in re.split(r"[-_.\s]+", fold(name)) if p]
    if not parts:
        return None
    return re.compile(r"(?<!\w)" + r"[-_.\s]?".join(re.escape(p) for p in parts) + r"(?!\w)")


def papers_named(index: Searched, names: Sequence[str], *, most: int = 5) -> dict[str, int]:
    """The papers a question names. A title that leads with names of the question and
    nothing else ("WISE: ...", "SLUE Phase-2: ...") names its paper; else the papers whose
    title holds the name as a whole word (case and width folded), at most ``most`` for
    each name (a name in more titles names no one paper), and only when the name is theirs
    (:func:`_theirs`: "BEIR", which more abstracts write than titles hold, names none).
    Returns {paper id: how many words of its title's leading name the question names (0:
    the title only holds it)}. Found through the catalog's full-text title index."""
    asked = {word for name in names for word in fold(name).split()}
    found: dict[str, int] = {}
    for name in names:
        parts = _WORD.findall(fold(name))
        if not parts:
            continue
        led = {
            pid: len(head.split())
            for pid, title in index.catalog.titles_with_words(
                parts, most + 1, at_start=True
            ).items()
            if (head := _title_name(fold(title))) and set(head.split()) <= asked
        }
        if 0 < len(led) <= most:
            found.update((pid, max(n, found.get(pid, 0))) for pid, n in led.items())
            continue
        titles = index.catalog.titles_with_words(parts, 4 * most + 1)
        pattern = re.compile(rf"(?<!\w){re.escape(fold(name))}(?!\w)")
        hits = sorted(pid for pid, title in titles.items() if pattern.search(fold(title)))
        if len(titles) <= 4 * most and len(hits) <= most and _theirs(index, name, hits):
            found.update((pid, found.get(pid, 0)) for pid in hits)
    return found


def _theirs(index: Searched, name: str, titled: Sequence[str], *, among: int = 50) -> bool:
    """``name`` is the titled papers' own: at least as many papers write it in their
    title as write it only in their abstract. "BEIR", "RL", "KV-cache" are a field's
    terms that a few titles hold (11 bundled abstracts write "BEIR", one title does);
    "HippoRAG" is its paper's. Counted among the ``among`` chunks BM25 ranks first for
    the name's terms (case and separators aside, as :func:`writes` reads a name)."""
    pattern = _written(name)
    if pattern is None or not titled:
        return bool(titled)
    key = (fold(name), tuple(titled))  # asked again by the policy, and by the next question
    if key not in index.names_seen:
        if len(index.names_seen) > 4096:  # a long-running UI: forget, do not grow
            index.names_seen.clear()
        rows = _searched(index, name, among)
        others = {paper_id_of(c) for c, row in rows.items() if pattern.search(fold(row.text))}
        index.names_seen[key] = len(others - set(titled)) <= len(titled)
    return index.names_seen[key]


def writes(index: Searched, name: str, *, among: int = 50) -> bool:
    """Some indexed text writes ``name`` ("FlashAttention-3"; case, and a hyphen, a dot or
    a space between its parts, aside): a chunk among the ``among`` that BM25 ranks first
    for its terms, or that chunk's paper's title."""
    pattern = _written(name)
    if pattern is None:
        return False
    rows = _searched(index, name, among)
    if any(pattern.search(fold(row.text)) for row in rows.values()):
        return True
    titles = index.catalog.titles(sorted({paper_id_of(c) for c in rows}))
    return any(pattern.search(fold(title)) for title in titles.values())


def _searched(index: Searched, name: str, among: int) -> dict[str, ChunkRow]:
    """The ``among`` chunks BM25 ranks first for the words of ``name``, by chunk id."""
    hits = index.lexical_search(query_terms(name), among)
    return index.catalog.chunks([chunk_id for chunk_id, _ in hits])
