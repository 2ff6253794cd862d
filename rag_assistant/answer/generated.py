"""Generated answers: numbered sources fitted to the model's token budget, the answering
prompt, the model's text streamed with citations resolved on the fly, then checked claim by
claim.

The model only ever sees numbers; :class:`~.citations.CitationMap` turns them into papers
from the index, so a title the model writes is never shown as a citation. The answerability
policy is asked first: a question it refuses never reaches the model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..settings import AnswerSettings, OpenAISettings
from ..text.tokens import count, encoding_name_for_model, truncate
from ..types import REFUSAL, Answer, Event, Final, Source, Status, TextDelta, Usage
from . import prompts
from .answerer import Request
from .citations import StreamResolver, claims, tidy
from .judges import SupportJudge
from .llm import Completion, Finish, UsageReport
from .policy import AnswerabilityPolicy, is_refusal

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


class GeneratedAnswerer:
    """Answers with a chat model (anything with ``model``, ``complete`` and ``stream``, such
    as :class:`~.llm.ChatModel`), under ``policy``; claims are checked by ``judge``."""

    mode = "llm"

    def __init__(
        self,
        model,
        judge: SupportJudge,
        policy: AnswerabilityPolicy,
        *,
        answer: AnswerSettings,
        openai: OpenAISettings,
        prompts_dir: Path | None = None,
    ) -> None:
        self.model = model
        self.judge = judge
        self.policy = policy
        self.answer_settings = answer
        self.openai_settings = openai
        self.prompts_dir = prompts_dir

    def events(self, request: Request, sources: list[Source]) -> Iterator[Event]:
        """The events of one generated answer (see :meth:`Assistant.stream`)."""
        notices = list(request.notices)
        base = dict(
            question=request.question,
            mode="llm",
            model=self.model.model,
            sources=sources,
            standalone_question=request.standalone,
        )
        decision = self.policy.decide(request.standalone, sources)
        if not decision.answerable:
            notices.append(f"Refused without calling the model: {decision.reason}.")
            for notice in notices:
                yield Status(notice, "notice")
            yield TextDelta(REFUSAL)
            yield Final(
                Answer(
                    text=REFUSAL,
                    citations=[],
                    refused=True,
                    notices=notices,
                    evidence=decision.evidence,
                    **base,
                )
            )
            return

        budget = self.openai_settings.context_tokens
        context = build_context(sources, budget, encoding_name_for_model(self.model.model))
        if context.dropped or context.truncated:
            parts = []
            if context.dropped:
                parts.append(f"{context.dropped} lower-ranked source(s) left out")
            if context.truncated:
                parts.append("the top source cut short")
            notices.append(
                f"The sources did not fit the context budget ({budget} tokens): {', '.join(parts)}."
            )
        messages = messages_for(
            request.standalone,
            context,
            max_sentences=self.answer_settings.max_sentences,
            folder=self.prompts_dir,
        )
        for notice in notices:
            yield Status(notice, "notice")
        yield Status("generating")

        resolver = StreamResolver(context.sources)
        raw: list[str] = []
        resolved: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        if request.stream:
            for item in self.model.stream(messages):
                if isinstance(item, UsageReport):
                    usage = Usage(item.prompt_tokens, item.completion_tokens)
                    continue
                if isinstance(item, Finish):
                    finish = item.reason
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
            completion: Completion = self.model.complete(messages)
            raw.append(completion.text)
            resolved += [resolver.feed(completion.text), resolver.finish()]
            finish = completion.finish_reason
            if completion.prompt_tokens is not None:
                usage = Usage(completion.prompt_tokens, completion.completion_tokens or 0)

        raw_text = "".join(raw)
        cmap = resolver.map
        if finish == "length":
            notices.append(
                "The model's answer was cut off at its token limit "
                f"({self.openai_settings.max_output_tokens} tokens, "
                "RAG_ASSISTANT_OPENAI__MAX_OUTPUT_TOKENS); it is shown as far as it got."
            )
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
                    evidence=decision.evidence,
                    **base,
                )
            )
            return
        text = tidy("".join(resolved))
        citations = cmap.citations()
        yield Final(
            Answer(
                text=text,
                citations=citations,
                refused=False,
                claims=claims(text, citations, context.sources, self.judge),
                warnings=cmap.warnings(),
                notices=notices,
                usage=usage,
                evidence=decision.evidence,
                **base,
            )
        )
