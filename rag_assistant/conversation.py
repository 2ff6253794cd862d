"""Conversations: follow-up questions turned into standalone ones, each turn keeping its
sources.

Offline, a follow-up is recognized by a documented heuristic (:func:`is_follow_up`) and the
previous standalone question is appended to it, so retrieval sees both; the papers the
previous answer cited are preferred by retrieval. With a language model configured, the
condensing prompt rewrites the follow-up instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .terms import query_terms

if TYPE_CHECKING:
    from .answers import Answer, Event
    from .assistant import Assistant

_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|she|his|her|"
    r"the (paper|papers|method|methods|model|models|approach|approaches|authors|work|"
    r"technique|framework|system|benchmark|dataset|same)|same|also|else|instead|"
    r"former|latter|above|previous|first one|second one|which one|"
    r"what about|how about|and for|compared to that)\b",
    re.IGNORECASE,
)


@dataclass
class Turn:
    """One exchange: what the user typed, what was searched for, and the answer."""

    question: str
    standalone_question: str
    answer: Answer


def is_follow_up(message: str) -> bool:
    """The offline heuristic: a message is a follow-up when it refers back (pronouns such as
    "it" or "they", "the paper", "what about ...") or has fewer than two content words."""
    return bool(_ANAPHORA.search(message)) or len(query_terms(message)) < 2


def condense_offline(previous: Sequence[str], message: str) -> str:
    """The standalone question for ``message`` after the user's ``previous`` standalone
    questions (oldest first): the message, plus the last of them when it is a follow-up."""
    if not previous or not is_follow_up(message):
        return message
    return f"{message.rstrip()} (context: {previous[-1].strip()})"


def history_questions(history: Iterable[object]) -> list[str]:
    """The user's previous questions from a history given as :class:`Turn` objects,
    ``{"role": "user", "content": ...}`` messages (OpenAI / Gradio style) or plain strings."""
    out: list[str] = []
    for item in history:
        if isinstance(item, Turn):
            out.append(item.standalone_question)
        elif isinstance(item, dict):
            if item.get("role") == "user" and isinstance(item.get("content"), str):
                out.append(item["content"])
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
            out.append(item[0])  # (user, assistant) pairs
    return out


class Conversation:
    """A sequence of turns with one :class:`~rag_assistant.Assistant`.

    >>> chat = assistant.conversation()
    >>> chat.ask("What is SnapKV?")
    >>> chat.ask("How much does it speed up decoding?")   # condensed with the first turn
    """

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.turns: list[Turn] = []

    def ask(self, message: str, *, k: int | None = None) -> Answer:
        from .answers import Final

        final = None
        for event in self.stream(message, k=k):
            if isinstance(event, Final):
                final = event.answer
        assert final is not None
        return final

    def stream(self, message: str, *, k: int | None = None) -> Iterator[Event]:
        from .answers import Final

        for event in self.assistant.stream(message, k=k, history=self.turns):
            if isinstance(event, Final):
                answer = event.answer
                self.turns.append(Turn(message, answer.standalone_question or message, answer))
            yield event

    def reset(self) -> None:
        self.turns.clear()
