"""The rebuild: every paper re-chunked and re-embedded with the current settings into a new
index built beside the live one, verified, and only then switched in. Until the switch the
live catalog, manifest (with its list of source files), lexical index, dense model and Chroma
collection are not touched: readers keep answering, and a rebuild stopped anywhere loses
nothing.

``rebuild/rebuild.json`` records where a rebuild is:

1. **origin** — the live catalog when it is intact. When it is missing or damaged (SQLite
   says so, or it is empty while the manifest lists papers), the source files the manifest
   lists: every one of them must be there (unless ``allow_shrink``), or the rebuild stops
   naming the missing ones. A catalog that cannot be *read* (permissions, a read-only disk)
   is not damaged: the rebuild stops with that error and changes nothing.
2. **building** — the papers go into ``rebuild/catalog.sqlite3`` (its generations numbered
   after the live catalog's, so its parts never take the live ones' names); its lexical
   index, dense model and manifest are built in ``rebuild/``, its vectors in a Chroma
   collection of its own (``<prefix>_<index id>_r<rebuild id>-…``).
3. **verify** — SQLite's ``PRAGMA integrity_check``; as many papers as the origin held (no
   fewer unless ``allow_shrink``); no chunk waiting for a vector; as many vectors in its
   collection and rows in its lexical index as chunks; its manifest counting the same.
4. **switching** — recorded in ``rebuild.json`` before the first step, then the parts move
   in (:mod:`.switch`, which also says what becomes of the leftovers of a rebuild that
   was stopped).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import corpus
from ..errors import (
    ConfigurationError,
    IndexCorruptError,
    IndexMismatchError,
    RebuildShrinkError,
    StorageError,
)
from ..faults import failpoint
from ..types import IngestReport, Paper, Progress, no_progress
from .catalog import Catalog
from .chunking import Chunker
from .ingest import BATCH_PAPERS, ingest, ingest_batch
from .lexical import LexicalIndex
from .parts import CATALOG, Store
from .switch import (
    DAMAGED,
    LEGACY_BACKUP,
    STAGING,
    RebuildState,
    discard_leftovers,
    finish_switch,
    switch,
    write_state,
)
from .sync import sync

log = logging.getLogger(__name__)


@dataclass
class _Origin:
    kind: Literal["catalog", "sources", "earlier backup"]
    papers: int
    generation: int
    index_id: str | None
    catalog: Catalog | None = None
    paths: list[Path] = field(default_factory=list)
    keep_damaged: bool = False


class _Staging(Store):
    """The index being built in ``rebuild/``: its own catalog, lexical index, dense model and
    manifest, the live index's Chroma client, collections named apart."""

    def __init__(self, live: Store, rebuild_id: str) -> None:
        settings = live.settings.model_copy(update={"home": live.home / STAGING})
        super().__init__(settings, embedder=live._given_embedder)
        self._vectors = live.vectors
        self.rebuild_id = rebuild_id

    def collection_name(self, tag: str) -> str:
        return super().collection_name(f"r{self.rebuild_id}-{tag}")


def rebuild(
    store: Store, progress: Progress = no_progress, *, allow_shrink: bool = False
) -> IngestReport:
    """Rebuild the index in ``store`` with the current settings (see the module's steps);
    the report's warnings say what was found on the way (leftovers, a damaged catalog)."""
    started = time.perf_counter()
    report = IngestReport()
    with store.writing():
        if finish_switch(store):
            report.warnings.append("finished switching to the parts of an interrupted rebuild")
            with contextlib.suppress(IndexMismatchError):
                store.check_compatible()  # built with these settings: that was the rebuild
                report.papers, report.chunks = store.catalog.counts()
                report.seconds = time.perf_counter() - started
                return report
        report.warnings += discard_leftovers(store)
        origin = _origin(store, allow_shrink=allow_shrink)
        store.vectors.collection_names()  # a Chroma store that cannot be opened stops it here
        state = RebuildState(
            id=uuid.uuid4().hex[:8],
            phase="building",
            origin=origin.kind,
            papers=origin.papers,
            keep_damaged=origin.keep_damaged,
        )
        staging = _start(store, origin, state)
        try:
            built = _build(staging, origin, progress)
            _verify(staging, origin, allow_shrink=allow_shrink)
        except BaseException:
            staging.close()
            discard_leftovers(store)  # the live index was not touched
            raise
        finally:
            if origin.kind == "earlier backup" and origin.catalog is not None:
                origin.catalog.close()
        staging.catalog.checkpoint()
        staging.close()
        write_state(store, state.model_copy(update={"phase": "switching"}))
        failpoint("rebuild:before-switch")
        switch(store)
    built.warnings = report.warnings + built.warnings
    report = built
    if origin.kind != "catalog":
        where = "source files the manifest lists" if origin.kind == "sources" else origin.kind
        report.warnings.append(f"rebuilt from the {where}; the catalog was unusable")
    if state.keep_damaged:
        report.warnings.append(f"the damaged catalog was kept as {store.home / DAMAGED}")
    report.papers, report.chunks = store.catalog.counts()
    report.seconds = time.perf_counter() - started
    return report


# --- where the papers come from --------------------------------------------------------------


def _origin(store: Store, *, allow_shrink: bool) -> _Origin:
    problem = store.catalog_problem()
    manifest = store.read_manifest_or_none()
    manifest_id = manifest.index_id if manifest else None
    if problem is None:
        catalog = store.catalog
        identity = catalog.identity()
        return _Origin(
            "catalog",
            catalog.counts()[0],
            catalog.generation,
            (identity.index_id if identity else None) or manifest_id,
            catalog=catalog,
        )
    keep = (store.home / CATALOG).is_file() and (store.home / CATALOG).stat().st_size > 0
    earlier = _earlier_backup(store)
    if earlier is not None:
        return _Origin(
            "earlier backup",
            earlier.counts()[0],
            max(earlier.generation, manifest.generation if manifest else 0),
            manifest_id,
            catalog=earlier,
            keep_damaged=keep,
        )
    if manifest is None or not manifest.sources:
        raise ConfigurationError(
            f"cannot rebuild the index in {store.home}: the catalog is unusable and no "
            "manifest lists the source files to rebuild it from; ingest the files again "
            f"(nothing was changed). The catalog: {problem}"
        )
    paths, missing = [], []
    for source in manifest.sources:
        path = source_path(source)
        reason = _unreadable_source(path)
        if reason:
            missing.append(f"{source} ({reason})")
        else:
            paths.append(path)
    if missing and not allow_shrink:
        shown = "; ".join(missing[:10])
        if len(missing) > 10:
            shown += f"; and {len(missing) - 10} more"
        raise RebuildShrinkError(
            f"cannot rebuild the index in {store.home} without losing papers: the catalog is "
            f"unusable, and {len(missing)} of the {len(manifest.sources)} source files the "
            "manifest lists "
            f"cannot be read: {shown}. Restore them and run the rebuild again, or rebuild "
            "from the others with `rag-assistant index rebuild --allow-shrink` (nothing was "
            "changed)"
        )
    if not paths:
        raise ConfigurationError(
            f"cannot rebuild the index in {store.home}: the catalog is unusable and none of "
            "the source files the manifest lists is there; ingest the files again (nothing "
            "was changed)"
        )
    return _Origin(
        "sources",
        manifest.papers,
        manifest.generation,
        manifest_id,
        paths=paths,
        keep_damaged=keep,
    )


def source_path(source: str) -> Path:
    """The file a source key (:func:`~rag_assistant.corpus.source_key`) names."""
    if source.startswith(corpus.BUNDLED_PREFIX):
        return corpus.bundled_corpus_dir() / source[len(corpus.BUNDLED_PREFIX) :]
    return Path(source)


def _unreadable_source(path: Path) -> str | None:
    """Why a source file cannot be read ("missing", "permission denied"), or None."""
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return exc.strerror or str(exc)


def _earlier_backup(store: Store) -> Catalog | None:
    """The ``catalog.rebuild.sqlite3`` of an earlier version's rebuild, when it is a complete
    catalog (papers, an identity, SQLite's check passed); else None (it is left as it is)."""
    path = store.home / LEGACY_BACKUP
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        catalog = Catalog(path)
    except StorageError:
        return None
    with contextlib.suppress(sqlite3.Error):  # any SQLite error: not usable
        if catalog.identity() and catalog.counts()[0] and not catalog.integrity_problems():
            return catalog
    catalog.close()
    return None


# --- building and verifying ----------------------------------------------------------------


def _start(store: Store, origin: _Origin, state: RebuildState) -> _Staging:
    (store.home / STAGING).mkdir()
    write_state(store, state)
    staging = _Staging(store, state.id)
    catalog = staging.catalog
    catalog.set_identity(
        store.wanted().model_copy(update={"index_id": origin.index_id or uuid.uuid4().hex[:8]})
    )
    catalog.continue_generation(origin.generation)
    return staging


def _build(staging: _Staging, origin: _Origin, progress: Progress) -> IngestReport:
    if origin.catalog is None:
        return ingest(staging, origin.paths, progress=progress)
    report = IngestReport()
    chunker = Chunker(staging.settings.chunking)
    with staging.writing():
        staging.begin_write()
        batch: list[Paper] = []
        for paper in origin.catalog.iter_papers():
            batch.append(paper)
            if len(batch) >= BATCH_PAPERS:
                ingest_batch(staging, batch, chunker, report)
                failpoint("rebuild:copying")
                progress("reading", report.added, origin.papers)
                batch = []
        if batch:
            ingest_batch(staging, batch, chunker, report)
            failpoint("rebuild:copying")
        progress("reading", report.added, origin.papers)
        sync(staging, progress, report)
    return report


def _verify(staging: _Staging, origin: _Origin, *, allow_shrink: bool) -> None:
    """Raise unless the rebuilt index is complete and whole (see the module's step 3)."""
    catalog = staging.catalog
    bad = catalog.integrity_problems(full=True)
    if bad:
        raise IndexCorruptError(
            f"the rebuilt catalog failed SQLite's integrity check ({bad[0]}); the index was "
            "not changed. Run `rag-assistant index rebuild` again"
        )
    papers, chunks = catalog.counts()
    if papers < origin.papers and not (allow_shrink and origin.kind == "sources"):
        raise RebuildShrinkError(
            f"the rebuild would hold {papers} papers, the index holds {origin.papers}: the "
            f"source files no longer hold them all; the index was not changed. Restore the "
            "files, or rebuild anyway with `rag-assistant index rebuild --allow-shrink`"
        )
    wrong = []
    manifest = staging.read_manifest()
    if manifest is None or (manifest.papers, manifest.chunks) != (papers, chunks):
        wrong.append("its manifest does not count what its catalog holds")
    if catalog.pending_count():
        wrong.append(f"{catalog.pending_count()} chunk(s) have no vector")
    dense = catalog.dense_state()
    if dense is not None and staging.vectors.count(dense.collection) != chunks:
        wrong.append(f"its Chroma collection does not hold its {chunks} chunks")
    if manifest is not None:
        lexical = LexicalIndex.load(staging.home / manifest.lexical.dir)
        if len(lexical) != chunks:
            wrong.append(f"its lexical index holds {len(lexical)} of {chunks} chunks")
    if wrong:
        raise IndexCorruptError(
            "the rebuilt index did not verify (" + "; ".join(wrong) + "); the index was not "
            "changed. Run `rag-assistant index rebuild` again"
        )
