"""A small ingest into a large index embeds only what is new and does not refit the model."""

from __future__ import annotations

import json
from pathlib import Path

from rag_assistant import Assistant
from rag_assistant.store.lexical import LexicalIndex

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_snapshot_sample.json"


def test_a_few_papers_later_only_their_chunks_are_embedded(assistant: Assistant, home: Path):
    before = json.loads((home / "manifest.json").read_text())
    papers_before, chunks_before = assistant.index.catalog.counts()
    report = assistant.ingest([SAMPLE])
    papers, chunks = assistant.index.catalog.counts()
    assert report.added == 5 and papers == papers_before + 5
    assert not report.refitted
    assert report.embedded == chunks - chunks_before  # the new chunks, nothing else
    after = json.loads((home / "manifest.json").read_text())
    assert after["dense_model"] == before["dense_model"]  # the same fitted model
    assert after["chroma"]["collection"] == before["chroma"]["collection"]
    assert assistant.index.vectors.count(after["chroma"]["collection"]) == chunks

    # the lexical index, updated by delta, is the one a full build gives
    lexical = LexicalIndex.load(home / after["lexical"]["dir"])
    ids, terms = zip(*assistant.index.catalog.iter_terms(), strict=True)
    full = LexicalIndex.build(ids, terms, lexical.generation)
    assert lexical.chunk_ids == full.chunk_ids
    for query in (["snapkv"], ["kv", "cach"], ["speculat", "decod"]):
        assert lexical.search(query, 20) == full.search(query, 20)

    top = assistant.retrieve("SnapKV fine-tuning-free KV cache compression", k=3)
    assert "arxiv:2404.14469" in [s.paper_id for s in top]


def test_a_paper_repeated_after_its_batch_was_committed(
    empty_assistant: Assistant, tmp_path: Path, monkeypatch
):
    """Papers of earlier batches are kept only as title, sources and abstract digest: a later
    entry of one still adds its source, keeps the first abstract and warns when they differ."""
    from rag_assistant.store import ingest

    monkeypatch.setattr(ingest, "BATCH_PAPERS", 2)
    records = [
        {"title": f"Paper number {n}", "abstract": f"Abstract {n} about topic {n} in detail."}
        for n in range(1, 6)
    ]
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    again = [
        {"title": "Paper number 1", "abstract": "A different abstract of paper one."},
        {"title": "Paper number 2", "abstract": records[1]["abstract"]},
    ]
    second.write_text("\n".join(json.dumps(r) for r in again) + "\n")

    report = empty_assistant.ingest([first, second])

    catalog = empty_assistant.index.catalog
    assert report.added == 5 and catalog.counts()[0] == 5
    [warning] = report.warnings  # paper 1 differs; paper 2 is the same text
    assert "'Paper number 1' appears with different abstracts" in warning
    assert "keeping the first" in warning
    both = catalog.paper_ids_by_source(str(first)) & catalog.paper_ids_by_source(str(second))
    assert len(both) == 2
    papers = catalog.papers(sorted(both))
    assert sorted(p.abstract for p in papers.values()) == [
        records[0]["abstract"],
        records[1]["abstract"],
    ]
