"""How text is cut: abstracts into chunks (llama-index ``SentenceSplitter``, tokens counted
with tiktoken) and into sentences (for extractive answers and claim checking)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .corpus import Paper
from .settings import ChunkingSettings
from .tokens import encoding


@dataclass(frozen=True)
class Chunk:
    """A piece of one paper's abstract, as stored in Chroma and the lexical index."""

    chunk_id: str
    paper_id: str
    ordinal: int
    text: str
    title: str

    @property
    def index_text(self) -> str:
        """What is embedded and searched: the title, then the chunk (every chunk carries it)."""
        return f"{self.title}\n{self.text}"


def chunk_id(paper: Paper, ordinal: int) -> str:
    """Deterministic: a changed abstract gives new ids, so stale chunks are found by id."""
    return f"{paper.paper_id}::{paper.content_hash[:10]}::{ordinal}"


def paper_id_of(chunk_id_: str) -> str:
    """The paper id a chunk id belongs to."""
    return chunk_id_.split("::", 1)[0]


class Chunker:
    """Cuts abstracts with llama-index's ``SentenceSplitter``, counting tiktoken tokens.

    The splitter finds sentences with :func:`sentence_pieces` (the rules the extractive
    answerer uses) instead of nltk's punkt, which cost half of all ingest time: on the bundled
    corpus the chunks are the same but for 5 of 314 split abstracts, where punkt cut after
    "e.g.". (The splitter returns an abstract that fits one chunk as it is, after counting its
    tokens once.)
    """

    def __init__(self, settings: ChunkingSettings) -> None:
        self.settings = settings
        self._encoding = encoding(settings.tokenizer)
        self._splitter = None

    @property
    def splitter(self):
        if self._splitter is None:
            from llama_index.core.node_parser import SentenceSplitter

            self._splitter = SentenceSplitter(
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
                tokenizer=self._encoding.encode_ordinary,
                chunking_tokenizer_fn=sentence_pieces,
            )
        return self._splitter

    def split_text(self, text: str) -> list[str]:
        """``text`` cut into chunks of at most ``chunk_size`` tokens."""
        return [t for t in self.splitter.split_text(text) if t.strip()]

    def chunks(self, paper: Paper) -> list[Chunk]:
        """The chunks of one paper, with ids and its title."""
        return [
            Chunk(chunk_id(paper, i), paper.paper_id, i, text, paper.title)
            for i, text in enumerate(self.split_text(paper.abstract))
        ]


_ABBREVIATIONS = (
    "e.g",
    "i.e",
    "et al",
    "etc",
    "vs",
    "cf",
    "fig",
    "figs",
    "eq",
    "eqs",
    "sec",
    "no",
    "approx",
    "resp",
    "al",
    "dr",
    "mr",
    "ms",
    "prof",
    "st",
    "ca",
    "viz",
)
# A sentence ends at . ! ? (plus closing quotes/brackets and any citation markers such as
# " [2]", which stay with the sentence they follow) before white space and a capital or
# digit, or, in text dumped without spaces, between "word.Next" (two lower-case letters).
_BOUNDARY = re.compile(
    r"(?<=[.!?])((?:[\"')\]]*)(?:\s*\[\d[\d,;\s–-]*\])*)\s+(?=[\"'(]?[A-Z0-9]|\[[A-Za-z])"
    r"|(?<=[a-z]{2}[.!?])()(?=[A-Z][a-z])"
)
_END = re.compile(r"[.!?]")


def _boundaries(text: str):
    """The matches ``_BOUNDARY.finditer(text)`` finds, found faster: every match starts right
    after a . ! or ?, and none spans one, so the pattern is tried only at those places
    instead of at every character (a fifth of the time on an abstract)."""
    end = 0
    for mark in _END.finditer(text):
        at = mark.end()
        if at < end:
            continue
        match = _BOUNDARY.match(text, at)
        if match is not None:
            end = match.end()
            yield match


@functools.lru_cache(maxsize=4096)
def split_sentences(text: str) -> tuple[tuple[int, int], ...]:
    """Sentence spans ``(start, end)`` of ``text``.

    A regular expression tuned for abstracts (abbreviations such as "e.g." and "et al.",
    initials and decimals do not end a sentence). It runs at question time, so it is kept
    cheap; nltk's punkt, which llama-index's splitter uses, costs ~50x more per abstract.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _boundaries(text):
        end = match.start() + len(match.group(1) or "")
        before = text[start : match.start()]
        word = before.rsplit(None, 1)[-1].lower().rstrip(".!?") if before.strip() else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        if end - start >= 2:
            spans.append((start, end))
            start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return tuple(spans)


def sentence_pieces(text: str) -> list[str]:
    """``text`` cut before each sentence, white space kept (each piece runs to the start of
    the next), as llama-index's ``SentenceSplitter`` expects of its sentence tokenizer."""
    spans = split_sentences(text)
    return [
        text[start : spans[i + 1][0] if i + 1 < len(spans) else len(text)]
        for i, (start, _) in enumerate(spans)
    ]


def sentences(text: str) -> list[str]:
    """The sentences of ``text``."""
    return [text[a:b].strip() for a, b in split_sentences(text)]
