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

    An abstract that fits one chunk is not passed through the splitter (the splitter would
    return it unchanged); that skips its per-sentence work for most abstracts.
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
            )
        return self._splitter

    def split_text(self, text: str) -> list[str]:
        """``text`` cut into chunks of at most ``chunk_size`` tokens."""
        if len(self._encoding.encode_ordinary(text)) <= self.settings.chunk_size:
            return [text] if text.strip() else []
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


@functools.lru_cache(maxsize=4096)
def split_sentences(text: str) -> tuple[tuple[int, int], ...]:
    """Sentence spans ``(start, end)`` of ``text``.

    A regular expression tuned for abstracts (abbreviations such as "e.g." and "et al.",
    initials and decimals do not end a sentence). It runs at question time, so it is kept
    cheap; nltk's punkt, which llama-index's splitter uses, costs ~50x more per abstract.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start() + len(match.group(1) or "")
        before = text[start : match.start()]
        word = before.rsplit(None, 1)[-1].lower().rstrip(".!?") if before.split() else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        if end - start >= 2:
            spans.append((start, end))
            start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return tuple(spans)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``."""
    return [text[a:b].strip() for a, b in split_sentences(text)]
