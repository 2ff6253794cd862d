"""A full disk, a folder without write permission and a home that is a file give typed
errors with a message that says what to do, never a traceback; nothing is lost, and once the
disk has room the same command completes the work (issue 14, finding 15). The read-only
file system and the unreadable catalog are in ``test_rebuild.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_rebuild import stdout_and_err

from rag_assistant import Assistant, cli
from rag_assistant.errors import HomeNotADirectoryError
from rag_assistant.settings import Settings

QUESTION = "What is HyperAttention and how fast is it?"


def command(home: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "rag_assistant.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, RAG_ASSISTANT_HOME=str(home)),
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize("size", ["3m", "14m"], ids=["sqlite-or-files", "chroma"])
def test_a_full_disk_is_named_and_the_same_command_completes_once_there_is_room(size, tmpfs):
    """On a tmpfs too small for the bundled index (3 MiB fills while the catalog and the
    dense model are written, 14 MiB while Chroma writes), the ingest stops with a message;
    grown to 128 MiB (the index takes 51 with the sentence encoder's vectors), the same
    command completes it."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(tmpfs)], check=True)
    home = tmpfs / "home"
    full = command(home, "ingest")
    assert full.returncode == 2, stdout_and_err(full)
    assert full.stderr.startswith("error: ") and "is full" in full.stderr, full.stderr
    assert "free some space and try again" in full.stderr and "Traceback" not in full.stderr

    subprocess.run(["mount", "-o", "remount,size=128m", str(tmpfs)], check=True)
    again = command(home, "ingest")
    assert again.returncode == 0, stdout_and_err(again)
    assert "the index holds 530 papers" in again.stdout
    assert command(home, "index", "check").stdout.strip() == "the index is consistent"
    asked = command(home, "ask", "--json", QUESTION)
    assert asked.returncode == 0, stdout_and_err(asked)
    assert json.loads(asked.stdout)["citations"]


def test_an_index_folder_without_write_permission_is_named(tmp_path, no_root_bypass):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    try:
        done = command(home, "ingest", prefix=tuple(no_root_bypass))
    finally:
        home.chmod(0o755)
    assert done.returncode == 2, stdout_and_err(done)
    assert f"permission denied on {home}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("under", [False, True], ids=["file", "under-a-file"])
@pytest.mark.parametrize(
    "args",
    [
        ["ask", QUESTION],
        ["ingest"],
        ["index", "check"],
        ["index", "status"],
        ["index", "rebuild"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_home_that_is_a_file_is_named_by_every_command(args, under, tmp_path, capsys):
    path = tmp_path / "not-a-folder"
    path.write_text("a file")
    home = path / "index" if under else path
    assert cli.main(["--home", str(home), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{path} is a file, not a folder" in err
    assert "RAG_ASSISTANT_HOME" in err
    assert path.read_text() == "a file"


def test_the_python_api_raises_the_typed_error_for_a_home_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(HomeNotADirectoryError, match="is a file, not a folder"):
        Assistant(Settings(home=path))
