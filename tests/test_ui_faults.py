"""The chat UI stays responsive while the model endpoint hangs: a question in LLM mode waits
on a hanging endpoint, another user's question is answered in the meantime, and the hanging
one ends with an error message in the chat within the documented bound.

The app is launched as ``rag-assistant ui`` launches it (``serve``) and driven over HTTP by
gradio_client; the endpoint is the local OpenAI-compatible test server.
"""

from __future__ import annotations

import shutil
import socket
import time

import pytest
from gradio_client import Client
from openai_server import OpenAIServer, Reply

from rag_assistant import Assistant
from rag_assistant.settings import Settings
from rag_assistant.ui import serve

QUESTION = "What is HyperAttention and how fast is it?"
HANG = 90.0  # the endpoint would keep the request this long; the client gives up after 10 s
GUARD = 45.0  # a generous bound on waiting for the hanging question to end


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hanging_app(tmp_path, bundled_home):
    server = OpenAIServer().start()
    server.default = lambda body: Reply("late [1]", hang=HANG)
    home = tmp_path / "home"
    shutil.copytree(bundled_home, home)
    settings = Settings(
        home=home, openai={"base_url": server.url, "timeout": 10.0, "max_retries": 0}
    )
    app, url = serve(Assistant(settings), port=free_port(), block=False)
    yield url, server
    app.close()
    server.stop()


def text_of(result) -> str:
    chat = result[0]
    content = chat[-1]["content"]
    return content[0]["text"] if isinstance(content, list) else content


def test_hanging_endpoint_leaves_the_ui_responsive(hanging_app):
    url, server = hanging_app
    stuck = Client(url, verbose=False).submit(QUESTION, [], 5, "openai", api_name="/ask")
    other = Client(url, verbose=False)
    waited = time.monotonic()
    while not server.requests:  # the LLM question is now waiting on the endpoint
        assert time.monotonic() - waited < GUARD, "the LLM question never reached the endpoint"
        time.sleep(0.05)

    answer = text_of(other.predict(QUESTION, [], 5, "offline", api_name="/ask"))
    assert answer.startswith("**Offline extractive**") and 'href="#card-1-1"' in answer
    assert len(server.requests) == 1 and not stuck.done()  # still waiting meanwhile

    final = text_of(stuck.result(timeout=GUARD))
    assert final.startswith("⚠️ **Error:**") and "sent no token within 10 s" in final
