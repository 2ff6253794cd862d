"""Chroma as a server: a real `chroma run`, started the way a user starts it, then ingest and
ask through the command line with --chroma-url / RAG_CHROMA_URL."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import run_cli

from rag_assistant import Assistant
from rag_assistant.errors import VectorStoreError
from rag_assistant.settings import Settings

pytestmark = [pytest.mark.server, pytest.mark.slow]

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_snapshot_sample.json"


def _chroma_command() -> str:
    found = Path(sys.executable).parent / "chroma"
    if found.exists():
        return str(found)
    on_path = shutil.which("chroma")
    if on_path:
        return on_path
    if os.environ.get("CI") == "true":
        pytest.fail("the `chroma` command is not installed (chromadb provides it)")
    pytest.skip("the `chroma` command is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            pytest.fail(f"`chroma run` exited with {process.returncode}: {out[-2000:]}")
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"`chroma run` did not answer at {url} within {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def chroma_server(tmp_path):
    """The URL of a `chroma run` server with its data under tmp_path; stopped afterwards."""
    port = _free_port()
    process = subprocess.Popen(
        [
            _chroma_command(),
            "run",
            "--path",
            str(tmp_path / "chroma-server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        _stop(process)


cli = run_cli


def test_ingest_and_ask_against_a_chroma_server(chroma_server, tmp_path):
    home = str(tmp_path / "home")
    ingest = cli("ingest", str(SAMPLE), "--home", home, "--chroma-url", chroma_server, "--json")
    assert ingest.returncode == 0, ingest.stderr
    report = json.loads(ingest.stdout)
    assert report["added"] == 5

    # the vectors are on the server, not in an embedded store beside the index
    assert not (Path(home) / "chroma").exists()
    import chromadb

    host, port = chroma_server.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    manifest = json.loads((Path(home) / "manifest.json").read_text())
    collection = client.get_collection(manifest["chroma"]["collection"])
    assert collection.count() == report["chunks"]

    # the URL from the environment, as a deployment sets it
    ask = cli(
        "ask",
        "How does SnapKV compress the KV cache?",
        "--home",
        home,
        "--json",
        env={"RAG_CHROMA_URL": chroma_server},
    )
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert not answer["refused"]
    assert "arxiv:2404.14469" in {c["paper_id"] for c in answer["citations"]}


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    settings = Settings(home=tmp_path / "home", chroma_url=closed)
    with pytest.raises(VectorStoreError, match=r"cannot open the Chroma server at http://127"):
        Assistant(settings).ingest([SAMPLE])
    result = cli("ask", "KV cache", "--home", str(tmp_path / "cli"), "--chroma-url", closed)
    assert result.returncode == 2, result.stderr
    assert "Chroma server" in result.stderr and "Traceback" not in result.stderr
