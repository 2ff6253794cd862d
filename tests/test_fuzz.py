"""Hostile input: the corpus parsers (listing text, JSON lines / arrays, CSV / TSV) fed random
and adversarial bytes raise nothing but rag-assistant's own errors, and what they do return
keeps its invariants (no control characters, bounded abstracts, non-empty titles). Oversized
input (a 10 MB one-line abstract, a 1,000,000-character question) is cut or refused with a
clear message, and returns within a generous bound.

Hypothesis draws the inputs; ``max_examples`` keeps the file to seconds. The number of
inputs fuzzed is written to the terminal at the end of the module.
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_assistant import Assistant
from rag_assistant.corpus import TITLE_MAX_CHARS, ReadLimits, ReadLog, read_file
from rag_assistant.errors import QuestionTooLongError, RagAssistantError
from rag_assistant.settings import Settings

MAX_ABSTRACT = 500  # small, so that the bound is reached often
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZED: Counter[str] = Counter()
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.fixture(scope="module", autouse=True)
def report_counts(say):
    yield
    line = "fuzzed inputs: " + ", ".join(f"{k} {v}" for k, v in sorted(FUZZED.items()))
    say(line + f" (total {sum(FUZZED.values())})")


def parse(name: str, data: bytes, *, strict: bool = True) -> list:
    """Parse ``data`` as a file called ``name``; only rag-assistant errors may escape."""
    FUZZED[name.split(".", 1)[1]] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        log = ReadLog()
        try:
            papers = list(
                read_file(
                    path, log=log, strict=strict, limits=ReadLimits(max_abstract_chars=MAX_ABSTRACT)
                )
            )
        except RagAssistantError as exc:
            assert str(exc)  # a message the user can read
            return []
    for paper in papers:
        assert paper.title and paper.abstract and paper.paper_id
        assert not CONTROL.search(paper.title) and not CONTROL.search(paper.abstract)
        assert len(paper.abstract) <= MAX_ABSTRACT
        assert len(paper.title) <= 3 * TITLE_MAX_CHARS
    return papers


# --- strategies ---------------------------------------------------------------------------

NASTY_CHARS = st.sampled_from(
    [
        "\x00",
        "\r",
        "\n",
        "\r\n",
        "\t",
        "\x0b",
        "\x0c",
        "\x1b[31m",
        "\u2028",
        "\u200b",
        "\ufeff",
        "\ud7ff",
        "\U0001f600",
        "é",
        "\\",
        '"',
        ",",
        "[",
        "{",
        "}",
        "]",
        "\\textbf{",
        "$",
        "%",
    ]
)
NOISE_LINES = st.sampled_from(
    [
        "new",
        "Subscribe",
        "Daily Papers",
        "Mar 18",
        "Published on Jan 3, 2024",
        "Upvote",
        "42",
        "---",
        "",
        " ",
        "SubscribeGet trending papers in your email inbox!",
        "•••",
    ]
)
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
TEXT = st.lists(st.one_of(WORDS, NASTY_CHARS), max_size=30).map("".join)
LONG_LINE = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "é ", "x y ", "!"]), st.integers(300, 5000)
)


def encodings(text: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252", "utf-8-sig"]).map(
        lambda enc: text.encode(enc, errors="replace")
    )


MIXED_BYTES = st.lists(
    st.one_of(
        TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
        TEXT.flatmap(encodings),
        st.binary(max_size=64),
    ),
    max_size=12,
).map(lambda parts: b"\n".join(parts))

LISTING = st.lists(st.one_of(TEXT, NOISE_LINES, LONG_LINE, WORDS), max_size=25).map("\n".join)

JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    TEXT,
    LONG_LINE,
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(WORDS, inner, max_size=4)),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "title",
        "abstract",
        "authors",
        "authors_parsed",
        "categories",
        "id",
        "update_date",
        "date",
        "url",
        "TITLE",
    ]
)
RECORD = st.dictionaries(FIELDS, JSON_VALUE, max_size=8)
HOSTILE_JSON_LINES = st.sampled_from(
    [
        "[" * 5_000,
        '{"title": "t", "abstract": ' + "9" * 5_000 + "}",
        '{"title": "t", "abstract": "a", "id": ' + "1" * 5_000 + ', "categories": "cs"}',
        '{"title": "\\ud800", "abstract": "lone surrogate"}',
        '{"title": "x", "abstract": "y"',
        "null",
        '"just a string"',
        "NaN",
    ]
)


def json_lines(records: list, extra: list[str]) -> str:
    lines = [json.dumps(r, allow_nan=True) for r in records] + extra
    return "\n".join(lines)


CELL = st.one_of(TEXT, LONG_LINE, NOISE_LINES)


def csv_text(header: list[str], rows: list[list[str]], delimiter: str) -> str:
    def cell(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "\n".join(delimiter.join(cell(c) for c in row) for row in [header, *rows])


# --- properties ---------------------------------------------------------------------------


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=2000), MIXED_BYTES),
    name=st.sampled_from(
        ["f.txt", "f.md", "f.jsonl", "f.json", "f.csv", "f.tsv", "f.txt.gz", "f.jsonl.gz"]
    ),
    strict=st.booleans(),
)
def test_random_bytes_raise_only_project_errors(data, name, strict):
    parse(name, data, strict=strict)


@FUZZ
@given(text=LISTING, encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
def test_listing_text_raises_only_project_errors(text, encoding):
    parse("page.txt", text.encode(encoding, errors="replace"))


@FUZZ
@given(
    records=st.lists(RECORD, max_size=6),
    extra=st.lists(HOSTILE_JSON_LINES, max_size=2),
    strict=st.booleans(),
    as_array=st.booleans(),
)
def test_json_records_raise_only_project_errors(records, extra, strict, as_array):
    if as_array:
        body = "[" + ",".join(json.dumps(r) for r in records) + "]"
        parse("records.json", body.encode("utf-8", "surrogatepass") + "".join(extra).encode())
    else:
        parse(
            "records.jsonl",
            json_lines(records, extra).encode("utf-8", "surrogatepass"),
            strict=strict,
        )


@FUZZ
@given(
    header=st.lists(
        st.one_of(st.sampled_from(["title", "abstract", "authors", "url"]), WORDS), max_size=6
    ),
    rows=st.lists(st.lists(CELL, max_size=7), max_size=6),
    delimiter=st.sampled_from([",", "\t"]),
    strict=st.booleans(),
    raw_tail=st.binary(max_size=32),
)
def test_csv_rows_raise_only_project_errors(header, rows, delimiter, strict, raw_tail):
    name = "rows.csv" if delimiter == "," else "rows.tsv"
    data = csv_text(header, rows, delimiter).encode("utf-8", "surrogatepass") + raw_tail
    parse(name, data, strict=strict)


def test_gzip_of_hostile_text_is_read_or_refused():
    """A valid .gz around noise, and a truncated one: read, or a project error."""
    body = ("Subscribe\n" * 50 + "x" * 400 + "\n").encode()
    assert parse("noise.txt.gz", gzip.compress(body)) == []
    assert (
        parse("cut.jsonl.gz", gzip.compress(b'{"title": "a", "abstract": "b"}\n' * 50)[:40]) == []
    )


def test_listing_of_only_noise_lines_names_the_problem():
    from rag_assistant.errors import NoEntriesError

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chrome.txt"
        path.write_text("new\nSubscribe\nDaily Papers\nMar 18\n42\n---\n\x00\x00\n")
        with pytest.raises(NoEntriesError, match="no title/abstract entries"):
            list(read_file(path, log=ReadLog()))


# --- oversized input, bounded -------------------------------------------------------------

BOUND_SECONDS = 120  # generous: a guard against hangs, not a speed test


def within(seconds: float, fn: Callable[[], object]) -> object:
    """Run ``fn`` in a thread; fail if it has not returned after ``seconds``."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


TEN_MB = 10 * 1024 * 1024


TITLE = "Quokka Attention for Enormous Abstracts"


def huge_file(folder: Path, kind: str) -> Path:
    words = ("attention " * (TEN_MB // 10 + 1))[:TEN_MB]
    path = folder / f"huge.{kind}"
    if kind == "txt":
        path.write_text(f"{TITLE}\n{words}\n")
    elif kind == "jsonl":
        path.write_text(json.dumps({"title": TITLE, "abstract": words}) + "\n")
    else:
        path.write_text(f'title,abstract\n"{TITLE}","{words}"\n')
    assert path.stat().st_size > TEN_MB
    return path


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv"])
def test_ten_megabyte_abstract_is_cut_when_read(kind, tmp_path):
    path = huge_file(tmp_path, kind)
    log = ReadLog()
    (paper,) = within(BOUND_SECONDS, lambda: list(read_file(path, log=log)))
    assert paper.title == TITLE
    assert 19_000 < len(paper.abstract) <= 20_000  # the default limit, cut at a word
    assert paper.abstract.startswith("attention attention") and paper.abstract.endswith("n")
    assert [
        w
        for w in log.warnings
        if re.search(r"abstract of 10,48\d,\d{3} characters cut to 20,000", w)
    ]


def test_ten_megabyte_abstract_is_ingested_cut_and_retrievable(tmp_path):
    path = huge_file(tmp_path, "txt")
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    report = within(BOUND_SECONDS, lambda: assistant.ingest([path]))
    assert report.papers == 1
    assert any("cut to 20,000" in w for w in report.warnings), report.warnings
    catalog = assistant.index.catalog
    (paper,) = catalog.papers(catalog.all_paper_ids()).values()
    assert len(paper.abstract) <= 20_000
    sources = within(BOUND_SECONDS, lambda: assistant.retrieve("Quokka attention"))
    assert [s.title for s in sources] == [TITLE]
    answer = within(BOUND_SECONDS, lambda: assistant.ask("What is Quokka Attention?"))
    assert {c.title for c in answer.citations} <= {TITLE}


def test_million_character_question_is_refused_with_a_clear_message(tmp_path):
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    question = "whyy" + " why" * 249_999
    assert len(question) == 1_000_000

    def ask():
        with pytest.raises(QuestionTooLongError, match="1,000,000 characters long; the limit"):
            assistant.ask(question)
        with pytest.raises(QuestionTooLongError):
            list(assistant.stream(question))
        with pytest.raises(QuestionTooLongError):
            assistant.retrieve(question)

    within(BOUND_SECONDS, ask)
    # nothing was created for a refused question
    assert not (tmp_path / "home" / "catalog.sqlite3").exists()


def test_question_just_under_the_character_limit_is_bounded_by_tokens(tmp_path):
    """3,999 characters of one-letter words: under the character limit, over the token
    budget; refused by counting tokens, not by a model call."""
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    question = ("a " * 2000)[:3999]
    with pytest.raises(QuestionTooLongError, match="tokens; the limit is 256"):
        within(BOUND_SECONDS, lambda: assistant.ask(question))
