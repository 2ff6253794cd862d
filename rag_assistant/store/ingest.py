"""Ingest: papers streamed from files into the catalog in batches (one transaction each),
the same paper met twice merged, sources updated (and, with ``prune``, papers no source holds
removed); then the derived parts are brought in line (:mod:`.sync`).

Every step is idempotent, so an ingest killed anywhere is completed by the next one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

from .. import corpus
from ..faults import failpoint
from ..text.terms import terms as analyze
from ..types import IngestReport, Paper, Progress, no_progress
from .chunking import Chunker
from .parts import Store
from .switch import finish_switch
from .sync import sync

BATCH_PAPERS = 1000


def ingest(
    store: Store,
    paths: Sequence[str | Path],
    *,
    prune: bool = False,
    strict: bool = True,
    categories: Sequence[str] = (),
    progress: Progress = no_progress,
) -> IngestReport:
    """Add or update the papers in ``paths``; with ``prune``, remove papers their sources no
    longer hold. Raises before writing anything when a path is missing or unsupported."""
    started = time.perf_counter()
    files = corpus.discover(paths)  # missing / unsupported paths fail before the lock
    for path in files:  # and files too large (what a .gz expands to), before anything is read
        corpus.check_file(path, store.settings.limits)
    report = IngestReport(files=len(files))
    with store.writing():
        finish_switch(store)  # a rebuild stopped half-way through switching to its parts
        store.begin_write()
        log = corpus.ReadLog()
        limits = store.settings.limits
        stream = (
            paper
            for path in files
            for paper in corpus.read_file(
                path,
                log=log,
                strict=strict,
                categories=categories,
                limits=limits,
            )
        )
        chunker = Chunker(store.settings.chunking)
        seen: dict[str, Paper] = {}
        held_by: dict[str, set[str]] = {}
        batch: list[Paper] = []
        in_batch: set[str] = set()
        more_sources: list[tuple[str, str]] = []  # repeats of papers already committed
        read = 0
        for paper in stream:
            read += 1
            held_by.setdefault(paper.sources[0], set()).add(paper.paper_id)
            known = seen.get(paper.paper_id)
            if known is not None:  # the same paper again in this run: first entry wins
                if paper.paper_id in in_batch:
                    corpus.merge_into(known, paper, log.warnings)
                else:  # committed already: only its sources can still change
                    corpus.merge_into(known, _committed(paper), log.warnings)
                    more_sources.extend((paper.paper_id, s) for s in paper.sources)
                continue
            seen[paper.paper_id] = paper
            batch.append(paper)
            in_batch.add(paper.paper_id)
            if len(batch) >= BATCH_PAPERS:
                ingest_batch(store, batch, chunker, report, more_sources)
                seen.update((p.paper_id, _committed(p)) for p in batch)
                batch, in_batch, more_sources = [], set(), []
                progress("reading", read, None)
        if batch or more_sources:
            ingest_batch(store, batch, chunker, report, more_sources)
        progress("reading", read, read)
        report.entries = log.entries
        report.skipped = log.skipped
        report.filtered = log.filtered
        report.warnings = [*log.warnings, *report.warnings]  # the batches' come after
        _update_sources(store, held_by, report, prune=prune)
        report.stages["catalog"] = time.perf_counter() - started
        sync(store, progress, report)
    report.papers, report.chunks = store.catalog.counts()
    report.seconds = time.perf_counter() - started
    return report


def ingest_batch(
    store: Store,
    batch: list[Paper],
    chunker: Chunker,
    report: IngestReport,
    more_sources: Sequence[tuple[str, str]] = (),
) -> None:
    """Chunk and analyze the new or changed papers of ``batch`` and commit the batch to the
    catalog in one transaction."""
    known = store.catalog.paper_hashes([p.paper_id for p in batch])
    upserts: list = []
    add_sources: list[tuple[str, str]] = list(more_sources)
    kept = _kept_originals(store, batch, known, report)
    for paper in batch:
        old = known.get(paper.paper_id)
        if paper.paper_id in kept:
            report.unchanged += 1
            if not kept[paper.paper_id]:  # the same text: this source holds it too
                add_sources.extend((paper.paper_id, s) for s in paper.sources)
        elif old is None or old[0] != paper.content_hash:
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
    store.catalog.apply(upsert=upserts, add_sources=add_sources)
    failpoint("ingest:after-catalog")


def _kept_originals(
    store: Store, batch: list[Paper], known: dict[str, tuple[str, str]], report: IngestReport
) -> dict[str, bool]:
    """The papers of ``batch`` that stay as they are indexed although the entry differs:
    the entry comes from another source than the indexed paper's while one of those still
    exists. {paper id: whether the text differs (else only the metadata)}. An upload never
    silently rewrites a bundled paper: a paper changes through a file it came from (or when
    none of them is left), and when the text differs the report says whose text won."""
    changed = [p for p in batch if p.paper_id in known and known[p.paper_id] != _hashes(p)]
    if not changed:
        return {}
    indexed = store.catalog.sources_of([p.paper_id for p in changed])
    kept: dict[str, bool] = {}
    for paper in changed:
        theirs = indexed.get(paper.paper_id, [])
        if not theirs or set(paper.sources) & set(theirs):
            continue  # a revision of the file it came from
        text_differs = known[paper.paper_id][0] != paper.content_hash
        names = ", ".join(theirs)
        if any(map(corpus.source_exists, theirs)):
            kept[paper.paper_id] = text_differs
            if text_differs:
                report.warnings.append(
                    f"{paper.title!r} in {paper.sources[0]} differs from the indexed paper of "
                    f"the same title (from {names}); kept the indexed one: a paper changes "
                    "only through a file it came from"
                )
        elif text_differs:
            report.warnings.append(
                f"{paper.title!r} in {paper.sources[0]} replaced the indexed paper of the "
                f"same title, whose file ({names}) is gone"
            )
    return kept


def _hashes(paper: Paper) -> tuple[str, str]:
    return paper.content_hash, paper.meta_hash


def _update_sources(
    store: Store, held_by: dict[str, set[str]], report: IngestReport, *, prune: bool
) -> None:
    """A source that was read and no longer holds a paper stops listing it; with ``prune``,
    papers left with no existing source are removed."""
    catalog = store.catalog
    drop: list[tuple[str, str]] = []
    for source, ids in held_by.items():
        for pid in catalog.paper_ids_by_source(source) - ids:
            drop.append((pid, source))
    if prune:
        for source in catalog.sources():
            if source not in held_by and not corpus.source_exists(source):
                drop.extend((pid, source) for pid in catalog.paper_ids_by_source(source))
    if drop:
        catalog.apply(upsert=[], drop_sources=drop)
    if prune:
        orphans = catalog.orphan_paper_ids()
        if orphans:
            catalog.apply(upsert=[], remove=orphans)
            report.removed = len(orphans)


def _committed(paper: Paper) -> Paper:
    """What a later entry of a committed paper is merged with: its title, sources and a
    digest of its abstract (compared with the later entry's digest), not the texts; at 100,000
    papers, the papers held whole until the end of an ingest were ~300 MB of its peak."""
    digest = hashlib.sha1(paper.abstract.encode("utf-8")).hexdigest()
    return Paper(paper.paper_id, paper.title, digest, sources=paper.sources)
