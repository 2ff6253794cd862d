"""The lexical index: BM25 (bm25s) over chunk terms, saved beside Chroma.

Chroma's own sparse/BM25 indexes are not available in local mode, so BM25 lives in the index
directory as a bm25s save plus the chunk ids in index order, tagged with the catalog
generation it was built from, written to a new directory and switched by the manifest.

Beside the bm25s files the index keeps its term counts (a chunks x terms matrix), so that a
change of the catalog is applied as a delta: rows of removed chunks are dropped, rows of new
chunks appended, and the BM25 scores recomputed from the counts with numpy in a fraction of a
second — instead of re-reading and re-counting every chunk's terms. bm25s builds its index
with a Python loop over documents; :class:`_CountsBM25` overrides the step bm25s documents
for that purpose (``build_index_from_ids``) with the same formula computed on the matrix, so
the scores are bm25s's (method ``lucene``, k1 1.5, b 0.75) and bm25s saves, loads and
searches them. Chunks are kept in chunk-id order, so an index updated in steps is the same as
one built in one go.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import IndexCorruptError
from ..text.tokens import is_common_word
from .files import load_array, reading_part, replace_dir, strictly_increasing

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

log = logging.getLogger(__name__)

IDS_FILE = "chunk_ids.json"
META_FILE = "lexical.json"
COUNTS_FILE = "counts.npz"
REPAIR = "run `rag-assistant index check --repair` (builds it again from the catalog)"
EMPTY_TOKEN = ""  # bm25s adds it to every vocabulary it builds from strings


def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG on import, which floods any configured root handler.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _counts_bm25():
    """bm25s.BM25 with its index built from a term-count matrix (made on first use, so that
    importing this module does not import bm25s)."""
    global _CountsBM25
    if _CountsBM25 is None:
        bm25s = _bm25s()

        class CountsBM25(bm25s.BM25):
            def build_index_from_ids(self, unique_token_ids, corpus_token_ids, **_progress):
                self.nonoccurrence_array = None  # only BM25L and BM25+ use one
                return _scores(corpus_token_ids, k1=self.k1, b=self.b, dtype=self.dtype)

        _CountsBM25 = CountsBM25
    return _CountsBM25


_CountsBM25 = None


class _Counts:
    """What :meth:`bm25s.BM25.index` accepts as a corpus object (``ids`` and ``vocab``);
    ``ids`` is here the chunks x terms count matrix."""

    def __init__(self, matrix: csr_matrix, vocab: dict[str, int]) -> None:
        self.ids = matrix
        self.vocab = vocab


def _scores(counts: csr_matrix, *, k1: float, b: float, dtype: str) -> dict:
    """bm25s's eager scores (method 'lucene') for a chunks x terms count matrix: the same
    operations as bm25s's per-document loop (idf rounded to ``dtype`` first, the term
    frequency part in float64), done on whole arrays."""
    from scipy.sparse import csr_matrix

    n_docs, n_terms = counts.shape
    doc_len = np.asarray(counts.sum(axis=1)).ravel().astype(np.int64)
    avg_doc_len = (doc_len.mean() if n_docs else 0.0) or 1.0
    df = np.bincount(counts.indices, minlength=n_terms)
    idf = np.zeros(n_terms, dtype=dtype)
    for term, n in enumerate(df.tolist()):
        if n:
            idf[term] = math.log(1 + (n_docs - n + 0.5) / (n + 0.5))
    norm = k1 * ((1 - b) + b * doc_len / avg_doc_len)
    # In place, one array of the nonzeros' size at a time: at 100,000 papers (13 M nonzeros)
    # the temporaries of the plain expression were the peak memory of an ingest.
    tf = counts.data.astype(np.float64)
    denominator = np.repeat(norm, np.diff(counts.indptr))
    denominator += tf
    tf /= denominator
    del denominator
    tf *= idf[counts.indices]
    scores = csr_matrix((tf.astype(dtype), counts.indices, counts.indptr), shape=counts.shape)
    del tf
    scores = scores.tocsc()
    return {
        "data": scores.data,
        "indices": scores.indices,
        "indptr": scores.indptr,
        "num_docs": n_docs,
    }


def _count_rows(term_lists: Sequence[Sequence[str]], vocab: dict[str, int]) -> csr_matrix:
    """Term counts of ``term_lists`` (one row each), new terms added to ``vocab``."""
    from itertools import chain

    from scipy.sparse import coo_matrix

    for term in sorted(set(chain.from_iterable(term_lists)) - vocab.keys()):
        vocab[term] = len(vocab)
    lengths = np.fromiter(map(len, term_lists), np.int64, len(term_lists))
    columns = np.fromiter(
        map(vocab.__getitem__, chain.from_iterable(term_lists)), np.int32, int(lengths.sum())
    )
    rows = np.repeat(np.arange(len(term_lists), dtype=np.int32), lengths)
    ones = np.ones(len(columns), np.int32)
    return coo_matrix((ones, (rows, columns)), shape=(len(term_lists), len(vocab))).tocsr()


def _widen(matrix: csr_matrix, n_terms: int) -> csr_matrix:
    from scipy.sparse import csr_matrix

    return csr_matrix(
        (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], n_terms)
    )


class _SavedBM25:
    """A bm25s save, read for searching without importing bm25s: its vocabulary, its
    parameters and its eager score matrix (CSC columns per term) memory-mapped, scored the
    way bm25s's numpy backend scores (each query term's column added in query order).
    Importing bm25s costs a new process about 0.25 s (scipy.sparse mostly), a quarter of
    the budget of answering one question in a new process; the index is still built and
    saved by bm25s (:meth:`LexicalIndex.updated`), in bm25s's format."""

    def __init__(self, directory: Path) -> None:
        params = json.loads((directory / "params.index.json").read_text())
        self.vocab_dict: dict[str, int] = json.loads((directory / "vocab.index.json").read_text())
        if params.get("method") != "lucene" or params.get("backend") != "numpy":
            raise ValueError(f"a bm25s save of method {params.get('method')!r}, not 'lucene'")
        self.dtype = np.dtype(params["dtype"])
        self.scores = {
            name: load_array(directory / f"{name}.csc.index.npy")
            for name in ("data", "indices", "indptr")
        }
        self.scores["num_docs"] = int(params["num_docs"])
        # bm25s numbers the empty token it adds after the last column: no chunk holds it
        columns = len(self.vocab_dict) - (EMPTY_TOKEN in self.vocab_dict)
        if len(self.scores["indptr"]) != columns + 1:
            raise ValueError(f"{len(self.scores['indptr']) - 1} score columns for {columns} terms")

    def get_tokens_ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab_dict[t] for t in tokens if t in self.vocab_dict and t != EMPTY_TOKEN]

    def get_scores(self, token_ids: list[int]) -> np.ndarray:
        data, indices, indptr = (self.scores[k] for k in ("data", "indices", "indptr"))
        scores = np.zeros(self.scores["num_docs"], dtype=self.dtype)
        for token in token_ids:
            start, end = int(indptr[token]), int(indptr[token + 1])
            scores[indices[start:end]] += data[start:end]  # a column holds a chunk once
        return scores


class LexicalIndex:
    """BM25 over chunks; :meth:`search` returns (chunk_id, score) best first."""

    def __init__(
        self,
        retriever,
        chunk_ids: list[str],
        generation: int,
        *,
        counts: csr_matrix | None = None,
        directory: Path | None = None,
    ) -> None:
        self._retriever = retriever
        self.chunk_ids = chunk_ids
        self.generation = generation
        self._counts = counts
        self._directory = directory
        self._by_initial: dict[str, list[str]] | None = None  # vocabulary by first letter
        self._spellings: dict[str, str | None] = {}
        # Whether two words mean the same (the sentence encoder's judgement, set by the
        # index when it has one): a common word is corrected only to a spelling of itself.
        self.same_meaning: Callable[[str, str], bool] | None = None

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def build(
        cls, chunk_ids: Sequence[str], term_lists: Iterable[Sequence[str]], generation: int
    ) -> LexicalIndex:
        """A new index of these chunks (``term_lists``: their analyzed terms, in order)."""
        return cls(None, [], generation).updated(
            remove=(), add=zip(chunk_ids, term_lists, strict=True), generation=generation
        )

    def updated(
        self,
        *,
        remove: Collection[str],
        add: Iterable[tuple[str, Sequence[str]]],
        generation: int,
        batch: int = 5000,
    ) -> LexicalIndex:
        """A new index: this one without the chunks in ``remove``, with the (chunk id, terms)
        pairs of ``add``. Only the added chunks' terms are counted; BM25 is then recomputed
        from the counts."""
        from scipy.sparse import vstack

        vocab: dict[str, int] = {}
        parts: list[csr_matrix] = []
        ids: list[str] = []
        if self.chunk_ids:
            counts = self.counts()
            vocab = {t: i for t, i in self._retriever.vocab_dict.items() if t != EMPTY_TOKEN}
            keep = np.fromiter((cid not in remove for cid in self.chunk_ids), bool)
            if not keep.all():
                counts = counts[keep]
            parts.append(counts)
            ids = [cid for cid, kept in zip(self.chunk_ids, keep.tolist(), strict=True) if kept]
        known = set(ids)
        pending_ids: list[str] = []
        pending_terms: list[Sequence[str]] = []
        for chunk_id, terms in add:
            if chunk_id in known:
                continue
            known.add(chunk_id)
            pending_ids.append(chunk_id)
            pending_terms.append(terms)
            if len(pending_ids) >= batch:
                parts.append(_count_rows(pending_terms, vocab))
                ids.extend(pending_ids)
                pending_ids, pending_terms = [], []
        if pending_ids:
            parts.append(_count_rows(pending_terms, vocab))
            ids.extend(pending_ids)
        if not ids:
            return LexicalIndex(None, [], generation)
        matrix = vstack([_widen(p, len(vocab)) for p in parts], format="csr")
        del parts
        order = sorted(range(len(ids)), key=ids.__getitem__)
        if order != list(range(len(ids))):
            matrix = matrix[order]
            ids = [ids[i] for i in order]
        matrix, vocab = _compact(matrix, vocab)
        if not vocab:  # no chunk has a term; bm25s needs one column
            vocab = {EMPTY_TOKEN: 0}
            matrix = _widen(matrix, 1)
        retriever = _counts_bm25()()
        retriever.index(_Counts(matrix, vocab), show_progress=False)
        return LexicalIndex(retriever, ids, generation, counts=matrix)

    def counts(self) -> csr_matrix:
        """The chunks x terms count matrix (read from the saved index on first use)."""
        if self._counts is None:
            self._counts = _load_counts(self._directory, len(self.chunk_ids))
        return self._counts

    def df(self, term: str) -> int:
        """The number of chunks that hold ``term``."""
        if self._retriever is None:
            return 0
        col = self._retriever.vocab_dict.get(term)
        indptr = self._retriever.scores["indptr"]
        if col is None or col + 1 >= len(indptr):
            return 0
        return int(indptr[col + 1] - indptr[col])

    def idf(self, term: str) -> float:
        """BM25 inverse document frequency of ``term`` over the chunks (unseen terms get the
        largest value: a word the corpus never uses is the strongest sign it cannot answer)."""
        n, df = len(self.chunk_ids), self.df(term)
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def spelled(self, term: str) -> str | None:
        """``term`` if the corpus uses it, else the corpus word spelled almost like it (a
        typo of a name the corpus knows), else None. A common English word (see
        :func:`~rag_assistant.text.tokens.is_common_word`) is no typo: it is corrected only
        to itself without a suffix, or when :attr:`same_meaning` says the corpus word means
        the same."""
        vocab = self._retriever.vocab_dict if self._retriever is not None else {}
        if term in vocab:
            return term
        if term[:1].isdigit() or len(term) < 4:
            return None
        if term not in self._spellings:
            import difflib

            if self._by_initial is None:
                by_initial: dict[str, list[str]] = {}
                for word in vocab:
                    by_initial.setdefault(word[:1], []).append(word)
                self._by_initial = by_initial
            # Candidates share the first letter and a similar length.
            candidates = [
                w for w in self._by_initial.get(term[:1], ()) if abs(len(w) - len(term)) <= 2
            ]
            close = difflib.get_close_matches(term, candidates, n=1, cutoff=0.85)
            if close and is_common_word(term) and not term.startswith(close[0]):
                # a word of its own ("came", not "camel"), unless the corpus word is the same
                # word with a suffix the stemmer left ("compressor" -> "compress") or another
                # spelling of it ("neighbour" -> "neighbor")
                same = self.same_meaning
                if same is None or not same(term, close[0]):
                    close = []
            if len(self._spellings) >= 10_000:  # a long-running UI sees many odd words
                self._spellings.clear()
            self._spellings[term] = close[0] if close else None
        return self._spellings[term]

    def search(self, query_terms: Sequence[str], k: int) -> list[tuple[str, float]]:
        if self._retriever is None or not query_terms or k <= 0:
            return []
        ids = self._retriever.get_tokens_ids(list(query_terms))
        if not ids:
            return []
        scores = self._retriever.get_scores(ids)
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
            counts = self.counts()
            data = counts.data
            if data.size and int(data.max()) < 2**16:
                data = data.astype(np.uint16)
            with open(tmp / COUNTS_FILE, "wb") as handle:
                np.savez(handle, data=data, indices=counts.indices, indptr=counts.indptr)
        (tmp / IDS_FILE).write_text(json.dumps(self.chunk_ids))
        (tmp / META_FILE).write_text(
            json.dumps({"generation": self.generation, "chunks": len(self.chunk_ids)})
        )
        replace_dir(tmp, directory)
        self._directory = directory

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        with reading_part(f"the lexical index {directory}", REPAIR):
            meta = json.loads((directory / META_FILE).read_text())
            ids = json.loads((directory / IDS_FILE).read_text())
            retriever = None
            if ids:
                # memory-mapped: a query reads only its terms' columns, so a cold start
                # does not read the whole index and readers share the pages
                retriever = _SavedBM25(directory)
                n_docs = retriever.scores["num_docs"]
                if n_docs != len(ids):
                    raise ValueError(f"{n_docs} documents but {len(ids)} chunk ids")
            # the rows are in chunk-id order; ids in another order would name the wrong
            # chunk for every score
            if not strictly_increasing(ids):
                raise ValueError(f"the chunk ids of {IDS_FILE} are out of order")
        return cls(retriever, ids, int(meta["generation"]), directory=directory)


def _compact(matrix: csr_matrix, vocab: dict[str, int]) -> tuple[csr_matrix, dict[str, int]]:
    """Drop the terms no chunk holds any more (after removals), renumbering the rest."""
    from scipy.sparse import csr_matrix

    df = np.bincount(matrix.indices, minlength=len(vocab))
    alive = df > 0
    if alive.all():
        return matrix, vocab
    new_id = np.cumsum(alive) - 1
    terms = sorted(vocab, key=vocab.__getitem__)
    vocab = {t: int(new_id[i]) for i, t in enumerate(terms) if alive[i]}
    matrix = csr_matrix(
        (matrix.data, new_id[matrix.indices].astype(np.int32), matrix.indptr),
        shape=(matrix.shape[0], len(vocab)),
    )
    return matrix, vocab


def _load_counts(directory: Path | None, n_docs: int) -> csr_matrix:
    from scipy.sparse import csr_matrix

    if directory is None:
        raise IndexCorruptError("the lexical index has no saved term counts")
    path = directory / COUNTS_FILE
    try:
        with np.load(path) as data:
            indptr = data["indptr"]
            if len(indptr) != n_docs + 1:
                raise ValueError(f"{len(indptr) - 1} rows for {n_docs} chunks")
            indices = data["indices"]
            n_terms = int(indices.max()) + 1 if indices.size else 0
            return csr_matrix(
                (data["data"].astype(np.int32), indices, indptr), shape=(n_docs, n_terms)
            )
    except FileNotFoundError:
        raise IndexCorruptError(
            f"the lexical index {directory} has no term counts ({COUNTS_FILE}); {REPAIR}"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorruptError(
            f"the term counts of the lexical index {directory} are damaged ({exc}); {REPAIR}"
        ) from None
