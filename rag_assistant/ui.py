"""The Gradio chat UI: a thin layer over :class:`~rag_assistant.Assistant`.

:func:`build_app` makes the app from an assistant; :func:`serve` launches it on localhost
unless told otherwise, behind a password when one is set (failed logins are rate-limited),
and never with a public share link. The handlers of :class:`ChatUI` only map the API's
events (:class:`Status`, :class:`TextDelta`, :class:`Final`) and an answer's citations,
claims and sources to components.

Each answer keeps its own evidence: every ``[n]`` in an answer is a link to card ``n`` of
that answer's evidence, and clicking an earlier answer shows its cards again (the evidence
panel holds one section per turn; a small script in the page switches between them).

Everything that comes from the index or the user (titles, abstracts, quoted sentences,
questions) is escaped before it is shown, so it renders as text: markdown in the chat is
backslash-escaped, HTML in the evidence panel is entity-escaped.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import logging
import math
import re
import shutil
import time
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import gradio as gr

from .answer.citations import evidence_spans
from .assistant import Assistant
from .errors import (
    ConfigurationError,
    PortInUseError,
    QuestionTooLongError,
    RagAssistantError,
    UnsupportedFileError,
)
from .store.files import atomic_writer
from .text.markers import MARKER, numbers_of
from .types import Answer, Fallback, Final, Source, Status, TextDelta, Turn

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
SCORE_TIP = (
    "Relative retrieval score from 0 to 1: 1 is the paper that matched this question best; "
    "lower scores matched it less well."
)
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = 60.0

CSS = """
#evidence .paper { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.6em 0.8em; margin-bottom: 0.7em; scroll-margin: 0.5em;
  transition: box-shadow 0.3s, border-color 0.3s; }
#evidence .paper.highlight { border-color: #e8590c; box-shadow: 0 0 0 3px #ffc078; }
#evidence .paper-title { font-weight: 600; }
#evidence .turn-head { font-size: 0.9em; margin-bottom: 0.5em; opacity: 0.85; }
#evidence .meta { font-size: 0.85em; opacity: 0.85; }
#evidence .score { text-decoration: underline dotted; cursor: help; }
#evidence mark, #chat mark { background: #fff3a3; color: inherit; padding: 0 2px; }
#evidence .claims { margin: 0.3em 0; padding-left: 1.2em; font-size: 0.9em; }
#evidence li.unsupported, #chat mark.unsupported { background: #ffd9d9; }
#evidence blockquote { margin: 0.4em 0; padding-left: 0.6em;
  border-left: 3px solid var(--border-color-primary); }
#evidence details summary { cursor: pointer; font-size: 0.9em; }
a.cite { text-decoration: none; font-weight: 600; color: var(--link-text-color, #1c64d9); }
a.cite:hover { text-decoration: underline; }
#chat .turn-ref { font-size: 0.85em; }
.example-q { white-space: normal !important; text-align: left !important;
  height: auto !important; justify-content: flex-start !important; }
#status-line { font-size: 0.9em; }
#chat .placeholder { padding: 1em 1.2em; opacity: 0.85; }
@media (max-width: 640px) {
  #chat { height: 52vh !important; min-height: 240px; }
  #app-title h2 { margin: 0 !important; font-size: 1.2em; }
  #status-line { font-size: 0.8em; }
}
"""

# Clicking [n] shows card n of that answer's evidence, scrolled into view and highlighted;
# clicking anywhere else in an answer shows that answer's evidence.
JS = """
<script>
(() => {
  // the chat's sanitizer keeps href but drops data-* attributes: the target is in the href
  const TARGET = /^#(?:card-(\\d+)-(\\d+)|turn-(\\d+))$/;
  function parse(link) {
    const m = TARGET.exec(link.getAttribute("href") || "");
    return m ? { turn: m[1] || m[3], n: m[2] || null } : null;
  }
  function show(turn, n) {
    const root = document.getElementById("evidence");
    if (!root) return;
    root.querySelectorAll("section.turn").forEach((s) => {
      s.hidden = s.dataset.turn !== turn;
    });
    root.querySelectorAll(".paper.highlight").forEach((c) => c.classList.remove("highlight"));
    const target = document.getElementById(n ? `card-${turn}-${n}` : `turn-${turn}`);
    if (!target) return;
    if (n) target.classList.add("highlight");
    target.scrollIntoView({ behavior: "smooth", block: n ? "center" : "nearest" });
  }
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.cite, a.turn-ref");
    const at = link && parse(link);
    if (at) {
      event.preventDefault();
      event.stopPropagation();
      show(at.turn, at.n);
      return;
    }
    const message = event.target.closest("#chat .message");
    const ref = message && message.querySelector("a.cite, a.turn-ref");
    const of = ref && parse(ref);
    if (of && !event.target.closest("button, a")) show(of.turn, null);
  }, true);
})();
</script>
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


# --- citation markers as links --------------------------------------------------------------


def cite_link(turn: int, number: int, title: str | None) -> str:
    """``[number]`` as a link to card ``number`` of answer ``turn``; hovering shows the
    paper's title (from the index)."""
    tip = f"[{number}] {title}" if title else "the evidence appears when the answer is complete"
    return (
        f'<a class="cite" href="#card-{turn}-{number}" title="{html_text(tip)}">'
        f"&#91;{number}&#93;</a>"
    )


def linked(
    text: str, turn: int, titles: Mapping[int, str], escape: Callable[[str], str] = md_text
) -> str:
    """``text`` escaped with ``escape``, each citation marker a link per number."""
    out, pos = [], 0
    for match in MARKER.finditer(text):
        out.append(escape(text[pos : match.start()]))
        numbers = numbers_of(match.group(1))
        out.append("".join(cite_link(turn, n, titles.get(n)) for n in numbers))
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


# --- rendering an answer ---------------------------------------------------------------------


def mode_label(mode: str, model: str | None) -> str:
    return f"LLM · {model}" if mode == "llm" else "Offline extractive"


def view_label(view: Assistant) -> str:
    """The mode an assistant (view) answers in, as shown to the user."""
    if view.mode == "llm":
        return mode_label("llm", view.chat_model().model)
    return mode_label("offline", None)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def cited_line(answer: Answer) -> str:
    """How many of the retrieved papers the answer cites."""
    retrieved = len(answer.sources)
    if answer.citations:
        return f"cited {len(answer.citations)} of the {_plural(retrieved, 'paper')} retrieved"
    if retrieved:
        return f"none of the {_plural(retrieved, 'paper')} retrieved is cited"
    return "no paper retrieved"


def _head(label: str, notices: Sequence[str], turn: int, extra: str = "") -> list[str]:
    ref = f'<a class="turn-ref" href="#turn-{turn}">evidence ›</a>'
    line = f"**{md_text(label)}**" + (f" · {md_text(extra)}" if extra else "") + f" · {ref}"
    return [line, *(f"> {md_text(n)}" for n in notices)]


def streaming_markdown(
    label: str, notices: Sequence[str], text: str, status: str, turn: int = 1
) -> str:
    """The message while an answer streams in: mode, new notices, the text so far (its
    markers already links; their cards appear when the answer is complete)."""
    body = linked(text, turn, {}) + " ▌" if text else f"_{md_text(status)}…_"
    return "\n\n".join([*_head(label, notices, turn), body])


def answer_markdown(answer: Answer, turn: int = 1, *, shown: Collection[str] = ()) -> str:
    """The finished message for answer ``turn`` of a conversation: mode, how many papers it
    cites, the notices not ``shown`` earlier in the conversation, the answer (unsupported
    claims marked, or a refusal), then the numbered sources. Every ``[n]`` links to its
    evidence card."""
    titles = {c.number: c.title for c in answer.citations}
    body = f"🚫 **{md_text(answer.text)}**" if answer.refused else _marked(answer, turn, titles)
    notices = [n for n in answer.notices if n not in shown]
    label = mode_label(answer.mode, answer.model)
    parts = [*_head(label, notices, turn, cited_line(answer)), body]
    tail = _tail(answer, turn, titles)
    if tail:
        parts.append(tail)
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


def _marked(answer: Answer, turn: int, titles: Mapping[int, str]) -> str:
    text, out, pos = answer.text, [], 0
    for claim in answer.unsupported_claims:
        at = text.find(claim.text, pos)
        if at < 0:
            continue
        reason = claim.reason or "not supported by the cited abstracts"
        out.append(linked(text[pos:at], turn, titles))
        out.append(
            f'<mark class="unsupported" title="{html_text(reason)}">⚠️ '
            f"{linked(claim.text, turn, titles)}</mark>"
        )
        pos = at + len(claim.text)
    out.append(linked(text[pos:], turn, titles))
    return "".join(out)


def _tail(answer: Answer, turn: int, titles: Mapping[int, str]) -> str:
    """Sources (or the closest papers of a refusal), unsupported claims, warnings."""
    blocks: list[str] = []
    if answer.citations:
        lines = [
            f"{cite_link(turn, c.number, c.title)} {md_text(c.title)}" for c in answer.citations
        ]
        blocks.append("Sources:\n" + "\n".join(lines))
    elif answer.refused and answer.sources:
        lines = [f"\\- {md_text(s.title)}" for s in answer.sources[:3]]
        blocks.append("Closest papers (not cited):\n" + "\n".join(lines))
    unsupported = answer.unsupported_claims
    if unsupported and not answer.refused:
        lines = [f"\\- {linked(c.text, turn, titles)}" for c in unsupported]
        head = f"Not supported by the cited abstracts ({len(unsupported)}):"
        blocks.append(head + "\n" + "\n".join(lines))
    if answer.warnings:
        blocks.append("\n".join(f"warning: {md_text(w)}" for w in answer.warnings))
    return "\n\n".join(blocks)


def error_markdown(message: str) -> str:
    return f"⚠️ **Error:** {md_text(message)}"


# --- the evidence panel ----------------------------------------------------------------------

EVIDENCE_PLACEHOLDER = (
    '<div class="evidence-empty">Ask a question: the papers behind each claim appear here. '
    "Click a number such as [1] in an answer to see its paper.</div>"
)


def _highlight(text: str, spans: Sequence[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in spans:
        out.append(html_text(text[pos:start]))
        out.append(f"<mark>{html_text(text[start:end])}</mark>")
        pos = end
    out.append(html_text(text[pos:]))
    return "".join(out)


def paper_link(title: str, url: str | None) -> str:
    """A link to the paper: its url (an http(s) one), else arXiv's title search, labelled
    as a search."""
    if url and url.lower().startswith(("https://", "http://")):
        host = urlsplit(url).hostname or "the paper"
        label = "arXiv abstract page" if "arxiv.org/abs/" in url.lower() else f"open on {host}"
        href = url
    else:
        label = "search arXiv for this title"
        href = "https://arxiv.org/search/?" + urlencode({"query": title, "searchtype": "title"})
    return (
        f'<a class="paper-link" href="{html_text(href)}" target="_blank" '
        f'rel="noopener noreferrer">{label} ↗</a>'
    )


def score_html(source: Source, retrieved: int) -> str:
    """The retrieval score, shown bounded to 0–1 with what it means, and the rank."""
    score = min(max(source.score, 0.0), 1.0)
    return (
        f'<span class="score" title="{html_text(SCORE_TIP)}">match {score:.2f}</span> '
        f"· rank {source.rank or '?'} of {retrieved}"
    )


def _meta(source: Source | None, title: str, url: str | None, retrieved: int) -> str:
    parts = []
    if source is not None:
        parts.append(score_html(source, retrieved))
        if source.date:  # as the listing gave it ("Mar 18"): no year is invented
            parts.append(html_text(source.date))
        if source.authors:
            more = " et al." if len(source.authors) > 3 else ""
            parts.append(html_text(", ".join(source.authors[:3])) + more)
    parts.append(paper_link(title, url))
    return '<div class="meta">' + " · ".join(parts) + "</div>"


def answer_evidence(answer: Answer, turn: int) -> str:
    """The cards of one answer: per cited paper its title, score, date, a link, the claims
    that cite it, the abstract sentences backing them highlighted, and the full abstract.
    A refusal lists the closest papers instead."""
    retrieved = len(answer.sources)
    if not answer.citations:
        closest = "".join(
            f"<li>{html_text(s.title)}{_meta(s, s.title, s.url, retrieved)}</li>"
            for s in answer.sources[:3]
        )
        head = "The answer is a refusal: no paper was cited." if answer.refused else "No citation."
        more = f"<p>Closest papers (not cited):</p><ul>{closest}</ul>" if closest else ""
        return f'<p class="no-citations">{head}</p>{more}'
    titles = {c.number: c.title for c in answer.citations}
    by_id = {s.paper_id: s for s in answer.sources}
    cards = []
    for citation in answer.citations:
        source = by_id.get(citation.paper_id)
        abstract = source.abstract if source else ""
        claims = [c for c in answer.claims if citation.number in c.citations]
        spans = sorted({span for c in claims for span in evidence_spans(c.text, abstract)})
        items = "".join(
            f'<li class="{"supported" if c.supported else "unsupported"}">'
            f"{claim_label(c, citation.number)} "
            f"{linked(c.text, turn, titles, html_text)}</li>"
            for c in claims
        )
        quoted = " … ".join(f"<mark>{html_text(abstract[a:b].strip())}</mark>" for a, b in spans)
        url = citation.url or (source.url if source else None)
        cards.append(
            f'<div class="paper" id="card-{turn}-{citation.number}" '
            f'data-number="{citation.number}">'
            f'<div class="paper-title">[{citation.number}] {html_text(citation.title)}</div>'
            f"{_meta(source, citation.title, url, retrieved)}"
            f'<ul class="claims">{items}</ul>'
            + (f'<blockquote class="support">{quoted}</blockquote>' if quoted else "")
            + f'<details><summary>Full abstract</summary><p class="abstract">'
            f"{_highlight(abstract, spans)}</p></details></div>"
        )
    return "".join(cards)


def claim_label(claim, number: int) -> str:
    """What a claim's check means, said plainly: an offline quote is "quoted from [n]" (a
    quote is in its abstract by construction; what matters is whether it holds the
    question's words), a judged claim "✓ supported" or "⚠️ not supported"."""
    if claim.basis == "quoted":
        if claim.addresses is False:
            return f"quoted from [{number}], without the question's words:"
        return f"quoted from [{number}]:"
    return "✓" if claim.supported else "⚠️ not supported:"


def evidence_html(turns: Sequence[Turn] | None) -> str:
    """The evidence panel of a conversation: one section per answer, the latest shown (a
    click on an earlier answer, or on one of its numbers, shows that answer's section)."""
    if not turns:
        return EVIDENCE_PLACEHOLDER
    latest = len(turns)
    sections = []
    for turn, item in enumerate(turns, start=1):
        where = "the latest answer" if turn == latest else f"answer {turn} of {latest}"
        head = f'<div class="turn-head">Evidence for {where}: “{html_text(item.question)}”</div>'
        hidden = "" if turn == latest else " hidden"
        sections.append(
            f'<section class="turn" id="turn-{turn}" data-turn="{turn}"{hidden}>'
            f"{head}{answer_evidence(item.answer, turn)}</section>"
        )
    return '<div class="evidence">' + "".join(sections) + "</div>"


# --- messages for a UI user: no server paths, no CLI flags, no setting names ------------------

_UI_WORDING = [
    (
        re.compile(r"\s*\(fix the record, or ingest with --skip-invalid\)"),
        " (fix the record, or tick “Skip broken records” to add the others)",
    ),
    (re.compile(r"convert it, e\.g\. `iconv[^`]*`"), "save it as UTF-8 text and upload it again"),
    (re.compile(r"\s*\(RAG_ASSISTANT_[A-Z0-9_]+\)"), ""),
]


def ui_wording(text: str, *, home: Path, names: Mapping[str, str] = {}) -> str:
    """A message for a UI user: server paths become the uploaded file's name (``names``:
    server path → name) or "the index", and CLI flags and setting names become what the UI
    offers."""
    for path, name in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, name)
    for where in dict.fromkeys((str(home), str(home.resolve()))):
        text = text.replace(f"the index in {where} is", "the index is")
        text = text.replace(where, "the index folder")
    for pattern, replacement in _UI_WORDING:
        text = pattern.sub(replacement, text)
    return text


# --- uploads -------------------------------------------------------------------------------

_SNIFF_BYTES = 8192


def binary_kind(path: Path, name: str) -> str | None:
    """What a file that should hold text holds instead ("a PNG image"), or None when it
    looks like text. A ``.gz`` file is judged by what it decompresses to."""
    import filetype

    try:
        if name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                head = handle.read(_SNIFF_BYTES)
        else:
            with open(path, "rb") as handle:
                head = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return None  # a damaged archive: ingest names it
    kind = filetype.guess(head)
    if kind is not None:
        what = kind.mime.split("/")[0]
        noun = {"image": "image", "video": "video", "audio": "audio file"}.get(what, "file")
        return f"a {kind.extension.upper()} {noun} ({kind.mime})"
    if b"\x00" in head:
        return "binary data"
    return None


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def place_upload(file: Path, name: str, uploads: Path) -> tuple[Path, bool]:
    """Copy an uploaded file into ``uploads`` under a name that starts with its content
    digest, so no other upload can replace it (the same content gets the same name); the
    copy is atomic. Returns the path and whether this call created it."""
    target = uploads / f"{_digest(file)[:16]}-{name}"
    if target.exists():
        return target, False
    with atomic_writer(target) as out, open(file, "rb") as source:
        shutil.copyfileobj(source, out)
    return target, True


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

    @property
    def llm_configured(self) -> bool:
        return self.views["openai"].mode == "llm"

    def mode_choices(self) -> list[tuple[str, str]]:
        llm = self.views["openai"]
        model = llm.chat_model().model if llm.mode == "llm" else llm.settings.openai.model
        suffix = "" if self.llm_configured else " (not configured: set OPENAI_API_KEY)"
        return [("Offline extractive", "offline"), (f"LLM · {model}{suffix}", "openai")]

    def mode_info(self) -> str:
        if self.llm_configured:
            return "Offline quotes the abstracts; the model writes an answer from them."
        return (
            "No language model is configured on this server: the LLM mode answers offline "
            "and says why."
        )

    def status_markdown(self, mode: str | None = None) -> str:
        """The status line: what the index holds and how answers are made."""
        view = self.views.get(mode or self.default_mode, self.assistant)
        try:
            index = md_text(self.assistant.status().line())
        except RagAssistantError as exc:
            index = error_markdown(self.wording(exc))
        how = (
            "written by the model from the retrieved abstracts"
            if view.mode == "llm"
            else "sentences quoted from the abstracts, no language model"
        )
        return f"**Index:** {index} · **Answers:** {md_text(view_label(view))} ({how})"

    def wording(
        self,
        message: str | RagAssistantError,
        names: Mapping[str, str] = {},
    ) -> str:
        """``message`` (an error, or a report) as a UI user should read it."""
        text = ui_wording(str(message), home=self.assistant.settings.home, names=names)
        if isinstance(message, QuestionTooLongError):
            text += "; shorten it (it is still in the box) and ask again"
        return text

    def respond(
        self, message: str, chat: list | None, turns: list | None, k: float, mode: str
    ) -> Iterator[tuple]:
        """Stream the answer to ``message`` into the chat; then show its evidence.
        Yields (chat, evidence, question box, turns). An empty ``chat`` (the chatbot's Clear,
        or an API call with ``[]``) starts a new conversation."""
        chat = list(chat or [])
        turns = list(turns or []) if chat else []
        if not isinstance(message, str) or not message.strip():
            gr.Warning("Type a question first.")
            yield gr.skip(), gr.skip(), gr.skip(), turns
            return
        view = self.views.get(mode, self.assistant)
        try:
            view.validate_question(message)
            k = view.validate_k(k)
        except RagAssistantError as exc:  # the question stays in the box
            yield [*chat, _message(error_markdown(self.wording(exc)))], gr.skip(), gr.skip(), turns
            return
        turn = len(turns) + 1
        shown = {n for t in turns for n in t.answer.notices}
        chat.append(_message(md_text(message), "user"))
        conversation = view.conversation(turns)
        label, notices, text, status = view_label(view), [], "", "retrieving"

        def streaming() -> list:
            return [*chat, _message(streaming_markdown(label, notices, text, status, turn))]

        yield streaming(), gr.skip(), "", turns
        try:
            for event in conversation.stream(message, k=k):
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, Status):
                    if event.kind != "notice":
                        status = event.message
                    elif event.message not in shown:
                        notices.append(event.message)
                elif isinstance(event, Final):
                    answer_message = _message(answer_markdown(event.answer, turn, shown=shown))
                    turns = conversation.turns
                    yield [*chat, answer_message], evidence_html(turns), gr.skip(), turns
                    return
                yield streaming(), gr.skip(), gr.skip(), gr.skip()
        except RagAssistantError as exc:
            log.info("question not answered: %s", exc)
            yield [*chat, _message(error_markdown(self.wording(exc)))], gr.skip(), gr.skip(), turns

    def ask_json(
        self,
        question: str,
        history: list[str] | None = None,
        k: int | None = None,
        mode: str | None = None,
    ) -> dict:
        """Answer ``question`` for a script: the answer as JSON (``text`` with plain ``[n]``
        markers, ``citations`` with number, title and paper id, ``claims``, ``sources``,
        ``refused``, ``mode``). ``history``: the earlier questions of the conversation,
        oldest first; ``k``: papers to retrieve; ``mode``: 'offline' or 'openai'."""
        view = self.views.get(mode or self.default_mode)
        if view is None:
            raise gr.Error(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if history is not None and not (
            isinstance(history, list) and all(isinstance(h, str) for h in history)
        ):
            raise gr.Error(
                "history must be a list of the earlier questions (strings), oldest first, "
                f"or [] for none; got {type(history).__name__}"
            )
        try:
            answer = view.chat(history or [], question, k=k)
        except RagAssistantError as exc:
            raise gr.Error(self.wording(exc)) from None
        return answer.to_dict()

    def add_papers(
        self,
        files: Sequence[str] | None,
        chat: list | None,
        skip_invalid: bool,
        mode: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's injection idiom
    ) -> tuple[list, str, None]:
        """Copy the uploaded files into ``<home>/uploads`` under content-digest names (so
        no upload, of this request or of another process, can replace another) and ingest
        them, both under the index's write lock. A file that cannot be ingested is not
        kept. Returns (chat, status line, file input)."""
        chat = list(chat or [])
        if not files:
            chat.append(_message("⚠️ Choose a JSON-lines, CSV or listing text file first."))
            return chat, self.status_markdown(mode), None
        names: dict[str, str] = {}
        try:
            report = self._ingest_uploads([Path(f) for f in files], names, skip_invalid, progress)
        except RagAssistantError as exc:
            message = md_text(self.wording(exc, names))
            chat.append(_message(f"⚠️ **The papers were not added.** {message}"))
            return chat, self.status_markdown(mode), None
        listed = md_text(", ".join(Path(f).name for f in files))
        if report.changed:
            head = f"**Added papers from {listed}.**"
        else:
            head = f"**Nothing new in {listed}:** every paper in it is already in the index."
        lines = [report.summary(), *(f"skipped {s}" for s in report.skipped), *report.warnings]
        details = md_text(self.wording("\n".join(lines), names))
        chat.append(_message(f"{head}\n\n{details}"))
        return chat, self.status_markdown(mode), None

    def _ingest_uploads(self, files, names, skip_invalid, progress):
        for file in files:
            names[str(file)] = file.name
            kind = binary_kind(file, file.name)
            if kind is not None:
                raise UnsupportedFileError(
                    f"{file.name} is {kind}, not text; upload papers as JSON lines, CSV or a "
                    "listing page saved as text"
                )
        uploads = self.assistant.settings.home / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)

        def on_progress(stage: str, done: int, total: int | None) -> None:
            progress((done, total), desc=STAGES.get(stage, stage))

        with self.assistant.index.writing():
            placed = [place_upload(file, file.name, uploads) for file in files]
            for file, (target, _) in zip(files, placed, strict=True):
                names[str(target)] = names[str(target.resolve())] = file.name
            try:
                return self.assistant.ingest(
                    list(dict.fromkeys(t for t, _ in placed)),
                    skip_invalid=skip_invalid,
                    progress=on_progress,
                )
            except RagAssistantError:
                for target, created in placed:  # leave <home>/uploads as it was
                    if created:
                        target.unlink(missing_ok=True)
                raise


# --- the app -------------------------------------------------------------------------------

INTRO = (
    "**Ask about the indexed research-paper abstracts.** Every claim is followed by the "
    "numbers of the papers it comes from: click a number to see that paper's evidence."
)


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat app over ``assistant`` (launch it with :func:`serve`)."""
    ui = ChatUI(assistant)
    with gr.Blocks(title="rag-assistant", analytics_enabled=False) as app:
        gr.Markdown("## rag-assistant", elem_id="app-title")
        status = gr.Markdown(ui.status_markdown(), elem_id="status-line")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat",
                    show_label=False,
                    elem_id="chat",
                    height=520,
                    sanitize_html=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    layout="panel",
                    group_consecutive_messages=False,
                    placeholder=INTRO,
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        placeholder="Ask a question about the papers",
                        show_label=False,
                        scale=5,
                        max_lines=6,
                        elem_id="question",
                        autofocus=True,
                    )
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                with gr.Column(elem_id="examples"):
                    gr.Markdown("Example questions (click to ask):")
                    example_buttons = [
                        gr.Button(q, size="sm", variant="secondary", elem_classes="example-q")
                        for q in EXAMPLES
                    ]
                new_chat = gr.Button("New conversation", size="sm", elem_id="new-chat")
            with gr.Column(scale=2):
                gr.Markdown("### Evidence")
                evidence = gr.HTML(EVIDENCE_PLACEHOLDER, elem_id="evidence")
        with gr.Accordion("Settings and papers", open=True):
            with gr.Row():
                k = gr.Slider(
                    1,
                    20,
                    value=assistant.settings.retrieval.k,
                    step=1,
                    label="Number of sources",
                    info="papers retrieved per question, and the most an answer may cite",
                )
                mode = gr.Radio(
                    ui.mode_choices(),
                    value=ui.default_mode,
                    label="Answer mode",
                    info=ui.mode_info(),
                    elem_id="mode",
                )
            with gr.Row():
                files = gr.File(
                    label="Add papers: JSON lines, CSV or a listing page as text",
                    file_count="multiple",
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                    elem_id="upload",
                    height=140,
                )
                with gr.Column():
                    skip_invalid = gr.Checkbox(
                        False,
                        label="Skip broken records",
                        info="add the good records of a file and list the broken ones",
                    )
                    add = gr.Button("Add papers", elem_id="add-papers")
        turns = gr.State([])

        answer_io = {
            "inputs": [chatbot, turns, k, mode],
            "outputs": [chatbot, evidence, question, turns],
            "show_progress": "hidden",
        }
        gr.on(
            [question.submit, ask.click],
            ui.respond,
            inputs=[question, *answer_io["inputs"]],
            outputs=answer_io["outputs"],
            api_name="ask",
            show_progress="hidden",
        )
        for button, text in zip(example_buttons, EXAMPLES, strict=True):
            button.click(_asker(ui, text), **answer_io, api_name=False)
        gr.api(ui.ask_json, api_name="ask_json")
        add.click(
            ui.add_papers,
            inputs=[files, chatbot, skip_invalid, mode],
            outputs=[chatbot, status, files],
            api_name="add_papers",
            concurrency_limit=1,
            show_progress_on=[files],
        )
        mode.change(
            ui.status_markdown,
            inputs=[mode],
            outputs=[status],
            api_name="status",
            show_progress="hidden",
        )
        reset = {
            "fn": lambda: ([], EVIDENCE_PLACEHOLDER, []),
            "outputs": [chatbot, evidence, turns],
        }
        new_chat.click(**reset, api_name="new_conversation")
        chatbot.clear(**reset, api_name=False)
        app.load(
            ui.status_markdown,
            inputs=[mode],
            outputs=[status],
            api_name=False,
            show_progress="hidden",
        )
    app.queue(default_concurrency_limit=assistant.settings.ui.concurrency)
    return app


def _asker(ui: ChatUI, question: str):
    """The handler of an example button: asks ``question`` at once."""

    def ask(chat, turns, k, mode):
        yield from ui.respond(question, chat, turns, k, mode)

    return ask


# --- logins ------------------------------------------------------------------------------------


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``'user:password'`` as gradio's auth tuple (None when unset)."""
    if not value:
        return None
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise ConfigurationError("--auth (RAG_ASSISTANT_UI__AUTH) must be 'user:password'")
    return user, password


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """The logins of an auth file: one ``user:password`` per line; blank lines and lines
    starting with ``#`` are ignored."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigurationError(f"the auth file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the auth file {path} cannot be read ({exc})") from None
    logins = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.strip().partition(":")
        if not sep or not user or not password:
            raise ConfigurationError(f"{path}:{lineno}: expected 'user:password'")
        logins.append((user, password))
    if not logins:
        raise ConfigurationError(f"the auth file {path} holds no 'user:password' line")
    return logins


class LoginThrottle:
    """ASGI middleware: after ``attempts`` failed logins from one address within ``window``
    seconds, further logins from it are refused with HTTP 429 until the oldest failure is
    older than the window. Gradio owns the ``/login`` route, so the limit wraps it. Behind a
    reverse proxy every client has the proxy's address: limit logins there instead."""

    def __init__(
        self,
        app,
        attempts: int = LOGIN_ATTEMPTS,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.attempts, self.window, self.clock = app, attempts, window, clock
        self.failures: dict[str, deque[float]] = {}

    async def __call__(self, scope, receive, send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/").endswith("/login")
        ):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        now = self.clock()
        failures = self.failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.attempts:
            from starlette.responses import JSONResponse

            wait = max(1, math.ceil(failures[0] + self.window - now))
            response = JSONResponse(
                {"detail": f"Too many failed logins; try again in {wait} s."},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return
        status: list[int] = []

        async def record(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, record)
        if status and status[0] in (400, 401):
            failures.append(self.clock())
        elif status and status[0] == 200:
            failures.clear()
        if not failures:
            self.failures.pop(client, None)


# --- serving ---------------------------------------------------------------------------------


def serve(
    assistant: Assistant,
    *,
    host: str | None = None,
    port: int | None = None,
    auth: str | None = None,
    auth_file: str | Path | None = None,
    open_browser: bool = False,
    block: bool = True,
    announce: Callable[[str], None] | None = None,
) -> tuple[gr.Blocks, str]:
    """Launch the app; returns it and its local URL. ``host``/``port``/``auth`` default to
    ``settings.ui``; ``auth_file`` holds ``user:password`` lines (it wins over the setting,
    ``auth`` over both). Never opens a public share link. Raises :class:`PortInUseError`
    when the port is taken. ``announce`` is called with the URL once the app listens.
    ``block=False`` returns at once (tests, benchmarks); close it with ``app.close()``."""
    from starlette.middleware import Middleware

    ui = assistant.settings.ui
    credentials: list[tuple[str, str]] | tuple[str, str] | None
    if auth is not None:
        credentials = parse_auth(auth)
    elif auth_file is not None:
        credentials = read_auth_file(auth_file)
    else:
        credentials = parse_auth(ui.auth.get_secret_value() if ui.auth is not None else None)
    port = port if port is not None else ui.port
    app = build_app(assistant)
    try:
        _, url, _ = app.launch(
            server_name=host or ui.host,
            server_port=port or None,
            auth=credentials,
            # gradio's login form says "Incorrect Credentials" for any refusal, a 429 too
            auth_message=(
                f"After {LOGIN_ATTEMPTS} wrong passwords, logins from your address are refused "
                "for a minute."
            ),
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
            head=JS,
            app_kwargs={"middleware": [Middleware(LoginThrottle)]},
        )
    except OSError as exc:
        if "Cannot find empty port" in str(exc):
            raise PortInUseError(port) from None
        raise
    if announce is not None:
        announce(url)
    if block:
        app.block_thread()
    return app, url
