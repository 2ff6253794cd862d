"""The citation-marker grammar (one module, used by every path) and the streaming resolver,
with hand-written expectations."""

from __future__ import annotations

import pytest

from rag_assistant.answer.citations import CitationMap, StreamResolver, resolve
from rag_assistant.text.markers import MARKER, marker_numbers, numbers_of, strip_markers
from rag_assistant.types import Source


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("[1]", [1]),
        ("[1, 2]", [1, 2]),
        ("[1; 3]", [1, 3]),
        ("[1 and 2]", [1, 2]),
        ("[2-4]", [2, 3, 4]),
        ("[2–4]", [2, 3, 4]),  # an en dash
        ("[1][2]", [1, 2]),
        ("[1, 3-5; 7]", [1, 3, 4, 5, 7]),
        ("[1-40]", [1, 40]),  # a range this wide is its two ends, not forty citations
        ("see [12] and [3]", [12, 3]),
    ],
)
def test_marker_numbers(text, numbers):
    assert marker_numbers(text) == numbers


@pytest.mark.parametrize("text", ["[a]", "[1a]", "[]", "[1000]", "(1)", "[ 1, ]"])
def test_what_is_not_a_marker(text):
    assert MARKER.search(text) is None


def test_numbers_of_a_group():
    assert numbers_of("4 and 2") == [4, 2]
    assert numbers_of("5-5") == [5, 5]


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("It is fast [1].", "It is fast."),
        ("It is fast. [1][2]", "It is fast."),
        ("A [1, 2] and B [3-4].", "A and B."),
        ("glued [1]word", "glued word"),
    ],
)
def test_strip_markers(text, stripped):
    assert strip_markers(text) == stripped


def sources(n: int) -> list[Source]:
    return [Source(f"p{i}", f"Paper {i}", 1.0, "text", "abstract") for i in range(1, n + 1)]


def test_resolve_renumbers_by_first_use_and_removes_phantoms():
    text, citations, warnings = resolve("B [3]. A [1, 3]. Z [9]. R [2-3].", sources(3))
    assert text == "B [1]. A [2][1]. Z. R [3][1]."
    assert [(c.number, c.paper_id) for c in citations] == [(1, "p3"), (2, "p1"), (3, "p2")]
    assert warnings == ["removed citation [9]: it refers to no source (the answer had 3)"]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_stream_resolver_split_across_deltas_equals_the_whole(size):
    text = "First [2]. Second [1, 3] and third [2-3]. Phantom [7]; end [1 and 2]."
    whole = CitationMap(sources(3)).sub(text)
    resolver = StreamResolver(sources(3))
    pieces = [resolver.feed(text[i : i + size]) for i in range(0, len(text), size)]
    streamed = "".join(pieces) + resolver.finish()
    assert streamed == whole
    # no delta ever shows a marker the final text does not have
    for piece in pieces:
        assert "[7]" not in piece and "[2-3]" not in piece


def test_stream_resolver_holds_back_an_open_marker_until_it_closes():
    resolver = StreamResolver(sources(2))
    assert resolver.feed("Fast [") == "Fast "
    assert resolver.feed("2, ") == ""
    assert resolver.feed("1]. Done") == "[1][2]. Done"
    assert resolver.finish() == ""
