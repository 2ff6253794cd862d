"""Abstracts cut into chunks: llama-index's ``SentenceSplitter`` with tokens counted by
tiktoken and sentences found by :func:`~rag_assistant.text.sentences.sentence_pieces`."""

from __future__ import annotations

import functools

from ..settings import ChunkingSettings
from ..text.sentences import sentence_pieces
from ..text.tokens import encoding
from ..types import Chunk, Paper, chunk_id


class Chunker:
    """Cuts abstracts with llama-index's ``SentenceSplitter``, counting tiktoken tokens.

    The splitter finds sentences with :func:`sentence_pieces` (the rules the extractive
    answerer uses) instead of nltk's punkt, which cost half of all ingest time: on the bundled
    corpus the chunks are the same but for 5 of 314 split abstracts, where punkt cut after
    "e.g.".

    An abstract that fits one chunk is returned stripped without calling the splitter, as
    the splitter itself returns it (after counting its tokens once): most abstracts fit, so
    llama-index (an import of a second or more) is loaded only when one does not.
    """

    def __init__(self, settings: ChunkingSettings) -> None:
        self.settings = settings
        self._splitter = None

    @functools.cached_property
    def _count(self):
        """Tokens of a text (the encoding is loaded on first use: an ingest of unchanged
        files chunks nothing)."""
        encode = encoding(self.settings.tokenizer).encode_ordinary
        return lambda text: len(encode(text))

    @property
    def splitter(self):
        if self._splitter is None:
            from llama_index.core.node_parser import SentenceSplitter

            self._splitter = SentenceSplitter(
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
                tokenizer=encoding(self.settings.tokenizer).encode_ordinary,
                chunking_tokenizer_fn=sentence_pieces,
            )
        return self._splitter

    def split_text(self, text: str) -> list[str]:
        """``text`` cut into chunks of at most ``chunk_size`` tokens."""
        if self._count(text) <= self.settings.chunk_size:
            stripped = text.strip()
            return [stripped] if stripped else []
        return [t for t in self.splitter.split_text(text) if t.strip()]

    def chunks(self, paper: Paper) -> list[Chunk]:
        """The chunks of one paper, with ids and its title."""
        return [
            Chunk(chunk_id(paper, i), paper.paper_id, i, text, paper.title)
            for i, text in enumerate(self.split_text(paper.abstract))
        ]
