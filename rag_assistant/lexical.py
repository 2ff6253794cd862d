"""The lexical index: BM25 (bm25s) over chunk terms, saved beside Chroma.

Chroma's own sparse/BM25 indexes are not available in local mode, so BM25 lives in the index
directory as a bm25s save plus the chunk ids in index order, tagged with the catalog
generation it was built from. It is rebuilt from the catalog's stored terms (no re-analysis)
whenever the catalog has changed, written to a new directory and switched by the manifest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError

log = logging.getLogger(__name__)

IDS_FILE = "chunk_ids.json"
META_FILE = "lexical.json"


def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG on import, which floods any configured root handler.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class LexicalIndex:
    """BM25 over chunks; :meth:`search` returns (chunk_id, score) best first."""

    def __init__(self, retriever, chunk_ids: list[str], generation: int) -> None:
        self._retriever = retriever
        self.chunk_ids = chunk_ids
        self.generation = generation

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def build(
        cls, chunk_ids: Sequence[str], term_lists: Iterable[Sequence[str]], generation: int
    ) -> LexicalIndex:
        bm25s = _bm25s()
        ids = list(chunk_ids)
        corpus = [list(t) for t in term_lists]
        if not ids:
            return cls(None, [], generation)
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=False)
        return cls(retriever, ids, generation)

    def idf(self, term: str) -> float:
        """BM25 inverse document frequency of ``term`` over the chunks (unseen terms get the
        largest value: a word the corpus never uses is the strongest sign it cannot answer)."""
        n = len(self.chunk_ids)
        df = 0
        if self._retriever is not None:
            col = self._retriever.vocab_dict.get(term)
            if col is not None:
                indptr = self._retriever.scores["indptr"]
                df = int(indptr[col + 1] - indptr[col])
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def spelled(self, term: str) -> str | None:
        """``term`` if the corpus uses it, else the corpus word spelled almost like it (a
        typo of a name the corpus knows), else None."""
        vocab = self._retriever.vocab_dict if self._retriever is not None else {}
        if term in vocab:
            return term
        if term[:1].isdigit() or len(term) < 4:
            return None
        import difflib

        # Candidates share the first letter and a similar length: a few hundred words, not
        # the whole vocabulary, so this stays cheap at any corpus size.
        candidates = [w for w in vocab if w[:1] == term[:1] and abs(len(w) - len(term)) <= 2]
        close = difflib.get_close_matches(term, candidates, n=1, cutoff=0.85)
        return close[0] if close else None

    def search(self, query_terms: Sequence[str], k: int) -> list[tuple[str, float]]:
        if self._retriever is None or not query_terms or k <= 0:
            return []
        scores = self._retriever.get_scores(list(query_terms))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]

    # --- persistence -------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write to ``directory`` (created fresh) and fsync; the caller switches to it."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._retriever is not None:
            self._retriever.save(str(tmp), show_progress=False)
        (tmp / IDS_FILE).write_text(json.dumps(self.chunk_ids))
        (tmp / META_FILE).write_text(
            json.dumps({"generation": self.generation, "chunks": len(self.chunk_ids)})
        )
        for f in tmp.iterdir():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        bm25s = _bm25s()
        what = f"the lexical index {directory}"
        try:
            meta = json.loads((directory / META_FILE).read_text())
            ids = json.loads((directory / IDS_FILE).read_text())
            retriever = None
            if ids:
                retriever = bm25s.BM25.load(str(directory), show_progress=False)
                n_docs = retriever.scores["num_docs"]
                if n_docs != len(ids):
                    raise ValueError(f"{n_docs} documents but {len(ids)} chunk ids")
        except FileNotFoundError as exc:
            raise IndexCorruptError(
                f"{what} is missing ({Path(exc.filename).name}); run `rag-assistant index rebuild`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(
                f"{what} is damaged ({exc}); run `rag-assistant index rebuild`"
            ) from None
        return cls(retriever, ids, int(meta["generation"]))
