"""Check, repair, resume and rebuild: finding where the parts disagree with the catalog (or
are damaged), bringing them back in line, completing what an interrupted ingest left, and
rebuilding everything with the current settings (:mod:`.rebuild`).

Every problem :func:`check` reports names its part and the command that fixes it; those
marked repairable are fixed by :func:`repair` (``rag-assistant index check --repair``), the
catalog's by ``rag-assistant index rebuild``.
"""

from __future__ import annotations

import shutil
import sqlite3

from ..errors import IndexBusyError, IndexCorruptError, StorageError, VectorStoreError
from ..faults import failpoint
from ..types import IngestReport, Problem, Progress, Recovery, no_progress
from . import lock
from .lexical import LexicalIndex
from .parts import Store
from .rebuild import rebuild as _rebuild
from .switch import LEGACY_BACKUP, STAGING, discard_leftovers, finish_switch, read_state
from .sync import sync

REPAIR = "run `rag-assistant index check --repair`"


def check(store: Store) -> list[Problem]:
    """Every inconsistency between the parts, without changing anything. Holds the write
    lock while it looks: an ingest in progress raises :class:`IndexBusyError` naming it
    (its unfinished work is no problem)."""
    with store.writing():
        return _check(store)


def _check(store: Store) -> list[Problem]:
    problems = _leftovers(store)
    if not store.has_catalog():
        if store.manifest_path.exists():
            problems.append(Problem("catalog", store.catalog_problem() or "", False))
        return problems
    problem = store.catalog_problem()
    if problem is not None:
        return [*problems, Problem("catalog", problem, False)]
    try:
        return problems + _check_parts(store)
    except IndexCorruptError as exc:  # a damaged page met past SQLite's quick check
        if not isinstance(exc.__cause__, sqlite3.Error):
            raise
        return [*problems, Problem("catalog", str(exc), False)]


def _leftovers(store: Store) -> list[Problem]:
    staging = store.home / STAGING
    if staging.exists():
        state = read_state(store)
        if state is not None and state.phase == "switching":
            message = (
                f"a rebuild was stopped while switching to the rebuilt index ({staging}); "
                f"{REPAIR} or `rag-assistant index rebuild` to finish it"
            )
        else:
            message = (
                f"an interrupted rebuild left its unfinished work in {staging} (the index "
                "does not depend on it); run `rag-assistant index rebuild` to rebuild again, "
                "or `rag-assistant index check --repair` to discard it"
            )
        return [Problem("rebuild", message)]
    if (store.home / LEGACY_BACKUP).exists():
        return [
            Problem(
                "rebuild",
                f"{store.home / LEGACY_BACKUP} was left by an interrupted rebuild of an earlier "
                f"version; {REPAIR} to remove it (the catalog is intact)",
            )
        ]
    return []


def _check_parts(store: Store) -> list[Problem]:
    problems: list[Problem] = []
    catalog = store.catalog
    try:
        manifest = store.read_manifest()
    except IndexCorruptError as exc:
        problems.append(Problem("manifest", str(exc)))
        manifest = None
    papers, _ = catalog.counts()
    if manifest is None and papers and not store.manifest_path.exists():
        problems.append(
            Problem(
                "manifest",
                f"{store.manifest_path} is missing (an ingest was interrupted before its "
                f"end); {REPAIR}",
            )
        )
    in_catalog = catalog.chunk_ids()
    dense = catalog.dense_state()
    if manifest is not None:
        problems += _check_lexical(store, manifest, in_catalog)
        problems += _check_copy(store, manifest, in_catalog)
        if dense is not None and manifest.chroma.collection != dense.collection:
            problems.append(
                Problem(
                    "manifest",
                    f"{store.manifest_path} names the Chroma collection "
                    f"{manifest.chroma.collection!r}, but the vectors are in "
                    f"{dense.collection!r}; {REPAIR}",
                )
            )
    problems += _check_dense_model(store, dense)
    problems += _check_chroma(store, dense, in_catalog)
    return problems


def _check_lexical(store: Store, manifest, in_catalog: set[str]) -> list[Problem]:
    try:
        lexical = LexicalIndex.load(store.home / manifest.lexical.dir)
        lexical.counts()
    except IndexCorruptError as exc:
        return [Problem("lexical", str(exc))]
    if set(lexical.chunk_ids) != in_catalog:
        return [
            Problem("lexical", f"the lexical index and the catalog hold different chunks; {REPAIR}")
        ]
    if manifest.lexical.generation != store.catalog.generation:
        return [
            Problem(
                "lexical",
                f"the lexical index is of catalog generation {manifest.lexical.generation}, "
                f"the catalog is at {store.catalog.generation} (an ingest was interrupted); "
                f"{REPAIR}",
            )
        ]
    return []


def _check_copy(store: Store, manifest, in_catalog: set[str]) -> list[Problem]:
    """The exact copy of the vectors the manifest names (an index written before copies
    were made names none: readers search Chroma, and its next ingest makes one)."""
    if manifest.vector_copy is None:
        return []
    from .vector_copy import REPAIR as COPY_REPAIR
    from .vector_copy import VectorCopy

    try:
        copy = VectorCopy.load(store.home / manifest.vector_copy)
    except IndexCorruptError as exc:
        return [Problem("vector copy", f"{exc} (answers search Chroma meanwhile)")]
    if not copy.is_of(manifest.chroma.collection, manifest.generation):
        return [
            Problem(
                "vector copy",
                f"the copy of the vectors {copy.directory} is of {copy.collection!r} at "
                f"generation {copy.generation}, the manifest of {manifest.chroma.collection!r} "
                f"at {manifest.generation}; {COPY_REPAIR}",
            )
        ]
    if not copy.holds(in_catalog):
        return [
            Problem(
                "vector copy",
                f"the copy of the vectors {copy.directory} and the catalog hold different "
                f"chunks; {COPY_REPAIR}",
            )
        ]
    return []


def _check_dense_model(store: Store, dense) -> list[Problem]:
    if dense is None or dense.model_file is None:
        return []
    from .embeddings import LSAEmbedder

    path = store.home / dense.model_file
    try:
        model = LSAEmbedder.load(path)
    except IndexCorruptError as exc:
        return [Problem("dense model", str(exc))]
    if model.fit_id != dense.model.fit_id:
        return [
            Problem(
                "dense model",
                f"{path} is not the model the vectors were made with (fit {model.fit_id}, "
                f"the catalog says {dense.model.fit_id}); {REPAIR} (refits it and embeds "
                "every chunk again)",
            )
        ]
    return []


def _check_chroma(store: Store, dense, in_catalog: set[str]) -> list[Problem]:
    if dense is None:
        return []
    try:
        vectors = store.vectors
    except IndexCorruptError as exc:  # the embedded store is damaged
        return [Problem("chroma store", str(exc))]
    except VectorStoreError as exc:  # a server that cannot be reached: nothing to repair
        return [Problem("chroma store", str(exc), False)]
    if not vectors.has_collection(dense.collection):
        return [
            Problem(
                "chroma",
                f"the collection {dense.collection!r} is missing from Chroma; {REPAIR} (embeds "
                "every chunk again)",
            )
        ]
    in_chroma = vectors.ids(dense.collection)
    extra, missing = in_chroma - in_catalog, in_catalog - in_chroma
    problems = []
    if extra:
        problems.append(
            Problem(
                "chroma",
                f"{len(extra)} chunk(s) in Chroma that the catalog does not hold; {REPAIR}",
            )
        )
    if missing:
        problems.append(
            Problem(
                "chroma", f"{len(missing)} chunk(s) of the catalog missing from Chroma; {REPAIR}"
            )
        )
    return problems


def repair(store: Store, progress: Progress = no_progress) -> list[Problem]:
    """Bring every derived part back in line with the catalog; returns what was found.
    Nothing is repaired when a problem is not repairable (the catalog's: rebuild)."""
    with store.writing():
        finished = finish_switch(store)
        problems = _check(store)
        if finished:
            problems.insert(
                0, Problem("rebuild", "a rebuild was stopped while switching; finished it")
            )
        if not problems or any(not p.repairable for p in problems):
            return problems
        parts = {p.part for p in problems}
        discard_leftovers(store)
        catalog = store.catalog
        if "chroma store" in parts:
            _recreate_chroma(store)
        if "dense model" in parts:
            catalog.clear_dense_state()  # the sync refits it and embeds every chunk
        dense = catalog.dense_state()
        if dense is not None:
            vectors = store.vectors
            vectors.collection(dense.collection, create=True)
            in_chroma = vectors.ids(dense.collection)
            in_catalog = catalog.chunk_ids()
            vectors.delete(dense.collection, sorted(in_chroma - in_catalog))
            catalog.mark_all_pending()
            catalog.mark_embedded(sorted(in_catalog & in_chroma))
        if parts & {"vector copy", "chroma", "chroma store", "dense model"}:
            shutil.rmtree(store.home / "vectors", ignore_errors=True)  # copied again
        if "lexical" in parts:  # only then: a healthy lexical index is updated by delta
            for d in (store.home / "lexical").glob("g*"):
                shutil.rmtree(d, ignore_errors=True)
        failpoint("repair:before-sync")
        sync(store, progress)
    return problems


def _recreate_chroma(store: Store) -> None:
    """The embedded Chroma store is damaged: remove it (it holds only what the catalog can
    make again); the sync embeds every chunk into a new one."""
    store.close_vectors()
    shutil.rmtree(store.home / "chroma")
    store.catalog.mark_all_pending()


# --- what an interrupted ingest left ------------------------------------------------------------


def interrupted(store: Store, *, locked: bool = False) -> str:
    """One line when an ingest or rebuild was interrupted and left work undone (or one is
    running in another process); "" otherwise. Cheap: a few small queries. ``locked``: the
    caller holds the write lock (so nobody else is writing)."""
    staging = store.home / STAGING
    if staging.exists():
        state = read_state(store)
        if state is not None and state.phase == "switching":
            return "a rebuild was interrupted while switching to the rebuilt index"
        running = None if locked else _holder(store)
        if running:
            return f"a rebuild is running ({running})"
        return (
            f"an interrupted rebuild left unfinished work in {staging} (the index is unchanged;"
            " `rag-assistant index rebuild` rebuilds again, `index check --repair` discards it)"
        )
    if not store.has_catalog():
        return ""
    try:
        catalog = store.catalog
        manifest = store.read_manifest()
    except StorageError:
        return ""  # damaged or unreadable, not interrupted: readers name it
    papers, _ = catalog.counts()
    left = []
    if manifest is None:
        if papers:
            left.append(f"{papers:,} papers not yet searchable (no manifest yet)")
    else:
        pending = catalog.pending_count()
        if pending:
            left.append(f"{pending:,} chunk(s) without vectors")
        if manifest.lexical.generation != catalog.generation:
            left.append("the BM25 index behind the catalog")
    if not left:
        return ""
    running = None if locked else _holder(store)
    if running:
        return f"an ingest is running ({running}): " + " and ".join(left)
    return "an interrupted ingest left " + " and ".join(left)


def _holder(store: Store) -> str | None:
    try:
        return lock.holder(store.home)
    except OSError:  # a read-only home: nobody can be writing
        return None


def resume(store: Store, progress: Progress = no_progress) -> Recovery:
    """Complete what an interrupted ingest left (vectors, the lexical index, the manifest)
    or finish the switch of an interrupted rebuild; see :class:`Recovery`."""
    found = interrupted(store)
    if not found:
        return Recovery("none")
    try:
        with store.writing():
            finished = finish_switch(store)
            found = interrupted(store, locked=True)
            if found.startswith("an interrupted ingest"):
                report = IngestReport()
                sync(store, progress, report)
                return Recovery(
                    "completed",
                    f"completed an interrupted ingest: {report.embedded:,} chunk(s) embedded, "
                    "the BM25 index and the manifest brought up to date",
                    report.embedded,
                )
            if finished:
                return Recovery("completed", "finished switching to an interrupted rebuild")
            return Recovery("left", found) if found else Recovery("none")
    except IndexBusyError:
        running = _holder(store) or "another process"
        return Recovery(
            "busy",
            f"{running} is writing to the index; what it adds becomes searchable when it "
            "has finished",
        )


def rebuild(
    store: Store, progress: Progress = no_progress, *, allow_shrink: bool = False
) -> IngestReport:
    """See :func:`.rebuild.rebuild`."""
    return _rebuild(store, progress, allow_shrink=allow_shrink)
