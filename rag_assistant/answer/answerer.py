"""What every answerer is: given the question (as typed and as searched for), the
conversation so far and the retrieved sources, it yields the events of one answer ending in
a :class:`~rag_assistant.types.Final`. The offline :class:`~.extractive.ExtractiveAnswerer`
and the model's :class:`~.generated.GeneratedAnswerer` are the two; the assistant picks one
per question and passes it its collaborators (policy, judge, model), never itself."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..text.sentences import split_sentences
from ..types import Event, Source


@dataclass
class Request:
    """One question to answer: ``question`` as the user typed it, ``standalone`` the question
    that was searched for (a follow-up condensed with the conversation), the earlier
    ``history`` (turns, chat messages or questions), notices to carry into the answer (a
    bootstrap ingest), and whether the caller reads the answer as it comes (a model's reply
    streams from its endpoint either way, unless ``openai.stream`` is off)."""

    question: str
    standalone: str
    history: Sequence[object] = ()
    notices: list[str] = field(default_factory=list)
    stream: bool = True

    @property
    def asked(self) -> str | None:
        """The message as the user wrote it when it was condensed with earlier turns (a
        follow-up), else None."""
        return self.question if self.standalone != self.question else None


class Answerer(Protocol):
    mode: Literal["offline", "llm"]

    def events(self, request: Request, sources: list[Source]) -> Iterator[Event]: ...


def pieces(text: str) -> Iterator[str]:
    """``text`` in sentence-sized deltas (what a streamed offline answer yields)."""
    last = 0
    for _, end in split_sentences(text):
        yield text[last:end]
        last = end
    if last < len(text):
        yield text[last:]
