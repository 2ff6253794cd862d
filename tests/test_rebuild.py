"""Rebuild and repair cannot lose what exists (issue 14, findings 1-5 and 8): real
``rag-assistant`` processes killed (SIGKILL, through the failpoints of ``faults.py``) at each
step of ``index rebuild`` and ``index check --repair``, the stale leftovers they left followed
by the commands a user runs next, a zero-byte, an unreadable and a read-only catalog, missing
source files; and an interrupted ingest completed when the next command starts.

Each test works on a private copy of one index; consistency is judged as in
``test_crash.py`` (the catalog's papers and chunks, Chroma, BM25, the manifest, no stray
parts left).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_crash import HYPER, Expected, assert_consistent, run, snapshot, write_files

from rag_assistant import Assistant, cli
from rag_assistant.settings import Settings

pytestmark = pytest.mark.slow

QUESTION = "What is HyperAttention and how fast is it?"
NEW = [
    {"title": f"Quokka Routing {n}", "abstract": f"Quokka routing {n} sends packets by scent."}
    for n in ("Alpha", "Beta", "Gamma")
]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path, Expected]:
    """(papers folder, index, what it holds): listings A and B, ingested by the CLI."""
    root = tmp_path_factory.mktemp("indexed")
    files = write_files(root / "papers", revised=False, with_c=False)
    done = run(root / "home", "ingest", *map(str, files))
    assert done.returncode == 0, done.stderr
    return root / "papers", root / "home", snapshot(root / "home")


@pytest.fixture
def home(indexed, tmp_path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(indexed[1], target)
    return target


def killed(home: Path, *args: str, at: str) -> None:
    done = run(home, *args, failpoint=at)
    assert done.returncode == -signal.SIGKILL, (at, done.stdout + done.stderr[-2000:])


def ok(home: Path, *args: str) -> subprocess.CompletedProcess:
    done = run(home, *args)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done


def cites_hyper(home: Path) -> subprocess.CompletedProcess:
    asked = ok(home, "ask", "--json", QUESTION)
    assert HYPER in [c["title"] for c in json.loads(asked.stdout)["citations"]]
    return asked


def parts(home: Path) -> dict[str, bytes]:
    """The manifest's bytes and the live parts it names (that a killed rebuild must leave)."""
    manifest = json.loads((home / "manifest.json").read_text())
    lexical = home / manifest["lexical"]["dir"]
    return {
        "manifest": (home / "manifest.json").read_bytes(),
        "dense": (home / manifest["dense_model"]).read_bytes(),
        "lexical": (lexical / "chunk_ids.json").read_bytes(),
    }


def extra_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "extra.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in NEW))
    return path


# --- 1. a rebuild killed while it copies the catalog -----------------------------------------


def test_rebuild_killed_while_copying_changes_nothing_and_the_next_completes(indexed, home):
    _, _, expected = indexed
    before = parts(home)
    killed(home, "index", "rebuild", at="rebuild:copying")
    assert parts(home) == before  # the manifest, lexical index and dense model are intact
    assert snapshot(home) == expected  # and the catalog holds what it held
    checked = run(home, "index", "check")
    assert checked.returncode == 1 and "interrupted rebuild" in checked.stdout, checked.stdout
    assert "consistent" not in checked.stdout
    cites_hyper(home)  # readers still answer from the index as it was

    rebuilt = ok(home, "index", "rebuild")
    assert f"rebuilt: {len(expected.papers)} papers" in rebuilt.stdout
    assert "discarded" in rebuilt.stderr  # the leftover was not trusted
    assert_consistent(home, expected)


@pytest.mark.parametrize("point", ["rebuild:before-switch", "rebuild:during-switch"])
def test_rebuild_killed_at_the_switch_is_finished_when_the_next_command_starts(
    point, indexed, home
):
    _, _, expected = indexed
    killed(home, "index", "rebuild", at=point)
    asked = cites_hyper(home)
    assert "note: finished switching to an interrupted rebuild" in asked.stderr
    assert_consistent(home, expected)


# --- 2. a stale leftover never discards later ingests ----------------------------------------


@pytest.mark.parametrize("between", [(), ("index", "check", "--repair")], ids=["", "repair"])
def test_ingests_after_an_interrupted_rebuild_survive_the_next_rebuild(
    between, indexed, home, tmp_path
):
    _, _, expected = indexed
    killed(home, "index", "rebuild", at="rebuild:copying")
    more = ok(home, "ingest", str(extra_file(tmp_path / "more")))
    held = len(expected.papers) + len(NEW)
    assert f"the index holds {held} papers" in more.stdout
    if between:
        repaired = ok(home, *between)
        assert "rebuild: an interrupted rebuild" in repaired.stdout
    rebuilt = ok(home, "index", "rebuild")
    assert f"rebuilt: {held} papers" in rebuilt.stdout
    index = Assistant(Settings(home=home)).index
    assert {r["title"] for r in NEW} <= set(
        index.catalog.titles(index.catalog.all_paper_ids()).values()
    )
    index.close()


# --- 3. a zero-byte catalog ----------------------------------------------------------------


def test_a_zero_byte_catalog_is_damaged_and_its_advice_rebuilds_everything(indexed, home):
    _, _, expected = indexed
    for f in home.glob("catalog.sqlite3-*"):
        f.unlink()
    (home / "catalog.sqlite3").write_bytes(b"")
    manifest = json.loads((home / "manifest.json").read_text())

    asked = run(home, "ask", "--no-stream", QUESTION)
    assert asked.returncode == 2
    assert "is empty (0 bytes)" in asked.stderr and "rag-assistant index rebuild" in asked.stderr
    repaired = run(home, "index", "check", "--repair")
    assert repaired.returncode == 1 and "not repaired" in repaired.stderr
    assert json.loads((home / "manifest.json").read_text()) == manifest  # sources kept

    rebuilt = ok(home, "index", "rebuild")
    assert f"rebuilt: {len(expected.papers)} papers" in rebuilt.stdout
    assert json.loads((home / "manifest.json").read_text())["sources"] == manifest["sources"]
    assert_consistent(home, expected)


# --- 4. a rebuild from the source files killed after its first batch ----------------------


def test_rebuild_from_the_sources_killed_mid_way_keeps_the_source_list(indexed, home):
    _, _, expected = indexed
    for f in home.glob("catalog.sqlite3*"):
        f.unlink()
    manifest = (home / "manifest.json").read_bytes()
    killed(home, "index", "rebuild", at="ingest:after-catalog")
    assert (home / "manifest.json").read_bytes() == manifest  # the source list is intact
    rebuilt = ok(home, "index", "rebuild")
    assert f"rebuilt: {len(expected.papers)} papers" in rebuilt.stdout
    assert_consistent(home, expected)


# --- 5. missing sources, an unreadable and a read-only catalog ------------------------------


def test_a_rebuild_that_would_lose_papers_stops_naming_the_missing_files(tmp_path):
    files = write_files(tmp_path / "papers", revised=False, with_c=False)
    home = tmp_path / "home"
    ok(home, "ingest", *map(str, files))
    for f in home.glob("catalog.sqlite3*"):
        f.unlink()
    files[1].unlink()  # b.txt is gone
    manifest = (home / "manifest.json").read_bytes()

    stopped = run(home, "index", "rebuild")
    assert stopped.returncode == 2, stdout_and_err(stopped)
    assert f"{files[1]} (missing)" in stopped.stderr and "--allow-shrink" in stopped.stderr
    assert (home / "manifest.json").read_bytes() == manifest
    assert not (home / "rebuild").exists()

    shrunk = ok(home, "index", "rebuild", "--allow-shrink")
    assert "rebuilt: 16 papers" in shrunk.stdout
    assert ok(home, "index", "check").stdout.strip() == "the index is consistent"


def stdout_and_err(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr[-3000:]


def test_an_unreadable_catalog_is_named_as_such_and_never_deleted(home, no_root_bypass):
    """Permission denied is not damage: named as such, and nothing is changed or deleted."""
    catalog = home / "catalog.sqlite3"
    content = catalog.read_bytes()
    catalog.chmod(0)
    environment = dict(os.environ, RAG_ASSISTANT_HOME=str(home))
    try:
        for args in (["ask", "--no-stream", QUESTION], ["index", "check"], ["index", "rebuild"]):
            done = subprocess.run(
                [*no_root_bypass, sys.executable, "-m", "rag_assistant.cli", *args],
                capture_output=True,
                text=True,
                env=environment,
                timeout=300,
            )
            assert done.returncode == 2, (args, stdout_and_err(done))
            assert "permission denied" in done.stderr and "is not damaged" in done.stderr, (
                args,
                done.stderr,
            )
            assert "is damaged" not in done.stderr and "Traceback" not in done.stderr
    finally:
        catalog.chmod(0o644)
    assert catalog.read_bytes() == content
    assert not (home / "rebuild").exists() and not (home / "catalog.damaged.sqlite3").exists()


def test_a_read_only_index_is_named_as_such_and_nothing_is_changed(indexed, tmpfs):
    home = tmpfs / "home"
    shutil.copytree(indexed[1], home)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for args in (["ingest", str(indexed[0])], ["index", "rebuild"], ["index", "check"]):
        done = run(home, *args)
        assert done.returncode == 2, (args, stdout_and_err(done))
        assert "read-only file system" in done.stderr, (args, done.stderr)
        assert "is damaged" not in done.stderr and "Traceback" not in done.stderr


# --- a repair killed, and a repair that must not delete healthy parts ---------------------


@pytest.mark.parametrize("point", ["repair:before-sync", "ingest:during-embedding"])
def test_repair_killed_is_completed_by_the_next_command(point, indexed, home):
    _, _, expected = indexed
    manifest = json.loads((home / "manifest.json").read_text())
    (home / manifest["dense_model"]).unlink()
    (home / manifest["lexical"]["dir"] / "counts.npz").unlink()
    killed(home, "index", "check", "--repair", at=point)
    asked = cites_hyper(home)  # the next command completes what the repair left
    assert "note: completed an interrupted ingest" in asked.stderr
    assert_consistent(home, expected)


# --- 8. an interrupted ingest is completed when the CLI or the UI starts ------------------------


def test_an_interrupted_ingest_is_completed_when_the_cli_starts(home, tmp_path):
    killed(home, "ingest", str(extra_file(tmp_path / "more")), at="ingest:during-embedding")
    status = json.loads(ok(home, "index", "status", "--json").stdout)
    assert status["pending_vectors"] > 0
    assert status["interrupted"].startswith("an interrupted ingest left")

    asked = ok(home, "ask", "--json", "How does Quokka routing Beta send packets?")
    assert "note: completed an interrupted ingest" in asked.stderr
    assert "Quokka Routing Beta" in [c["title"] for c in json.loads(asked.stdout)["citations"]]
    status = json.loads(ok(home, "index", "status", "--json").stdout)
    assert (status["pending_vectors"], status["lexical_stale"], status["interrupted"]) == (
        0,
        False,
        "",
    )
    assert ok(home, "index", "check").stdout.strip() == "the index is consistent"


HOLD_LOCK = """
import sys
from rag_assistant.index import Index
from rag_assistant.settings import Settings
with Index(Settings(home=sys.argv[1])).writing():
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_resume_interrupted_api_busy_then_completed_and_the_ui_resumes_before_serving(
    home, tmp_path, monkeypatch
):
    killed(home, "ingest", str(extra_file(tmp_path / "more")), at="ingest:after-chroma")
    assistant = Assistant(Settings(home=home))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        recovery = assistant.resume_interrupted()
        assert recovery.state == "busy"
        assert f"pid {holder.pid} is writing" in recovery.message
        assert assistant.status().interrupted.startswith(f"an ingest is running (pid {holder.pid})")
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assistant.index.close()

    seen = {}

    def serve(assistant, **_options):  # what `rag-assistant ui` would serve
        seen["status"] = assistant.status()

    monkeypatch.setattr("rag_assistant.ui.serve", serve)
    assert cli.main(["ui", "--home", str(home), "--no-browser"]) == 0
    assert seen["status"].interrupted == "" and not seen["status"].lexical_stale
    assert Assistant(Settings(home=home)).resume_interrupted().state == "none"
