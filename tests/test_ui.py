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
from rag_assistant.ui import (
    SCORE_TIP,
    ChatUI,
    cite_link,
    evidence_html,
    html_text,
    md_text,
    parse_auth,
    serve,
)

SNAPKV = "SnapKV: LLM Knows What You are Looking for Before Generation"


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


def run(
    ui: ChatUI,
    message: str,
    turns: list | None = None,
    *,
    k: int = 5,
    mode: str = "offline",
    chat: list | None = None,
):
    """All outputs the respond handler yields: (chat, evidence, question box, turns). With
    earlier ``turns`` and no ``chat``, the chat holds one exchange per turn (an empty chat
    starts a new conversation)."""
    turns = [] if turns is None else turns
    if chat is None:
        chat = [m for t in turns for m in ({"role": "user"}, {"role": "assistant"})]
    return list(ui.respond(message, chat, turns, k, mode))


def is_skip(value) -> bool:
    """True for gradio's 'leave this output as it is'."""
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


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
    assert message.startswith("**Offline extractive** · cited 1 of the 5 papers retrieved")
    assert "> Offline extractive answer" in message
    assert f"{cite_link(1, 1, HYPER)} {md_text(HYPER)}" in message  # the sources list
    assert "▌" not in message

    evidence = final[1]
    assert f"[1] {html_text(HYPER)}" in evidence
    assert re.search(r"match [01]\.\d{2}</span> · rank 1 of 5", evidence)
    # the sentences the answer quotes from paper 1 are the ones highlighted in its abstract
    answer = turns_of(final)[0].answer
    quoted = [c.text for c in answer.claims if 1 in c.citations]
    assert quoted
    for sentence in quoted:
        assert f"<mark>{html_text(sentence.removesuffix(' [1]').strip())}</mark>" in evidence
    assert "<details><summary>Full abstract</summary>" in evidence
    turns = turns_of(final)
    assert len(turns) == 1 and turns[0].answer.citations[0].title == HYPER


def test_every_marker_links_to_its_card_with_the_title(assistant: Assistant):
    outputs = run(ChatUI(assistant), "Which papers compress the KV cache, and how?")
    answer = outputs[-1][3][0].answer
    assert len(answer.citations) >= 2
    message, evidence = last_message(outputs), outputs[-1][1]
    # no marker is left as plain text: each number is a link to card n of answer 1
    plain = re.sub(r"<a [^>]*>.*?</a>", "", message)
    assert not re.search(r"\\?\[\d+\\?\]", plain)
    for c in answer.citations:
        tip = html_text(f"[{c.number}] {c.title}")
        assert f'<a class="cite" href="#card-1-{c.number}" title="{tip}">' in message
        assert f'<div class="paper" id="card-1-{c.number}" data-number="{c.number}">' in evidence
        assert f'href="#card-1-{c.number}"' in evidence  # the claims in the card link too
    # while streaming, markers are links already (their cards come with the checked answer)
    streamed = [o[0][-1]["content"] for o in outputs[1:-1] if "▌" in o[0][-1]["content"]]
    assert any('<a class="cite" href="#card-1-1"' in m for m in streamed)


def test_each_answer_keeps_its_own_evidence(assistant: Assistant):
    ui = ChatUI(assistant)
    first = run(ui, "Which papers compress the KV cache, and how?")
    second = run(
        ui, "How does HyperAttention approximate attention in near-linear time?", first[-1][3]
    )
    turns = second[-1][3]
    assert len(turns) == 2
    message, evidence = last_message(second), second[-1][1]
    assert 'href="#card-2-1"' in message and 'href="#card-1-' not in message
    # both answers' evidence is in the panel, the latest shown, the earlier one a click away
    assert '<section class="turn" id="turn-1" data-turn="1" hidden>' in evidence
    assert '<section class="turn" id="turn-2" data-turn="2">' in evidence
    earlier = evidence.split('id="turn-2"')[0]
    for c in turns[0].answer.citations:
        assert (
            f'id="card-1-{c.number}" data-number="{c.number}"><div class="paper-title">' in earlier
        )
        assert f"[{c.number}] {html_text(c.title)}" in earlier
    assert f"[1] {html_text(HYPER)}" in evidence.split('id="turn-2"')[1]
    # the Python API keeps each turn's citations the same way
    assert [c.title for c in turns[0].answer.citations] == [
        c.title for c in first[-1][3][0].answer.citations
    ]


def test_cards_link_to_the_paper_or_an_arxiv_title_search(assistant: Assistant, tmp_path):
    records = tmp_path / "linked.jsonl"
    rows = [
        {
            "title": "Wombat Caching for Sparse Transformers",
            "abstract": "Wombat caching stores sparse transformer keys in wombat burrows.",
            "url": "https://example.org/w",
        },
        {
            "id": "2401.00001",
            "title": "Numbat Attention for Long Documents",
            "abstract": "Numbat attention reads long documents.",
            "categories": "cs.CL",
            "update_date": "2024-01-02",
        },
    ]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assistant.ingest([records])
    ui = ChatUI(assistant)
    evidence = run(ui, "What is wombat caching for sparse transformers?")[-1][1]
    assert (
        'href="https://example.org/w" target="_blank" rel="noopener noreferrer">open on example.org'
        in evidence
    )
    evidence = run(ui, "What is numbat attention for long documents?")[-1][1]
    assert (
        'href="https://arxiv.org/abs/2401.00001"' in evidence and "arXiv abstract page" in evidence
    )
    evidence = run(ui, QUESTION)[-1][1]
    search = "https://arxiv.org/search/?query=HyperAttention%3A+Long-context+Attention+in+Near-Linear+Time&amp;searchtype=title"
    assert f'href="{search}"' in evidence and "search arXiv for this title ↗</a>" in evidence
    # the bundled listings give dates without a year: shown as given
    assert re.search(r"rank 1 of 5 · [A-Z][a-z]{2} \d{1,2} · ", evidence)


def test_scores_are_shown_bounded_with_what_they_mean(assistant: Assistant):
    ui = ChatUI(assistant)
    turns = run(ui, "How does SnapKV compress the KV cache?")[-1][3]
    outputs = run(ui, "How much does it speed up decoding?", turns, k=8)  # follow-up scores
    evidence = outputs[-1][1]
    scores = [float(x) for x in re.findall(r"match (\d+\.\d+)</span>", evidence)]
    assert scores and all(0.0 <= x <= 1.0 for x in scores)
    assert evidence.count(f'<span class="score" title="{html_text(SCORE_TIP)}">') == len(scores)


def test_the_answer_says_how_many_of_the_retrieved_papers_it_cites(assistant: Assistant):
    for k in (3, 12):
        outputs = run(ChatUI(assistant), "Which papers compress the KV cache, and how?", k=k)
        answer = outputs[-1][3][0].answer
        assert len(answer.sources) == k
        cited = len(answer.citations)
        assert f"cited {cited} of the {k} papers retrieved" in last_message(outputs)


def test_offline_notice_is_said_once_per_conversation(assistant: Assistant):
    ui = ChatUI(assistant)
    assert "sentences quoted from the abstracts, no language model" in ui.status_markdown()
    first = run(ui, "How does SnapKV compress the KV cache?")
    assert "> Offline extractive answer" in last_message(first)
    second = run(ui, "What is HyperAttention?", first[-1][3])
    assert "Offline extractive answer:" not in "".join(o[0][-1]["content"] for o in second)
    assert last_message(second).startswith("**Offline extractive**")
    new = run(ui, "What is HyperAttention?")  # a new conversation says it again
    assert "> Offline extractive answer" in last_message(new)
    # in a terminal a notice is one "note:" line, not wrapped in parentheses of its own
    rendered = first[-1][3][0].answer.render().splitlines()
    assert rendered[0].startswith("note: Offline extractive answer:")
    assert not rendered[0].endswith("))")


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


def test_empty_question_leaves_no_bubble_and_keeps_the_evidence(assistant: Assistant):
    ui = ChatUI(assistant)
    before = run(ui, QUESTION)[-1]
    for empty in ("", "   \n "):
        outputs = run(ui, empty, before[3], chat=before[0])
        assert len(outputs) == 1
        chat, evidence, box, turns = outputs[0]
        assert is_skip(chat) and is_skip(evidence) and is_skip(box)  # nothing added or cleared
        assert turns == before[3]


def test_too_long_question_stays_in_the_box_with_a_plain_message(assistant: Assistant):
    ui = ChatUI(assistant)
    before = run(ui, QUESTION)[-1]
    long_question = "Which method compresses the KV cache best? " * 200
    outputs = run(ui, long_question, before[3], chat=before[0])
    chat, evidence, box, turns = outputs[-1]
    assert is_skip(box) and is_skip(evidence)  # the question is not erased, evidence kept
    assert chat[:-1] == before[0]  # no bubble for the rejected question; the error is its own
    error = chat[-1]
    assert error["role"] == "assistant" and error["content"].startswith("⚠️ **Error:** the question")
    assert "shorten it" in error["content"] and "RAG\\_ASSISTANT" not in error["content"]
    assert turns == before[3]


def test_an_empty_chat_starts_a_new_conversation(assistant: Assistant):
    """The chatbot's Clear (and an API call with chat=[]) forgets the earlier turns."""
    ui = ChatUI(assistant)
    turns = run(ui, QUESTION)[-1][3]
    outputs = run(ui, "What is LoRA?", turns, chat=[])
    after = outputs[-1][3]
    assert len(after) == 1 and after[0].standalone_question == "What is LoRA?"
    assert HYPER not in [c.title for c in after[0].answer.citations]
    assert 'href="#card-1-' in last_message(outputs)


def test_number_of_sources_reaches_retrieval(assistant: Assistant):
    outputs = run(ChatUI(assistant), "How does SnapKV compress the KV cache?", k=2)
    assert len(outputs[-1][3][0].answer.sources) == 2
    outputs = run(ChatUI(assistant), "How does SnapKV compress the KV cache?", k=0)
    assert "the number of papers must be a whole number" in last_message(outputs)


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
    unsupported = (
        r'⚠️ It also cures the common cold <a class="cite" href="#card-1-2" [^>]+>'
        r"&#91;2&#93;</a>\.</mark>"
    )
    assert re.search(r'<mark class="unsupported" title="[^"]+">' + unsupported, message)
    assert "Not supported by the cited abstracts (1):" in message
    evidence = outputs[-1][1]
    assert (
        '<li class="unsupported">⚠️ not supported: It also cures the common cold '
        '<a class="cite" href="#card-1-2"'
    ) in evidence
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
    assert ui.mode_info().startswith("No language model is configured on this server")
    message = last_message(run(ui, QUESTION, mode="openai"))
    assert "an LLM was asked for, but no OPENAI\\_API\\_KEY" in message


# --- hostile papers ---------------------------------------------------------------------------


def test_hostile_title_and_abstract_are_rendered_as_text(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    ui.add_papers([str(write_evil_paper(tmp_path))], [], False, "offline", Recorder())
    outputs = run(ui, "What is quokka sorting?")
    message, evidence = last_message(outputs), outputs[-1][1]
    answer = outputs[-1][3][0].answer
    assert answer.citations[0].title == EVIL_TITLE
    for shown in (message, evidence):
        assert "<script" not in shown and "<img" not in shown
        assert "&lt;script&gt;" in shown and "&lt;img src=x" in shown
        assert 'href="javascript' not in shown
    assert "\\[stable\\](javascript:" in message  # no markdown link
    # the javascript: url is not linked: the card offers the arXiv title search instead
    links = re.findall(r'<a class="paper-link" href="([^"]*)"', evidence)
    assert links and all(h.startswith("https://arxiv.org/search/?query=") for h in links)


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
    assert f"{cite_link(1, 1, HYPER)} {md_text(HYPER)}" in message
    assert f"[1] {html_text(HYPER)}" in evidence
    # a follow-up in the same session sees the first turn (kept in the server's gr.State)
    follow_up = client.predict("How fast is it?", outputs[-1][0], 5, "offline", api_name="/ask")
    message, _ = final_chat(follow_up)
    assert "HyperAttention" in message and 'href="#card-2-1"' in message
    # an empty chat starts over: the earlier turns no longer steer the question
    message, evidence = final_chat(
        client.predict("What is LoRA?", [], 5, "offline", api_name="/ask")
    )
    assert HYPER not in evidence and 'href="#card-1-1"' in message


def test_ask_json_gives_scripts_plain_text_and_citations(app_url):
    client = Client(app_url, verbose=False)
    answer = client.predict(QUESTION, api_name="/ask_json")
    assert answer["mode"] == "offline" and not answer["refused"]
    assert "[1]" in answer["text"] and "\\[" not in answer["text"] and "<a" not in answer["text"]
    assert answer["citations"][0] == {
        "number": 1,
        "title": HYPER,
        "paper_id": answer["citations"][0]["paper_id"],
    }
    assert len(answer["sources"]) == 5
    follow = client.predict("How fast is it?", [QUESTION], 3, "offline", api_name="/ask_json")
    assert "HyperAttention" in follow["standalone_question"] and len(follow["sources"]) == 3
    with pytest.raises(Exception, match="the question is empty"):
        client.predict("  ", api_name="/ask_json")
    # k given where the history goes: said, not a crash inside the answerer
    with pytest.raises(Exception, match="history must be a list of the earlier questions"):
        client.predict(QUESTION, 5, api_name="/ask_json")


def readme_client_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Chat UI\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert blocks, "README.md's Chat UI section has no gradio_client example"
    return blocks[0]


def test_readme_client_example_runs_as_written(app_url):
    code = readme_client_example().replace("http://127.0.0.1:7860/", app_url)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("Loaded as API")]
    assert "[1]" in lines[0] and "\\[" not in lines[0]
    assert f"[1] {SNAPKV}" in lines
    assert "SnapKV" in lines[-1]  # the follow-up's standalone question names the paper


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
        assert 'href="#card-1-1"' in answer and "Error" not in answer


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
        assert f"{cite_link(1, 1, HYPER)} {md_text(HYPER)}" in message
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "ingesting the bundled sample corpus" in out
    assert f"The chat UI is at {url} (answers: offline extractive)" in out
    assert "share=True" not in out  # gradio's public-link hint is not printed


def test_offline_claims_show_as_quotes_not_as_verified(assistant: Assistant):
    """Offline, a quoted sentence is in its abstract by construction: the card says where it
    is quoted from, never ✓ (which keeps its meaning for a model's checked claims)."""
    ui = ChatUI(assistant)
    outputs = run(ui, "How does SnapKV compress the KV cache?")
    evidence = outputs[-1][1]
    answer = outputs[-1][3][-1].answer
    assert answer.claims and {c.basis for c in answer.claims} == {"quoted"}
    assert "quoted from [1]" in evidence
    assert "✓" not in evidence
