"""The Gradio chat UI: a thin layer over :class:`~rag_assistant.Assistant`.

:func:`build_app` makes the app from an assistant; :func:`serve` launches it on localhost
unless told otherwise, behind a password when one is set, and never with a public share
link. The handlers of :class:`ChatUI` only map the API's events (:class:`Status`,
:class:`TextDelta`, :class:`Final`) and an answer's citations, claims and sources to
components.

Everything that comes from the index or the user (titles, abstracts, quoted sentences,
questions) is escaped before it is shown, so it renders as text: markdown in the chat is
backslash-escaped, HTML in the evidence panel is entity-escaped.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import gradio as gr

from .answer.citations import evidence_spans
from .assistant import Assistant
from .errors import RagAssistantError
from .types import Answer, Fallback, Final, Status, TextDelta

log = logging.getLogger(__name__)

EXAMPLES = [
    "What is HyperAttention and how fast is it?",
    "How does SnapKV compress the KV cache?",
    "Which papers speed up LLM inference with speculative decoding?",
    "How can retrieval-augmented generation reduce hallucinations?",
]
UPLOAD_TYPES = [".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt", ".md", ".gz"]
STAGES = {"reading": "reading papers", "embedding": "embedding chunks", "lexical": "BM25 index"}
MODES = ("offline", "openai")

CSS = """
#evidence .paper { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.6em 0.8em; margin-bottom: 0.7em; }
#evidence .paper-title { font-weight: 600; }
#evidence .meta { font-size: 0.85em; opacity: 0.8; }
#evidence mark, #chat mark { background: #fff3a3; color: inherit; padding: 0 2px; }
#evidence .claims { margin: 0.3em 0; padding-left: 1.2em; font-size: 0.9em; }
#evidence li.unsupported, #chat mark.unsupported { background: #ffd9d9; }
#evidence blockquote { margin: 0.4em 0; padding-left: 0.6em;
  border-left: 3px solid var(--border-color-primary); }
#evidence details summary { cursor: pointer; font-size: 0.9em; }
"""

# --- escaping -------------------------------------------------------------------------------

_MD_INLINE = re.compile(r"([\\`*_{}\[\]|~$!])")
_MD_LINE_START = re.compile(r"^([ \t]*)([#+=-]|\d+(?=[.)]))", re.MULTILINE)


def md_text(text: str) -> str:
    """``text`` as markdown that renders as exactly that text: HTML entities for ``<>&``,
    backslashes before markdown punctuation (no links, images, emphasis, code or math),
    and before what would start a heading or list at the beginning of a line."""
    text = html.escape(text, quote=False)
    text = _MD_INLINE.sub(r"\\\1", text)
    return _MD_LINE_START.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, mark = match.groups()
    # "1." must become "1\." (a backslash before a digit escapes nothing)
    return indent + (mark + "\\" if mark[0].isdigit() else "\\" + mark)


def html_text(text: str) -> str:
    """``text`` escaped for HTML, including quotes and template braces."""
    return (
        html.escape(text, quote=True)
        .replace("$", "&#36;")
        .replace("{", "&#123;")
        .replace("}", "&#125;")
    )


# --- rendering ----------------------------------------------------------------------------


def mode_label(mode: str, model: str | None) -> str:
    return f"LLM · {model}" if mode == "llm" else "Offline extractive"


def view_label(view: Assistant) -> str:
    """The mode an assistant (view) answers in, as shown to the user."""
    if view.mode == "llm":
        return mode_label("llm", view.chat_model().model)
    return mode_label("offline", None)


def _head(label: str, notices: Sequence[str]) -> list[str]:
    return [f"**{md_text(label)}**", *(f"> {md_text(n)}" for n in notices)]


def streaming_markdown(label: str, notices: Sequence[str], text: str, status: str) -> str:
    """The message while an answer streams in: mode, notices, the text so far."""
    body = md_text(text) + " ▌" if text else f"_{md_text(status)}…_"
    return "\n\n".join([*_head(label, notices), body])


def answer_markdown(answer: Answer) -> str:
    """The finished message: mode, notices, the answer with unsupported claims marked (or a
    refusal), then the numbered sources as the API renders them."""
    body = f"🚫 **{md_text(answer.text)}**" if answer.refused else _marked(answer)
    parts = [*_head(mode_label(answer.mode, answer.model), answer.notices), body]
    tail = answer.render_tail().strip("\n")
    if tail:
        parts.append(md_text(tail))
    if answer.fallback is not None:
        parts.append(model_answer_details(answer.fallback))
    return "\n\n".join(parts)


def model_answer_details(fallback: Fallback) -> str:
    """The model's answer that was not shown (its claims did not hold), behind "Show the
    model's answer", with the sources its numbers refer to."""
    paragraphs = "".join(f"<p>{html_text(p)}</p>" for p in fallback.text.split("\n") if p.strip())
    cited = "".join(f"<li>[{c.number}] {html_text(c.title)}</li>" for c in fallback.citations)
    return (
        '<details class="model-answer"><summary>Show the model\'s answer</summary>'
        f"{paragraphs}{f'<ul>{cited}</ul>' if cited else ''}</details>"
    )


def _marked(answer: Answer) -> str:
    text, out, pos = answer.text, [], 0
    for claim in answer.unsupported_claims:
        at = text.find(claim.text, pos)
        if at < 0:
            continue
        reason = claim.reason or "not supported by the cited abstracts"
        out.append(md_text(text[pos:at]))
        out.append(
            f'<mark class="unsupported" title="{html_text(reason)}">⚠️ {md_text(claim.text)}</mark>'
        )
        pos = at + len(claim.text)
    out.append(md_text(text[pos:]))
    return "".join(out)


def error_markdown(exc: RagAssistantError) -> str:
    return f"⚠️ **Error:** {md_text(str(exc))}"


EVIDENCE_PLACEHOLDER = (
    '<div class="evidence-empty">Ask a question: the papers behind each claim of the latest '
    "answer appear here.</div>"
)


def _highlight(text: str, spans: Sequence[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in spans:
        out.append(html_text(text[pos:start]))
        out.append(f"<mark>{html_text(text[start:end])}</mark>")
        pos = end
    out.append(html_text(text[pos:]))
    return "".join(out)


def _link(url: str | None) -> str:
    if not url or not url.lower().startswith(("https://", "http://")):
        return ""
    return f' · <a href="{html_text(url)}" target="_blank" rel="noopener noreferrer">link</a>'


def evidence_html(answer: Answer | None) -> str:
    """The evidence panel for ``answer``: per cited paper its title, retrieval score, the
    claims that cite it, the abstract sentences backing them highlighted, and the full
    abstract (expandable). A refusal lists the closest papers instead."""
    if answer is None:
        return EVIDENCE_PLACEHOLDER
    if not answer.citations:
        closest = "".join(
            f'<li>{html_text(s.title)} <span class="meta">score {s.score:.3f}</span></li>'
            for s in answer.sources[:3]
        )
        head = "The answer is a refusal: no paper was cited." if answer.refused else "No citation."
        more = f"<p>Closest papers (not cited):</p><ul>{closest}</ul>" if closest else ""
        return f'<div class="evidence"><p class="no-citations">{head}</p>{more}</div>'
    by_id = {s.paper_id: s for s in answer.sources}
    cards = []
    for citation in answer.citations:
        source = by_id.get(citation.paper_id)
        abstract = source.abstract if source else ""
        claims = [c for c in answer.claims if citation.number in c.citations]
        spans = sorted({span for c in claims for span in evidence_spans(c.text, abstract)})
        items = "".join(
            f'<li class="{"supported" if c.supported else "unsupported"}">'
            f"{'✓' if c.supported else '⚠️ not supported:'} {html_text(c.text)}</li>"
            for c in claims
        )
        quoted = " … ".join(f"<mark>{html_text(abstract[a:b].strip())}</mark>" for a, b in spans)
        score = f"score {source.score:.3f}" if source else ""
        cards.append(
            f'<div class="paper" data-number="{citation.number}">'
            f'<div class="paper-title">[{citation.number}] {html_text(citation.title)}</div>'
            f'<div class="meta">{score}{_link(citation.url)}</div>'
            f'<ul class="claims">{items}</ul>'
            + (f'<blockquote class="support">{quoted}</blockquote>' if quoted else "")
            + f'<details><summary>Full abstract</summary><p class="abstract">'
            f"{_highlight(abstract, spans)}</p></details></div>"
        )
    return '<div class="evidence">' + "".join(cards) + "</div>"


# --- handlers ------------------------------------------------------------------------------


def _message(content: str, role: str = "assistant") -> dict:
    return {"role": role, "content": content}


class ChatUI:
    """The handlers, over one assistant and a view of it per answer mode (shared by every
    user; each session's turns live in its own ``gr.State``)."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.views = {mode: assistant.with_answer_mode(mode) for mode in MODES}
        self.default_mode = "openai" if assistant.mode == "llm" else "offline"
        self.views[self.default_mode] = assistant  # its notices say why it is in that mode

    def mode_choices(self) -> list[tuple[str, str]]:
        llm = self.views["openai"]
        model = llm.chat_model().model if llm.mode == "llm" else llm.settings.openai.model
        suffix = "" if llm.mode == "llm" else " (not configured: set OPENAI_API_KEY)"
        return [("Offline extractive", "offline"), (f"LLM · {model}{suffix}", "openai")]

    def status_markdown(self, mode: str | None = None) -> str:
        """The status line: what the index holds and how answers are made."""
        view = self.views.get(mode or self.default_mode, self.assistant)
        try:
            index = md_text(self.assistant.status().line())
        except RagAssistantError as exc:
            index = error_markdown(exc)
        return f"**Index:** {index} · **Answers:** {md_text(view_label(view))}"

    def respond(
        self, message: str, chat: list | None, turns: list | None, k: float, mode: str
    ) -> Iterator[tuple]:
        """Stream the answer to ``message`` into the chat; then show its evidence.
        Yields (chat, evidence, question box, turns)."""
        chat = [*(chat or []), _message(md_text(message or ""), "user")]
        view = self.views.get(mode, self.assistant)
        conversation = view.conversation()
        conversation.turns = turns if turns is not None else []
        label, notices, text, status = view_label(view), [], "", "retrieving"
        yield (
            [*chat, _message(streaming_markdown(label, notices, text, status))],
            EVIDENCE_PLACEHOLDER,
            "",
            conversation.turns,
        )
        try:
            for event in conversation.stream(message, k=int(k)):
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, Status):
                    if event.kind == "notice":
                        notices.append(event.message)
                    else:
                        status = event.message
                elif isinstance(event, Final):
                    answer = event.answer
                    yield (
                        [*chat, _message(answer_markdown(answer))],
                        evidence_html(answer),
                        "",
                        conversation.turns,
                    )
                    return
                yield (
                    [*chat, _message(streaming_markdown(label, notices, text, status))],
                    gr.skip(),
                    gr.skip(),
                    gr.skip(),
                )
        except RagAssistantError as exc:
            log.info("question not answered: %s", exc)
            yield [*chat, _message(error_markdown(exc))], gr.skip(), gr.skip(), conversation.turns

    def add_papers(
        self,
        files: Sequence[str] | None,
        chat: list | None,
        mode: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's injection idiom
    ) -> tuple[list, str, None]:
        """Copy the uploaded files into ``<home>/uploads`` (gradio's temporary files are
        cleaned up) and ingest them incrementally. Yields (chat, status line, file input)."""
        chat = list(chat or [])
        if not files:
            chat.append(_message("⚠️ Choose a JSON-lines, CSV or listing text file first."))
            return chat, self.status_markdown(mode), None
        uploads = self.assistant.settings.home / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        copied: list[tuple[Path, Path | None]] = []
        for file in files:
            target = uploads / Path(file).name
            backup = None
            if target.exists():
                backup = target.with_name(target.name + ".previous")
                shutil.copyfile(target, backup)
            shutil.copyfile(file, target)
            copied.append((target, backup))

        def on_progress(stage: str, done: int, total: int | None) -> None:
            progress((done, total), desc=STAGES.get(stage, stage))

        try:
            report = self.assistant.ingest([t for t, _ in copied], progress=on_progress)
        except RagAssistantError as exc:
            for target, backup in copied:  # leave <home>/uploads as it was
                if backup is not None:
                    backup.replace(target)
                else:
                    target.unlink(missing_ok=True)
            chat.append(_message(f"⚠️ **The papers were not added.** {md_text(str(exc))}"))
            return chat, self.status_markdown(mode), None
        for _, backup in copied:
            if backup is not None:
                backup.unlink(missing_ok=True)
        names = ", ".join(t.name for t, _ in copied)
        summary = md_text(report.summary())
        chat.append(_message(f"**Added papers from {md_text(names)}.**\n\n{summary}"))
        return chat, self.status_markdown(mode), None


# --- the app -------------------------------------------------------------------------------


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat app over ``assistant`` (launch it with :func:`serve`)."""
    ui = ChatUI(assistant)
    with gr.Blocks(title="rag-assistant", analytics_enabled=False) as app:
        gr.Markdown(
            "## rag-assistant\nAsk about the indexed research-paper abstracts. Every claim "
            "is followed by the numbers of the papers it comes from; the evidence panel shows "
            "the sentences behind them."
        )
        status = gr.Markdown(ui.status_markdown(), elem_id="status-line")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat",
                    elem_id="chat",
                    height=520,
                    sanitize_html=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    layout="panel",
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask a question about the papers",
                        show_label=False,
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                gr.Examples(EXAMPLES, inputs=[question], label="Example questions")
                new_chat = gr.Button("New conversation", size="sm")
            with gr.Column(scale=2):
                gr.Markdown("### Evidence for the latest answer")
                evidence = gr.HTML(EVIDENCE_PLACEHOLDER, elem_id="evidence")
        with gr.Accordion("Settings and papers", open=True):
            with gr.Row():
                k = gr.Slider(
                    1, 20, value=assistant.settings.retrieval.k, step=1, label="Number of sources"
                )
                mode = gr.Radio(ui.mode_choices(), value=ui.default_mode, label="Answer mode")
            with gr.Row():
                files = gr.File(
                    label="Add papers: JSON lines, CSV or a listing page as text",
                    file_count="multiple",
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                    elem_id="upload",
                )
                add = gr.Button("Add papers", elem_id="add-papers")
        turns = gr.State([])

        gr.on(
            [question.submit, ask.click],
            ui.respond,
            inputs=[question, chatbot, turns, k, mode],
            outputs=[chatbot, evidence, question, turns],
            api_name="ask",
            show_progress="minimal",
        )
        add.click(
            ui.add_papers,
            inputs=[files, chatbot, mode],
            outputs=[chatbot, status, files],
            api_name="add_papers",
            concurrency_limit=1,
        )
        mode.change(ui.status_markdown, inputs=[mode], outputs=[status], api_name="status")
        new_chat.click(
            lambda: ([], EVIDENCE_PLACEHOLDER, []),
            outputs=[chatbot, evidence, turns],
            api_name="new_conversation",
        )
        app.load(ui.status_markdown, inputs=[mode], outputs=[status], api_name=False)
    app.queue(default_concurrency_limit=assistant.settings.ui.concurrency)
    return app


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``'user:password'`` as gradio's auth tuple (None when unset)."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        from .errors import ConfigurationError

        raise ConfigurationError("--auth (RAG_ASSISTANT_UI__AUTH) must be 'user:password'")
    return user, password


def serve(
    assistant: Assistant,
    *,
    host: str | None = None,
    port: int | None = None,
    auth: str | None = None,
    open_browser: bool = False,
    block: bool = True,
    announce: Callable[[str], None] | None = None,
) -> tuple[gr.Blocks, str]:
    """Launch the app; returns it and its local URL. ``host``/``port``/``auth`` default to
    ``settings.ui``. Never opens a public share link. ``announce`` is called with the URL once
    the app listens. ``block=False`` returns at once (tests, benchmarks); close it with
    ``app.close()``."""
    ui = assistant.settings.ui
    if auth is None and ui.auth is not None:
        auth = ui.auth.get_secret_value()
    credentials = parse_auth(auth)
    app = build_app(assistant)
    _, url, _ = app.launch(
        server_name=host or ui.host,
        server_port=(port if port is not None else ui.port) or None,
        auth=credentials,
        share=False,
        inbrowser=open_browser,
        prevent_thread_lock=True,
        show_error=False,
        quiet=True,  # gradio's own banner suggests share=True, which this app never sets
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        footer_links=[],
        css=CSS,
    )
    if announce is not None:
        announce(url)
    if block:
        app.block_thread()
    return app, url
