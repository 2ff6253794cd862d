"""The ingest pipeline: the producer (parse, merge, chunk, analyze) in a process of its own
gives the index the producer in this process gives; its errors reach the caller as they
are; a killed ingest takes its producer with it; and when the index has a dense model, each
committed batch's vectors are written while the next batch is read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.corpus import bundled_corpus_dir
from rag_assistant.errors import MalformedRecordError
from rag_assistant.settings import Settings
from rag_assistant.store import ingest as ingest_module

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_snapshot_sample.json"


@pytest.fixture
def producer_process(monkeypatch):
    """Every ingest reads through a producer process; returns the list of those started."""
    started: list[list[str]] = []
    real = subprocess.Popen

    def spy(args, *rest, **kwargs):
        if ingest_module.PRODUCER in args:
            started.append(args)
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(ingest_module, "PROCESS_BYTES", 0)
    monkeypatch.setattr(ingest_module.subprocess, "Popen", spy)
    return started


def _state(assistant: Assistant) -> dict:
    catalog = assistant.index.catalog
    ids = catalog.all_paper_ids()
    return {
        "papers": catalog.paper_hashes(ids),
        "sources": {s: sorted(catalog.paper_ids_by_source(s)) for s in catalog.sources()},
        "chunks": sorted(catalog.chunk_ids()),
        "terms": dict(catalog.iter_terms()),
        "pending": catalog.pending_count(),
    }


def _report(report) -> tuple:
    return (
        report.added,
        report.updated,
        report.unchanged,
        report.entries,
        report.embedded,
        [str(s) for s in report.skipped],
        report.warnings,
    )


def test_a_producer_process_gives_the_index_an_in_process_one_gives(
    tmp_path, monkeypatch, producer_process
):
    monkeypatch.setattr(ingest_module, "BATCH_PAPERS", 100)  # several batches
    paths = [bundled_corpus_dir(), SAMPLE]
    in_process = Assistant(Settings(home=tmp_path / "a", auto_ingest_bundled=False))
    monkeypatch.setattr(ingest_module, "PROCESS_BYTES", 2**60)
    expected = in_process.ingest(paths)
    assert producer_process == []
    monkeypatch.setattr(ingest_module, "PROCESS_BYTES", 0)
    piped = Assistant(Settings(home=tmp_path / "b", auto_ingest_bundled=False))
    got = piped.ingest(paths)
    assert len(producer_process) == 1
    assert _report(got) == _report(expected)
    assert _state(piped) == _state(in_process)
    assert got.added > 500 and _state(piped)["pending"] == 0


def test_a_repeat_after_its_batch_is_merged_through_the_producer_process(
    tmp_path, monkeypatch, producer_process
):
    """The batch size travels with the job: papers of earlier batches are merged by the
    producer (title, sources, abstract digest) as in one process."""
    monkeypatch.setattr(ingest_module, "BATCH_PAPERS", 2)
    records = [{"title": f"Paper number {n}", "abstract": f"Abstract {n} here."} for n in range(5)]
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in records))
    second.write_text(json.dumps({"title": "Paper number 0", "abstract": "Another one."}) + "\n")
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    report = assistant.ingest([first, second])
    assert producer_process and report.added == 5
    [warning] = report.warnings
    assert "'Paper number 0' appears with different abstracts" in warning
    catalog = assistant.index.catalog
    both = catalog.paper_ids_by_source(str(first)) & catalog.paper_ids_by_source(str(second))
    assert len(both) == 1


def test_an_error_in_the_producer_process_is_raised_as_it_is(tmp_path, producer_process):
    broken = tmp_path / "broken.jsonl"
    good = [json.dumps({"title": f"Fine paper {n}", "abstract": "Fine."}) for n in range(3)]
    broken.write_text("\n".join([*good, "{not json"]) + "\n")
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    with pytest.raises(MalformedRecordError, match=r"broken\.jsonl:4") as caught:
        assistant.ingest([broken])
    assert producer_process
    assert "_produce" in str(caught.value.__cause__)  # where the producer raised it
    # the papers before the broken line were in an uncommitted batch: nothing is written
    assert assistant.index.catalog.counts() == (0, 0)
    report = assistant.ingest([broken], skip_invalid=True)
    assert report.added == 3 and len(report.skipped) == 1


def test_vectors_are_written_batch_by_batch_when_the_model_needs_no_refit(
    assistant, monkeypatch, tmp_path
):
    """An index with a model: each committed batch is embedded and written to Chroma while
    the next is read; nothing is left for the sync; the model and collection are kept."""
    from rag_assistant.store import sync

    monkeypatch.setattr(ingest_module, "BATCH_PAPERS", 2)
    written: list[int] = []
    real = sync.write_vectors

    def spy(store, collection, embedder, rows, titles):
        written.append(store.catalog.pending_count())
        return real(store, collection, embedder, rows, titles)

    monkeypatch.setattr(sync, "write_vectors", spy)
    before = assistant.index.manifest()
    chunks_before = assistant.index.catalog.counts()[1]
    report = assistant.ingest([SAMPLE])  # 5 papers: 3 batches of at most 2
    assert report.added == 5 and not report.refitted
    assert len(written) == 3  # one write per batch, none left for the sync
    assert report.embedded == assistant.index.catalog.counts()[1] - chunks_before
    after = assistant.index.manifest()
    assert (after.dense_model, after.chroma.collection) == (
        before.dense_model,
        before.chroma.collection,
    )
    assert assistant.index.vectors.count(after.chroma.collection) == after.chunks
    assert "arxiv:2404.14469" in [
        s.paper_id for s in assistant.retrieve("SnapKV KV cache compression", k=3)
    ]


def test_batches_are_not_embedded_past_the_refit_point(tmp_path, monkeypatch):
    """Once the papers committed reach the refit point, the batch writer stops: the sync
    refits and embeds every chunk into a new collection once."""
    from rag_assistant.store import sync

    monkeypatch.setattr(ingest_module, "BATCH_PAPERS", 2)
    home = tmp_path / "home"
    small = tmp_path / "small.jsonl"
    small.write_text(
        "".join(
            json.dumps({"title": f"Seed paper {n}", "abstract": f"Seed abstract {n} on caches."})
            + "\n"
            for n in range(3)
        )
    )
    assistant = Assistant(Settings(home=home, auto_ingest_bundled=False))
    assistant.ingest([small])
    calls: list[str] = []
    real = sync.write_vectors

    def spy(store, collection, embedder, rows, titles):
        calls.append(collection)
        return real(store, collection, embedder, rows, titles)

    monkeypatch.setattr(sync, "write_vectors", spy)
    old = assistant.index.manifest().chroma.collection
    report = assistant.ingest([SAMPLE])  # 3 + 5 papers: past twice the 3 fitted on
    assert report.refitted
    new = assistant.index.manifest().chroma.collection
    assert new != old
    # the first batch (3 + 2 = 5 < 6 papers) was written to the old collection; the next
    # (7 papers) reached the refit point, so nothing more went to the old one
    assert calls.count(old) == 1
    assert set(calls) == {old, new}
    assert assistant.index.vectors.count(new) == assistant.index.catalog.counts()[1]


@pytest.mark.slow
def test_a_killed_ingest_takes_its_producer_process_with_it(tmp_path):
    """SIGKILL of an ingest whose producer is a process (forced here): the producer ends
    (it held the ingest's stderr: the run returns), and the next ingest completes."""
    home = tmp_path / "home"
    script = (
        "import sys\n"
        "from rag_assistant import Assistant\n"
        "from rag_assistant.settings import Settings\n"
        "from rag_assistant.store import ingest\n"
        "ingest.PROCESS_BYTES = 0\n"
        "ingest.BATCH_PAPERS = 50\n"
        "report = Assistant(Settings(home=sys.argv[1])).ingest(sys.argv[2:])\n"
        "print(report.added)\n"
    )
    env = dict(os.environ, RAG_ASSISTANT_FAILPOINT="ingest:after-catalog")
    args = [sys.executable, "-c", script, str(home), str(bundled_corpus_dir())]
    started = time.monotonic()
    killed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert time.monotonic() - started < 300
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assistant = Assistant(Settings(home=home))
    assert assistant.check() == []
    assert assistant.status().papers == 530
