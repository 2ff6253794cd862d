"""Crash safety: an ingest killed (SIGKILL, through the failpoints in ``faults.py``) at each
step is completed by the next ingest, and a damaged or missing part of the index gives an
error naming the part and is repaired by ``rag-assistant index check --repair`` /
``index rebuild``.

The ingests run as real ``rag-assistant`` processes; consistency is judged through the
Index, catalog, Chroma and lexical-index APIs against an index of the same files built
without interruption.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.corpus import ReadLog, bundled_corpus_dir, parse_paths, read_listing
from rag_assistant.errors import IndexCorruptError
from rag_assistant.faults import INGEST_POINTS
from rag_assistant.index import Index
from rag_assistant.settings import Settings

pytestmark = pytest.mark.slow

CORPUS = bundled_corpus_dir()
FILE_A = "002_5cbc21105e64d11d.txt"  # In-Context Meta LoRA Generation among them
FILE_B = "003_ba0ccbb7d12615d2.txt"  # HyperAttention among them
FILE_C = "000_ec93643d3fa06c7b.txt"
REVISED_TITLE = "In-Context Meta LoRA Generation"
REVISION = " The generator was later renamed Quokkagen for the camera-ready version."
HYPER = "HyperAttention: Long-context Attention in Near-Linear Time"


def cli() -> list[str]:
    """The console script installed beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("rag-assistant")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag_assistant.cli"]


def run(home: Path, *args: str, failpoint: str | None = None, env: dict | None = None):
    environment = dict(os.environ, RAG_ASSISTANT_HOME=str(home), **(env or {}))
    # several embedding batches, so a kill during embedding leaves some chunks pending
    environment.setdefault("RAG_ASSISTANT_EMBEDDING__BATCH_SIZE", "8")
    if failpoint:
        environment["RAG_ASSISTANT_FAILPOINT"] = failpoint
    return subprocess.run(
        [*cli(), *args], capture_output=True, text=True, env=environment, timeout=300
    )


KEEP = 16  # papers kept from each listing: enough for chunks in several batches, and quick


def _trimmed(name: str, must: str) -> str:
    """The first ``KEEP`` papers of a bundled listing (``must`` among them), as a listing."""
    papers = list(read_listing(CORPUS / name, log=ReadLog()))
    at = next(i for i, p in enumerate(papers) if p.title == must)
    chosen = papers[:KEEP] if at < KEEP else [*papers[: KEEP - 1], papers[at]]
    return "".join(f"{p.title}\n{p.abstract}\n\n" for p in chosen)


def write_files(folder: Path, *, revised: bool, with_c: bool) -> list[Path]:
    """Listings A, B (and C), trimmed copies of bundled ones; ``revised``: one abstract of A
    gains a sentence (an update)."""
    folder.mkdir(parents=True, exist_ok=True)
    text_a = _trimmed(FILE_A, REVISED_TITLE)
    if revised:
        lines = text_a.split("\n")
        at = lines.index(REVISED_TITLE)
        lines[at + 1] += REVISION
        text_a = "\n".join(lines)
    (folder / "a.txt").write_text(text_a)
    (folder / "b.txt").write_text(_trimmed(FILE_B, HYPER))
    files = [folder / "a.txt", folder / "b.txt"]
    if with_c:
        text_c = _trimmed(FILE_C, next(iter(read_listing(CORPUS / FILE_C, log=ReadLog()))).title)
        (folder / "c.txt").write_text(text_c)
        files.append(folder / "c.txt")
    return files


@dataclass
class Expected:
    papers: dict[str, str]  # paper id -> content hash
    chunk_ids: set[str]


def snapshot(home: Path) -> Expected:
    index = Index(Settings(home=home))
    try:
        ids = index.catalog.all_paper_ids()
        hashes = index.catalog.paper_hashes(ids)
        return Expected({pid: h[0] for pid, h in hashes.items()}, index.catalog.chunk_ids())
    finally:
        index.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Expected:
    """The index of the final files (A revised, B, C), built without interruption."""
    root = tmp_path_factory.mktemp("reference")
    files = write_files(root / "papers", revised=True, with_c=True)
    Assistant(Settings(home=root / "home")).ingest(files)
    expected = snapshot(root / "home")
    assert set(expected.papers) == set(parse_paths(files).papers)
    return expected


def assert_consistent(home: Path, expected: Expected) -> None:
    index = Index(Settings(home=home))
    try:
        assert index.check() == []
        status = index.status()
        assert status.pending_vectors == 0 and not status.lexical_stale
        assert snapshot(home) == expected
        catalog_ids = index.catalog.chunk_ids()
        assert index.catalog.tombstones() == []

        manifest = index.manifest()
        assert manifest.papers == len(expected.papers)
        assert manifest.chunks == len(catalog_ids)
        collection = manifest.chroma.collection
        assert index.vectors.ids(collection) == catalog_ids
        assert index.vectors.count(collection) == len(catalog_ids)  # no duplicates in Chroma
        # one collection of this index is left: stale ones are dropped
        prefix = index.collection_name("")
        assert [n for n in index.vectors.collection_names() if n.startswith(prefix)] == [collection]

        lexical = index.lexical()
        assert len(lexical.chunk_ids) == len(set(lexical.chunk_ids))  # no duplicates in BM25
        assert set(lexical.chunk_ids) == catalog_ids
        assert [d.name for d in (home / "lexical").iterdir()] == [Path(manifest.lexical.dir).name]
        assert not (home / "manifest.json.tmp").exists()
    finally:
        index.close()


def assert_answers(home: Path) -> None:
    assistant = Assistant(Settings(home=home))
    answer = assistant.ask("What is HyperAttention and how fast is it?")
    assert not answer.refused
    assert HYPER in [c.title for c in answer.citations]
    revised = assistant.ask("Which generator was renamed Quokkagen?")
    assert "Quokkagen" in revised.text
    assert REVISED_TITLE in [c.title for c in revised.citations]
    assistant.index.close()


def assert_some_pending(home: Path) -> None:
    """A kill during embedding leaves the state the test means: the first batch of vectors
    is in Chroma and the rest are not (RAG_ASSISTANT_EMBEDDING__BATCH_SIZE=8 makes several
    batches; a setting that did not bound the batch wrote them all at once)."""
    # counted in a process of its own: an embedded Chroma client opened here would keep the
    # vectors it loaded, and this process reads the index again after the next ingest
    script = (
        "import sys; from rag_assistant.index import Index; from rag_assistant.settings "
        "import Settings; i = Index(Settings(home=sys.argv[1])); "
        "print(i.vectors.count(i.catalog.dense_state().collection), len(i.catalog.chunk_ids()))"
    )
    counted = subprocess.run(
        [sys.executable, "-c", script, str(home)], capture_output=True, text=True, timeout=120
    )
    assert counted.returncode == 0, counted.stderr[-2000:]
    in_chroma, total = map(int, counted.stdout.split())
    assert 0 < in_chroma < total, (in_chroma, total)


def kill_then_resume(home: Path, files: list[Path], failpoints: tuple[str, ...]) -> None:
    args = ["ingest", *map(str, files)]
    for point in failpoints:
        killed = run(home, *args, failpoint=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        if point == "ingest:during-embedding":
            assert_some_pending(home)
    resumed = run(home, *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


# --- killed ingests ---------------------------------------------------------------------

INCREMENTAL = [(p,) for p in INGEST_POINTS]


def base_ab(folder: Path, home: Path) -> None:
    """An index of A and B (before the revision) in ``home``, built by one uninterrupted
    ingest of the files in ``folder`` (a revision is a change of the file a paper came from:
    a file elsewhere with another abstract does not replace it)."""
    files = write_files(folder, revised=False, with_c=False)
    Assistant(Settings(home=home)).ingest(files)


@pytest.mark.parametrize("failpoints", INCREMENTAL, ids="+".join)
def test_incremental_ingest_killed_is_completed_by_the_next(failpoints, reference, tmp_path):
    """A+B indexed; then A (one abstract revised) + B + C is ingested and killed."""
    home = tmp_path / "home"
    base_ab(tmp_path / "papers", home)
    files = write_files(tmp_path / "papers", revised=True, with_c=True)

    for point in failpoints:
        killed = run(home, "ingest", *map(str, files), failpoint=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        if point == "ingest:during-embedding":
            assert_some_pending(home)
        # readers still see a working index between the kill and the next ingest. The reader
        # is its own process: an embedded Chroma client keeps the vectors it loaded, so one
        # opened in this process would not see what the next ingest writes.
        asked = run(home, "ask", "--json", "What is HyperAttention and how fast is it?")
        assert asked.returncode == 0, asked.stderr[-2000:]
        assert HYPER in [c["title"] for c in json.loads(asked.stdout)["citations"]]

    resumed = run(home, "ingest", *map(str, files))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_consistent(home, reference)
    assert_answers(home)


FRESH = [("ingest:during-embedding", "ingest:during-manifest")]


@pytest.mark.parametrize("failpoints", FRESH, ids="+".join)
def test_first_ingest_killed_is_completed_by_the_next(failpoints, reference, tmp_path):
    home = tmp_path / "home"
    files = write_files(tmp_path / "papers", revised=True, with_c=True)
    for point in failpoints:
        killed = run(home, "ingest", *map(str, files), failpoint=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        if point == "ingest:during-embedding":
            assert_some_pending(home)
    # no manifest yet: a reader is told which part is missing and what to run
    with pytest.raises(IndexCorruptError, match="manifest"):
        Assistant(Settings(home=home)).ask("What is HyperAttention?")
    resumed = run(home, "ingest", *map(str, files))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_consistent(home, reference)
    assert_answers(home)


def test_ingest_killed_while_refitting_is_completed_by_the_next(reference, tmp_path):
    """A alone indexed; A' + B + C more than doubles it, so the dense model is refitted into a
    new collection, and the ingest is killed while that collection fills."""
    home = tmp_path / "home"
    base = write_files(tmp_path / "papers", revised=False, with_c=False)[:1]
    assert run(home, "ingest", str(base[0])).returncode == 0
    files = write_files(tmp_path / "papers", revised=True, with_c=True)
    kill_then_resume(home, files, ("ingest:during-embedding",))
    assert_consistent(home, reference)
    assert_answers(home)

    again = run(home, "ingest", *map(str, files), "--json")
    assert again.returncode == 0
    report = json.loads(again.stdout)
    assert (report["added"], report["updated"], report["removed"]) == (0, 0, 0)


# --- damaged or missing parts -----------------------------------------------------------

SMALL_QUESTION = "What does In-Context Meta LoRA Generation generate?"


def _garble(path: Path) -> None:
    path.write_bytes(b'{"format": 1, "embed\x00ding": [' + os.urandom(64))


def _damage_lexical_file(home: Path, name: str) -> Path:
    (directory,) = (home / "lexical").iterdir()
    return directory / name


def _swap_two_lexical_ids(home: Path) -> None:
    path = _damage_lexical_file(home, "chunk_ids.json")
    ids = json.loads(path.read_text())
    ids[0], ids[-1] = ids[-1], ids[0]
    path.write_text(json.dumps(ids))


def _name_a_missing_collection(home: Path) -> None:
    manifest = json.loads((home / "manifest.json").read_text())
    manifest["chroma"]["collection"] = "rag_chunks_gone"
    (home / "manifest.json").write_text(json.dumps(manifest))


def _dense_model(home: Path) -> Path:
    (path,) = (home / "dense").iterdir()
    return path


# case: (damage, the part the messages name, the command that fixes it)
DAMAGE = {
    "manifest-damaged": (lambda h: _garble(h / "manifest.json"), "manifest", "check --repair"),
    "lexical-ids-missing": (
        lambda h: _damage_lexical_file(h, "chunk_ids.json").unlink(),
        "lexical index",
        "check --repair",
    ),
    "lexical-ids-reordered": (_swap_two_lexical_ids, "lexical index", "check --repair"),
    "lexical-scores-damaged": (
        lambda h: _garble(_damage_lexical_file(h, "data.csc.index.npy")),
        "lexical index",
        "check --repair",
    ),
    "dense-model-damaged": (lambda h: _garble(_dense_model(h)), "dense model", "check --repair"),
    "dense-model-missing": (lambda h: _dense_model(h).unlink(), "dense model", "check --repair"),
    "chroma-store-damaged": (
        lambda h: (h / "chroma" / "chroma.sqlite3").write_bytes(os.urandom(20000)),
        "Chroma store",
        "check --repair",
    ),
    "manifest-names-a-missing-collection": (
        _name_a_missing_collection,
        "Chroma collection",
        "check --repair",
    ),
    "catalog-missing": (
        lambda h: [p.unlink() for p in h.glob("catalog.sqlite3*")],
        "catalog",
        "rebuild",
    ),
    "catalog-damaged": (
        lambda h: (h / "catalog.sqlite3").write_bytes(os.urandom(20000)),
        "catalog",
        "rebuild",
    ),
}


@pytest.fixture(scope="module")
def small_index(tmp_path_factory) -> tuple[Path, Expected]:
    """An index of listing A alone, built by the CLI as a user would."""
    root = tmp_path_factory.mktemp("small")
    files = write_files(root / "papers", revised=False, with_c=False)[:1]
    assert run(root / "home", "ingest", str(files[0])).returncode == 0
    return root / "home", snapshot(root / "home")


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_part_is_named_and_repaired_from_the_sources(case, small_index, tmp_path):
    damage, part, fix = DAMAGE[case]
    base, expected = small_index
    home = tmp_path / "home"
    shutil.copytree(base, home)
    damage(home)

    lexical_before = _lexical_ids_inode(home)

    asked = run(home, "ask", "--no-stream", SMALL_QUESTION)
    assert asked.returncode == 2, asked.stdout + asked.stderr
    assert asked.stderr.startswith("error: ") and part in asked.stderr
    assert "Traceback" not in asked.stderr
    assert f"rag-assistant index {fix}" in asked.stderr  # says what to run

    checked = run(home, "index", "check")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert part in checked.stdout and f"rag-assistant index {fix}" in checked.stdout

    if part == "catalog":  # the catalog is the truth: `check --repair` cannot remake it
        repaired = run(home, "index", "check", "--repair")
        assert repaired.returncode != 0 and "index rebuild" in repaired.stderr
    fixed = run(home, "index", *fix.split())
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert_consistent(home, expected)  # Index.check() finds nothing, and more
    assert_answers_small(home)
    if part in ("dense model", "Chroma store", "Chroma collection", "manifest"):
        # a repair rebuilds what is damaged, and keeps the healthy lexical index
        assert _lexical_ids_inode(home) == lexical_before


def _lexical_ids_inode(home: Path) -> int | None:
    found = list(home.glob("lexical/*/chunk_ids.json"))
    return found[0].stat().st_ino if len(found) == 1 else None


def test_a_missing_manifest_is_completed_when_the_next_command_starts(small_index, tmp_path):
    """What a first ingest killed before its manifest leaves: the next command completes it."""
    base, expected = small_index
    home = tmp_path / "home"
    shutil.copytree(base, home)
    (home / "manifest.json").unlink()
    asked = run(home, "ask", "--no-stream", SMALL_QUESTION)
    assert asked.returncode == 0, asked.stderr
    assert "note: completed an interrupted ingest" in asked.stderr
    assert_consistent(home, expected)


def test_a_damaged_catalog_page_is_named_and_rebuilt_from_the_sources(small_index, tmp_path):
    base, expected = small_index
    home = tmp_path / "home"
    shutil.copytree(base, home)
    catalog = home / "catalog.sqlite3"
    data = bytearray(catalog.read_bytes())
    assert len(data) > 8 * 4096
    data[4 * 4096 : 8 * 4096] = os.urandom(4 * 4096)  # pages past the header and schema
    catalog.write_bytes(bytes(data))

    checked = run(home, "index", "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr
    assert "catalog: the catalog" in checked.stdout and "is damaged" in checked.stdout
    assert "rag-assistant index rebuild" in checked.stdout
    rebuilt = run(home, "index", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (home / "catalog.damaged.sqlite3").read_bytes() == bytes(data)  # kept, not deleted
    assert_consistent(home, expected)


def test_a_rebuild_with_a_damaged_chroma_store_stops_before_changing_anything(
    small_index, tmp_path
):
    base, expected = small_index
    home = tmp_path / "home"
    shutil.copytree(base, home)
    (home / "chroma" / "chroma.sqlite3").write_bytes(os.urandom(20000))
    before = {p.relative_to(home): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    rebuilt = run(home, "index", "rebuild")
    assert rebuilt.returncode == 2 and "Traceback" not in rebuilt.stderr, rebuilt.stderr
    assert "Chroma store" in rebuilt.stderr and "index check --repair" in rebuilt.stderr
    after = {p.relative_to(home): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.name != "write.lock"} == {
        k: v for k, v in before.items() if k.name != "write.lock"
    }
    assert run(home, "index", "check", "--repair").returncode == 0
    assert_consistent(home, expected)


def assert_answers_small(home: Path) -> None:
    assistant = Assistant(Settings(home=home))
    answer = assistant.ask(SMALL_QUESTION)
    assert REVISED_TITLE in [c.title for c in answer.citations]
    assistant.index.close()


def test_open_reader_sees_vectors_another_process_ingested(small_index, tmp_path):
    """An embedded Chroma client keeps the vectors it loaded; a reader searches the index's
    copy of the vectors, which it reloads when the manifest changes (this was a known
    limitation, an xfail, before the copy)."""
    base, _ = small_index
    home = tmp_path / "home"
    shutil.copytree(base, home)
    reader = Assistant(Settings(home=home))
    reader.retrieve(SMALL_QUESTION)  # the reader has Chroma open
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        json.dumps({"title": "Quokka Routing", "abstract": "Quokkas route packets by scent."})
        + "\n"
    )
    assert run(home, "ingest", str(extra)).returncode == 0
    new_ids = {cid for cid in reader.index.catalog.chunk_ids() if cid.startswith("quokka")}
    assert new_ids
    found = {cid for cid, _ in reader.index.dense_search("Quokkas route packets by scent", 5)}
    assert new_ids <= found
