"""Generated answers: numbered sources fitted to the model's token budget, the answering
prompt, the model's text streamed with citations resolved on the fly, then checked claim by
claim, and replaced when the check fails.

The model only ever sees numbers; :class:`~.citations.CitationMap` turns them into papers
from the index, so a title the model writes is never shown as a citation (and titles it
writes into its text are removed). The answerability policy is asked first: a question it
refuses never reaches the model.

Verify, then fall back: when fewer than ``answer.fallback_below`` of the answer's claims are
supported by the abstracts they cite, when it cites nothing, or when the model repeated its
instructions instead of answering, the answer says so in its first line and gives the offline
extractive answer for the same sources; the model's text stays in ``answer.fallback``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..settings import AnswerSettings, OpenAISettings
from ..text.markers import neutralise, strip_markers
from ..text.terms import words
from ..text.tokens import count, encoding_name_for_model, truncate
from ..types import (
    REFUSAL,
    Answer,
    Claim,
    Event,
    Fallback,
    Final,
    Source,
    Status,
    TextDelta,
    Usage,
    final_answer,
)
from . import prompts
from .answerer import Answerer, Request
from .citations import CitationMap, StreamResolver, claims, tidy
from .extractive import ExtractiveAnswerer
from .judges import SupportJudge
from .llm import Finish, UsageReport
from .policy import AnswerabilityPolicy, is_refusal

log = logging.getLogger(__name__)

MIN_SOURCE_TOKENS = 64
"""A source cut shorter than this is left out rather than sent as a fragment."""

ECHO_WORDS = 8
"""An answer sharing a run of this many words with the prompt's instructions repeats them."""


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


def format_source(number: int, source: Source, folder: Path | None = None) -> str:
    """One numbered source as the model sees it (``prompts/source.txt``); the abstract's
    own reference markers are removed, so the only numbers in brackets are the sources'."""
    return (
        prompts.load("source", folder)
        .format(
            number=number,
            title=_unfenced(source.title),
            text=_unfenced(neutralise(source.text.strip())),
        )
        .strip()
    )


def build_context(
    sources: Sequence[Source], budget: int, encoding_name: str, folder: Path | None = None
) -> Context:
    """The sources, numbered from 1, that fit in ``budget`` tokens; lower-ranked sources are
    dropped first, and the first one is cut to fit when even it alone is too long."""
    kept: list[str] = []
    used = 0
    truncated = False
    for number, source in enumerate(sources, start=1):
        block = format_source(number, source, folder)
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


def question_for(request: Request, folder: Path | None = None) -> str:
    """The question as the model reads it: the user's own message, and for a follow-up the
    standalone question it was rewritten as (``prompts/follow_up.txt``)."""
    if request.standalone == request.question:
        return request.question
    return (
        prompts.load("follow_up", folder)
        .format(message=request.question, standalone=request.standalone)
        .strip()
    )


def messages_for(
    question: str, context: Context, *, max_sentences: int, folder: Path | None = None
) -> list[dict]:
    system, user = prompts.answer_pair(folder)
    rules = {"n_sources": len(context.sources), "max_sentences": max_sentences, "refusal": REFUSAL}
    messages = [
        {"role": "user", "content": user.format(sources=context.text, question=question, **rules)}
    ]
    system_text = system.format(**rules).strip()
    if system_text:
        messages.insert(0, {"role": "system", "content": system_text})
    return messages


def instructions(context: Context, *, max_sentences: int, folder: Path | None = None) -> str:
    """The prompt's own words: its messages without the sources and the question."""
    blank = Context("", context.sources, 0, False, 0)
    messages = messages_for("", blank, max_sentences=max_sentences, folder=folder)
    return "\n".join(m["content"] for m in messages).replace(REFUSAL, "")


_QUOTED = re.compile(r"[\"“]([^\"”\n]{8,200})[\"”]")


def _runs(tokens: Sequence[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def echoes(answer: str, prompt_words: str) -> bool:
    """True when ``answer`` repeats the prompt's instructions instead of answering: it has
    the ``<sources>`` tags, a run of :data:`ECHO_WORDS` words of the instructions, or the
    words of an example the instructions quote ("The method halves memory use [2].")."""
    if _FENCE_TAG.search(answer):
        return True
    said = words(strip_markers(answer))
    if _runs(said, ECHO_WORDS) & _runs(words(prompt_words), ECHO_WORDS):
        return True
    for example in _QUOTED.findall(prompt_words):
        quoted = tuple(words(strip_markers(example)))
        if len(quoted) >= 3 and quoted in _runs(said, len(quoted)):
            return True
    return False


def _share(found: Sequence[Claim]) -> tuple[int, int]:
    """(supported, decided) claims: a claim whose verdict failed is left out."""
    decided = [c for c in found if not c.failed]
    return sum(c.supported for c in decided), len(decided)


def fallback_reason(
    citations: int, found: Sequence[Claim], *, echoed: bool, below: float
) -> str | None:
    """Why a checked answer must not be shown as the answer: "echo" (it repeats the prompt),
    "no-citation", or "unsupported" (fewer than ``below`` of its decided claims supported,
    or nothing stated); None when it may be shown."""
    if echoed:
        return "echo"
    if not citations:
        return "no-citation"
    supported, decided = _share(found)
    if not found or (decided and supported / decided < below):
        return "unsupported"
    return None


def fallback_message(reason: str, supported: int, decided: int) -> str:
    """The first line of an answer that fell back."""
    offline = "the offline extractive answer from the same sources follows"
    if reason == "echo":
        return f"The model repeated its instructions instead of answering; {offline}."
    if reason == "no-citation":
        return f"The model's answer cites no source, so it is not shown; {offline}."
    if not decided:
        return f"The model's answer states nothing the sources could support; {offline}."
    return (
        f"Only {supported} of the {decided} claims of the model's answer are supported by the "
        f"abstracts they cite, so it is not shown; {offline}."
    )


class GeneratedAnswerer:
    """Answers with a chat model (anything with ``model`` and ``stream``, such as
    :class:`~.llm.ChatModel`), under ``policy``; claims are checked by ``judge``; an answer
    that fails the check is replaced by ``offline``'s (default: the extractive answerer over
    the same policy and judge)."""

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
        offline: Answerer | None = None,
    ) -> None:
        self.model = model
        self.judge = judge
        self.policy = policy
        self.answer_settings = answer
        self.openai_settings = openai
        self.prompts_dir = prompts_dir
        self.offline = offline or ExtractiveAnswerer(policy, judge, answer=answer)

    def _model_name(self) -> tuple[str, str | None]:
        """The model to name before it answers, and a notice when the endpoint does not
        serve the configured one (an injected model names itself)."""
        shown = getattr(self.model, "shown_model", None)
        notice = getattr(self.model, "served_notice", None)
        return (shown() if shown else self.model.model), (notice() if notice else None)

    def events(self, request: Request, sources: list[Source]) -> Iterator[Event]:
        """The events of one generated answer (see :meth:`Assistant.stream`)."""
        notices = list(request.notices)
        base = dict(
            question=request.question,
            mode="llm",
            sources=sources,
            standalone_question=request.standalone,
        )
        decision = self.policy.decide(request.standalone, sources, asked=request.asked)
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
                    model=self.model.model,
                    **base,
                )
            )
            return

        shown, served = self._model_name()
        notices.insert(
            0,
            f"Answer generated by the language model {shown}; its citations and claims are "
            "checked against the abstracts.",
        )
        if served:
            notices.append(served)
        budget = self.openai_settings.context_tokens
        encoding_name = encoding_name_for_model(self.model.model)
        context = build_context(sources, budget, encoding_name, self.prompts_dir)
        if context.dropped or context.truncated:
            parts = []
            if context.dropped:
                parts.append(f"{context.dropped} lower-ranked source(s) left out")
            if context.truncated:
                parts.append("the top source cut short")
            notices.append(
                f"The sources did not fit the context budget ({budget} tokens): {', '.join(parts)}."
            )
        max_sentences = self.answer_settings.max_sentences
        messages = messages_for(
            question_for(request, self.prompts_dir),
            context,
            max_sentences=max_sentences,
            folder=self.prompts_dir,
        )
        for notice in notices:
            yield Status(notice, "notice")
        yield Status("generating")

        resolver = StreamResolver(context.sources)
        raw: list[str] = []
        resolved: list[str] = []
        usage: Usage | None = None
        finish = Finish("stop")
        for item in self.model.stream(messages):
            if isinstance(item, UsageReport):
                usage = Usage(
                    item.prompt_tokens, item.completion_tokens, getattr(item, "estimated", False)
                )
                continue
            if isinstance(item, Finish):
                finish = item
                continue
            raw.append(item)
            shown_text = resolver.feed(item)
            resolved.append(shown_text)
            if shown_text:
                yield TextDelta(shown_text)
        tail = resolver.finish()
        resolved.append(tail)
        if tail:
            yield TextDelta(tail)
        base["model"] = getattr(finish, "model", None) or shown

        raw_text = "".join(raw)
        cmap = resolver.map
        if finish.reason == "length":
            notices.append(
                "The model's answer was cut off at its token limit "
                f"({self.openai_settings.max_output_tokens} tokens, "
                "RAG_ASSISTANT_OPENAI__MAX_OUTPUT_TOKENS); it is shown as far as it got."
            )
        elif finish.reason == "cut":
            notices.append(
                f"The model's answer was cut off: {finish.detail}; it is shown as far as it got."
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
        text = tidy(cmap.verify("".join(resolved)))
        citations = cmap.citations()
        checked = claims(text, citations, context.sources, self.judge)
        echoed = echoes(
            raw_text, instructions(context, max_sentences=max_sentences, folder=self.prompts_dir)
        )
        below = self.answer_settings.fallback_below
        reason = fallback_reason(len(citations), checked, echoed=echoed, below=below)
        if reason is None:
            yield Final(
                Answer(
                    text=text,
                    citations=citations,
                    refused=False,
                    claims=checked,
                    warnings=cmap.warnings(),
                    notices=notices,
                    usage=usage,
                    evidence=decision.evidence,
                    **base,
                )
            )
            return
        yield Final(
            self._fallback(
                request, context, reason, text, cmap, checked, notices, usage, decision, base
            )
        )

    def _fallback(
        self,
        request: Request,
        context: Context,
        reason: str,
        text: str,
        cmap: CitationMap,
        checked: list[Claim],
        notices: list[str],
        usage: Usage | None,
        decision,
        base: dict,
    ) -> Answer:
        """The answer that replaces a model's answer that failed the check: the first line
        says why, then the offline answer for the sources the model was given."""
        supported, decided = _share(checked)
        message = fallback_message(reason, supported, decided)
        log.info("the model's answer fell back (%s): %s", reason, message)
        offline_request = Request(request.question, request.standalone, request.history)
        offline = final_answer(self.offline.events(offline_request, context.sources))
        return Answer(
            text=f"{message}\n\n{offline.text}",
            citations=offline.citations,
            refused=offline.refused,
            claims=offline.claims,
            warnings=[*cmap.warnings(), *offline.warnings],
            notices=notices,
            usage=usage,
            evidence=decision.evidence,
            fallback=Fallback(
                reason=reason,  # type: ignore[arg-type]
                message=message,
                supported=supported,
                claims=decided,
                threshold=self.answer_settings.fallback_below,
                text=text,
                citations=cmap.citations(),
                model_claims=checked,
            ),
            **base,
        )
