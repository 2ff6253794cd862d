"""The parts of an index directory, opened on first use, and what every writer needs: the
write lock, the identity check, the embedder of the active dense model, collection names.

Layout of ``RAG_ASSISTANT_HOME``::

    manifest.json        what readers use: embedding, tokenizer, chunking, collection, lexical dir
    catalog.sqlite3      papers, sources, chunks (+ terms), tombstones: the committed truth
    chroma/              the embedded Chroma store (absent with a Chroma server)
    lexical/g<N>/        BM25 built from catalog generation N
    vectors/g<N>/        an exact copy of the collection's vectors at generation N (searched)
    dense/lsa-<id>.npz   the fitted LSA model
    write.lock           held by the one process that writes
    rebuild/             a rebuild in progress (see :mod:`.rebuild`)
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexCorruptError, IndexMismatchError
from ..settings import Settings
from ..text.terms import ANALYZER_VERSION
from . import lock
from .catalog import Catalog, sqlite_error
from .files import check_home, ensure_home, os_errors, storage_error, why_unusable
from .manifest import MANIFEST, ChromaPlace, Chunking, DenseState, Identity, read_manifest
from .vector_copy import WrittenVectors

CATALOG = "catalog.sqlite3"


class Store:
    """The index in ``settings.home``. Cheap to construct; parts open on first use.
    ``embedder``: an embedding model to use instead of the index's own (tests)."""

    def __init__(self, settings: Settings, *, embedder=None) -> None:
        self.settings = settings
        self.home = settings.home
        check_home(self.home)
        self._given_embedder = embedder
        self._catalog: Catalog | None = None
        self._vectors = None
        self._encoder = None  # None: not looked for yet; False: none
        self._encoder_lock = threading.Lock()
        self.written = WrittenVectors()  # what this process wrote to Chroma (for the copy)

    # --- parts -------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The catalog, opened on first use (created in a new index). A catalog emptied or
        replaced under a manifest that lists papers is refused as damaged: treated as a
        new one, it would be filled with the bundled corpus, or rebuilt as nothing."""
        if self._catalog is None:
            ensure_home(self.home)
            path = self.home / CATALOG
            manifest = self.read_manifest_or_none()
            if manifest is not None and path.is_file() and path.stat().st_size == 0:
                raise self._emptied(manifest, "is empty (0 bytes)")
            catalog = Catalog(path)
            if manifest is not None and manifest.papers and catalog.identity() is None:
                catalog.close()
                raise self._emptied(manifest, "holds no index (it was emptied or replaced)")
            self._catalog = catalog
        return self._catalog

    def catalog_problem(self) -> str | None:
        """None when the catalog is intact; else what is wrong with it (missing, empty,
        damaged), ending with the command that fixes it. A catalog that cannot be read
        (permissions, a read-only disk) raises its typed error instead: it is not damaged."""
        path = self.home / CATALOG
        with os_errors(path):
            if not path.exists():
                return f"the catalog {path} is missing; {self.rebuild_advice()}"
            if not path.is_file():
                raise why_unusable(path) or IndexCorruptError(f"{path} is not a file")
            if path.stat().st_size == 0:
                return f"the catalog {path} is empty (0 bytes); {self.rebuild_advice()}"
        try:
            bad = self.catalog.integrity_problems()
        except IndexCorruptError as exc:
            return str(exc)
        except sqlite3.Error as exc:
            typed = sqlite_error(exc, path)
            if isinstance(typed, IndexCorruptError):
                return str(typed)
            raise typed from exc
        if bad:
            return f"the catalog {path} is damaged ({'; '.join(bad[:3])}); {self.rebuild_advice()}"
        return None

    def rebuild_advice(self) -> str:
        """What to run when the catalog is lost."""
        manifest = self.read_manifest_or_none()
        listed = f"the {len(manifest.sources)} source file(s)" if manifest else "the source files"
        return f"run `rag-assistant index rebuild` (rebuilds it from {listed} the manifest lists)"

    def read_manifest_or_none(self):
        """The manifest, or None when it is missing or damaged."""
        try:
            return self.read_manifest()
        except IndexCorruptError:
            return None

    def _emptied(self, manifest, what: str) -> IndexCorruptError:
        return IndexCorruptError(
            f"the catalog {self.home / CATALOG} {what}, but the manifest lists "
            f"{manifest.papers} papers; {self.rebuild_advice()}"
        )

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

    def close_vectors(self) -> None:
        """Release the Chroma client (opened again on next use)."""
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST

    def read_manifest(self):
        """The manifest as it is on disk now (None when there is none)."""
        return read_manifest(self.manifest_path)

    def has_catalog(self) -> bool:
        return (self.home / CATALOG).exists()

    def reopen_catalog_if_replaced(self) -> None:
        """Open the catalog again when another process replaced its file (a rebuild)."""
        if self._catalog is None:
            return
        try:
            replaced = (self.home / CATALOG).stat().st_ino != self._catalog.inode
        except FileNotFoundError:
            replaced = True
        if replaced:
            self.close()

    def require_catalog(self) -> None:
        """Raise when a manifest names an index whose catalog is gone: treating it as empty
        would fill it with the bundled corpus, or fail later on a misleading mismatch."""
        if not self.has_catalog() and self.manifest_path.exists():
            raise IndexCorruptError(
                f"the catalog {self.home / CATALOG} is missing; {self.rebuild_advice()}"
            )

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the index's write lock, or raise :class:`IndexBusyError` at once. A full
        disk, a read-only file system or permissions met meanwhile raise their typed errors
        (:func:`~.files.storage_error`); SQLite's say the same of the catalog."""
        ensure_home(self.home)
        try:
            with lock.writing(self.home):
                yield
        except OSError as exc:
            typed = storage_error(exc, exc.filename or self.home)
            if typed is None:
                raise
            raise typed from exc
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
                raise  # a bug: its traceback stays
            raise sqlite_error(exc, self.home / CATALOG) from exc

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

    # --- the sentence encoder -------------------------------------------------------------

    def sentence_encoder(self):
        """The sentence encoder (:mod:`.sentence_encoder`), loaded once; None when it is
        off or its files are not installed."""
        with self._encoder_lock:
            if self._encoder is None:
                from .sentence_encoder import find_model_dir, load_encoder, model_cache_dir

                model_dir = find_model_dir(self.settings)
                self._encoder = (
                    False
                    if model_dir is None
                    else load_encoder(model_dir, model_cache_dir(self.settings))
                )
            return self._encoder or None

    def collection_name(self, tag: str) -> str:
        identity = self.identity()
        index_id = identity.index_id if identity else "x"
        safe = re.sub(r"[^a-zA-Z0-9_-]", "-", tag)[:40]
        return f"{self.settings.collection_prefix}_{index_id}_{safe}"
