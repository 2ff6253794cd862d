"""Shared fixtures. Every test runs with a clean environment: no RAG_ASSISTANT_* or OPENAI_*
variables from the developer's shell, and an index directory under pytest's tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache of the sentence encoder's ONNX graph for the whole session (90 MB)."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path, model_cache):
    for name in list(os.environ):
        if name.startswith(("RAG_ASSISTANT_", "RAG_CHROMA", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(model_cache))
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def bundled_home(tmp_path_factory) -> Path:
    """An index of the bundled corpus, built once per test session. Do not write to it:
    use the ``assistant`` fixture (a private copy) for tests that ingest."""
    home = tmp_path_factory.mktemp("bundled") / "home"
    Assistant(Settings(home=home)).ingest_bundled()
    return home


@pytest.fixture(scope="session")
def index_papers():
    """A function ingesting ``(title, abstract)`` pairs, written as a JSON Lines file in
    ``folder``, into a new index there (without the bundled corpus); it returns its home."""

    def ingest(folder: Path, papers: list[tuple[str, str]]) -> Path:
        source = folder / "papers.jsonl"
        lines = (json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers)
        source.write_text("".join(lines))
        Assistant(home=folder / "home", auto_ingest_bundled=False).ingest([source])
        return folder / "home"

    return ingest


@pytest.fixture
def home(tmp_path, bundled_home) -> Path:
    """A private copy of the bundled index."""
    target = tmp_path / "bundled-copy"
    shutil.copytree(bundled_home, target)
    return target


@pytest.fixture
def assistant(home) -> Assistant:
    """An offline assistant over a private copy of the bundled index."""
    return Assistant(Settings(home=home))


@pytest.fixture
def empty_assistant(tmp_path) -> Assistant:
    """An offline assistant over an empty index that will not ingest the bundled corpus."""
    return Assistant(Settings(home=tmp_path / "empty", auto_ingest_bundled=False))


@pytest.fixture(scope="session")
def say(request):
    """say(line): write a measured figure to the terminal past pytest's output capture."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\n{line}")

    return write


@pytest.fixture
def no_root_bypass() -> list[str]:
    """A command prefix under which file permissions apply. Root reads a file of mode 000,
    so as root the command runs without the capabilities that let it (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH), through util-linux's ``setpriv``; skipped without it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to apply")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 MiB tmpfs mounted for the test (to make a full or a read-only disk); skipped
    unless running as root with the right to mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (to make a full or a read-only disk)")
    point = tmp_path / "mnt"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed: {mounted.stderr.decode().strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)
