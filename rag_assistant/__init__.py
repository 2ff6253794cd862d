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
    "Answer": "types",
    "Citation": "types",
    "Claim": "types",
    "REFUSAL": "types",
    "TextDelta": "types",
    "Status": "types",
    "Final": "types",
    "Source": "types",
    "IngestReport": "types",
    "Turn": "types",
    "Conversation": "answer.conversation",
}

if TYPE_CHECKING:
    from .answer.conversation import Conversation
    from .assistant import Assistant
    from .settings import Settings
    from .types import (
        REFUSAL,
        Answer,
        Citation,
        Claim,
        Final,
        IngestReport,
        Source,
        Status,
        TextDelta,
        Turn,
    )


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
