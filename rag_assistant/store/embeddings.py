"""Dense embeddings: LSA (TF-IDF -> truncated SVD) fitted on the corpus, offline and with no
download; or the OpenAI embeddings endpoint.

The LSA model's components are the top right singular vectors of the TF-IDF matrix, found by a
randomized SVD with iterations sized to the data (:func:`top_components`), persisted as plain arrays
(vocabulary, idf, components) beside the index, so embedding a question needs neither
scikit-learn nor pickle, and the same terms as BM25 (:mod:`rag_assistant.text.terms`) are used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import IndexCorruptError
from ..text.terms import terms as analyze
from .files import atomic_writer
from .manifest import DenseModel

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

    from ..settings import Settings

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def identity(self) -> DenseModel:
        """What the manifest records to refuse mixing vectors of different models."""
        ...

    @property
    def dimensions(self) -> int: ...

    def embed(
        self, texts: Sequence[str], terms: Sequence[Sequence[str]] | None = None
    ) -> np.ndarray:
        """Vectors for ``texts`` (``terms``: their analyzed terms, when already known)."""
        ...

    def embed_query(self, text: str, extra_terms: Sequence[str] = ()) -> np.ndarray:
        """The vector of a question; ``extra_terms`` (analyzed terms, e.g. spelling
        corrections) join it where the model works on terms."""
        ...


def _normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32, copy=False)


class LSAEmbedder:
    """TF-IDF (sublinear tf, smoothed idf, l2) projected on the top singular vectors."""

    backend = "lsa"

    def __init__(
        self,
        vocabulary: dict[str, int],
        idf: np.ndarray,
        components: np.ndarray,
        *,
        requested_dimensions: int,
        fitted_on: int,
    ) -> None:
        self.vocabulary = vocabulary
        self.idf = idf.astype(np.float32)
        self.components = np.ascontiguousarray(components.astype(np.float32))  # (d, V)
        self.requested_dimensions = requested_dimensions
        self.fitted_on = fitted_on
        digest = hashlib.sha1(self.components[:, : min(64, self.components.shape[1])].tobytes())
        digest.update(json.dumps(sorted(vocabulary)[:2000]).encode())
        self.fit_id = digest.hexdigest()[:10]

    @property
    def dimensions(self) -> int:
        return int(self.components.shape[0])

    @property
    def identity(self) -> DenseModel:
        return DenseModel(
            backend="lsa",
            model=f"lsa-tfidf-svd-{self.requested_dimensions}",
            dimensions=self.dimensions,
            requested_dimensions=self.requested_dimensions,
            fit_id=self.fit_id,
            fitted_on_chunks=self.fitted_on,
        )

    # --- fitting -----------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        term_lists: Iterable[Sequence[str]],
        *,
        dimensions: int,
        max_features: int = 100_000,
        seed: int = 0,
    ) -> LSAEmbedder:
        """Fit on analyzed texts. The vocabulary keeps terms seen in 2+ texts (all terms for
        corpora under 1,000 texts), at most ``max_features`` of the most frequent.
        ``term_lists`` is iterated twice; it may stream (the catalog's sample does, so a fit
        at scale never holds every sampled chunk's terms as Python lists)."""
        from collections import Counter

        df: Counter[str] = Counter()
        n = 0
        for terms_ in term_lists:
            df.update(set(terms_))
            n += 1
        min_df = 1 if n < 1000 else 2
        kept = [t for t, count in df.most_common(max_features) if count >= min_df]
        if not kept:
            kept = ["<empty>"]
        vocabulary = {t: i for i, t in enumerate(sorted(kept))}
        idf = np.array(
            [math.log((1 + n) / (1 + df.get(t, 0))) + 1.0 for t in sorted(kept)], np.float32
        )
        del df  # the counts of every term seen: large at scale, and no longer needed
        matrix = _tfidf(term_lists, vocabulary, idf)
        if matrix.shape[0] < 2 or matrix.shape[1] < 2:
            components = np.eye(1, matrix.shape[1], dtype=np.float32)
        else:
            k = max(1, min(dimensions, matrix.shape[0] - 1, matrix.shape[1] - 1))
            components = top_components(matrix, k, seed=seed)
        return cls(vocabulary, idf, components, requested_dimensions=dimensions, fitted_on=n)

    # --- use ---------------------------------------------------------------------------

    def embed(
        self, texts: Sequence[str], terms: Sequence[Sequence[str]] | None = None
    ) -> np.ndarray:
        term_lists = terms if terms is not None else [analyze(t) for t in texts]
        if not term_lists:
            return np.zeros((0, self.dimensions), np.float32)
        matrix = _tfidf(term_lists, self.vocabulary, self.idf)
        return _normalize_rows(np.asarray(matrix @ self.components.T))

    def embed_query(self, text: str, extra_terms: Sequence[str] = ()) -> np.ndarray:
        """The vector of one question: :meth:`embed`'s weighting for one row, computed on
        its few columns with NumPy (no sparse matrix: answering one question in a new
        process does not import scipy)."""
        counts = Counter(
            column
            for term in (*analyze(text), *extra_terms)
            if (column := self.vocabulary.get(term)) is not None
        )
        if not counts:
            return np.zeros(self.dimensions, np.float32)
        columns = np.fromiter(counts, np.int64, len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), np.float32, len(counts)))) * (
            self.idf[columns]
        )
        weights /= np.float32(np.sqrt(np.sum(weights * weights))) or np.float32(1.0)
        return _normalize_rows((self.components[:, columns] @ weights)[None, :])[0]

    # --- persistence -------------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write the model as ``lsa-<fit_id>.npz`` (vocabulary as JSON inside); returns it."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"lsa-{self.fit_id}.npz"
        with atomic_writer(path) as handle:
            np.savez(
                handle,
                vocabulary=np.frombuffer(
                    json.dumps(sorted(self.vocabulary, key=self.vocabulary.get)).encode(),
                    dtype=np.uint8,
                ),
                idf=self.idf,
                components=self.components,
                meta=np.array([self.requested_dimensions, self.fitted_on], dtype=np.int64),
            )
        return path

    @classmethod
    def load(cls, path: Path) -> LSAEmbedder:
        try:
            with np.load(path) as data:
                words = json.loads(data["vocabulary"].tobytes().decode())
                requested, fitted_on = (int(x) for x in data["meta"])
                model = cls(
                    {w: i for i, w in enumerate(words)},
                    data["idf"],
                    data["components"],
                    requested_dimensions=requested,
                    fitted_on=fitted_on,
                )
        except FileNotFoundError as exc:
            raise IndexCorruptError(
                f"the dense model file {path} is missing; run `rag-assistant index check --repair` "
                "(fits it again and embeds every chunk)"
            ) from exc
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(
                f"the dense model file {path} is damaged ({exc}); run `rag-assistant index check "
                "--repair` (fits it again and embeds every chunk)"
            ) from exc
        return model


def power_iterations(matrix: csr_matrix, k: int) -> int:
    """Power iterations of the randomized SVD for ``matrix`` and ``k`` components: five (as
    before) when ``k`` is near the matrix's rank (a corpus of a few hundred chunks, where the
    fit is cheap and the evaluation thresholds were measured with this model), two for a
    larger matrix, where the iterations are the cost. On the bench's 10,000 synthetic papers
    (``bench/fit_quality.py``, 360 questions, dense retrieval alone): hit@1 / hit@5 of 0.133 /
    0.331 with two, 0.144 / 0.311 with five, 0.153 / 0.317 with the exact components; the
    share of the TF-IDF matrix's energy kept 0.425, 0.437 and 0.441."""
    return 5 if min(matrix.shape) <= 2 * (k + 10) else 2


def load_fit_libraries() -> None:
    """Import what a fit uses (an ingest does it while its files are read)."""
    import scipy.linalg  # noqa: F401
    import sklearn.utils.extmath  # noqa: F401


def top_components(matrix: csr_matrix, k: int, *, seed: int = 0) -> np.ndarray:
    """The top ``k`` right singular vectors of ``matrix`` (rows of the result): scikit-learn's
    randomized SVD (imported here, at fit time only) with :func:`power_iterations`.

    With one BLAS thread: OpenBLAS threads spin while they wait, and on two cores shared with
    other work (or with this ingest's own producer process) the QR and SVD steps took 3-15
    times longer with two threads than with one (measured; see the README)."""
    from threadpoolctl import threadpool_limits

    load_fit_libraries()  # the limit applies to the BLAS libraries loaded when it is set
    from sklearn.utils.extmath import randomized_svd

    with threadpool_limits(limits=1, user_api="blas"):
        _, _, vt = randomized_svd(
            matrix, n_components=k, n_iter=power_iterations(matrix, k), random_state=seed
        )
    return vt


def _tfidf(
    term_lists: Iterable[Sequence[str]], vocabulary: dict[str, int], idf: np.ndarray
) -> csr_matrix:
    """Rows of sublinear-tf x idf, l2-normalized (scikit-learn's TfidfVectorizer defaults with
    ``sublinear_tf=True``). One pass over ``term_lists`` (which may be a stream), in batches:
    terms are looked up with ``map`` over the vocabulary's ``get`` and counted by scipy, not
    term by term in Python; only the batch's lists and int32 indices are held."""
    from itertools import chain, islice, repeat

    from scipy.sparse import coo_matrix

    row_parts: list[np.ndarray] = []
    column_parts: list[np.ndarray] = []
    n = 0
    stream = iter(term_lists)
    while batch := list(islice(stream, 4096)):
        lengths = np.fromiter(map(len, batch), np.int64, len(batch))
        columns = np.fromiter(
            map(vocabulary.get, chain.from_iterable(batch), repeat(-1)),
            np.int64,
            int(lengths.sum()),
        )
        rows = np.repeat(np.arange(n, n + len(batch), dtype=np.int32), lengths)
        known = columns >= 0
        row_parts.append(rows[known])
        column_parts.append(columns[known].astype(np.int32))
        n += len(batch)
    rows = np.concatenate(row_parts) if row_parts else np.zeros(0, np.int32)
    columns = np.concatenate(column_parts) if column_parts else np.zeros(0, np.int32)
    del row_parts, column_parts
    matrix = coo_matrix(
        (np.ones(len(rows), np.float32), (rows, columns)), shape=(n, len(vocabulary))
    ).tocsr()
    del rows, columns
    if matrix.nnz:
        matrix.data = (1.0 + np.log(matrix.data)) * idf[matrix.indices]
        sq = np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()
        norms = np.sqrt(sq)
        norms[norms == 0] = 1.0
        matrix.data /= np.repeat(norms, np.diff(matrix.indptr)).astype(np.float32)
    return matrix


class OpenAIEmbedder:
    """The OpenAI (or compatible) embeddings endpoint, in batches, with the LLM's retries."""

    backend = "openai"

    def __init__(self, settings: Settings, *, client=None) -> None:
        from ..answer.llm import make_client

        self.model = settings.embedding.openai_model
        self.batch_size = min(settings.embedding.batch_size, 2048)
        self._client = client or make_client(settings)
        self._settings = settings
        self._dimensions: int | None = None

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self.embed(["dimension probe"]).shape[1])
        return self._dimensions

    @property
    def identity(self) -> DenseModel:
        return DenseModel(backend="openai", model=self.model, dimensions=self.dimensions)

    def embed(
        self, texts: Sequence[str], terms: Sequence[Sequence[str]] | None = None
    ) -> np.ndarray:
        from ..answer.llm import translated

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t or " " for t in texts[start : start + self.batch_size]]
            response = translated(
                lambda batch=batch: self._client.embeddings.create(model=self.model, input=batch),
                self._settings,
            )
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, self._dimensions or 0), np.float32)
        matrix = _normalize_rows(np.asarray(rows, np.float32))
        self._dimensions = matrix.shape[1]
        return matrix

    def embed_query(self, text: str, extra_terms: Sequence[str] = ()) -> np.ndarray:
        # Stems are not text a text-embedding model reads well: the question alone.
        return self.embed([text])[0]
