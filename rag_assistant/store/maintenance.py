"""Check, repair and rebuild: finding where the parts disagree with the catalog, bringing
them back in line, and rebuilding everything with the current settings."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from pathlib import Path

from .. import corpus
from ..errors import ConfigurationError, IndexCorruptError
from ..types import IngestReport, Paper, Problem, Progress, no_progress
from .catalog import Catalog
from .chunking import Chunker
from .ingest import BATCH_PAPERS, ingest, ingest_batch
from .lexical import LexicalIndex
from .parts import CATALOG, Store
from .sync import sync

REBUILD_BACKUP = "catalog.rebuild.sqlite3"


def check(store: Store) -> list[Problem]:
    """Every inconsistency between the parts, without changing anything."""
    problems: list[Problem] = []
    if not store.has_catalog():
        if store.manifest_path.exists():
            problems.append(
                Problem(
                    "catalog",
                    f"{store.home / CATALOG} is missing; run `rag-assistant index rebuild`",
                    False,
                )
            )
        return problems
    catalog = store.catalog
    bad = catalog.integrity_problems()
    if bad:
        problems.append(Problem("catalog", "; ".join(bad[:3]), False))
        return problems
    try:
        manifest = store.read_manifest()
    except IndexCorruptError as exc:
        problems.append(Problem("manifest", str(exc)))
        manifest = None
    papers, _ = catalog.counts()
    if manifest is None and papers and not store.manifest_path.exists():
        problems.append(Problem("manifest", f"{store.manifest_path} is missing"))
    if manifest is not None:
        try:
            lexical = LexicalIndex.load(store.home / manifest.lexical.dir)
            if set(lexical.chunk_ids) != catalog.chunk_ids():
                problems.append(
                    Problem("lexical", "the lexical index and the catalog hold different chunks")
                )
        except IndexCorruptError as exc:
            problems.append(Problem("lexical", str(exc)))
        model = manifest.dense_model
        if model and not (store.home / model).exists():
            problems.append(Problem("dense model", f"{model} is missing"))
    dense = catalog.dense_state()
    if dense is not None:
        in_chroma = store.vectors.ids(dense.collection)
        in_catalog = catalog.chunk_ids()
        extra, missing = in_chroma - in_catalog, in_catalog - in_chroma
        if extra:
            problems.append(
                Problem("chroma", f"{len(extra)} chunk(s) in Chroma that the catalog does not hold")
            )
        if missing:
            problems.append(
                Problem("chroma", f"{len(missing)} chunk(s) of the catalog missing from Chroma")
            )
    return problems


def repair(store: Store, progress: Progress = no_progress) -> list[Problem]:
    """Bring every derived part back in line with the catalog; returns what was found."""
    with store.writing():
        problems = check(store)
        if any(not p.repairable for p in problems):
            return problems
        catalog = store.catalog
        dense = catalog.dense_state()
        if dense is not None:
            in_chroma = store.vectors.ids(dense.collection)
            in_catalog = catalog.chunk_ids()
            store.vectors.delete(dense.collection, sorted(in_chroma - in_catalog))
            catalog.mark_all_pending()
            catalog.mark_embedded(sorted(in_catalog & in_chroma))
        for d in (store.home / "lexical").glob("g*"):
            shutil.rmtree(d, ignore_errors=True)
        sync(store, progress)
    return problems


def rebuild(store: Store, progress: Progress = no_progress) -> IngestReport:
    """Re-chunk and re-embed everything with the current settings, from the catalog's
    abstracts (or, when the catalog is unusable, from the sources the manifest lists).

    The catalog is first copied to ``catalog.rebuild.sqlite3``, which is removed only when
    the rebuild is complete: a rebuild that is killed is resumed from that copy.
    """
    started = time.perf_counter()
    backup = store.home / REBUILD_BACKUP
    sources: list[str] = []
    with store.writing():
        if not backup.exists() and _catalog_usable(store):
            store.catalog.backup_to(backup)
        if not backup.exists():
            with contextlib.suppress(IndexCorruptError):
                manifest = store.read_manifest()
                sources = manifest.sources if manifest else []
        store.discard_all()
        store.begin_write()
        report = IngestReport()
        if backup.exists():
            old = Catalog(backup)
            chunker = Chunker(store.settings.chunking)
            batch: list[Paper] = []
            for paper in old.iter_papers():
                batch.append(paper)
                if len(batch) >= BATCH_PAPERS:
                    ingest_batch(store, batch, chunker, report)
                    progress("reading", report.added, None)
                    batch = []
            if batch:
                ingest_batch(store, batch, chunker, report)
            old.close()
            sync(store, progress, report)
            backup.unlink()
        elif not sources:
            raise ConfigurationError(
                f"nothing to rebuild in {store.home}: no usable catalog and no manifest "
                "naming the sources; ingest the files again"
            )
    if sources:
        paths = [p for p in map(_source_path, sources) if p.exists()]
        if not paths:
            raise ConfigurationError(
                "cannot rebuild: the catalog is unusable and the source files the "
                "manifest names are gone; ingest the files again"
            )
        report = ingest(store, paths, progress=progress)
    report.papers, report.chunks = store.catalog.counts()
    report.seconds = time.perf_counter() - started
    return report


def _catalog_usable(store: Store) -> bool:
    if not store.has_catalog():
        return False
    try:
        return not store.catalog.integrity_problems()
    except (IndexCorruptError, sqlite3.DatabaseError):
        return False


def _source_path(source: str) -> Path:
    if source.startswith(corpus.BUNDLED_PREFIX):
        return corpus.bundled_corpus_dir() / source[len(corpus.BUNDLED_PREFIX) :]
    return Path(source)
