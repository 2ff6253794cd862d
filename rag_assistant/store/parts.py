"""The parts of an index directory, opened on first use, and what every writer needs: the
write lock, the identity check, the embedder of the active dense model, collection names.

Layout of ``RAG_ASSISTANT_HOME``::

    manifest.json        what readers use: embedding, tokenizer, chunking, collection, lexical dir
    catalog.sqlite3      papers, sources, chunks (+ terms), tombstones: the committed truth
    chroma/              the embedded Chroma store (absent with a Chroma server)
    lexical/g<N>/        BM25 built from catalog generation N
    dense/lsa-<id>.npz   the fitted LSA model
    write.lock           held by the one process that writes
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import uuid
from pathlib import Path

from ..errors import IndexCorruptError, IndexMismatchError, VectorStoreError
from ..settings import Settings
from ..text.terms import ANALYZER_VERSION
from . import lock
from .catalog import Catalog
from .manifest import MANIFEST, ChromaPlace, Chunking, DenseState, Identity, read_manifest

CATALOG = "catalog.sqlite3"


class Store:
    """The index in ``settings.home``. Cheap to construct; parts open on first use.
    ``embedder``: an embedding model to use instead of the index's own (tests)."""

    def __init__(self, settings: Settings, *, embedder=None) -> None:
        self.settings = settings
        self.home = settings.home
        self._given_embedder = embedder
        self._catalog: Catalog | None = None
        self._vectors = None

    # --- parts -------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self.home.mkdir(parents=True, exist_ok=True)
            self._catalog = Catalog(self.home / CATALOG)
        return self._catalog

    @property
    def vectors(self):
        if self._vectors is None:
            from .vectors import VectorStore

            url = self.settings.chroma_url
            self._vectors = VectorStore(path=None if url else self.home / "chroma", url=url)
        return self._vectors

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST

    def read_manifest(self):
        """The manifest as it is on disk now (None when there is none)."""
        return read_manifest(self.manifest_path)

    def has_catalog(self) -> bool:
        return (self.home / CATALOG).exists()

    def require_catalog(self) -> None:
        """Raise when a manifest names an index whose catalog is gone: treating it as empty
        would fill it with the bundled corpus, or fail later on a misleading mismatch."""
        if not self.has_catalog() and self.manifest_path.exists():
            raise IndexCorruptError(
                f"the catalog {self.home / CATALOG} is missing; run `rag-assistant index "
                "rebuild` (re-reads the source files the manifest lists)"
            )

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold the index's write lock, or raise :class:`IndexBusyError` at once."""
        return lock.writing(self.home)

    # --- identity: what the index was built with ---------------------------------------------

    def wanted(self) -> Identity:
        """The identity the current settings ask for."""
        s = self.settings
        return Identity(
            analyzer=ANALYZER_VERSION,
            tokenizer=s.chunking.tokenizer,
            chunking=Chunking(
                splitter="llama_index.core.node_parser.SentenceSplitter",
                sentences="rag_assistant.chunking.sentence_pieces",
                chunk_size=s.chunking.chunk_size,
                chunk_overlap=s.chunking.chunk_overlap,
            ),
            embedding_backend=s.embedding.backend,
            embedding_model=(
                f"lsa-tfidf-svd-{s.embedding.dimensions}"
                if s.embedding.backend == "lsa"
                else s.embedding.openai_model
            ),
            chroma=ChromaPlace(mode="server" if s.chroma_url else "embedded", url=s.chroma_url),
        )

    def identity(self) -> Identity | None:
        return self.catalog.identity() if self.has_catalog() else None

    def check_compatible(self, built: Identity | None = None) -> None:
        """Raise :class:`IndexMismatchError` when the settings ask for another analyzer,
        tokenizer, chunking, embedding or Chroma location than the index was built with."""
        built = built or self.identity()
        if built is None:
            return
        wanted = self.wanted()
        diffs = []
        if built.analyzer != wanted.analyzer:
            diffs.append(f"term analyzer v{built.analyzer} (this version: v{wanted.analyzer})")
        if built.tokenizer != wanted.tokenizer:
            diffs.append(f"tokenizer {built.tokenizer} (asked: {wanted.tokenizer})")
        bc, wc = built.chunking, wanted.chunking
        if (bc.chunk_size, bc.chunk_overlap) != (wc.chunk_size, wc.chunk_overlap):
            diffs.append(
                f"chunks of {bc.chunk_size}/{bc.chunk_overlap} tokens "
                f"(asked: {wc.chunk_size}/{wc.chunk_overlap})"
            )
        if (built.embedding_backend, built.embedding_model) != (
            wanted.embedding_backend,
            wanted.embedding_model,
        ):
            diffs.append(f"embedding {built.embedding_model} (asked: {wanted.embedding_model})")
        if built.chroma != wanted.chroma:
            where = built.chroma.url or "the embedded store"
            asked = wanted.chroma.url or "the embedded store"
            diffs.append(f"Chroma at {where} (asked: {asked})")
        if diffs:
            raise IndexMismatchError(
                f"the index in {self.home} was built with " + "; ".join(diffs) + ". Rebuild it "
                "with these settings: `rag-assistant index rebuild` (re-chunks and re-embeds "
                "from the stored abstracts), or use another RAG_ASSISTANT_HOME."
            )

    def begin_write(self) -> None:
        """Check the settings against what the index was built with; record them when new
        (under the write lock)."""
        self.require_catalog()
        identity = self.identity()
        manifest = None
        with contextlib.suppress(IndexCorruptError):
            manifest = self.read_manifest()
        if identity is None and manifest is not None:
            # a catalog lost and being rebuilt: the manifest keeps the index id
            self.check_compatible(self._identity_of(manifest))
        self.check_compatible(identity)
        if identity is None:
            index_id = (manifest.index_id if manifest else None) or uuid.uuid4().hex[:8]
            self.catalog.set_identity(self.wanted().model_copy(update={"index_id": index_id}))

    def _identity_of(self, manifest) -> Identity:
        return Identity(
            analyzer=self.wanted().analyzer,
            tokenizer=manifest.tokenizer,
            chunking=manifest.chunking,
            embedding_backend=manifest.embedding_backend,
            embedding_model=manifest.embedding_model,
            chroma=ChromaPlace(mode=manifest.chroma.mode, url=manifest.chroma.url),
            index_id=manifest.index_id,
        )

    # --- the dense side -----------------------------------------------------------------------

    def embedder_for(self, dense: DenseState | None):
        """The embedder the vectors of ``dense`` were made with (the injected one if any)."""
        if self._given_embedder is not None:
            return self._given_embedder
        backend = dense.model.backend if dense else self.settings.embedding.backend
        if backend == "openai":
            from .embeddings import OpenAIEmbedder

            return OpenAIEmbedder(self.settings)
        if dense is None or dense.model_file is None:
            return None
        from .embeddings import LSAEmbedder

        return LSAEmbedder.load(self.home / dense.model_file)

    def collection_name(self, tag: str) -> str:
        identity = self.identity()
        index_id = identity.index_id if identity else "x"
        safe = re.sub(r"[^a-zA-Z0-9_-]", "-", tag)[:40]
        return f"{self.settings.collection_prefix}_{index_id}_{safe}"

    # --- starting over ------------------------------------------------------------------------

    def discard_all(self) -> None:
        """Delete every part but a rebuild backup (under the write lock)."""
        identity = None
        with contextlib.suppress(IndexCorruptError, sqlite3.DatabaseError, ValueError):
            identity = self.identity()
        if identity:
            prefix = f"{self.settings.collection_prefix}_{identity.index_id}_"
            with contextlib.suppress(VectorStoreError):
                for name in self.vectors.collection_names():
                    if name.startswith(prefix):
                        self.vectors.drop(name)
        self.close()
        for name in (CATALOG, CATALOG + "-wal", CATALOG + "-shm", MANIFEST):
            (self.home / name).unlink(missing_ok=True)
        for d in ("lexical", "dense"):
            shutil.rmtree(self.home / d, ignore_errors=True)
