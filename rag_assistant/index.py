"""The index as readers use it: the parts of :class:`~rag_assistant.store.parts.Store`, the
manifest, lexical index and embedder cached and reloaded when another process switched the
manifest, the searches retrieval runs, and the status line.

Writing is done by :mod:`rag_assistant.store` (ingest, sync, check/repair/rebuild); the
methods here that write only call it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError, VectorStoreError
from .settings import Settings
from .store.lexical import LexicalIndex
from .store.manifest import DenseState, Manifest
from .store.names import papers_named, writes
from .store.parts import Store
from .store.sentence_encoder import SentenceMatrix, SentenceScores, same_word, unpack_tokens
from .store.vector_copy import VectorCopy, is_sqlite_file
from .text.terms import query_terms
from .types import (
    IndexStatus,
    IngestReport,
    Problem,
    Progress,
    Recovery,
    no_progress,
)

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+(?:[-'.]\w+)*")


class Index(Store):
    """The index in ``settings.home``. Cheap to construct; parts open on first use. Safe to
    share between threads: the cached parts are swapped under a lock."""

    def __init__(self, settings: Settings, *, embedder=None) -> None:
        super().__init__(settings, embedder=embedder)
        self._manifest: Manifest | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._lexical: LexicalIndex | None = None
        self._embedder = None
        self._copy: VectorCopy | bool | None = None  # False: none to use
        self._sentences: SentenceMatrix | bool | None = None  # False: none to use
        self.names_seen: dict[tuple[str, tuple[str, ...]], bool] = {}  # see store.names
        self._reload_lock = threading.RLock()

    # --- what readers use ------------------------------------------------------------------

    def manifest(self) -> Manifest | None:
        """The manifest as readers see it, reloaded when another process switched it."""
        with self._reload_lock:
            try:
                stat = self.manifest_path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if self._manifest is None or stamp != self._manifest_stamp:
                self.reopen_catalog_if_replaced()  # a rebuild switched catalogs too
                self._manifest = self.read_manifest()
                self._manifest_stamp = stamp
                self._lexical = None
                self._embedder = None
                self._copy = None
                self._sentences = None
                self.names_seen = {}
                if self._manifest is None and self.has_catalog() and self.catalog.counts()[0]:
                    raise IndexCorruptError(
                        f"the index manifest {self.manifest_path} is missing (was an ingest "
                        "interrupted?); run `rag-assistant ingest` again, or "
                        "`rag-assistant index check --repair`"
                    )
            return self._manifest

    def is_empty(self) -> bool:
        if not self.has_catalog():
            self.require_catalog()
            return True
        return self.catalog.counts()[0] == 0

    def lexical(self) -> LexicalIndex:
        manifest = self.manifest()
        with self._reload_lock:
            if self._lexical is None:
                self._lexical = (
                    LexicalIndex(None, [], 0)
                    if manifest is None
                    else LexicalIndex.load(self.home / manifest.lexical.dir)
                )
                self._lexical.same_meaning = lambda a, b: same_word(self.sentence_encoder(), a, b)
            return self._lexical

    def embedder(self):
        """The embedder the index's vectors were made with (None before the first fit)."""
        manifest = self.manifest()
        with self._reload_lock:
            if self._embedder is None:
                dense = None
                if manifest is not None and manifest.embedding is not None:
                    dense = DenseState(
                        model=manifest.embedding,
                        model_file=manifest.dense_model,
                        collection=manifest.chroma.collection or "",
                    )
                self._embedder = self.embedder_for(dense)
            return self._embedder

    # --- searches --------------------------------------------------------------------------

    def lexical_search(self, query_terms: Sequence[str], n: int) -> list[tuple[str, float]]:
        return self.lexical().search(query_terms, n)

    def spelled_terms(self, query_terms: Sequence[str]) -> list[str]:
        """``query_terms`` with misspellings of corpus words corrected (see
        :meth:`LexicalIndex.spelled`); terms the corpus does not know are kept."""
        lexical = self.lexical()
        return list(dict.fromkeys(lexical.spelled(t) or t for t in query_terms))

    def dense_search(
        self, text: str, n: int, extra_terms: Sequence[str] = ()
    ) -> list[tuple[str, float]]:
        """Chunks nearest to ``text`` (``extra_terms``: see ``Embedder.embed_query``)."""
        manifest = self.manifest()
        if manifest is None or not manifest.chroma.collection:
            return []
        embedder = self.embedder()
        if embedder is None:
            return []
        vector = embedder.embed_query(text, extra_terms)
        copy = self.vector_copy()
        if copy is not None:
            return copy.search(vector, n)
        name = manifest.chroma.collection
        try:
            return self.vectors.query(name, vector, n)
        except VectorStoreError:
            if self.vectors.has_collection(name):
                raise
            raise IndexCorruptError(
                f"the Chroma collection {name!r} that {self.manifest_path} names is missing; "
                "run `rag-assistant index check --repair` (brings the manifest and Chroma back "
                "in line with the catalog)"
            ) from None

    def vector_copy(self) -> VectorCopy | None:
        """The exact copy of the vectors dense search uses (see :mod:`.store.vector_copy`),
        or None: searching it is off (``retrieval.dense_search``), the manifest names none,
        it is not of the manifest's collection and generation, or it is damaged (logged;
        `index check` reports it) — then Chroma is searched. An embedded Chroma store that
        is no longer a SQLite database is not hidden behind its copy: Chroma is opened, and
        says it is damaged."""
        manifest = self.manifest()
        with self._reload_lock:
            if self._copy is None:
                self._copy = self._open_copy(manifest) or False
            return self._copy or None

    def _open_copy(self, manifest: Manifest | None) -> VectorCopy | None:
        mode = self.settings.retrieval.dense_search
        server = bool(self.settings.chroma_url)
        if manifest is None or not manifest.vector_copy:
            return None
        if mode == "chroma" or (mode == "auto" and server):
            return None
        if not server and not is_sqlite_file(self.home / "chroma" / "chroma.sqlite3"):
            return None
        try:
            copy = VectorCopy.load(self.home / manifest.vector_copy)
        except IndexCorruptError as exc:
            log.warning("searching Chroma: %s", exc)
            return None
        return copy if copy.is_of(manifest.chroma.collection, manifest.generation) else None

    def sentence_scores(self, question: str) -> SentenceScores | None:
        """How close in meaning each chunk's closest sentence is to ``question`` (see
        :mod:`.store.sentence_encoder`); None without the encoder, or while some chunks are
        not encoded yet (a partial list would favour the encoded papers)."""
        matrix = self.sentence_matrix()
        if matrix is None:
            return None
        encoder = self.sentence_encoder()
        return matrix.query(encoder.encode_query(question))

    def sentence_vectors_in_context(self, chunk_ids: Sequence[str]) -> dict[str, bytes]:
        """{chunk id: its sentences' vectors encoded after the paper's title} for those of
        ``chunk_ids`` the encoder encoded so (none without the encoder, or for a chunk an
        index from before them has not encoded yet)."""
        encoder = self.sentence_encoder()
        if encoder is None:
            return {}
        return self.catalog.sentence_vectors_in_context(encoder.name, chunk_ids)

    def token_vectors(self, paper_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """{paper id: the unit vectors of its abstract's content words, each read in its
        sentence} for those of ``paper_ids`` the ingest encoded so (none without the
        encoder, or for a paper an index from before them has not encoded yet)."""
        encoder = self.sentence_encoder()
        stored = self.catalog.token_vectors(encoder.name, paper_ids) if encoder else {}
        return {paper_id: unpack_tokens(b"".join(b)) for paper_id, b in stored.items()}

    def sentence_matrix(self) -> SentenceMatrix | None:
        manifest = self.manifest()
        with self._reload_lock:
            if self._sentences is None:
                self._sentences = False
                encoder = self.sentence_encoder() if manifest is not None else None
                if encoder is not None:
                    encoded, missing = self.catalog.sentence_vector_counts()
                    if missing:
                        log.warning(
                            "%d of %d chunks have no sentence vectors yet (ingest again to "
                            "encode them): papers are ranked without the sentence encoder",
                            missing,
                            encoded + missing,
                        )
                    elif encoded:
                        rows = self.catalog.sentence_vectors(encoder.name)
                        self._sentences = SentenceMatrix(rows)
            return self._sentences or None

    def idf(self, term: str) -> float:
        """How rare ``term`` is among the chunks (BM25's IDF; an unseen word is rarest)."""
        return self.lexical().idf(term)

    def papers_named(self, names: Sequence[str], *, most: int = 5) -> dict[str, int]:
        """The papers a question names (see :func:`~rag_assistant.store.names.papers_named`)."""
        self.manifest()  # another process's ingest resets what was learnt of names
        return papers_named(self, names, most=most)

    def writes(self, name: str, *, among: int = 50) -> bool:
        """Some indexed text writes ``name`` (see :func:`~rag_assistant.store.names.writes`)."""
        return writes(self, name, among=among)

    def dense_confidence(self, terms: Sequence[str]) -> float:
        """How far the dense side can be trusted for a question of these ``terms``: the
        share of their IDF mass the dense model's vocabulary knows (1.0 for a model without
        a fixed vocabulary, such as OpenAI's). A method named only in papers added after the
        LSA fit is a word the model has never seen: then the dense list is noise."""
        vocabulary = getattr(self.embedder(), "vocabulary", None)
        total = sum(self.idf(t) for t in terms)
        if vocabulary is None or total <= 0:
            return 1.0
        return sum(self.idf(t) for t in terms if t in vocabulary) / total

    def rare_df(self) -> int:
        """The most chunks a word may be in and still be rare, a name's word: 3, or one
        chunk in 2,000 of a larger index."""
        return max(3, len(self.lexical()) // 2000)

    def sentence_confidence(self, question: str) -> float:
        """How far the sentence encoder's list can be trusted for ``question``: the share of
        its words' IDF mass that is not a name BM25 can match exactly and the encoder cannot
        read (a word few chunks use, 1 to :meth:`rare_df`, that its vocabulary does not hold
        whole); 1.0 without the encoder. A question about a made-up name ("How does Draret
        work?") is, to the encoder, about how things work: its closest sentences are noise,
        and must not outvote BM25's exact match of the name (as :meth:`dense_confidence` for
        LSA). Words no chunk uses ("chatbot" in a lay question) are left to the encoder."""
        encoder = self.sentence_encoder()
        lexical = self.lexical()
        rare = self.rare_df()
        mass = unread = 0.0
        for word in _WORD.findall(question) if encoder is not None else ():
            for term in query_terms(word):
                idf = self.idf(term)
                mass += idf
                if 0 < lexical.df(term) <= rare and not encoder.knows(word):
                    unread += idf
        return 1.0 - unread / mass if mass > 0 else 1.0

    def status(self) -> IndexStatus:
        from .store import maintenance

        manifest = self.manifest()
        papers, chunks = self.catalog.counts() if self.has_catalog() else (0, 0)
        wanted = self.wanted()
        chunking = manifest.chunking if manifest else wanted.chunking
        generation = self.catalog.generation if self.has_catalog() else 0
        return IndexStatus(
            home=str(self.home),
            papers=papers,
            chunks=chunks,
            embedding=manifest.embedding_model if manifest else wanted.embedding_model,
            dimensions=manifest.embedding.dimensions if manifest and manifest.embedding else 0,
            tokenizer=manifest.tokenizer if manifest else wanted.tokenizer,
            chunking=f"{chunking.chunk_size}/{chunking.chunk_overlap} tokens",
            chroma=(manifest.chroma.url if manifest else wanted.chroma.url) or "embedded",
            generation=generation,
            pending_vectors=self.catalog.pending_count() if self.has_catalog() else 0,
            lexical_stale=manifest is not None and manifest.lexical.generation != generation,
            sources=len(manifest.sources) if manifest else 0,
            interrupted=maintenance.interrupted(self),
        )

    # --- writing (done by rag_assistant.store) --------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        prune: bool = False,
        strict: bool = True,
        categories: Sequence[str] = (),
        progress: Progress = no_progress,
    ) -> IngestReport:
        """See :func:`rag_assistant.store.ingest.ingest`."""
        from .store.ingest import ingest  # writing only: a reader does not import it

        return ingest(
            self, paths, prune=prune, strict=strict, categories=categories, progress=progress
        )

    def check(self) -> list[Problem]:
        from .store import maintenance

        return maintenance.check(self)

    def repair(self, progress: Progress = no_progress) -> list[Problem]:
        from .store import maintenance

        return maintenance.repair(self, progress)

    def resume(self, progress: Progress = no_progress) -> Recovery:
        from .store import maintenance

        return maintenance.resume(self, progress)

    def rebuild(
        self, progress: Progress = no_progress, *, allow_shrink: bool = False
    ) -> IngestReport:
        from .store import maintenance

        return maintenance.rebuild(self, progress, allow_shrink=allow_shrink)
