"""The arXiv metadata snapshot format: ids, cleaned titles, category filters, streaming."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from rag_assistant import Assistant, corpus
from rag_assistant.errors import MalformedRecordError
from rag_assistant.settings import Settings

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_snapshot_sample.json"


def read(path, **options) -> dict[str, corpus.Paper]:
    return corpus.parse_paths([path], **options).papers


def test_snapshot_records_become_papers_with_arxiv_ids():
    papers = read(SAMPLE)
    assert sorted(papers) == [
        "arxiv:1901.00001",
        "arxiv:2310.05869",
        "arxiv:2402.00002",
        "arxiv:2404.14469",
        "arxiv:math-ph/0501001",
    ]
    hyper = papers["arxiv:2310.05869"]
    assert hyper.title == "HyperAttention: Long-context Attention in Near-Linear Time"
    assert hyper.abstract.startswith("We present an approximate attention mechanism named")
    assert "\n" not in hyper.abstract and "  " not in hyper.abstract
    assert hyper.url == "https://arxiv.org/abs/2310.05869"
    assert hyper.date == "2023-12-02"
    assert hyper.categories == ["cs.LG", "cs.AI"]
    # authors_parsed is [last, first, suffix]
    assert hyper.authors[:2] == ["Insu Han", "Rajesh Jayaram"]
    assert hyper.authors[-1] == "Amir Zandieh"
    assert papers["arxiv:math-ph/0501001"].url == "https://arxiv.org/abs/math-ph/0501001"


def test_latex_and_line_breaks_in_titles_are_cleaned():
    papers = read(SAMPLE)
    sparse = papers["arxiv:1901.00001"]
    assert sparse.title == "Sparse ℓ_1-Regularized Regression in O(n log n) Time"
    assert papers["arxiv:math-ph/0501001"].title == "On Exact Solutions of the Café Equation"
    # plain titles are only whitespace-collapsed
    assert (
        papers["arxiv:2404.14469"].title
        == "SnapKV: LLM Knows What You are Looking for Before Generation"
    )


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (["cs.CL"], ["arxiv:2402.00002", "arxiv:2404.14469"]),  # primary or cross-listed
        (["cs"], ["arxiv:2310.05869", "arxiv:2402.00002", "arxiv:2404.14469"]),
        (["cs.*"], ["arxiv:2310.05869", "arxiv:2402.00002", "arxiv:2404.14469"]),
        (["math"], ["arxiv:1901.00001", "arxiv:math-ph/0501001"]),  # math.ST, math.MP
        (["math-ph"], ["arxiv:math-ph/0501001"]),
        (["stat.ml", "cs.SE"], ["arxiv:1901.00001", "arxiv:2402.00002"]),  # any; any case
        (["cs.C"], []),  # no prefix matching inside an archive
    ],
)
def test_category_filter(wanted, expected):
    if not expected:
        log = corpus.ReadLog()
        assert list(corpus.read_paths([SAMPLE], log=log, categories=wanted)) == []
        assert log.filtered == 5
        return
    assert sorted(read(SAMPLE, categories=wanted)) == expected


def test_an_archive_is_not_a_prefix_of_another():
    assert corpus.in_categories(["math-ph"], ["math-ph"])
    assert not corpus.in_categories(["math-ph"], ["math"])
    assert not corpus.in_categories(["cs.CL"], ["c"])


def test_ingest_with_a_category_filter_and_ask(tmp_path):
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    report = assistant.ingest([SAMPLE], categories=["cs.CL"])
    assert (report.added, report.papers) == (2, 2)
    # the records the filter left out are counted and said, not dropped silently
    assert report.filtered == 3
    assert "left out by the category filter: 3" in report.summary()
    assert report.to_dict()["filtered"] == 3
    sources = assistant.retrieve("How does SnapKV compress the KV cache?", k=2)
    assert sources[0].paper_id == "arxiv:2404.14469"
    assert sources[0].title == "SnapKV: LLM Knows What You are Looking for Before Generation"
    answer = assistant.ask("How does SnapKV compress the KV cache?")
    assert not answer.refused
    assert "arxiv:2404.14469" in {c.paper_id for c in answer.citations}


def test_gzipped_snapshot(tmp_path):
    target = tmp_path / "snapshot.json.gz"
    with open(SAMPLE, "rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert sorted(read(target)) == sorted(read(SAMPLE))


def test_records_are_yielded_as_they_are_read(tmp_path):
    """A broken second line is only met after the first paper was handed out."""
    lines = SAMPLE.read_text().splitlines()
    path = tmp_path / "snapshot.json"
    path.write_text(lines[0] + "\n{broken\n" + lines[1] + "\n")
    papers = corpus.read_records(path, log=corpus.ReadLog())
    assert next(papers).paper_id == "arxiv:2310.05869"
    with pytest.raises(MalformedRecordError, match=r"snapshot.json:2: not valid JSON"):
        next(papers)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_snapshot_is_streamed_not_read_whole(tmp_path):
    """The reader gets through a pipe whose writer waits for the first paper before writing
    the rest: reading the whole file first would never see the end of it."""
    lines = SAMPLE.read_text().splitlines(keepends=True)
    pipe = tmp_path / "snapshot.json"
    os.mkfifo(pipe)
    first_seen = threading.Event()
    waited: list[bool] = []

    def writer():
        with open(pipe, "w", encoding="utf-8") as handle:
            handle.write(lines[0])
            handle.flush()
            waited.append(first_seen.wait(timeout=30))
            handle.writelines(lines[1:])

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    papers = corpus.read_records(pipe, log=corpus.ReadLog())
    first = next(papers)
    first_seen.set()
    rest = list(papers)
    thread.join(timeout=30)
    assert first.paper_id == "arxiv:2310.05869"
    assert waited == [True]  # the first paper arrived while the writer was still waiting
    assert len(rest) == 4


def test_a_record_without_an_abstract_is_named_by_line(tmp_path):
    record = json.loads(SAMPLE.read_text().splitlines()[0])
    del record["abstract"]
    path = tmp_path / "snapshot.json"
    path.write_text(SAMPLE.read_text() + json.dumps(record) + "\n")
    with pytest.raises(MalformedRecordError, match=r"snapshot.json:6: missing 'abstract'"):
        read(path)
    log = corpus.ReadLog()
    assert len(list(corpus.read_paths([path], log=log, strict=False))) == 5
    assert [(s.line, s.reason) for s in log.skipped] == [(6, "missing 'abstract'")]
