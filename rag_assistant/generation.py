"""Generated answers: numbered sources fitted to the model's token budget, the answering
prompt, the model's text streamed with citations resolved on the fly, then checked claim by
claim.

The model only ever sees numbers; :class:`~rag_assistant.citations.CitationMap` turns them
into papers from the index, so a title the model writes is never shown as a citation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import prompts
from .answers import REFUSAL, Answer, Event, Final, Status, TextDelta, Usage
from .citations import StreamResolver, claims, is_refusal, tidy
from .conversation import Turn, history_questions
from .llm import Completion, UsageReport
from .retrieval import Source
from .tokens import count, encoding_name_for_model, truncate

if TYPE_CHECKING:
    from .assistant import Assistant

log = logging.getLogger(__name__)

MIN_SOURCE_TOKENS = 64
"""A source cut shorter than this is left out rather than sent as a fragment."""


@dataclass
class Context:
    """The numbered sources the model sees (``text``) and which of the retrieved sources
    they are (a prefix of them: the lowest-ranked are dropped first)."""

    text: str
    sources: list[Source]
    dropped: int
    truncated: bool
    tokens: int


_FENCE_TAG = re.compile(r"<(\s*/?\s*sources\s*)>", re.IGNORECASE)


def _unfenced(text: str) -> str:
    """``text`` with look-alikes of the prompt's ``<sources>`` tags defused, so an abstract
    cannot close the fence and pose as instructions after it."""
    return _FENCE_TAG.sub(r"‹\1›", text)


def format_source(number: int, source: Source) -> str:
    return f"[{number}] Title: {_unfenced(source.title)}\n{_unfenced(source.text.strip())}"


def build_context(sources: Sequence[Source], budget: int, encoding_name: str) -> Context:
    """The sources, numbered from 1, that fit in ``budget`` tokens; lower-ranked sources are
    dropped first, and the first one is cut to fit when even it alone is too long."""
    kept: list[str] = []
    used = 0
    truncated = False
    for number, source in enumerate(sources, start=1):
        block = format_source(number, source)
        cost = count(block, encoding_name) + 2  # the blank line between sources
        if used + cost <= budget:
            kept.append(block)
            used += cost
            continue
        if not kept and budget - used >= MIN_SOURCE_TOKENS:
            kept.append(truncate(block, budget - used - 2, encoding_name))
            used = budget
            truncated = True
        break
    return Context(
        "\n\n".join(kept), list(sources[: len(kept)]), len(sources) - len(kept), truncated, used
    )


def messages_for(question: str, context: Context, *, max_sentences: int, folder=None) -> list[dict]:
    system = prompts.load("answer_system", folder).format(
        n_sources=len(context.sources), max_sentences=max_sentences, refusal=REFUSAL
    )
    user = prompts.load("answer_user", folder).format(sources=context.text, question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def llm_events(
    assistant: Assistant,
    question: str,
    standalone: str,
    sources: list[Source],
    *,
    notices: list[str],
    history: Sequence[object] = (),
    stream: bool = True,
) -> Iterator[Event]:
    """The events of one generated answer (see :meth:`Assistant.stream`)."""
    settings = assistant.settings
    model = assistant.chat_model()
    notices = list(notices)
    base = dict(
        question=question,
        mode="llm",
        model=model.model,
        sources=sources,
        standalone_question=standalone,
    )

    best, _ = assistant.offline_answerer().evidence(standalone, sources)
    if not sources or best < settings.answer.min_evidence:
        notices.append(
            "Refused without calling the model: the retrieved abstracts match too little "
            f"of the question (evidence {best:.2f} < {settings.answer.min_evidence:.2f})."
        )
        for notice in notices:
            yield Status(notice, "notice")
        yield TextDelta(REFUSAL)
        yield Final(
            Answer(text=REFUSAL, citations=[], refused=True, notices=notices, evidence=best, **base)
        )
        return

    enc = encoding_name_for_model(model.model)
    context = build_context(sources, settings.openai.context_tokens, enc)
    if context.dropped or context.truncated:
        parts = []
        if context.dropped:
            parts.append(f"{context.dropped} lower-ranked source(s) left out")
        if context.truncated:
            parts.append("the top source cut short")
        notices.append(
            f"The sources did not fit the context budget ({settings.openai.context_tokens} "
            f"tokens): {', '.join(parts)}."
        )
    messages = messages_for(
        standalone,
        context,
        max_sentences=settings.answer.max_sentences,
        folder=settings.prompts_dir,
    )
    for notice in notices:
        yield Status(notice, "notice")
    yield Status("generating")

    resolver = StreamResolver(context.sources)
    raw: list[str] = []
    resolved: list[str] = []
    usage: Usage | None = None
    if stream:
        for item in model.stream(messages):
            if isinstance(item, UsageReport):
                usage = Usage(item.prompt_tokens, item.completion_tokens)
                continue
            raw.append(item)
            shown = resolver.feed(item)
            resolved.append(shown)
            if shown:
                yield TextDelta(shown)
        tail = resolver.finish()
        resolved.append(tail)
        if tail:
            yield TextDelta(tail)
    else:
        completion: Completion = model.complete(messages)
        raw.append(completion.text)
        resolved += [resolver.feed(completion.text), resolver.finish()]
        if completion.prompt_tokens is not None:
            usage = Usage(completion.prompt_tokens, completion.completion_tokens or 0)

    raw_text = "".join(raw)
    cmap = resolver.map
    if is_refusal(raw_text) or not raw_text.strip():
        if not raw_text.strip():
            notices.append("The model returned an empty answer.")
        yield Final(
            Answer(
                text=REFUSAL,
                citations=[],
                refused=True,
                notices=notices,
                usage=usage,
                warnings=cmap.warnings(),
                evidence=best,
                **base,
            )
        )
        return
    text = tidy("".join(resolved))
    citations = cmap.citations()
    answer = Answer(
        text=text,
        citations=citations,
        refused=False,
        claims=claims(text, citations, context.sources, assistant.judge),
        warnings=cmap.warnings(),
        notices=notices,
        usage=usage,
        evidence=best,
        **base,
    )
    yield Final(answer)


def condense_with_llm(assistant: Assistant, history: Sequence[object], message: str) -> str:
    """The follow-up ``message`` rewritten by the model as a standalone question, from the
    last few turns of ``history``; the message itself when the model returns nothing."""
    lines: list[str] = []
    for item in list(history)[-6:]:
        if isinstance(item, Turn):
            lines.append(f"User: {item.question}")
            if not item.answer.refused:
                lines.append(f"Assistant: {item.answer.text[:600]}")
        elif isinstance(item, dict) and item.get("role") in ("user", "assistant"):
            content = item.get("content")
            if isinstance(content, str):
                who = "User" if item["role"] == "user" else "Assistant"
                lines.append(f"{who}: {content[:600]}")
        else:
            lines.extend(f"User: {q}" for q in history_questions([item]))
    if not lines:
        return message
    prompt = prompts.load("condense", assistant.settings.prompts_dir).format(
        history="\n".join(lines), message=message
    )
    completion = assistant.chat_model().complete(
        [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=120
    )
    rewritten = completion.text.strip().strip('"').strip()
    if not rewritten or len(rewritten) > 4 * len(message) + 400:
        return message
    return rewritten.splitlines()[0].strip()
