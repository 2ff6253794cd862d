"""The LSA model is fitted on a sample streamed from the catalog: the same model as a fit on
the sample held in memory, and the sample is the same on every pass."""

from __future__ import annotations

import numpy as np

from rag_assistant import Assistant
from rag_assistant.store.embeddings import LSAEmbedder


def test_the_sample_is_every_step_th_chunk_the_same_on_every_pass(assistant: Assistant):
    catalog = assistant.index.catalog
    rows = catalog._conn().execute("SELECT rowid, terms FROM chunks ORDER BY rowid").fetchall()
    assert len(rows) > 300
    limit = len(rows) // 3
    sample = catalog.sample_chunk_terms(limit)
    assert sample.step == 3
    expected = [terms.split() for rowid, terms in rows if rowid % 3 == 0][:limit]
    first, second = list(sample), list(sample)
    assert len(first) == limit
    assert first == second == expected


def test_a_fit_on_the_stream_equals_a_fit_on_lists(assistant: Assistant):
    sample = assistant.index.catalog.sample_chunk_terms(400)
    streamed = LSAEmbedder.fit(sample, dimensions=32)
    held = LSAEmbedder.fit(list(sample), dimensions=32)
    assert streamed.vocabulary == held.vocabulary
    assert np.array_equal(streamed.idf, held.idf)
    assert np.array_equal(streamed.components, held.components)
    assert streamed.fitted_on == held.fitted_on == 400
    query = "speculative decoding with a draft model"
    assert np.array_equal(streamed.embed_query(query), held.embed_query(query))
