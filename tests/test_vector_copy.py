"""The exact copy of the vectors (store/vector_copy.py): what it holds, how a sync keeps it,
how readers use it and step aside from it, and what answering a question in a new process
no longer imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag_assistant import Assistant
from rag_assistant.errors import IndexCorruptError
from rag_assistant.settings import Settings
from rag_assistant.store.vector_copy import VectorCopy

PROJECT = Path(__file__).resolve().parents[1]


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _copy(directory, ids, fetch, dimensions, *, base=None, generation=1) -> VectorCopy:
    return VectorCopy.write(
        directory,
        collection="c",
        generation=generation,
        ids=ids,
        base=base,
        fetch=fetch,
        dimensions=dimensions,
    )


def test_search_is_exact_cosine_order_with_ties_by_id(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors[7] = vectors[3]  # a tie: the smaller id first
    ids = [f"c{i:03d}" for i in range(50)]
    fetched: list[list[str]] = []

    def fetch(missing):
        fetched.append(missing)
        return vectors[[ids.index(m) for m in missing]] * 3.0  # unnormalized, as Chroma may

    copy = _copy(tmp_path / "g1", ids, fetch, 8)
    query = vectors[3] + 0.01
    expected = np.argsort(-(_unit(vectors) @ (query / np.linalg.norm(query))), kind="stable")
    found = copy.search(query, 10)
    assert [cid for cid, _ in found] == [ids[i] for i in expected[:10]]
    assert found[0][0] == "c003" and found[1][0] == "c007"
    assert found[0][1] == pytest.approx(found[1][1]) and found[0][1] <= 1.0
    assert copy.search(np.zeros(8), 5) == [] and len(copy.search(query, 500)) == 50
    assert fetched == [ids]


def test_a_new_generation_reads_back_only_the_new_chunks(tmp_path):
    rng = np.random.default_rng(1)
    table = {f"c{i:03d}": _unit(rng.normal(size=(1, 4)))[0].astype(np.float32) for i in range(30)}
    old = sorted(table)[:20]
    first = _copy(tmp_path / "g1", old, lambda m: np.array([table[i] for i in m]), 4)
    fetched: list[str] = []

    def fetch(missing):
        fetched.extend(missing)
        return np.array([table[i] for i in missing])

    now = [i for i in sorted(table) if i not in {"c000", "c005"}]
    second = _copy(tmp_path / "g2", now, fetch, 4, base=first, generation=2)
    assert fetched == sorted(table)[20:]  # the rows the first copy held were not asked for
    assert second.ids == now and second.generation == 2
    np.testing.assert_allclose(second.vectors, np.array([table[i] for i in now]), atol=1e-6)


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda d: (d / "vectors.npy").write_bytes(b"not numpy"), "not a NumPy array file"),
        (lambda d: (d / "chunk_ids.json").unlink(), "missing (chunk_ids.json)"),
        (lambda d: (d / "chunk_ids.json").write_text('["b", "a"]'), "out of order"),
        (lambda d: (d / "chunk_ids.json").write_text('["a"]'), "1 chunk ids for 2 rows"),
    ],
)
def test_a_damaged_copy_is_named_with_its_fix(tmp_path, damage, says):
    _copy(tmp_path / "g1", ["a", "b"], lambda m: np.eye(2, dtype=np.float32), 2)
    damage(tmp_path / "g1")
    with pytest.raises(IndexCorruptError, match="index check --repair") as caught:
        VectorCopy.load(tmp_path / "g1")
    assert says in str(caught.value) and "pickle" not in str(caught.value)


def test_the_copy_holds_what_chroma_holds_and_ranks_as_exact_search(assistant):
    index = assistant.index
    manifest = index.manifest()
    copy = index.vector_copy()
    assert copy is not None and manifest.vector_copy == f"vectors/g{manifest.generation}"
    ids = copy.ids[:: max(1, len(copy.ids) // 40)]
    from_chroma = index.vectors.vectors(manifest.chroma.collection, ids)
    rows = [copy.ids.index(i) for i in ids]
    np.testing.assert_allclose(copy.vectors[rows], _unit(from_chroma), atol=1e-6)
    vector = index.embedder().embed_query("compressing the KV cache of long contexts")
    exact = _unit(np.asarray(index.vectors.vectors(manifest.chroma.collection, copy.ids)))
    best = np.argsort(-(exact @ vector), kind="stable")[:10]
    assert [
        cid for cid, _ in index.dense_search("compressing the KV cache of long contexts", 10)
    ] == [copy.ids[i] for i in best]


def test_incremental_ingest_extends_the_copy(assistant, tmp_path):
    papers = tmp_path / "new.json"
    papers.write_text(
        json.dumps(
            [
                {
                    "title": "Zorblax: Quantized Routing for Sparse Mixtures",
                    "abstract": "We present Zorblax, a router that quantizes expert scores. "
                    "Zorblax halves the memory of routing tables on eight benchmarks.",
                }
            ]
        )
    )
    before = assistant.index.vector_copy()
    assistant.ingest([papers])
    after = assistant.index.vector_copy()
    assert after is not None and after.generation == before.generation + 1
    assert len(after) == len(before) + 1
    assert not before.directory.exists()  # the sync removed the copy it replaced
    top = assistant.retrieve("Zorblax router", k=1)
    assert top[0].title.startswith("Zorblax")


def test_a_damaged_copy_falls_back_to_chroma_and_repair_copies_it_again(assistant, caplog):
    index = assistant.index
    copy = index.vector_copy()
    question = "Which papers compress the KV cache?"
    expected = [c.title for c in assistant.ask(question).citations]
    (copy.directory / "vectors.npy").write_bytes(b"damaged")
    fresh = Assistant(Settings(home=index.home))
    assert fresh.index.vector_copy() is None and "searching Chroma" in caplog.text
    assert [c.title for c in fresh.ask(question).citations] == expected
    problems = fresh.index.check()
    assert [p.part for p in problems] == ["vector copy"] and problems[0].repairable
    fresh.index.repair()
    assert fresh.index.check() == []
    again = Assistant(Settings(home=index.home))
    assert again.index.vector_copy() is not None
    assert [c.title for c in again.ask(question).citations] == expected


def test_the_chroma_setting_searches_chroma(home):
    chroma = Assistant(Settings(home=home, retrieval={"dense_search": "chroma"}))
    exact = Assistant(Settings(home=home))
    assert chroma.index.vector_copy() is None and exact.index.vector_copy() is not None
    question = "speculative decoding with a draft model"
    assert [c.title for c in chroma.retrieve(question)][:3] == [
        c.title for c in exact.retrieve(question)
    ][:3]


def test_answering_in_a_new_process_opens_neither_chroma_nor_scipy(bundled_home, tmp_path):
    """What a new process answering one question imports: not chromadb, bm25s, scipy,
    scikit-learn, llama-index, gradio or tiktoken (python -X importtime showed chromadb
    alone at 0.6-0.7 s, bm25s with scipy.sparse at 0.25 s)."""
    script = (
        "import sys\n"
        "from rag_assistant import Assistant\n"
        "from rag_assistant.settings import Settings\n"
        f"answer = Assistant(Settings(home={str(bundled_home)!r})).ask("
        "'How does SnapKV decide which KV cache entries to keep?')\n"
        "assert answer.citations, answer.text\n"
        "heavy = {'chromadb', 'bm25s', 'scipy', 'sklearn', 'llama_index', 'gradio', 'tiktoken'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_vectors_written_are_kept_within_a_budget_and_the_rest_read_back():
    from rag_assistant.store.vector_copy import WrittenVectors

    rows = np.arange(20, dtype=np.float32).reshape(5, 4)
    kept = WrittenVectors(budget=3 * 16)  # three rows of four float32
    kept.add("c", ["a", "b", "c", "d", "e"], rows)
    kept.add("c", ["a"], rows[4:5])  # written again: the last write is what Chroma holds
    asked: list[list[str]] = []

    def read(ids):
        asked.append(ids)
        return np.array([rows["abcde".index(i)] for i in ids])

    got = kept.fetcher("c", read)(["e", "a", "d", "b"])
    assert asked == [["e", "d"]]
    np.testing.assert_array_equal(got, rows[[4, 4, 3, 1]])
    assert kept.fetcher("other", read)(["b"]).tolist() == [rows[1].tolist()]


def test_a_first_ingest_copies_what_it_wrote_without_reading_chroma_back(tmp_path, monkeypatch):
    from rag_assistant.store.vectors import VectorStore

    calls: list[int] = []
    original = VectorStore.vectors
    monkeypatch.setattr(
        VectorStore,
        "vectors",
        lambda self, name, ids: calls.append(len(ids)) or original(self, name, ids),
    )
    assistant = Assistant(Settings(home=tmp_path / "home"))
    assistant.ingest_bundled()
    copy = assistant.index.vector_copy()
    assert copy is not None and len(copy) == assistant.index.catalog.counts()[1]
    assert calls == []


def test_a_rebuilt_index_searches_its_own_copy(assistant):
    before = assistant.ask("Which papers compress the KV cache?")
    assistant.index.rebuild()
    fresh = Assistant(Settings(home=assistant.index.home))
    copy = fresh.index.vector_copy()
    assert copy is not None and copy.holds(fresh.index.catalog.chunk_ids())
    assert copy.collection == fresh.index.manifest().chroma.collection
    assert [p.name for p in (fresh.index.home / "vectors").iterdir()] == [copy.directory.name]
    again = fresh.ask("Which papers compress the KV cache?")
    assert [c.title for c in again.citations] == [c.title for c in before.citations]
