"""Conversations: follow-up questions turned into standalone ones, each turn keeping its
sources.

A history can be given as :class:`~rag_assistant.types.Turn` objects, chat messages
(``{"role", "content"}``, OpenAI / Gradio style), ``(user, assistant)`` pairs or earlier
questions as strings; :func:`history_exchanges` reads them all. Offline, a follow-up is
recognized by a documented heuristic (:func:`is_follow_up`) and the previous standalone
question is appended to it, so retrieval sees both; the papers the previous answer cited are
preferred by retrieval. A message saying "that <kind>" where the previous answer named one
thing of that kind is asked about the name (:func:`resolve_named_reference`). With a language
model configured, the condensing prompt rewrites the follow-up instead
(:func:`condense_with_model`), and its rewrite is used only when it is a question that keeps
the message's subject.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..text.terms import names, query_terms, terms
from ..types import Answer, Citation, Event, Final, Turn, final_answer
from . import prompts

log = logging.getLogger(__name__)

_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|she|his|her|"
    r"the (paper|papers|method|methods|model|models|approach|approaches|authors|work|"
    r"technique|framework|system|benchmark|dataset|same)|same|also|else|instead|"
    r"former|latter|above|previous|first one|second one|which one|"
    r"what about|how about|and for|compared to that)\b"
    # "the tencent one", and a message that opens with "and" / "so" or ends with "then":
    # a turn of a conversation, not a question of its own
    r"|\bthe\s+[\w-]+\s+one\b|^\W*(?:and|so)\b|\bthen\W*$",
    re.IGNORECASE,
)


@dataclass
class Exchange:
    """One earlier exchange as a history gives it: the user's message, the question that was
    searched for (the message itself when the history does not say), and the assistant's
    reply, if any."""

    user: str
    standalone: str
    assistant: str | None = None


def history_exchanges(history: Iterable[object]) -> list[Exchange]:
    """The exchanges of a history of :class:`Turn` objects, chat messages, ``(user,
    assistant)`` pairs or plain question strings, oldest first."""
    out: list[Exchange] = []
    for item in history:
        if isinstance(item, Turn):
            reply = None if item.answer.refused else item.answer.text
            out.append(Exchange(item.question, item.standalone_question, reply))
        elif isinstance(item, dict):
            content = item.get("content")
            if not isinstance(content, str):
                continue
            if item.get("role") == "user":
                out.append(Exchange(content, content))
            elif item.get("role") == "assistant" and out and out[-1].assistant is None:
                out[-1].assistant = content
        elif isinstance(item, str):
            out.append(Exchange(item, item))
        elif isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
            reply = item[1] if len(item) > 1 and isinstance(item[1], str) else None
            out.append(Exchange(item[0], item[0], reply))
    return out


_ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
_NOUN = r"(?:one|paper|papers|source|article|study|work|result|method|approach|reference)"
_POSITION = re.compile(
    rf"\bthe\s+(?P<ordinal>{'|'.join(_ORDINALS)}|last)\s+{_NOUN}\b"
    rf"|\b(?:paper|source|reference|number|no\.?|#)\s*(?P<number>\d{{1,2}})\b"
    rf"|\[(?P<marker>\d{{1,2}})\]",
    re.IGNORECASE,
)


def referenced_citations(message: str, citations: Sequence[Citation]) -> list[Citation]:
    """The citations of the previous answer a follow-up points at by position: "the first
    one", "the second paper", "the last one", "paper 2", "[3]" (numbers as that answer
    showed them). Empty when the message points at none."""
    by_number = {c.number: c for c in citations}
    found: list[Citation] = []
    for match in _POSITION.finditer(message):
        if match.group("ordinal"):
            word = match.group("ordinal").lower()
            number = max(by_number, default=0) if word == "last" else _ORDINALS[word]
        else:
            number = int(match.group("number") or match.group("marker"))
        cited = by_number.get(number)
        if cited is not None and cited not in found:
            found.append(cited)
    return found


_THAT_KIND = re.compile(r"\b(?:that|this|the\s+same)\s+([a-z][a-z-]{2,})\b", re.IGNORECASE)


def _kind_key(word: str) -> str:
    """A kind noun as compared across spellings: "re-rankers" and "reranker" alike."""
    return word.lower().replace("-", "").removesuffix("s")


def named_reference(message: str, reply: str) -> tuple[str, str] | None:
    """The name a follow-up means by "that <kind>" / "this <kind>" when the previous answer
    (``reply``) gives a thing of that kind a name: right after it in parentheses ("an
    existing re-ranker (BRIO)", "(Wombat)"), or right before it, written as a name
    (:func:`names`: "the BRIO re-ranker"). The phrase and the name, so that "what ROUGE-1
    does that reranker get?" asks about BRIO, not about the paper that used it; None when
    the message has no such phrase, or the reply names none of its kind or several."""
    for match in _THAT_KIND.finditer(message):
        kind = _kind_key(match.group(1))
        words = r"[A-Za-z][\w-]*"
        found = set()
        for m in re.finditer(rf"({words})\s*\(([^()]{{1,40}})\)", reply):
            inside = m.group(2).strip()
            named = bool(names(inside)) or inside[:1].isupper()  # "(BRIO)", "(Wombat)"
            if _kind_key(m.group(1)) == kind and named and len(inside.split()) <= 5:
                found.add(inside)
        for m in re.finditer(rf"(?=\b({words})\s+({words}))", reply):
            if _kind_key(m.group(2)) == kind:
                found.update(names(m.group(1)))
        if len(found) == 1:
            return match.group(0), found.pop()
    return None


def resolve_named_reference(message: str, reply: str | None) -> str | None:
    """``message`` with its "that <kind>" replaced by the name the previous answer gives it
    (:func:`named_reference`), or None."""
    found = named_reference(message, reply) if reply else None
    if found is None:
        return None
    phrase, name = found
    return message.replace(phrase, name, 1)


def is_follow_up(message: str) -> bool:
    """The offline heuristic: a message is a follow-up when it refers back (pronouns such as
    "it" or "they", "the paper", "the tencent one", "what about ..."), reads as a turn of a
    conversation (opens with "and" or "so", ends with "then") or has fewer than two content
    words."""
    return bool(_ANAPHORA.search(message)) or len(query_terms(message)) < 2


def condense_offline(previous: Sequence[str], message: str) -> str:
    """The standalone question for ``message`` after the user's ``previous`` standalone
    questions (oldest first): the message, plus the last of them when it is a follow-up."""
    if not previous or not is_follow_up(message):
        return message
    return f"{message.rstrip()} (context: {previous[-1].strip()})"


def condense_offline_turns(exchanges: Sequence[Exchange], message: str) -> tuple[str, bool]:
    """The standalone question for ``message`` after ``exchanges`` offline, and whether it
    is the message condensed with the conversation (the previous answer's papers are then
    preferred): "that <kind>" named by the previous answer is asked about the name, as it
    stands (:func:`resolve_named_reference`); else :func:`condense_offline`."""
    named = resolve_named_reference(message, exchanges[-1].assistant if exchanges else None)
    if named is not None:  # "that reranker" after "an existing re-ranker (BRIO)"
        return named, False
    standalone = condense_offline([e.standalone for e in exchanges], message)
    return standalone, standalone != message


_LEAD_LABEL = re.compile(
    r"^(?:standalone question|rewritten question|question|rewrite)\s*:\s*", re.IGNORECASE
)


def rewritten_question(reply: str, message: str) -> str | None:
    """The standalone question in a model's ``reply`` to the condensing prompt, or None when
    the reply is not one: it must be a single question (ending in "?") that keeps the
    message's subject, i.e. every name the message uses and at least half of its content
    words. A model that answers the question instead of rewriting it ("The answer to your
    question is no, ...") is not taken at its word."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        return None
    question = _LEAD_LABEL.sub("", lines[0]).strip().strip('"“”').strip()
    if not question.endswith("?") or len(question) > 4 * len(message) + 400:
        return None
    question_words = set(terms(question))
    for name in names(message):
        if not set(terms(name)) <= question_words:
            return None
    subject = [t for t in query_terms(message) if not _ANAPHORA.fullmatch(t)]
    if subject and sum(t in question_words for t in subject) * 2 < len(subject):
        return None
    return question


def condense_with_model(
    model, history: Sequence[object], message: str, *, prompts_dir: Path | None = None
) -> str:
    """The follow-up ``message`` rewritten by ``model`` (a chat model) as a standalone
    question, from the last few exchanges of ``history``. A reply that is not such a question
    (:func:`rewritten_question`) is not used: the offline condensation is
    (:func:`condense_offline`)."""
    exchanges = history_exchanges(history)
    lines: list[str] = []
    for exchange in exchanges[-6:]:
        lines.append(f"User: {exchange.user}")
        if exchange.assistant:
            lines.append(f"Assistant: {exchange.assistant[:600]}")
    if not lines:
        return message
    prompt = prompts.load("condense", prompts_dir).format(history="\n".join(lines), message=message)
    completion = model.complete(
        [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=120
    )
    rewritten = rewritten_question(completion.text, message)
    if rewritten is None:
        log.info("the model's rewrite of a follow-up was not used: %r", completion.text[:200])
        return condense_offline([e.standalone for e in exchanges], message)
    return rewritten


class Streams(Protocol):
    """What a conversation asks through (an :class:`~rag_assistant.Assistant`)."""

    def stream(
        self, question: str, *, k: int | None = None, history: Iterable[object] = ()
    ) -> Iterator[Event]: ...


class Conversation:
    """A sequence of turns through one assistant.

    >>> chat = assistant.conversation()
    >>> chat.ask("What is SnapKV?")
    >>> chat.ask("How much does it speed up decoding?")   # condensed with the first turn
    """

    def __init__(self, assistant: Streams, turns: Iterable[Turn] = ()) -> None:
        self.assistant = assistant
        self.turns: list[Turn] = list(turns)

    def ask(self, message: str, *, k: int | None = None) -> Answer:
        return final_answer(self.stream(message, k=k))

    def stream(self, message: str, *, k: int | None = None) -> Iterator[Event]:
        for event in self.assistant.stream(message, k=k, history=self.turns):
            if isinstance(event, Final):
                answer = event.answer
                self.turns.append(Turn(message, answer.standalone_question or message, answer))
            yield event

    def reset(self) -> None:
        self.turns.clear()
