"""The index directory: catalog (SQLite), Chroma collection, lexical BM25 index, dense model
and the manifest that ties them together, plus the ingest that keeps them consistent.

Layout of ``RAG_ASSISTANT_HOME``::

    manifest.json        what readers use: embedding, tokenizer, chunking, collection, lexical dir
    catalog.sqlite3      papers, sources, chunks (+ terms), tombstones: the committed truth
    chroma/              the embedded Chroma store (absent with a Chroma server)
    lexical/g<N>/        BM25 built from catalog generation N
    dense/lsa-<id>.npz   the fitted LSA model
    write.lock           held by the one process that writes

Ingest streams papers into the catalog in batches (one transaction each), then brings Chroma
and the lexical index in line with the catalog, then switches the manifest. Every step is
idempotent, so an ingest killed anywhere is completed by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import corpus
from .catalog import Catalog, ChunkRow
from .chunking import Chunker
from .errors import (
    ConfigurationError,
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    VectorStoreError,
)
from .faults import failpoint
from .lexical import LexicalIndex
from .settings import Settings
from .terms import ANALYZER_VERSION
from .terms import terms as analyze

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite3"
LOCK = "write.lock"
BATCH_PAPERS = 1000

Progress = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): stages are 'reading', 'embedding', 'lexical'."""


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


@dataclass
class IngestReport:
    """What an ingest changed. ``skipped`` lists entries that were not read, with reasons."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[corpus.Skipped] = field(default_factory=list)
    entries: int = 0
    files: int = 0
    papers: int = 0
    chunks: int = 0
    embedded: int = 0
    refitted: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: 'catalog' (reading, chunking, committing), 'fit' (the dense model),
    'dense' (embedding and Chroma writes), 'lexical', 'manifest' (switch and clean-up)."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        head = (
            f"added: {self.added}, updated: {self.updated}, unchanged: {self.unchanged}, "
            f"removed: {self.removed}, skipped: {len(self.skipped)}"
        )
        tail = (
            f"{self.entries} entries in {self.files} file(s); the index holds {self.papers} "
            f"papers in {self.chunks} chunks"
        )
        if not self.changed:
            tail += "; nothing changed"
        return f"{head}\n{tail} ({self.seconds:.1f} s)"


@dataclass
class IndexStatus:
    """What the status line and ``rag-assistant index status`` show."""

    home: str
    papers: int
    chunks: int
    embedding: str
    dimensions: int
    tokenizer: str
    chunking: str
    chroma: str
    generation: int
    pending_vectors: int
    lexical_stale: bool
    sources: int

    def line(self) -> str:
        return (
            f"{self.papers} papers, {self.chunks} chunks · {self.embedding} ({self.dimensions}d) "
            f"· Chroma {self.chroma}"
        )


@dataclass
class Problem:
    """One inconsistency found by :meth:`Index.check`."""

    part: str
    message: str
    repairable: bool = True


class Index:
    """The index in ``settings.home``. Cheap to construct; parts open on first use."""

    def __init__(self, settings: Settings, *, embedder=None) -> None:
        self.settings = settings
        self.home = settings.home
        self._given_embedder = embedder
        self._catalog: Catalog | None = None
        self._vectors = None
        self._lexical: LexicalIndex | None = None
        self._embedder = None
        self._manifest: dict | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self._reload_lock = threading.RLock()

    # --- parts ---------------------------------------------------------------------------

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

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST

    def _read_manifest(self) -> dict | None:
        path = self.manifest_path
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
                raise ValueError("unknown manifest format")
            for key in ("embedding", "chunking", "tokenizer", "chroma", "lexical"):
                data[key]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(
                f"the index manifest {path} is damaged ({exc}); run "
                "`rag-assistant index check --repair` (rebuilds it from the catalog)"
            ) from None
        self._manifest_stamp = (stat.st_mtime_ns, stat.st_size)
        return data

    def manifest(self) -> dict | None:
        """The manifest as readers see it, reloaded when another process switched it."""
        with self._reload_lock:
            try:
                stat = self.manifest_path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if self._manifest is None or stamp != self._manifest_stamp:
                self._manifest = self._read_manifest()
                self._lexical = None
                self._embedder = None
                if self._manifest is None and self.has_catalog() and self.catalog.counts()[0]:
                    raise IndexCorruptError(
                        f"the index manifest {self.manifest_path} is missing (was an ingest "
                        "interrupted?); run `rag-assistant ingest` again, or "
                        "`rag-assistant index check --repair`"
                    )
            return self._manifest

    def has_catalog(self) -> bool:
        return (self.home / CATALOG).exists()

    def is_empty(self) -> bool:
        if not self.has_catalog():
            self._require_catalog()
            return True
        return self.catalog.counts()[0] == 0

    def _require_catalog(self) -> None:
        """Raise when a manifest names an index whose catalog is gone: treating it as empty
        would fill it with the bundled corpus, or fail later on a misleading mismatch."""
        if not self.has_catalog() and self.manifest_path.exists():
            raise IndexCorruptError(
                f"the catalog {self.home / CATALOG} is missing; run `rag-assistant index "
                "rebuild` (re-reads the source files the manifest lists)"
            )

    def lexical(self) -> LexicalIndex:
        manifest = self.manifest()
        with self._reload_lock:
            if self._lexical is None:
                if manifest is None:
                    self._lexical = LexicalIndex(None, [], 0)
                else:
                    self._lexical = LexicalIndex.load(self.home / manifest["lexical"]["dir"])
            return self._lexical

    def embedder(self):
        """The embedder the index's vectors were made with."""
        manifest = self.manifest()
        with self._reload_lock:
            if self._embedder is None:
                self._embedder = self._embedder_for(
                    manifest["embedding"] if manifest else None,
                    manifest.get("dense_model") if manifest else None,
                )
            return self._embedder

    def _embedder_for(self, identity: dict | None, model_file: str | None):
        if self._given_embedder is not None:
            return self._given_embedder
        backend = (identity or {}).get("backend", self.settings.embedding.backend)
        if backend == "openai":
            from .embeddings import OpenAIEmbedder

            return OpenAIEmbedder(self.settings)
        if model_file is None:
            return None
        from .embeddings import LSAEmbedder

        return LSAEmbedder.load(self.home / model_file)

    # --- settings identity ------------------------------------------------------------------

    def _wanted(self) -> dict:
        s = self.settings
        return {
            "analyzer": ANALYZER_VERSION,
            "tokenizer": s.chunking.tokenizer,
            "chunking": {
                "splitter": "llama_index.core.node_parser.SentenceSplitter",
                "sentences": "rag_assistant.chunking.sentence_pieces",
                "chunk_size": s.chunking.chunk_size,
                "chunk_overlap": s.chunking.chunk_overlap,
            },
            "embedding_backend": s.embedding.backend,
            "embedding_model": (
                f"lsa-tfidf-svd-{s.embedding.dimensions}"
                if s.embedding.backend == "lsa"
                else s.embedding.openai_model
            ),
            "chroma": {"mode": "server" if s.chroma_url else "embedded", "url": s.chroma_url},
        }

    def check_compatible(self, identity: dict | None = None) -> None:
        """Raise :class:`IndexMismatchError` when the settings ask for another embedding,
        tokenizer, chunking or Chroma location than the index was built with."""
        built = identity or self._catalog_identity()
        if not built:
            return
        wanted = self._wanted()
        diffs = []
        if built.get("analyzer") != wanted["analyzer"]:
            diffs.append(
                f"term analyzer v{built.get('analyzer')} (this version: v{wanted['analyzer']})"
            )
        if built["tokenizer"] != wanted["tokenizer"]:
            diffs.append(f"tokenizer {built['tokenizer']} (asked: {wanted['tokenizer']})")
        bc, wc = built["chunking"], wanted["chunking"]
        if (bc["chunk_size"], bc["chunk_overlap"]) != (wc["chunk_size"], wc["chunk_overlap"]):
            diffs.append(
                f"chunks of {bc['chunk_size']}/{bc['chunk_overlap']} tokens "
                f"(asked: {wc['chunk_size']}/{wc['chunk_overlap']})"
            )
        if (built["embedding_backend"], built["embedding_model"]) != (
            wanted["embedding_backend"],
            wanted["embedding_model"],
        ):
            diffs.append(
                f"embedding {built['embedding_model']} (asked: {wanted['embedding_model']})"
            )
        if built["chroma"] != wanted["chroma"]:
            where = built["chroma"]["url"] or "the embedded store"
            asked = wanted["chroma"]["url"] or "the embedded store"
            diffs.append(f"Chroma at {where} (asked: {asked})")
        if diffs:
            raise IndexMismatchError(
                f"the index in {self.home} was built with " + "; ".join(diffs) + ". Rebuild it "
                "with these settings: `rag-assistant index rebuild` (re-chunks and re-embeds "
                "from the stored abstracts), or use another RAG_ASSISTANT_HOME."
            )

    def _catalog_identity(self) -> dict | None:
        if not self.has_catalog():
            return None
        raw = self.catalog.get_meta("identity")
        return json.loads(raw) if raw else None

    # --- the write lock -----------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the index's write lock, or raise :class:`IndexBusyError` at once."""
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / LOCK
        handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise IndexBusyError(
                    f"the index in {self.home} is busy: {holder} is writing to it; try again "
                    "when it has finished"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
            handle.close()  # releases the lock

    # --- ingest ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        prune: bool = False,
        strict: bool = True,
        categories: Sequence[str] = (),
        progress: Progress = _no_progress,
    ) -> IngestReport:
        """Add or update the papers in ``paths``; with ``prune``, remove papers their sources
        no longer hold. Raises before writing anything when a path is missing or unsupported.
        """
        started = time.perf_counter()
        files = corpus.discover(paths)  # missing / unsupported paths fail before the lock
        report = IngestReport(files=len(files))
        with self.writing():
            self._begin_write()
            log_ = corpus.ReadLog()
            limits = self.settings.limits
            stream = (
                paper
                for path in files
                for paper in corpus.read_file(
                    path,
                    log=log_,
                    strict=strict,
                    categories=categories,
                    max_abstract_chars=limits.max_abstract_chars,
                    max_file_bytes=limits.max_file_bytes,
                )
            )
            chunker = Chunker(self.settings.chunking)
            seen: dict[str, corpus.Paper] = {}
            held_by: dict[str, set[str]] = {}
            batch: list[corpus.Paper] = []
            in_batch: set[str] = set()
            more_sources: list[tuple[str, str]] = []  # repeats of papers already committed
            read = 0
            for paper in stream:
                read += 1
                held_by.setdefault(paper.sources[0], set()).add(paper.paper_id)
                known = seen.get(paper.paper_id)
                if known is not None:  # the same paper again in this run: first entry wins
                    if paper.paper_id in in_batch:
                        corpus.merge_into(known, paper, log_.warnings)
                    else:  # committed already: only its sources can still change
                        corpus.merge_into(known, _committed(paper), log_.warnings)
                        more_sources.extend((paper.paper_id, s) for s in paper.sources)
                    continue
                seen[paper.paper_id] = paper
                batch.append(paper)
                in_batch.add(paper.paper_id)
                if len(batch) >= BATCH_PAPERS:
                    self._ingest_batch(batch, chunker, report, more_sources)
                    seen.update((p.paper_id, _committed(p)) for p in batch)
                    batch, in_batch, more_sources = [], set(), []
                    progress("reading", read, None)
            if batch or more_sources:
                self._ingest_batch(batch, chunker, report, more_sources)
            progress("reading", read, read)
            report.entries = log_.entries
            report.skipped = log_.skipped
            report.warnings = log_.warnings
            self._update_sources(held_by, seen, report, prune=prune)
            report.stages["catalog"] = time.perf_counter() - started
            self._sync(progress, report)
        report.papers, report.chunks = self.catalog.counts()
        report.seconds = time.perf_counter() - started
        return report

    def _begin_write(self) -> None:
        """Check settings against what the index was built with; record them when new."""
        self._require_catalog()
        identity = self._catalog_identity()
        manifest_identity = None
        with contextlib.suppress(IndexCorruptError):
            manifest_identity = self._read_manifest()
        self.check_compatible(identity or manifest_identity)
        if identity is None:
            wanted = self._wanted()
            wanted["index_id"] = (manifest_identity or {}).get("index_id") or uuid.uuid4().hex[:8]
            self.catalog.set_meta("identity", json.dumps(wanted))

    def _ingest_batch(
        self,
        batch: list[corpus.Paper],
        chunker: Chunker,
        report: IngestReport,
        more_sources: Sequence[tuple[str, str]] = (),
    ) -> None:
        known = self.catalog.paper_hashes([p.paper_id for p in batch])
        upserts: list = []
        add_sources: list[tuple[str, str]] = list(more_sources)
        for paper in batch:
            old = known.get(paper.paper_id)
            if old is None or old[0] != paper.content_hash:
                chunks = chunker.chunks(paper)
                upserts.append((paper, chunks, [analyze(c.index_text) for c in chunks]))
                if old is None:
                    report.added += 1
                else:
                    report.updated += 1
            elif old[1] != paper.meta_hash:
                upserts.append((paper, None, None))
                report.updated += 1
            else:
                report.unchanged += 1
                add_sources.extend((paper.paper_id, s) for s in paper.sources)
        failpoint("ingest:after-chunking")
        self.catalog.apply(upsert=upserts, add_sources=add_sources)
        failpoint("ingest:after-catalog")

    def _update_sources(
        self,
        held_by: dict[str, set[str]],
        seen: dict[str, corpus.Paper],
        report: IngestReport,
        *,
        prune: bool,
    ) -> None:
        """A source that was read and no longer holds a paper stops listing it; with
        ``prune``, papers left with no existing source are removed."""
        drop: list[tuple[str, str]] = []
        for source, ids in held_by.items():
            for pid in self.catalog.paper_ids_by_source(source) - ids:
                drop.append((pid, source))
        if prune:
            for source in self.catalog.sources():
                if source not in held_by and not corpus.source_exists(source):
                    drop.extend((pid, source) for pid in self.catalog.paper_ids_by_source(source))
        if drop:
            self.catalog.apply(upsert=[], drop_sources=drop)
        if prune:
            orphans = self.catalog.orphan_paper_ids()
            if orphans:
                self.catalog.apply(upsert=[], remove=orphans)
                report.removed = len(orphans)

    # --- bringing Chroma and BM25 in line with the catalog ----------------------------------

    def _sync(self, progress: Progress, report: IngestReport | None = None) -> None:
        stages: dict[str, float] = report.stages if report is not None else {}
        started = time.perf_counter()
        embedded, refitted = self._sync_dense(progress, stages)
        failpoint("ingest:after-chroma")
        stages["dense"] = time.perf_counter() - started - stages.get("fit", 0.0)
        started = time.perf_counter()
        lexical_dir = self._sync_lexical(progress)
        failpoint("ingest:after-lexical")
        stages["lexical"] = time.perf_counter() - started
        started = time.perf_counter()
        self._write_manifest(lexical_dir)
        self._cleanup()
        stages["manifest"] = time.perf_counter() - started
        if report is not None:
            report.embedded, report.refitted = embedded, refitted
        log.info("ingest stages: %s", ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))

    def _collection_name(self, tag: str) -> str:
        identity = self._catalog_identity() or {}
        safe = re.sub(r"[^a-zA-Z0-9_-]", "-", tag)[:40]
        return f"{self.settings.collection_prefix}_{identity.get('index_id', 'x')}_{safe}"

    def _sync_dense(self, progress: Progress, stages: dict[str, float]) -> tuple[int, bool]:
        cat = self.catalog
        papers, _ = cat.counts()
        target = cat.get_meta("dense_collection")
        refitted = False
        if papers and self._needs_fit(papers):
            started = time.perf_counter()
            target = self._refit(papers)
            refitted = True
            stages["fit"] = time.perf_counter() - started
        if target is None:
            return 0, refitted
        embedder = self._embedder_for(
            json.loads(cat.get_meta("dense_identity") or "null"), cat.get_meta("dense_model")
        )
        tombstones = cat.tombstones()
        if tombstones:
            self.vectors.delete(target, tombstones)
            cat.clear_tombstones(tombstones)
        total, done = cat.pending_count(), 0
        # Chroma writes fastest in its largest batches.
        batch_size = max(self.settings.embedding.batch_size, self.vectors.max_batch)
        for rows in cat.iter_chunks(pending_only=True, batch_size=batch_size):
            self._embed_rows(target, embedder, rows)
            failpoint("ingest:during-embedding")
            cat.mark_embedded([r.chunk_id for r in rows])
            done += len(rows)
            progress("embedding", done, total)
        return done, refitted

    def _needs_fit(self, papers: int) -> bool:
        cat = self.catalog
        if cat.get_meta("dense_collection") is None:
            return True
        if self.settings.embedding.backend != "lsa":
            return False
        fitted_on = int(cat.get_meta("fitted_on_papers", "0") or 0)
        return papers >= self.settings.embedding.refit_growth * max(fitted_on, 1)

    def _refit(self, papers: int) -> str:
        """Fit a new dense model (LSA) or name the collection (OpenAI); every chunk becomes
        pending for the new collection. The manifest switches only when all are embedded."""
        cat = self.catalog
        if self.settings.embedding.backend == "lsa":
            from .embeddings import LSAEmbedder

            sample = cat.sample_chunk_terms(self.settings.embedding.fit_sample)
            model = LSAEmbedder.fit(sample, dimensions=self.settings.embedding.dimensions)
            model_file = str(model.save(self.home / "dense").relative_to(self.home))
            identity = model.identity
            collection = self._collection_name(f"lsa-{model.fit_id}")
        else:
            embedder = self._embedder_for({"backend": "openai"}, None)
            identity = embedder.identity
            model_file = None
            collection = self._collection_name(f"openai-{identity['model']}")
        self.vectors.drop(collection)
        self.vectors.collection(collection, create=True)
        cat.mark_all_pending()
        cat.set_meta("dense_identity", json.dumps(identity))
        cat.set_meta("dense_model", model_file or "")
        cat.set_meta("fitted_on_papers", str(papers))
        cat.set_meta("dense_collection", collection)
        log.info("dense model %s fitted on %d papers", identity["model"], papers)
        return collection

    def _embed_rows(self, collection: str, embedder, rows: list[ChunkRow]) -> None:
        titles = self.catalog.titles(sorted({r.paper_id for r in rows}))
        texts = [f"{titles.get(r.paper_id, '')}\n{r.text}" for r in rows]
        vectors = embedder.embed(texts, terms=[r.terms for r in rows])
        # Chroma holds each chunk's text, title and paper id too, so a collection is usable on
        # its own (by llama-index's ChromaVectorStore, say), not only through this index.
        self.vectors.upsert(
            collection,
            [r.chunk_id for r in rows],
            vectors,
            documents=[r.text for r in rows],
            metadatas=[
                {"paper_id": r.paper_id, "title": titles.get(r.paper_id, ""), "ordinal": r.ordinal}
                for r in rows
            ],
        )

    def _sync_lexical(self, progress: Progress) -> str:
        """The lexical index of the catalog's current generation: the previous one (the
        manifest's) with the catalog's changes applied, or built from every chunk's stored
        terms when there is no usable previous one."""
        cat = self.catalog
        generation = cat.generation
        directory = f"lexical/g{generation}"
        meta_file = self.home / directory / "lexical.json"
        if meta_file.exists():
            with contextlib.suppress(OSError, ValueError, KeyError):
                if json.loads(meta_file.read_text())["generation"] == generation:
                    return directory
        base = self._previous_lexical()
        current = cat.chunk_ids()
        removed: set[str] = set()
        if base is None:
            base = LexicalIndex(None, [], generation)
            added: Iterator[tuple[str, list[str]]] = cat.iter_terms()
            total = len(current)
        else:
            previous = set(base.chunk_ids)
            new_ids = sorted(current - previous)
            added = cat.iter_terms(new_ids)
            total = len(new_ids)
            removed = previous - current
        done = 0

        def counted(pairs: Iterator[tuple[str, list[str]]]) -> Iterator[tuple[str, list[str]]]:
            nonlocal done
            for pair in pairs:
                done += 1
                if done % 5000 == 0:
                    progress("lexical", done, total)
                yield pair

        lexical = base.updated(remove=removed, add=counted(added), generation=generation)
        progress("lexical", total, total)
        lexical.save(self.home / directory)
        return directory

    def _previous_lexical(self) -> LexicalIndex | None:
        """The lexical index the manifest names, with its term counts, or None."""
        try:
            manifest = self._read_manifest()
            if manifest is None:
                return None
            lexical = LexicalIndex.load(self.home / manifest["lexical"]["dir"])
            lexical.counts()
        except IndexCorruptError as exc:
            log.info("building the lexical index from every chunk (%s)", exc)
            return None
        return lexical

    def _write_manifest(self, lexical_dir: str) -> None:
        cat = self.catalog
        identity = self._catalog_identity() or self._wanted()
        papers, chunks = cat.counts()
        dense_identity = json.loads(cat.get_meta("dense_identity") or "null")
        manifest = {
            "format": MANIFEST_FORMAT,
            "index_id": identity.get("index_id"),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tokenizer": identity["tokenizer"],
            "chunking": identity["chunking"],
            "embedding_backend": identity["embedding_backend"],
            "embedding_model": identity["embedding_model"],
            "embedding": dense_identity,
            "dense_model": cat.get_meta("dense_model") or None,
            "chroma": {**identity["chroma"], "collection": cat.get_meta("dense_collection")},
            "lexical": {"dir": lexical_dir, "generation": cat.generation},
            "generation": cat.generation,
            "papers": papers,
            "chunks": chunks,
            "fitted_on_papers": int(cat.get_meta("fitted_on_papers", "0") or 0),
            "sources": cat.sources(),
        }
        tmp = self.manifest_path.with_suffix(".json.tmp")
        with open(tmp, "w") as handle:
            json.dump(manifest, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        failpoint("ingest:during-manifest")
        tmp.replace(self.manifest_path)
        with self._reload_lock:
            self._manifest = None  # re-read on next use

    def _cleanup(self) -> None:
        """Remove parts the manifest no longer names (old lexical dirs, models, collections)."""
        manifest = self._read_manifest()
        if manifest is None:
            return
        lexical_root = self.home / "lexical"
        if lexical_root.is_dir():
            for d in lexical_root.iterdir():
                if str(d.relative_to(self.home)) != manifest["lexical"]["dir"]:
                    shutil.rmtree(d, ignore_errors=True)
        dense_root = self.home / "dense"
        if dense_root.is_dir():
            for f in dense_root.iterdir():
                if str(f.relative_to(self.home)) != manifest.get("dense_model"):
                    f.unlink(missing_ok=True)
        active = manifest["chroma"].get("collection")
        prefix = self._collection_name("")
        for name in self.vectors.collection_names():
            if name.startswith(prefix) and name != active:
                self.vectors.drop(name)

    # --- reads ------------------------------------------------------------------------------

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
        """Chunks nearest to ``text`` (``extra_terms``: see :meth:`Embedder.embed_query`)."""
        manifest = self.manifest()
        if manifest is None or not manifest["chroma"].get("collection"):
            return []
        embedder = self.embedder()
        if embedder is None:
            return []
        vector = embedder.embed_query(text, extra_terms)
        return self.vectors.query(manifest["chroma"]["collection"], vector, n)

    def status(self) -> IndexStatus:
        manifest = self.manifest() or {}
        papers, chunks = self.catalog.counts() if self.has_catalog() else (0, 0)
        emb = manifest.get("embedding") or {}
        wanted = self._wanted()
        chunking = manifest.get("chunking") or wanted["chunking"]
        chroma = manifest.get("chroma") or wanted["chroma"]
        generation = self.catalog.generation if self.has_catalog() else 0
        return IndexStatus(
            home=str(self.home),
            papers=papers,
            chunks=chunks,
            embedding=manifest.get("embedding_model") or wanted["embedding_model"],
            dimensions=int(emb.get("dimensions") or 0),
            tokenizer=manifest.get("tokenizer") or wanted["tokenizer"],
            chunking=f"{chunking['chunk_size']}/{chunking['chunk_overlap']} tokens",
            chroma=chroma.get("url") or "embedded",
            generation=generation,
            pending_vectors=self.catalog.pending_count() if self.has_catalog() else 0,
            lexical_stale=bool(manifest) and manifest["lexical"]["generation"] != generation,
            sources=len(manifest.get("sources") or []),
        )

    # --- check, repair, rebuild ---------------------------------------------------------------

    def check(self) -> list[Problem]:
        """Every inconsistency between the parts, without changing anything."""
        problems: list[Problem] = []
        if not self.has_catalog():
            if self.manifest_path.exists():
                problems.append(
                    Problem(
                        "catalog",
                        f"{self.home / CATALOG} is missing; run `rag-assistant index rebuild`",
                        False,
                    )
                )
            return problems
        bad = self.catalog.integrity_problems()
        if bad:
            problems.append(Problem("catalog", "; ".join(bad[:3]), False))
            return problems
        try:
            manifest = self._read_manifest()
        except IndexCorruptError as exc:
            problems.append(Problem("manifest", str(exc)))
            manifest = None
        papers, _ = self.catalog.counts()
        if manifest is None and papers and not self.manifest_path.exists():
            problems.append(Problem("manifest", f"{self.manifest_path} is missing"))
        if manifest is not None:
            try:
                lexical = LexicalIndex.load(self.home / manifest["lexical"]["dir"])
                if set(lexical.chunk_ids) != self.catalog.chunk_ids():
                    problems.append(
                        Problem(
                            "lexical", "the lexical index and the catalog hold different chunks"
                        )
                    )
            except IndexCorruptError as exc:
                problems.append(Problem("lexical", str(exc)))
            model = manifest.get("dense_model")
            if model and not (self.home / model).exists():
                problems.append(Problem("dense model", f"{model} is missing"))
        collection = self.catalog.get_meta("dense_collection")
        if collection:
            in_chroma = self.vectors.ids(collection)
            in_catalog = self.catalog.chunk_ids()
            extra, missing = in_chroma - in_catalog, in_catalog - in_chroma
            if extra:
                problems.append(
                    Problem(
                        "chroma", f"{len(extra)} chunk(s) in Chroma that the catalog does not hold"
                    )
                )
            if missing:
                problems.append(
                    Problem("chroma", f"{len(missing)} chunk(s) of the catalog missing from Chroma")
                )
        return problems

    def repair(self, progress: Progress = _no_progress) -> list[Problem]:
        """Bring every derived part back in line with the catalog; returns what was found."""
        with self.writing():
            problems = self.check()
            if any(not p.repairable for p in problems):
                return problems
            collection = self.catalog.get_meta("dense_collection")
            if collection:
                in_chroma = self.vectors.ids(collection)
                in_catalog = self.catalog.chunk_ids()
                self.vectors.delete(collection, sorted(in_chroma - in_catalog))
                embedded = in_catalog & in_chroma
                self.catalog.mark_all_pending()
                self.catalog.mark_embedded(sorted(embedded))
            for d in (self.home / "lexical").glob("g*"):
                shutil.rmtree(d, ignore_errors=True)
            self._sync(progress)
        return problems

    def rebuild(self, progress: Progress = _no_progress) -> IngestReport:
        """Re-chunk and re-embed everything with the current settings, from the catalog's
        abstracts (or, when the catalog is unusable, from the sources the manifest lists).

        The catalog is first copied to ``catalog.rebuild.sqlite3``, which is removed only
        when the rebuild is complete: a rebuild that is killed is resumed from that copy.
        """
        started = time.perf_counter()
        backup = self.home / "catalog.rebuild.sqlite3"
        sources: list[str] = []
        with self.writing():
            if not backup.exists() and self._catalog_usable():
                self.catalog.backup_to(backup)
            if not backup.exists():
                with contextlib.suppress(IndexCorruptError):
                    sources = (self._read_manifest() or {}).get("sources") or []
            self._discard_all()
            self._begin_write()
            report = IngestReport()
            if backup.exists():
                old = Catalog(backup)
                chunker = Chunker(self.settings.chunking)
                batch: list[corpus.Paper] = []
                for paper in old.iter_papers():
                    batch.append(paper)
                    if len(batch) >= BATCH_PAPERS:
                        self._ingest_batch(batch, chunker, report)
                        progress("reading", report.added, None)
                        batch = []
                if batch:
                    self._ingest_batch(batch, chunker, report)
                old.close()
                self._sync(progress, report)
                backup.unlink()
            elif not sources:
                raise ConfigurationError(
                    f"nothing to rebuild in {self.home}: no usable catalog and no manifest "
                    "naming the sources; ingest the files again"
                )
        if sources:
            paths = [p for p in map(_source_path, sources) if p.exists()]
            if not paths:
                raise ConfigurationError(
                    "cannot rebuild: the catalog is unusable and the source files the "
                    "manifest names are gone; ingest the files again"
                )
            report = self.ingest(paths, progress=progress)
        report.papers, report.chunks = self.catalog.counts()
        report.seconds = time.perf_counter() - started
        return report

    def _catalog_usable(self) -> bool:
        if not self.has_catalog():
            return False
        try:
            return not self.catalog.integrity_problems()
        except (IndexCorruptError, sqlite3.DatabaseError):
            return False

    def _discard_all(self) -> None:
        """Delete every part but a rebuild backup (under the write lock)."""
        identity = None
        with contextlib.suppress(IndexCorruptError, sqlite3.DatabaseError, ValueError):
            identity = self._catalog_identity()
        if identity:
            prefix = f"{self.settings.collection_prefix}_{identity.get('index_id')}_"
            with contextlib.suppress(VectorStoreError):
                for name in self.vectors.collection_names():
                    if name.startswith(prefix):
                        self.vectors.drop(name)
        self.close()
        self._catalog = None
        for name in (CATALOG, CATALOG + "-wal", CATALOG + "-shm", MANIFEST):
            (self.home / name).unlink(missing_ok=True)
        for d in ("lexical", "dense"):
            shutil.rmtree(self.home / d, ignore_errors=True)
        with self._reload_lock:
            self._manifest = None
            self._lexical = None
            self._embedder = None


def _committed(paper: corpus.Paper) -> corpus.Paper:
    """What a later entry of a committed paper is merged with: its title, sources and a
    digest of its abstract (compared with the later entry's digest), not the texts; at 100,000
    papers, the papers held whole until the end of an ingest were ~300 MB of its peak."""
    digest = hashlib.sha1(paper.abstract.encode("utf-8")).hexdigest()
    return corpus.Paper(paper.paper_id, paper.title, digest, sources=paper.sources)


def _source_path(source: str) -> Path:
    if source.startswith(corpus.BUNDLED_PREFIX):
        return corpus.bundled_corpus_dir() / source[len(corpus.BUNDLED_PREFIX) :]
    return Path(source)
