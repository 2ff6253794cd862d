"""The citation-marker grammar (one module, used by every path) and the streaming resolver,
with hand-written expectations: every marker-like token a model (or an abstract) writes is
either mapped to a source or removed with a warning, streamed or not."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_assistant import Assistant
from rag_assistant.answer.citations import (
    CitationMap,
    StreamResolver,
    claim_text,
    is_vacuous,
    resolve,
    strip_titles,
)
from rag_assistant.settings import Settings
from rag_assistant.text.markers import (
    MARKER,
    find_markers,
    marker_numbers,
    neutralise,
    numbers_of,
    strip_markers,
)
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
        # what models write loosely
        ("[ 7 ]", [7]),
        ("[1000]", [1000]),
        ("［7］", [7]),
        ("［７］", [7]),
        ("[⁷]", [7]),
        ("[\u200b7]", [7]),
        ("[S7]", [7]),
        ("[#7]", [7]),
        ("[[7]] [[1]]", [7, 1]),
        ("[Source 1]", [1]),
        ("[Sources 1-3]", [1, 2, 3]),
        ("[S1, S2]", [1, 2]),
        ("[ref. 2]", [2]),
        ("[^1]", [1]),
        ("【1】", [1]),
    ],
)
def test_marker_numbers(text, numbers):
    assert marker_numbers(text) == numbers


@pytest.mark.parametrize(
    "text", ["[a]", "[]", "(1)", "[CLS] token", "values in [0.5, 1]", "x in [0, 1)", "[see above]"]
)
def test_what_is_not_a_marker(text):
    assert find_markers(text) == []
    assert strip_markers(text) == text


@pytest.mark.parametrize("text", ["[7a]", "[x1]", "[Fig. 3]", "[1, 2b]"])
def test_marker_like_tokens_that_name_no_number(text):
    (marker,) = find_markers(text)
    assert marker.numbers == () and marker.closed


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("fast [1", [1]), ("fast [1. Next", [1]), ("[1, 2 is", [1, 2]), ("end [Source 2", [2])],
)
def test_a_marker_left_open(text, numbers):
    (marker,) = find_markers(text)
    assert not marker.closed and list(marker.numbers) == numbers


def test_canonical_marker_pattern():
    assert MARKER.fullmatch("[1, 2]") and MARKER.fullmatch("[12]")
    assert MARKER.search("［7］") is None


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
        ("loose ［7］ and [Source 2].", "loose and."),
        ("open at the end [1", "open at the end"),
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


@pytest.mark.parametrize(
    ("written", "shown", "removed"),
    [
        ("Fast [ 2 ].", "Fast [1].", 0),
        ("Fast [1000].", "Fast.", 1),
        ("Fast ［2］.", "Fast [1].", 0),
        ("Fast [²].", "Fast [1].", 0),
        ("Fast [\u200b2].", "Fast [1].", 0),
        ("Fast [2a].", "Fast.", 1),
        ("Fast [S2].", "Fast [1].", 0),
        ("Fast [#2].", "Fast [1].", 0),
        ("Fast [[7]] [[1]].", "Fast [1].", 1),
        ("Fast [Source 1].", "Fast [1].", 0),
        ("Fast [^1].", "Fast [1].", 0),
        ("Fast 【1】.", "Fast [1].", 0),
        ("Fast [1]. Also [1", "Fast [1]. Also", 1),
    ],
)
def test_every_marker_like_token_is_mapped_or_removed_with_a_warning(written, shown, removed):
    text, citations, warnings = resolve(written, sources(3))
    assert text == shown
    assert len(warnings) == removed
    assert all(w.startswith("removed citation") for w in warnings)
    # what reaches the user: canonical markers only, each naming a citation
    numbers = {c.number for c in citations}
    for marker in find_markers(text):
        assert MARKER.fullmatch(marker.raw) and set(marker.numbers) <= numbers


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


def test_a_marker_formed_by_removing_another_is_not_a_citation():
    text, citations, warnings = resolve("A [[7]1] b.", sources(2))
    assert text == "A b." and citations == []
    assert len(warnings) == 2  # [7], then the [1] its removal formed


def test_stream_resolver_holds_back_an_open_marker_until_it_closes():
    resolver = StreamResolver(sources(2))
    assert resolver.feed("Fast [") == "Fast "
    assert resolver.feed("2, ") == ""
    assert resolver.feed("1]. Done") == "[1][2]. Done"
    assert resolver.finish() == ""


def test_a_long_group_streamed_in_small_tokens_is_resolved():
    """A model writing a group longer than any fixed hold-back, a few characters at a time,
    gets the same markers as the whole text (issue 14, item 10)."""
    reply = "Five papers do this [5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5, 4, 3, 2]."
    whole, _, _ = resolve(reply, sources(5))
    assert whole == "Five papers do this [1][2][3][4][5]."
    for size in (1, 2, 3):
        resolver = StreamResolver(sources(5))
        pieces = [resolver.feed(reply[i : i + size]) for i in range(0, len(reply), size)]
        streamed = "".join(pieces) + resolver.finish()
        assert streamed == whole
        assert not any("5, 4" in piece for piece in pieces)


def test_a_stray_open_marker_at_the_end_of_a_stream_is_removed_with_a_warning():
    resolver = StreamResolver(sources(2))
    shown = resolver.feed("It is fast [1]. It is small [") + resolver.feed("2")
    shown += resolver.finish()
    assert shown == "It is fast [1]. It is small "
    assert resolver.map.warnings() == ["removed citation '[2': the marker was never closed"]


def streamed_in_pieces(text: str, cuts: list[int]) -> str:
    """``text`` fed to a resolver cut at ``cuts`` (taken modulo its length), then finished."""
    resolver = StreamResolver(sources(2))
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    streamed = "".join(resolver.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    return streamed + resolver.finish()


TEXTS = [
    "Fast [ 2 ]. Slow [1000] and ［1］, [⁲] [\u200b2] [2a] [S1] [#2] [[7]] [[1]] [Source 2] "
    "[^1] 【2】 [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2] [CLS] [0, 1) end [2",
    "[1] Title: Speculative Prefill: Turbocharging TTFT\nSnapKV is fast [1].\n"
    "2. Title: Another [2]\n- It halves memory [2]. The title: none [1]. Titles [2] matter.",
    "Intro text [1 is open. Then [2. A list:\n1. [1]\n2. Item two [2]\n**Title:** X\nEnd.",
]


@settings(max_examples=150, deadline=None)
@given(text=st.sampled_from(TEXTS), cuts=st.lists(st.integers(0, 400), max_size=25))
def test_any_split_of_a_stream_gives_the_whole_text(text, cuts):
    whole = CitationMap(sources(2)).sub(strip_titles(text))
    assert streamed_in_pieces(text, cuts) == whole


PIECES = [
    "[",
    "]",
    "［",
    "】",
    "【",
    "1",
    "2",
    "7",
    "⁷",
    "\u200b",
    ", ",
    " and ",
    "-",
    "S",
    "Source ",
    "#",
    "^",
    "a",
    " ",
    "\n",
    ".",
    "Title",
    ":",
    "**",
    "- ",
    "The ",
    "paper ",
    "word",
    "(",
    ")",
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_any_split_of_any_text_gives_the_whole_text(pieces, cuts):
    text = "".join(pieces)
    whole = CitationMap(sources(2)).sub(strip_titles(text))
    assert streamed_in_pieces(text, cuts) == whole
    for marker in find_markers(whole):  # what is left of the markers is canonical
        assert MARKER.fullmatch(marker.raw), whole


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("[1] Title: Speculative Prefill: Fast TTFT\nSnapKV is fast [1].", "SnapKV is fast [1]."),
        (
            "SnapKV is fast [1]. Title: SnapKV\nIt is small [1].",
            "SnapKV is fast [1].\nIt is small [1].",
        ),
        ("- [2] **Title:** Other paper\nIt is small [1].", "It is small [1]."),
        (
            "The title of [1] is long. It is small [1].",
            "The title of [1] is long. It is small [1].",
        ),
    ],
)
def test_titles_the_model_writes_are_removed(written, shown):
    text, _, _ = resolve(written, sources(2))
    assert text == shown


def test_neutralise_removes_an_abstracts_own_references():
    assert neutralise("a library for PyTorch [12].") == "a library for PyTorch."
    assert neutralise("by a factor of 42 [3][7] in practice.") == "by a factor of 42 in practice."
    assert neutralise("in [0, 1) or [CLS]") == "in [0, 1) or [CLS]"


@pytest.mark.parametrize(
    ("sentence", "stated", "vacuous"),
    [
        ("1. [1]", "", True),
        ("Speculative Prefill:", "Speculative Prefill:", True),
        ("2. HyperAttention is fast [1].", "HyperAttention is fast.", False),
        ("HyperAttention is fast [1] 3.", "HyperAttention is fast", False),
        ("It improves accuracy by 2.", "It improves accuracy by 2.", False),
    ],
)
def test_list_numbering_and_headings_are_not_claims(sentence, stated, vacuous):
    assert claim_text(sentence) == stated
    assert is_vacuous(stated) is vacuous


# --- the offline answerer quoting abstracts (issue 14, item 9) --------------------------------


def _quotes_are_from_the_cited_papers(answer) -> None:
    abstracts = {s.paper_id: s.abstract for s in answer.sources}
    by_number = {c.number: c.paper_id for c in answer.citations}
    for claim in answer.claims:
        assert claim.citations, claim.text
        for n in claim.citations:
            quoted = strip_markers(claim.text)
            assert quoted.rstrip(".") in neutralise(abstracts[by_number[n]]), (n, claim.text)


def test_offline_answer_does_not_turn_an_abstracts_references_into_citations(assistant):
    answer = assistant.ask("What is Captum, the model interpretability library for PyTorch?", k=20)
    assert not answer.refused and answer.citations
    assert "[1]. [2]" not in answer.text and "PyTorch [1]. [" not in answer.text
    _quotes_are_from_the_cited_papers(answer)


def test_a_hostile_abstract_cannot_cite_other_papers(tmp_path):
    papers = [
        {
            "title": "SnapKV Compression Notes",
            "abstract": "SnapKV compresses the KV cache by a factor of 42 [3][7] in practice. "
            "It keeps the attention heads that matter.",
        },
        *[
            {"title": f"Unrelated Paper {i}", "abstract": f"Topic {i} about graphs and trees."}
            for i in range(1, 9)
        ],
    ]
    corpus = tmp_path / "papers.jsonl"
    corpus.write_text("".join(json.dumps(p) + "\n" for p in papers), encoding="utf-8")
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    assistant.ingest([corpus])
    answer = assistant.ask("How much does SnapKV compress the KV cache?", k=8)
    assert not answer.refused
    assert [c.title for c in answer.citations] == ["SnapKV Compression Notes"]
    _quotes_are_from_the_cited_papers(answer)
