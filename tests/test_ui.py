"""The chat UI: its handlers over a real offline assistant and a scripted chat model, then the
launched app over HTTP with gradio_client (the way a second program, or many users, use it)."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError
from hostile import EVIL_TITLE, HYPER, QUESTION, write_evil_paper

from rag_assistant import REFUSAL, Assistant
from rag_assistant.answer.llm import Completion, UsageReport
from rag_assistant.errors import ConfigurationError, LLMUnavailableError
from rag_assistant.settings import Settings
from rag_assistant.ui import ChatUI, evidence_html, html_text, md_text, parse_auth, serve


class ScriptedModel:
    """A chat model that streams a fixed reply in small pieces (or fails), to prove wiring."""

    model = "scripted-1"

    def __init__(self, reply: str = "", fail: Exception | None = None) -> None:
        self.reply, self.fail = reply, fail

    def stream(self, messages, **_):
        if self.fail:
            raise self.fail
        for i in range(0, len(self.reply), 7):
            yield self.reply[i : i + 7]
        yield UsageReport(100, 20)

    def complete(self, messages, **_):
        if self.fail:
            raise self.fail
        return Completion(self.reply, 100, 20)


def run(ui: ChatUI, message: str, turns: list | None = None, *, k: int = 5, mode: str = "offline"):
    """All outputs the respond handler yields: (chat, evidence, question box, turns)."""
    return list(ui.respond(message, [], [] if turns is None else turns, k, mode))


def last_message(outputs) -> str:
    return outputs[-1][0][-1]["content"]


class Recorder:
    """Stands in for gr.Progress: records what the handler reports."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, progress, desc=None, **_):
        self.calls.append((progress, desc))


# --- escaping --------------------------------------------------------------------------------


def test_md_text_leaves_no_markup():
    assert md_text("a <b>x</b> & y") == "a &lt;b&gt;x&lt;/b&gt; &amp; y"
    assert md_text("[go](javascript:alert(1))") == "\\[go\\](javascript:alert(1))"
    assert md_text("![i](x) *e* _u_ `c` $$m$$") == (
        "\\!\\[i\\](x) \\*e\\* \\_u\\_ \\`c\\` \\$\\$m\\$\\$"
    )
    assert md_text("# title\n- item\n12. step\nplain 3. x") == (
        "\\# title\n\\- item\n12\\. step\nplain 3. x"
    )


def test_h_escapes_quotes_and_template_braces():
    assert (
        html_text("<img src=\"x\" onerror='y'>")
        == "&lt;img src=&quot;x&quot; onerror=&#x27;y&#x27;&gt;"
    )
    assert html_text("${value} {{x}}") == "&#36;&#123;value&#125; &#123;&#123;x&#125;&#125;"


def test_parse_auth():
    assert parse_auth("reader:s3cret:x") == ("reader", "s3cret:x")
    assert parse_auth(None) is None
    for bad in ("reader", ":pw", "reader:"):
        with pytest.raises(ConfigurationError):
            parse_auth(bad)


# --- handlers over a real offline assistant ----------------------------------------------------


def turns_of(output):
    return output[3]


def test_offline_answer_streams_then_shows_citations_and_evidence(assistant: Assistant):
    outputs = run(ChatUI(assistant), QUESTION)
    first, streamed, final = outputs[0], outputs[1:-1], outputs[-1]
    assert first[0][0] == {"role": "user", "content": md_text(QUESTION)}
    assert "_retrieving…_" in first[0][-1]["content"]
    assert "Offline extractive" in first[0][-1]["content"]
    # the answer grows sentence by sentence before the checked version replaces it
    texts = [o[0][-1]["content"] for o in streamed if "▌" in o[0][-1]["content"]]
    assert len(texts) >= 2 and all(len(a) < len(b) for a, b in itertools.pairwise(texts))

    message = last_message(outputs)
    assert message.startswith("**Offline extractive**")
    assert "> Offline extractive answer" in message
    assert "\\[1\\]" in message and f"\\[1\\] {md_text(HYPER)}" in message
    assert "▌" not in message

    evidence = final[1]
    assert f"[1] {html_text(HYPER)}" in evidence
    assert re.search(r"score \d\.\d{3}", evidence)
    # the sentences the answer quotes from paper 1 are the ones highlighted in its abstract
    answer = turns_of(final)[0].answer
    quoted = [c.text for c in answer.claims if 1 in c.citations]
    assert quoted
    for sentence in quoted:
        assert f"<mark>{html_text(sentence.removesuffix(' [1]').strip())}</mark>" in evidence
    assert "<details><summary>Full abstract</summary>" in evidence
    turns = turns_of(final)
    assert len(turns) == 1 and turns[0].answer.citations[0].title == HYPER


def test_follow_up_keeps_the_conversation(assistant: Assistant):
    ui = ChatUI(assistant)
    turns = run(ui, "How does SnapKV compress the KV cache?")[-1][3]
    outputs = run(ui, "How much does it speed up decoding?", turns)
    turns = outputs[-1][3]
    assert len(turns) == 2
    assert "SnapKV" in turns[1].standalone_question
    assert "SnapKV" in last_message(outputs)


def test_refusal_looks_like_a_refusal(assistant: Assistant):
    outputs = run(ChatUI(assistant), "What is the boiling point of water on Mars?")
    message = last_message(outputs)
    assert f"🚫 **{md_text(REFUSAL)}**" in message
    assert "Closest papers (not cited):" in message
    assert "refusal: no paper was cited" in outputs[-1][1]


def test_errors_become_chat_messages(assistant: Assistant):
    outputs = run(ChatUI(assistant), "   ")
    assert last_message(outputs).startswith("⚠️ **Error:** the question is empty")
    assert len(outputs[-1][0]) == 2  # the question, then the error; nothing crashed


def test_number_of_sources_reaches_retrieval(assistant: Assistant):
    outputs = run(ChatUI(assistant), "How does SnapKV compress the KV cache?", k=2)
    assert len(outputs[-1][3][0].answer.sources) == 2


# --- LLM mode with a scripted model -------------------------------------------------------------


def llm_assistant(home: Path, **model) -> Assistant:
    return Assistant(Settings(home=home), llm=ScriptedModel(**model))


def test_llm_answer_shows_model_and_marks_unsupported_claims(home: Path):
    reply = (
        "HyperAttention is an approximate attention mechanism for long contexts [1]. "
        "It makes the inference time of ChatGLM2 50% faster on 32k context length [1]. "
        "It also cures the common cold [2]."
    )
    ui = ChatUI(llm_assistant(home, reply=reply))
    assert ui.default_mode == "openai"
    assert ui.mode_choices()[1] == ("LLM · scripted-1", "openai")
    outputs = run(ui, QUESTION, mode="openai")
    assert "**LLM · scripted-1**" in outputs[0][0][-1]["content"]
    assert sum("▌" in o[0][-1]["content"] for o in outputs) >= 5  # streamed in pieces
    message = last_message(outputs)
    assert message.startswith("**LLM · scripted-1**")
    unsupported = r"⚠️ It also cures the common cold \\\[2\\\]\.</mark>"
    assert re.search(r'<mark class="unsupported" title="[^"]+">' + unsupported, message)
    assert "Not supported by the cited abstracts (1):" in message
    evidence = outputs[-1][1]
    assert '<li class="unsupported">⚠️ not supported: It also cures the common cold [2].</li>' in (
        evidence
    )
    assert evidence.count('<div class="paper"') == 2
    # the same app answers offline when asked, without touching the shared assistant
    offline = run(ui, QUESTION, mode="offline")
    assert last_message(offline).startswith("**Offline extractive**")
    assert ui.assistant.settings.answer.llm == "auto"


def test_llm_down_is_a_chat_message(home: Path):
    down = LLMUnavailableError("the endpoint http://localhost:9/v1 could not be reached")
    outputs = run(ChatUI(llm_assistant(home, fail=down)), QUESTION, mode="openai")
    assert last_message(outputs) == (
        "⚠️ **Error:** the endpoint http://localhost:9/v1 could not be reached"
    )


def test_llm_mode_without_endpoint_says_so(assistant: Assistant):
    ui = ChatUI(assistant)
    assert ui.mode_choices()[1][0].endswith("(not configured: set OPENAI_API_KEY)")
    message = last_message(run(ui, QUESTION, mode="openai"))
    assert "an LLM was asked for, but no OPENAI\\_API\\_KEY" in message


# --- uploads --------------------------------------------------------------------------------


def test_upload_is_ingested_with_progress_and_updates_status(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    assert "530 papers" in ui.status_markdown()
    upload = tmp_path / "gradio-tmp" / "new.jsonl"
    upload.parent.mkdir()
    records = [
        {"title": "Wombat Caching for Sparse Transformers", "abstract": "We cache wombats."},
        {"title": "Platypus Pruning of Attention Heads", "abstract": "Platypus pruning works."},
    ]
    upload.write_text("".join(json.dumps(r) + "\n" for r in records))
    progress = Recorder()
    chat, status, cleared = ui.add_papers([str(upload)], [], "offline", progress)
    assert cleared is None
    assert chat[-1]["content"].startswith("**Added papers from new.jsonl.**")
    assert "added: 2" in chat[-1]["content"]
    assert "532 papers" in status
    assert {desc for _, desc in progress.calls} >= {"reading papers", "BM25 index"}
    kept = assistant.settings.home / "uploads" / "new.jsonl"
    assert kept.read_text() == upload.read_text()
    upload.unlink()  # gradio's temp cleanup
    message = last_message(run(ui, "What is platypus pruning of attention heads?"))
    assert "Platypus Pruning of Attention Heads" in message


def test_bad_upload_and_busy_index_are_chat_messages(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"title": "Fine", "abstract": "Fine."}\n{"title": \n')
    chat, status, _ = ui.add_papers([str(bad)], [], "offline", Recorder())
    assert chat[-1]["content"].startswith("⚠️ **The papers were not added.**")
    assert "broken.jsonl:2: not valid JSON" in chat[-1]["content"]
    assert "530 papers" in status
    assert not (assistant.settings.home / "uploads" / "broken.jsonl").exists()

    good = write_evil_paper(tmp_path)
    with assistant.index.writing():
        chat, status, _ = ui.add_papers([str(good)], chat, "offline", Recorder())
    assert chat[-1]["content"].startswith("⚠️ **The papers were not added.**")
    assert "is busy" in chat[-1]["content"]
    assert "530 papers" in status

    chat, _, _ = ui.add_papers(None, chat, "offline", Recorder())
    assert chat[-1]["content"].startswith("⚠️ Choose a JSON-lines, CSV or listing text file")


def test_hostile_title_and_abstract_are_rendered_as_text(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    ui.add_papers([str(write_evil_paper(tmp_path))], [], "offline", Recorder())
    outputs = run(ui, "What is quokka sorting?")
    message, evidence = last_message(outputs), outputs[-1][1]
    answer = outputs[-1][3][0].answer
    assert answer.citations[0].title == EVIL_TITLE
    for shown in (message, evidence):
        assert "<script" not in shown and "<img" not in shown
        assert "&lt;script&gt;" in shown and "&lt;img src=x" in shown
        assert 'href="javascript' not in shown
    assert "\\[stable\\](javascript:" in message  # no markdown link
    assert evidence.count("<a ") == 0  # the javascript: url is not linked


def test_evidence_placeholder_before_any_answer():
    assert "Ask a question" in evidence_html(None)


# --- the launched app over HTTP -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, bundled_home):
    import shutil

    home = tmp_path_factory.mktemp("ui-app") / "home"
    shutil.copytree(bundled_home, home)
    app, url = serve(
        Assistant(Settings(home=home, answer={"llm": "offline"})), port=free_port(), block=False
    )
    yield url
    app.close()


def final_chat(result) -> str:
    chat, evidence, _ = result
    return chat[-1]["content"][0]["text"], evidence


def test_client_gets_a_streamed_cited_answer(app_url):
    assert app_url.startswith("http://127.0.0.1:")
    client = Client(app_url, verbose=False)
    job = client.submit(QUESTION, [], 5, "offline", api_name="/ask")
    outputs = job.outputs() if job.result() else []
    assert len(outputs) >= 3  # retrieving, sentences, the checked answer
    message, evidence = final_chat(outputs[-1])
    assert f"\\[1\\] {md_text(HYPER)}" in message
    assert f"[1] {html_text(HYPER)}" in evidence
    # a follow-up in the same session sees the first turn (kept in the server's gr.State)
    message, _ = final_chat(
        client.predict("How fast is it?", outputs[-1][0], 5, "offline", api_name="/ask")
    )
    assert "HyperAttention" in message


def test_twenty_simultaneous_questions_are_all_answered(app_url):
    questions = [
        "What is HyperAttention and how fast is it?",
        "How does SnapKV compress the KV cache?",
        "Which papers speed up LLM inference with speculative decoding?",
        "How can retrieval-augmented generation reduce hallucinations?",
    ] * 5

    def ask(question: str) -> str:
        client = Client(app_url, verbose=False)
        return final_chat(client.predict(question, [], 5, "offline", api_name="/ask"))[0]

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(ask, questions))
    assert len(answers) == 20
    for answer in answers:
        assert answer.startswith("**Offline extractive**")
        assert "\\[1\\]" in answer and "Error" not in answer


def test_auth_protects_the_app_and_share_is_never_opened(home: Path, monkeypatch):
    monkeypatch.setenv("GRADIO_SHARE", "True")
    monkeypatch.setenv("RAG_ASSISTANT_UI__AUTH", "reader:s3cret")
    assistant = Assistant(Settings(home=home))
    app, url = serve(assistant, port=free_port(), block=False)
    try:
        assert app.share is False and url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}config").status_code == 401
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(url, verbose=False)
        client = Client(url, auth=("reader", "s3cret"), verbose=False)
        assert "530 papers" in client.predict("offline", api_name="/status")
    finally:
        app.close()


@pytest.mark.slow
def test_readme_command_starts_a_working_chat_on_a_fresh_home(tmp_path):
    """`rag-assistant ui` on an empty home ingests the bundled corpus and serves the chat."""
    port = free_port()
    env = {**os.environ, "RAG_ASSISTANT_HOME": str(tmp_path / "fresh")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_assistant.cli", "ui", "--no-browser", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the UI did not start"
            time.sleep(0.5)
        client = Client(url, verbose=False)
        assert "530 papers" in client.predict("offline", api_name="/status")
        message, _ = final_chat(client.predict(QUESTION, [], 5, "offline", api_name="/ask"))
        assert f"\\[1\\] {md_text(HYPER)}" in message
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "ingesting the bundled sample corpus" in out
    assert f"The chat UI is at {url} (answers: offline extractive)" in out
    assert "share=True" not in out  # gradio's public-link hint is not printed
