"""A small ingest into a large index embeds only what is new and does not refit the model."""

from __future__ import annotations

import json
from pathlib import Path

from rag_assistant import Assistant
from rag_assistant.lexical import LexicalIndex

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
