"""The index as readers use it: the parts of :class:`~rag_assistant.store.parts.Store`, the
manifest, lexical index and embedder cached and reloaded when another process switched the
manifest, the searches retrieval runs, and the status line.

Writing is done by :mod:`rag_assistant.store` (ingest, sync, check/repair/rebuild); the
methods here that write only call it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import IndexCorruptError
from .settings import Settings
from .store.lexical import LexicalIndex
from .store.manifest import DenseState, Manifest
from .store.parts import Store
from .types import IndexStatus, IngestReport, Problem, Progress, no_progress


class Index(Store):
    """The index in ``settings.home``. Cheap to construct; parts open on first use. Safe to
    share between threads: the cached parts are swapped under a lock."""

    def __init__(self, settings: Settings, *, embedder=None) -> None:
        super().__init__(settings, embedder=embedder)
        self._manifest: Manifest | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._lexical: LexicalIndex | None = None
        self._embedder = None
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
                self._manifest = self.read_manifest()
                self._manifest_stamp = stamp
                self._lexical = None
                self._embedder = None
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
        return self.vectors.query(manifest.chroma.collection, vector, n)

    def status(self) -> IndexStatus:
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

    def rebuild(self, progress: Progress = no_progress) -> IngestReport:
        from .store import maintenance

        return maintenance.rebuild(self, progress)
