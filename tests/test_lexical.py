"""The BM25 index beside Chroma: bm25s's scores, updated by delta, saved and loaded."""

from __future__ import annotations

import math
import random

import pytest

from rag_assistant.errors import IndexCorruptError
from rag_assistant.store.lexical import COUNTS_FILE, LexicalIndex


def test_scores_are_bm25_lucene_computed_by_hand():
    index = LexicalIndex.build(["c1", "c2", "c3"], [["kv", "cache", "kv"], ["cache"], ["draft"]], 1)
    # N = 3, avgdl = 5/3; kv: df 1, idf = ln(1 + 2.5 / 1.5); tf 2 in a 3-term chunk;
    # k1 1.5, b 0.75: 0.98083 * 2 / (2 + 1.5 * (0.25 + 0.75 * 1.8)) = 0.44583
    idf = math.log(1 + 2.5 / 1.5)
    expected = idf * 2 / (2 + 1.5 * (0.25 + 0.75 * 3 / (5 / 3)))
    [(chunk_id, score)] = index.search(["kv"], 5)
    assert chunk_id == "c1"
    assert score == pytest.approx(expected, rel=1e-6)
    assert index.search(["unseen"], 5) == []
    assert index.idf("kv") == pytest.approx(idf, rel=1e-6)


def _corpus(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)]
    ids = [f"p{i:04d}::h::0" for i in range(n)]
    return ids, [[rng.choice(words) for _ in range(rng.randint(0, 12))] for _ in ids]


def _all_scores(index: LexicalIndex, queries) -> list:
    return [[(cid, round(s, 5)) for cid, s in index.search(q, 50)] for q in queries]


def test_an_updated_index_is_the_index_built_in_one_go(tmp_path):
    ids, terms = _corpus(200, seed=1)
    queries = [["w1"], ["w2", "w3"], ["w59", "w0", "w7"]]
    first = LexicalIndex.build(ids[:120], terms[:120], 1)
    first.save(tmp_path / "g1")
    removed = set(ids[:120:7])
    updated = LexicalIndex.load(tmp_path / "g1").updated(
        remove=removed, add=zip(ids[120:], terms[120:], strict=True), generation=2
    )
    kept = [i for i, cid in enumerate(ids) if cid not in removed]
    direct = LexicalIndex.build([ids[i] for i in kept], [terms[i] for i in kept], 2)
    assert updated.chunk_ids == direct.chunk_ids
    assert _all_scores(updated, queries) == _all_scores(direct, queries)
    assert updated.idf("w3") == pytest.approx(direct.idf("w3"))


def test_saved_and_loaded(tmp_path):
    ids, terms = _corpus(50, seed=2)
    index = LexicalIndex.build(ids, terms, 4)
    index.save(tmp_path / "g4")
    loaded = LexicalIndex.load(tmp_path / "g4")
    assert loaded.generation == 4 and loaded.chunk_ids == ids
    assert _all_scores(loaded, [["w5"], ["w6", "w8"]]) == _all_scores(index, [["w5"], ["w6", "w8"]])


def test_missing_term_counts_are_reported_not_guessed(tmp_path):
    ids, terms = _corpus(20, seed=3)
    LexicalIndex.build(ids, terms, 1).save(tmp_path / "g1")
    (tmp_path / "g1" / COUNTS_FILE).unlink()
    loaded = LexicalIndex.load(tmp_path / "g1")  # still searchable
    assert loaded.search(["w1"], 3) == LexicalIndex.build(ids, terms, 1).search(["w1"], 3)
    with pytest.raises(IndexCorruptError, match="no term counts"):
        loaded.counts()


def test_scores_equal_stock_bm25s_built_from_the_same_terms():
    """The index's scores are stock bm25s's (method lucene, k1 1.5, b 0.75): our count-matrix
    build replaces a step whose internals we read, so it is checked against bm25s itself for
    the versions pyproject.toml allows."""
    import bm25s

    ids, terms = _corpus(300, seed=5)
    ours = LexicalIndex.build(ids, terms, 1)
    order = sorted(range(len(ids)), key=ids.__getitem__)  # our index keeps chunk-id order
    stock = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    stock.index(bm25s.tokenization.Tokenized(*_tokenize([terms[i] for i in order])))
    for query in (["w1"], ["w2", "w3"], ["w59", "w0", "w7", "w7"], ["w10", "nope"]):
        expected = stock.get_scores([t for t in query if t in stock.vocab_dict])
        got = dict(ours.search(query, len(ids)))
        for rank, i in enumerate(order):
            assert got.get(ids[i], 0.0) == pytest.approx(float(expected[rank]), abs=1e-6)


def _tokenize(docs: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in docs]
    return ids, vocab


def test_a_loaded_index_scores_exactly_as_bm25s_does(tmp_path):
    """Readers score a saved index with NumPy on its memory-mapped columns (no bm25s import
    to answer); the scores are bm25s's own, bit for bit, duplicates and unknown terms too."""
    import bm25s
    import numpy as np

    ids, terms = _corpus(300, seed=7)
    LexicalIndex.build(ids, terms, 1).save(tmp_path / "g1")
    ours = LexicalIndex.load(tmp_path / "g1")
    theirs = bm25s.BM25.load(str(tmp_path / "g1"), mmap=True)
    rng = random.Random(8)
    for _ in range(100):
        query = [rng.choice([f"w{i}" for i in range(70)]) for _ in range(rng.randint(1, 6))]
        mine = ours._retriever.get_scores(ours._retriever.get_tokens_ids(query))
        known = theirs.get_tokens_ids(query)
        reference = theirs.get_scores(known) if known else np.zeros(300, np.float32)
        assert np.array_equal(mine, reference), query
        assert [s for _, s in ours.search(query, 10)] == sorted(
            (float(x) for x in reference if x > 0), reverse=True
        )[:10]


def test_a_garbled_scores_file_is_named_without_numpys_pickle_advice(tmp_path):
    ids, terms = _corpus(20, seed=3)
    LexicalIndex.build(ids, terms, 1).save(tmp_path / "g1")
    (tmp_path / "g1" / "data.csc.index.npy").write_bytes(b"\x00garbled" * 50)
    with pytest.raises(IndexCorruptError) as caught:
        LexicalIndex.load(tmp_path / "g1")
    message = str(caught.value)
    assert "data.csc.index.npy is not a NumPy array file" in message
    assert "pickle" not in message and "index check --repair" in message


def test_a_typo_is_read_as_the_corpus_word_but_a_common_word_is_not():
    index = LexicalIndex.build(
        ["c1", "c2"], [["hyperattent", "camel", "speedup"], ["attent", "sink"]], 1
    )
    assert index.spelled("hyperatent") == "hyperattent"  # a name with a letter dropped
    assert index.spelled("speedupp") == "speedup"
    # "came" is one letter from "camel", but it is a word of its own: kept, not corrected
    assert index.spelled("came") is None


def test_a_common_word_is_corrected_only_to_a_spelling_of_itself():
    index = LexicalIndex.build(["c1"], [["neighbor", "camel", "compress"]], 1)
    assert index.spelled("neighbour") is None  # no judge of meaning: kept as written
    assert index.spelled("compressor") == "compress"  # a suffix the stemmer left
    index = LexicalIndex.build(["c1"], [["neighbor", "camel", "compress"]], 1)
    index.same_meaning = lambda word, other: (word, other) == ("neighbour", "neighbor")
    assert index.spelled("neighbour") == "neighbor"
    assert index.spelled("came") is None
