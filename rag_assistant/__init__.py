"""rag-assistant: question answering over research-paper abstracts, with citations checked
by code. Offline by default; better with an OpenAI-compatible endpoint.

The public API is :class:`Assistant`; names are imported lazily so that the command line
starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Assistant": "assistant",
    "Settings": "settings",
    "Answer": "answers",
    "Citation": "answers",
    "Claim": "answers",
    "REFUSAL": "answers",
    "TextDelta": "answers",
    "Status": "answers",
    "Final": "answers",
    "Source": "retrieval",
    "IngestReport": "index",
    "Conversation": "conversation",
    "Turn": "conversation",
}

if TYPE_CHECKING:
    from .answers import REFUSAL, Answer, Citation, Claim, Final, Status, TextDelta
    from .assistant import Assistant
    from .conversation import Conversation, Turn
    from .index import IngestReport
    from .retrieval import Source
    from .settings import Settings


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag_assistant' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "REFUSAL",
    "Answer",
    "Assistant",
    "Citation",
    "Claim",
    "Conversation",
    "Final",
    "IngestReport",
    "Settings",
    "Source",
    "Status",
    "TextDelta",
    "Turn",
]
