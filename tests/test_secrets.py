"""Secrets: with a sentinel API key in the environment, nothing the tool writes (files under
its home, the user's home and the temp dir; stdout, stderr; log records at DEBUG) contains
the key, whatever happens: ingest, offline answers, generated answers, a 401, a 500, the
index commands and an evaluation run.

The CLI runs as real processes, as a user starts it; the endpoint is the local
OpenAI-compatible server of tests/openai_server.py over HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer, Reply

from rag_assistant import Assistant
from rag_assistant.errors import LLMAuthenticationError, LLMUnavailableError
from rag_assistant.settings import Settings

SENTINEL = f"sk-SENTINEL-{secrets.token_hex(12)}"
QUESTION = "How does HyperAttention make long-context attention faster?"
QA = Path(__file__).resolve().parents[1] / "eval" / "qa.jsonl"


@pytest.fixture
def server():
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_sentinel_key_never_written_printed_or_logged(home, server, tmp_path, caplog):
    user_home, tmp_dir, out = tmp_path / "user", tmp_path / "tmp", tmp_path / "eval-out"
    for d in (user_home, tmp_dir):
        d.mkdir()
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        json.dumps({"title": "Sentinel Attention", "abstract": "Attention that keeps watch."})
        + "\n"
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(QA.read_text(encoding="utf-8").splitlines()[:2]) + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(user_home),
        "TMPDIR": str(tmp_dir),
        "XDG_DATA_HOME": str(user_home / ".local" / "share"),
        "XDG_CACHE_HOME": str(user_home / ".cache"),
        "ANONYMIZED_TELEMETRY": "False",
        "RAG_ASSISTANT_HOME": str(home),
        "OPENAI_API_KEY": SENTINEL,
        "RAG_ASSISTANT_OPENAI__MAX_RETRIES": "1",
        "RAG_ASSISTANT_OPENAI__TIMEOUT": "5",
    }
    with_server = {**env, "OPENAI_BASE_URL": server.url}
    cli = [sys.executable, "-m", "rag_assistant.cli", "-vv"]
    outputs: list[str] = []

    def run(*args: str, environment: dict = env, ok: bool = True) -> None:
        done = subprocess.run(
            [*cli, *args], env=environment, capture_output=True, text=True, cwd=tmp_path
        )
        outputs.extend([done.stdout, done.stderr])
        assert (done.returncode == 0) == ok, (args, done.stderr[-2000:])

    run("ingest", str(papers))
    run("ask", "--llm", "offline", QUESTION)
    server.script("HyperAttention approximates attention in near-linear time [1].")
    run("ask", QUESTION, environment=with_server)
    server.script(Reply(status=401))
    run("ask", QUESTION, environment=with_server, ok=False)
    server.script(Reply(status=500), Reply(status=500))
    run("ask", "--no-stream", QUESTION, environment=with_server, ok=False)
    run("index", "status")
    server.default = lambda body: Reply("The abstracts say so [1].")
    run("eval", "--qa", str(qa), "--out", str(out), environment=with_server)
    assert (out / "report.json").exists()
    assert len(server.requests) >= 4  # the endpoint was really called, with the key
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SENTINEL}"

    # the same in this process, with every log record kept
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        home=home, openai={"base_url": server.url, "api_key": SENTINEL, "max_retries": 1}
    )
    assistant = Assistant(settings)
    server.default = lambda body: Reply("fallback [1]")
    server.script(Reply(status=401))
    with pytest.raises(LLMAuthenticationError) as auth:
        assistant.ask(QUESTION)
    server.script(Reply(status=500), Reply(status=500))
    with pytest.raises(LLMUnavailableError) as down:
        assistant.ask(QUESTION)
    answer = assistant.ask(QUESTION)
    in_process = [
        caplog.text,
        *(r.getMessage() for r in caplog.records),
        str(auth.value),
        repr(auth.value),
        str(down.value),
        repr(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
        json.dumps(answer.to_dict()),
        repr(assistant.status()),
    ]

    written = files_under(home, user_home, tmp_dir, out, tmp_path / "papers.jsonl")
    assert written  # the index, the report and whatever else was written are all searched
    leaks = [str(p) for p in written if SENTINEL.encode() in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(outputs + in_process) if SENTINEL in text]
    assert leaks == []
    # the redaction is not hiding a half of it either
    assert not any(SENTINEL[:20] in text for text in outputs + in_process)
