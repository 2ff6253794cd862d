"""The index: chunking, incremental ingest (idempotent, replace, prune), the settings the
index was built with, the write lock, and check/repair. Every index here is a real one
(SQLite catalog, embedded Chroma, bm25s) built from a few hand-written papers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run_cli

from rag_assistant import Assistant
from rag_assistant.corpus import paper_id_for_title
from rag_assistant.errors import IndexBusyError, IndexMismatchError
from rag_assistant.settings import ChunkingSettings, Settings
from rag_assistant.store.chunking import Chunker
from rag_assistant.text.terms import query_terms
from rag_assistant.text.tokens import encoding
from rag_assistant.types import Paper

ALPHA = "Alpha Sparse Attention for Long Inputs"
BETA = "Beta Decoding with Small Drafts"
GAMMA = "Gamma Retrieval over Tables"
DELTA = "Delta Caching of Key-Value States"

ABSTRACTS = {
    ALPHA: "Alpha keeps the top scoring blocks of the attention matrix and skips the rest. "
    "It cuts the cost of attention four times on inputs of 32k tokens.",
    BETA: "Beta drafts tokens with a small model and verifies them with the large model in "
    "one forward pass. Decoding becomes twice as fast with identical outputs.",
    GAMMA: "Gamma answers questions over spreadsheets by retrieving rows and columns "
    "before reading them. It beats table parsers on three benchmarks.",
    # long enough for several chunks of 64 tokens
    DELTA: "Delta compresses the key-value cache of a transformer by merging the states of "
    "adjacent tokens whose keys are nearly parallel, so that long conversations fit in the "
    "memory of one accelerator. Merged states are weighted by how many tokens they stand "
    "for, which keeps the attention distribution close to the original one. "
    "In experiments on four long-context benchmarks Delta stores the cache in a third of "
    "the memory and loses less than one point of accuracy, and it needs no training at "
    "all, so it can be applied to any pretrained model at inference time with a few "
    "lines of code and no change to the weights of the model.",
}
CHUNKING = {"chunk_size": 64, "chunk_overlap": 8}


def records(*titles: str, **changed: str) -> str:
    """JSON lines for these papers; ``changed`` maps a title to another abstract."""
    return "".join(
        json.dumps({"title": t, "abstract": changed.get(t, ABSTRACTS[t])}) + "\n" for t in titles
    )


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    """a.jsonl holds Alpha and Beta; b.jsonl holds Gamma, Delta and Beta again."""
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "a.jsonl").write_text(records(ALPHA, BETA))
    (folder / "b.jsonl").write_text(records(GAMMA, DELTA, BETA))
    return folder


def small_settings(home: Path, **overrides) -> Settings:
    values = {"home": home, "auto_ingest_bundled": False, "chunking": CHUNKING, **overrides}
    return Settings(**values)


@pytest.fixture
def small(tmp_path, corpus_dir) -> Assistant:
    """An assistant over a fresh index of the four papers of ``corpus_dir``."""
    assistant = Assistant(small_settings(tmp_path / "home"))
    report = assistant.ingest([corpus_dir])
    assert (report.added, report.entries, report.papers) == (4, 5, 4)
    return assistant


def state(assistant: Assistant) -> dict:
    """What each part of the index holds, read from the parts themselves."""
    index = assistant.index
    collection = index.manifest().chroma.collection
    lexical = index.lexical()
    return {
        "papers": index.catalog.counts()[0],
        "catalog": index.catalog.chunk_ids(),
        "chroma": index.vectors.ids(collection),
        "chroma_count": index.vectors.count(collection),
        "lexical": sorted(lexical.chunk_ids),
        "generation": index.catalog.generation,
    }


def chunk_ids_of(assistant: Assistant, title: str) -> set[str]:
    return set(assistant.index.catalog.chunk_ids_of([paper_id_for_title(title)]))


def assert_consistent(assistant: Assistant) -> dict:
    now = state(assistant)
    assert now["chroma"] == now["catalog"] == set(now["lexical"])
    assert now["chroma_count"] == len(now["catalog"]) == len(now["lexical"])
    assert assistant.check() == []
    return now


# --- chunking ---------------------------------------------------------------------------


def test_chunks_fit_the_token_budget_cover_the_abstract_and_carry_title_and_id():
    chunker = Chunker(ChunkingSettings(chunk_size=32, chunk_overlap=4))
    paper = Paper(paper_id_for_title(DELTA), DELTA, ABSTRACTS[DELTA])
    chunks = chunker.chunks(paper)
    count = encoding("cl100k_base").encode_ordinary
    assert len(count(paper.abstract)) > 3 * 32  # so the splitter has to cut it
    assert len(chunks) >= 4
    end = 0
    for ordinal, chunk in enumerate(chunks):
        assert len(count(chunk.text)) <= 32
        assert chunk.ordinal == ordinal
        assert chunk.paper_id == paper.paper_id
        assert chunk.chunk_id == f"{paper.paper_id}::{paper.content_hash[:10]}::{ordinal}"
        assert chunk.title == DELTA and chunk.index_text == f"{DELTA}\n{chunk.text}"
        # each chunk is a piece of the abstract, and no text falls between two chunks
        start = paper.abstract.find(chunk.text)
        assert 0 <= start <= end + 1
        end = max(end, start + len(chunk.text))
    assert chunks[0].text.startswith("Delta compresses")
    assert end == len(paper.abstract)


def test_a_sentence_longer_than_a_chunk_is_cut_between_words():
    chunker = Chunker(ChunkingSettings(chunk_size=32, chunk_overlap=0))
    text = " ".join(f"word{i}" for i in range(100))  # no sentence boundary at all
    pieces = chunker.split_text(text)
    count = encoding("cl100k_base").encode_ordinary
    assert len(pieces) > 1 and all(len(count(p)) <= 32 for p in pieces)
    assert " ".join(pieces).split() == text.split()  # no overlap asked: every word once


def test_an_abstract_within_the_budget_is_one_chunk_unchanged():
    chunker = Chunker(ChunkingSettings())  # the default chunk size
    paper = Paper(paper_id_for_title(ALPHA), ALPHA, ABSTRACTS[ALPHA])
    (chunk,) = chunker.chunks(paper)
    assert chunk.text == ABSTRACTS[ALPHA] and chunk.ordinal == 0
    assert chunker.split_text("   ") == []


@pytest.mark.parametrize("chunk_size", [384, 64])
def test_an_abstract_that_fits_is_cut_as_the_splitter_cuts_it(chunk_size):
    """The chunker returns an abstract within the budget itself; the splitter gives the
    same chunks for every bundled abstract (and for stray white space)."""
    from rag_assistant.corpus import bundled_corpus_dir, parse_paths

    chunker = Chunker(ChunkingSettings(chunk_size=chunk_size, chunk_overlap=8))
    texts = [p.abstract for p in parse_paths([bundled_corpus_dir()]).papers.values()]
    texts += ["  One short sentence.  \n", "   ", "", "\n\nTwo lines\nof text\n"]
    fits = 0
    for text in texts:
        expected = [t for t in chunker.splitter.split_text(text) if t.strip()]
        assert chunker.split_text(text) == expected
        fits += len(encoding("cl100k_base").encode_ordinary(text)) <= chunk_size
    assert 0 < fits < len(texts)  # both paths taken


def test_llama_index_is_imported_only_for_an_abstract_that_needs_splitting():
    script = (
        "import sys\n"
        "from rag_assistant.settings import ChunkingSettings\n"
        "from rag_assistant.store.chunking import Chunker\n"
        "chunker = Chunker(ChunkingSettings(chunk_size=32, chunk_overlap=4))\n"
        "chunker.split_text('A short abstract of one sentence.')\n"
        "print('llama_index.core' in sys.modules)\n"
        "chunker.split_text(' '.join(['A sentence of several words.'] * 20))\n"
        "print('llama_index.core' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]


def test_the_embedded_store_keeps_ids_and_vectors_only(small):
    """The catalog holds texts and titles and readers take them from it: the embedded Chroma
    store is given no copy."""
    index = small.index
    collection = index.manifest().chroma.collection
    stored = index.vectors.collection(collection).get(
        include=["metadatas", "documents", "embeddings"]
    )
    assert set(stored["ids"]) == index.catalog.chunk_ids()
    assert stored["documents"] == [None] * len(stored["ids"])
    assert stored["metadatas"] == [None] * len(stored["ids"])
    assert len(stored["embeddings"][0]) == index.embedder().dimensions
    answer = small.ask("How does Delta compress the key-value cache?")
    assert DELTA in [c.title for c in answer.citations]


def test_chroma_keeps_chunk_texts_and_titles_when_asked(tmp_path, corpus_dir):
    assistant = Assistant(small_settings(tmp_path / "home", chroma_texts="always"))
    assistant.ingest([corpus_dir])
    index = assistant.index
    collection = index.manifest().chroma.collection
    stored = index.vectors.collection(collection).get(include=["metadatas", "documents"])
    rows = index.catalog.chunks(stored["ids"])
    assert len(stored["ids"]) == len(rows) == len(index.catalog.chunk_ids())
    delta_chunks = 0
    for cid, meta, document in zip(
        stored["ids"], stored["metadatas"], stored["documents"], strict=True
    ):
        paper = index.catalog.papers([meta["paper_id"]])[meta["paper_id"]]
        assert cid.startswith(paper.paper_id + "::")
        assert meta["title"] == paper.title
        assert document == rows[cid].text and document in paper.abstract
        delta_chunks += paper.title == DELTA
    assert delta_chunks >= 2  # a 121-token abstract does not fit one 64-token chunk
    assert (index.manifest().chunking.chunk_size, index.status().chunking) == (
        64,
        "64/8 tokens",
    )


@pytest.mark.parametrize(
    ("choice", "url", "keeps"),
    [
        ("auto", None, False),  # embedded: the catalog holds the texts
        ("auto", "http://localhost:8000", True),  # a server's other readers may need them
        ("always", None, True),
        ("never", "http://localhost:8000", False),
    ],
)
def test_what_chroma_keeps_follows_the_setting_and_the_mode(tmp_path, choice, url, keeps):
    settings = Settings(home=tmp_path, chroma_texts=choice, chroma_url=url)
    assert settings.chroma_keeps_texts is keeps


# --- incremental ingest -------------------------------------------------------------------


def test_reingesting_unchanged_files_changes_nothing(small, corpus_dir):
    before = assert_consistent(small)
    report = small.ingest([corpus_dir])
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, 4, 0)
    assert not report.changed
    assert "unchanged: 4" in report.summary() and "nothing changed" in report.summary()
    assert assert_consistent(small) == before


def test_same_paper_in_two_files_is_one_paper_with_both_sources(small, corpus_dir):
    beta = small.index.catalog.papers([paper_id_for_title(BETA)])[paper_id_for_title(BETA)]
    assert beta.sources == [str(corpus_dir / "a.jsonl"), str(corpus_dir / "b.jsonl")]
    assert small.index.catalog.counts()[0] == 4


def test_a_changed_abstract_replaces_only_that_papers_chunks(small, corpus_dir):
    before = state(small)
    old_alpha = chunk_ids_of(small, ALPHA)
    new_text = "Alpha now prunes attention heads with a learned zebra gate."
    (corpus_dir / "a.jsonl").write_text(records(ALPHA, BETA, **{ALPHA: new_text}))

    report = small.ingest([corpus_dir])
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 1, 3, 0)
    after = assert_consistent(small)
    new_alpha = chunk_ids_of(small, ALPHA)
    assert len(new_alpha) == 1 and not new_alpha & old_alpha
    # every other chunk is the very same one
    assert after["catalog"] - new_alpha == before["catalog"] - old_alpha
    paper = small.index.catalog.papers([paper_id_for_title(ALPHA)])[paper_id_for_title(ALPHA)]
    assert paper.abstract == new_text
    # the lexical index sees the new words and not the old ones
    assert [c for c, _ in small.index.lexical_search(query_terms("zebra gate"), 5)] == sorted(
        new_alpha
    )
    assert small.index.lexical_search(query_terms("scoring blocks"), 5) == []


def test_a_metadata_change_keeps_the_chunks(small, corpus_dir):
    before = state(small)
    line = {"title": GAMMA, "abstract": ABSTRACTS[GAMMA], "url": "https://example.org/gamma"}
    (corpus_dir / "b.jsonl").write_text(json.dumps(line) + "\n" + records(DELTA, BETA))
    report = small.ingest([corpus_dir])
    assert (report.added, report.updated, report.unchanged) == (0, 1, 3)
    assert assert_consistent(small)["catalog"] == before["catalog"]
    gamma = small.index.catalog.papers([paper_id_for_title(GAMMA)])[paper_id_for_title(GAMMA)]
    assert gamma.url == "https://example.org/gamma"


def test_prune_removes_papers_whose_file_is_gone(small, corpus_dir):
    gone = chunk_ids_of(small, GAMMA) | chunk_ids_of(small, DELTA)
    (corpus_dir / "b.jsonl").unlink()

    kept = small.ingest([corpus_dir / "a.jsonl"])  # without --prune nothing is removed
    assert (kept.removed, kept.papers) == (0, 4)

    report = small.ingest([corpus_dir / "a.jsonl"], prune=True)
    assert (report.removed, report.unchanged, report.papers) == (2, 2, 2)
    after = assert_consistent(small)
    assert not after["catalog"] & gone
    beta = small.index.catalog.papers([paper_id_for_title(BETA)])[paper_id_for_title(BETA)]
    assert beta.sources == [str(corpus_dir / "a.jsonl")]


def test_prune_keeps_a_paper_another_file_still_holds(small, corpus_dir):
    (corpus_dir / "a.jsonl").write_text(records(ALPHA))  # Beta is still in b.jsonl
    report = small.ingest([corpus_dir], prune=True)
    assert (report.removed, report.papers) == (0, 4)
    beta = small.index.catalog.papers([paper_id_for_title(BETA)])[paper_id_for_title(BETA)]
    assert beta.sources == [str(corpus_dir / "b.jsonl")]

    (corpus_dir / "b.jsonl").write_text(records(GAMMA, DELTA))  # now no file holds Beta
    report = small.ingest([corpus_dir], prune=True)
    assert (report.removed, report.papers) == (1, 3)
    assert chunk_ids_of(small, BETA) == set()
    assert_consistent(small)


# --- the settings the index was built with --------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "difference"),
    [
        (
            {"embedding": {"dimensions": 128}},
            "embedding lsa-tfidf-svd-384 (asked: lsa-tfidf-svd-128)",
        ),
        (
            {"chunking": {"chunk_size": 128, "chunk_overlap": 8}},
            "chunks of 64/8 tokens (asked: 128/8)",
        ),
    ],
)
def test_other_settings_are_refused_with_how_to_rebuild(small, corpus_dir, overrides, difference):
    before = assert_consistent(small)
    other = Assistant(small_settings(small.settings.home, **overrides))
    (corpus_dir / "more.jsonl").write_text(
        json.dumps({"title": "Epsilon", "abstract": "Epsilon is new."})
    )
    with pytest.raises(IndexMismatchError) as err:
        other.ingest([corpus_dir])
    message = str(err.value)
    assert difference in message
    assert "`rag-assistant index rebuild`" in message
    assert assert_consistent(small) == before  # nothing was written

    # the advice works: rebuilt with the new settings, the same ingest goes through
    rebuilt = other.rebuild()
    assert (rebuilt.papers, rebuilt.added) == (4, 4)
    report = other.ingest([corpus_dir])
    assert (report.added, report.unchanged, report.papers) == (1, 4, 5)
    assert_consistent(other)


# --- one writer at a time -------------------------------------------------------------------

HOLD_LOCK = """
import sys
from rag_assistant.index import Index
from rag_assistant.settings import Settings
with Index(Settings(home=sys.argv[1])).writing():
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def test_a_second_writer_is_told_the_index_is_busy(small, corpus_dir):
    before = assert_consistent(small)
    (corpus_dir / "a.jsonl").write_text(records(ALPHA, BETA, **{ALPHA: "Changed text."}))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(small.settings.home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(IndexBusyError) as err:
            small.ingest([corpus_dir])
        assert str(err.value) == (
            f"the index in {small.settings.home} is busy: pid {holder.pid} is writing to it; "
            "try again when it has finished"
        )
        with pytest.raises(IndexBusyError):
            small.repair()
        assert state(small) == before  # the index is intact
        # a check while another process writes says so, instead of calling the chunks that
        # process has not finished problems
        with pytest.raises(IndexBusyError, match=f"pid {holder.pid} is writing"):
            small.check()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert assert_consistent(small) == before

    # the lock went with the process: the next writer goes ahead
    assert small.ingest([corpus_dir]).updated == 1
    assert_consistent(small)


# --- check and repair ---------------------------------------------------------------------


def test_check_finds_and_repair_restores_a_missing_chroma_chunk(small):
    index = small.index
    collection = index.manifest().chroma.collection
    victim = sorted(chunk_ids_of(small, DELTA))[1]
    original = index.vectors.collection(collection).get(ids=[victim], include=["embeddings"])
    index.vectors.delete(collection, [victim])

    (problem,) = small.check()
    assert (problem.part, problem.message) == (
        "chroma",
        "1 chunk(s) of the catalog missing from Chroma; run `rag-assistant index check --repair`",
    )
    assert [p.message for p in small.repair()] == [problem.message]
    assert_consistent(small)
    restored = index.vectors.collection(collection).get(ids=[victim], include=["embeddings"])
    assert restored["embeddings"][0] == pytest.approx(original["embeddings"][0], abs=1e-6)


def test_check_finds_and_repair_removes_a_stray_chroma_chunk_and_a_lost_bm25(small):
    index = small.index
    manifest = index.manifest()
    collection = manifest.chroma.collection
    some = sorted(index.catalog.chunk_ids())[0]
    vector = index.vectors.collection(collection).get(ids=[some], include=["embeddings"])
    index.vectors.upsert(collection, ["stray::0::0"], vector["embeddings"], ["x"], [{"t": 1}])
    for f in (small.settings.home / manifest.lexical.dir).iterdir():
        f.unlink()

    found = sorted((p.part, p.message.split(" (")[0].split(";")[0]) for p in small.check())
    assert found == [
        ("chroma", "1 chunk(s) in Chroma that the catalog does not hold"),
        (
            "lexical",
            f"the lexical index {small.settings.home / manifest.lexical.dir} is missing",
        ),
    ]
    small.repair()
    assert_consistent(small)


def test_index_check_and_repair_from_the_command_line(small, monkeypatch):
    monkeypatch.setenv("RAG_ASSISTANT_CHUNKING__CHUNK_SIZE", "64")
    monkeypatch.setenv("RAG_ASSISTANT_CHUNKING__CHUNK_OVERLAP", "8")
    index = small.index
    collection = index.manifest().chroma.collection
    index.vectors.delete(collection, [sorted(chunk_ids_of(small, ALPHA))[0]])
    env_home = ["--home", str(small.settings.home)]

    def cli(*args):
        return run_cli("index", "check", *args, *env_home, timeout=120)

    found = cli()
    assert found.returncode == 1, found.stderr
    assert found.stdout == (
        "chroma: 1 chunk(s) of the catalog missing from Chroma; "
        "run `rag-assistant index check --repair`\n"
    )
    fixed = cli("--repair")
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.splitlines()[-1] == "repaired"
    clean = cli()
    assert (clean.returncode, clean.stdout) == (0, "the index is consistent\n")
