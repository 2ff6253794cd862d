"""llama-index interfaces over an :class:`~rag_assistant.Assistant`, for pipelines built with
llama-index: a ``BaseRetriever`` running our hybrid retrieval and a query engine answering
with citations checked by code.

- :class:`AssistantRetriever` (``assistant.as_retriever(k=...)``): one ``NodeWithScore`` per
  retrieved paper, best first; the node's text is the paper's best chunks, its metadata the
  paper's ``title`` (from the index), ``paper_id``, ``rank``, ``chunk_ids``, ``url``,
  ``date`` and ``authors``; its id the id of the best chunk; its score the fused retrieval
  score. Only the title is shown to a model with the text (the other keys are excluded from
  llama-index's LLM and embedding views).
- :class:`AssistantQueryEngine` (``assistant.as_query_engine(k=...)``): the assistant's own
  answer as a ``Response``: its text with ``[n]`` markers, the sources as ``source_nodes``
  (a cited one has ``metadata["citation"] = n``), and in ``metadata`` what
  :meth:`Answer.to_dict` gives besides text and sources: ``citations``, ``claims`` (each
  sentence with its citations and whether the cited abstracts support it), ``refused``,
  ``mode``, ``model``, ``warnings``, ``notices``, ``usage``, ``question``,
  ``standalone_question``.

This module imports llama-index; ``rag_assistant`` and its command line import it only when
these adapters are asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from .types import Answer, Source

SHOWN_TO_MODELS = ("title",)
"""The metadata keys llama-index puts beside a node's text when a model reads or embeds it."""


def source_node(source: Source, citation: int | None = None) -> NodeWithScore:
    """A retrieved paper as a llama-index node with its score (see the module docstring)."""
    metadata: dict[str, Any] = {
        "title": source.title,
        "paper_id": source.paper_id,
        "rank": source.rank,
        "chunk_ids": [c.chunk_id for c in source.chunks],
        "url": source.url,
        "date": source.date,
        "authors": ", ".join(source.authors),
    }
    if citation is not None:
        metadata["citation"] = citation
    hidden = [key for key in metadata if key not in SHOWN_TO_MODELS]
    node = TextNode(
        id_=source.chunks[0].chunk_id if source.chunks else source.paper_id,
        text=source.text,
        metadata=metadata,
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=hidden,
    )
    return NodeWithScore(node=node, score=source.score)


def answer_response(answer: Answer) -> Response:
    """An :class:`Answer` as a llama-index ``Response`` (see the module docstring)."""
    numbers = {c.paper_id: c.number for c in answer.citations}
    metadata = {k: v for k, v in answer.to_dict().items() if k not in ("text", "sources")}
    return Response(
        response=answer.text,
        source_nodes=[source_node(s, numbers.get(s.paper_id)) for s in answer.sources],
        metadata=metadata,
    )


class AssistantRetriever(BaseRetriever):
    """Our hybrid retrieval (BM25 and dense, fused, grouped by paper) as a llama-index
    retriever: ``retrieve(query)`` gives the ``k`` best papers as nodes."""

    def __init__(
        self, assistant, *, k: int | None = None, callback_manager: CallbackManager | None = None
    ) -> None:
        self._assistant = assistant
        self._k = assistant.validate_k(k)
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        sources = self._assistant.retrieve(query_bundle.query_str, k=self._k)
        return [source_node(s) for s in sources]


class AssistantQueryEngine(BaseQueryEngine):
    """The assistant's answers as a llama-index query engine: ``query(question)`` gives a
    ``Response`` whose metadata carries the checked citations and claims."""

    def __init__(
        self, assistant, *, k: int | None = None, callback_manager: CallbackManager | None = None
    ) -> None:
        self._assistant = assistant
        self._k = assistant.validate_k(k)
        self._retriever = AssistantRetriever(assistant, k=k, callback_manager=callback_manager)
        super().__init__(callback_manager=callback_manager)

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The nodes a query would be answered from."""
        return self._retriever.retrieve(query_bundle)

    def _query(self, query_bundle: QueryBundle) -> Response:
        return answer_response(self._assistant.ask(query_bundle.query_str, k=self._k))

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)


__all__ = ["AssistantQueryEngine", "AssistantRetriever", "answer_response", "source_node"]
