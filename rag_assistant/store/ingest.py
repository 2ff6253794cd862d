"""Ingest: papers streamed from files into the catalog in batches (one transaction each),
the same paper met twice merged, sources updated (and, with ``prune``, papers no source holds
removed); then the derived parts are brought in line (:mod:`.sync`).

Reading is a pipeline of two stages joined by a bounded queue: a producer parses the files,
merges repeated papers, and chunks and analyzes the new or changed ones, a batch at a time;
the writer commits each batch to the catalog and, when the index has a dense model this
ingest will not refit, embeds it and writes it to Chroma (:class:`.sync.DenseWriter`) while
the producer prepares the next. Chroma's client holds the GIL while it writes (measured: a
Python thread made no progress during an upsert), so for a large input the producer is a
process of its own (:data:`PROCESS_BYTES`); for a small one it runs in this process, where
starting an interpreter would cost more than it saves.

With a producer process, the writer computes the chunks' terms itself before it commits
them: the producer (parsing, and counting every abstract's tokens with tiktoken) was the
slower stage, and the writer waited on it; at 10,000 papers this took the reading stage from
10-12 s to 8-9 s (measured twice each way, timing each stage of one ingest).

Only the writer writes, and only in committed batches: the catalog stays the committed
truth, and every step is idempotent, so an ingest killed anywhere is completed by the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import corpus
from ..errors import StorageError
from ..faults import failpoint
from ..settings import ChunkingSettings, LimitSettings
from ..text.terms import terms as analyze
from ..types import IngestReport, Paper, Progress, no_progress
from .catalog import Catalog
from .chunking import Chunker
from .parts import CATALOG, Store
from .switch import finish_switch
from .sync import DenseWriter, sync

BATCH_PAPERS = 1000
PROCESS_BYTES = 8 * 2**20
"""Input files of more bytes than this (about 4,000 arXiv records) are read by a producer
process; its start (a new interpreter importing the readers, about half a second) is then
a small part of the ingest."""


@dataclass
class Batch:
    """What the producer hands the writer: one transaction's worth."""

    upserts: list  # (paper, chunks, terms per chunk), or (paper, None, None): metadata only
    add_sources: list[tuple[str, str]]
    read: int  # entries read so far
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Reading:
    """What the producer reports once every file is read."""

    log: corpus.ReadLog
    held_by: dict[str, set[str]] = field(default_factory=dict)
    read: int = 0


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
        job = _Job(
            catalog=store.home / CATALOG,
            files=files,
            chunking=store.settings.chunking,
            limits=store.settings.limits,
            strict=strict,
            categories=list(categories),
            batch_papers=BATCH_PAPERS,
        )
        dense = DenseWriter.for_ingest(store)
        in_process = sum(_size(f) for f in files) <= PROCESS_BYTES
        job.writer_analyzes = not in_process
        reading: Reading | None = None
        first = True
        # While a producer process reads, a thread here loads what writing will need; the
        # writer waits for it before it first touches Chroma.
        preparing = None if in_process else _in_thread(_prepare_writing, store, dense)
        for item in _produced(job, store.catalog if in_process else None):
            if isinstance(item, Reading):
                reading = item
                break
            if first:
                failpoint("ingest:after-chunking")
                first = False
            _commit(store, item, report)
            if dense is not None:
                _wait(preparing)
                dense.write(item.upserts, item.added)
            progress("reading", item.read, None)
        _wait(preparing)
        assert reading is not None, "the producer ended without its report"
        progress("reading", reading.read, reading.read)
        report.entries = reading.log.entries
        report.skipped = reading.log.skipped
        report.filtered = reading.log.filtered
        report.warnings = [*reading.log.warnings, *report.warnings]  # the batches' come after
        _update_sources(store, reading.held_by, report, prune=prune)
        writing = dense.seconds if dense is not None else 0.0
        report.stages["catalog"] = time.perf_counter() - started - writing
        if dense is not None:
            report.embedded = dense.embedded
            report.stages["dense"] = writing
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
    prepared = _prepare(store.catalog, batch, chunker, more_sources, read=0)
    failpoint("ingest:after-chunking")
    _commit(store, prepared, report)


def _commit(store: Store, batch: Batch, report: IngestReport) -> None:
    """Commit a prepared batch to the catalog (one transaction) and count it in ``report``;
    the terms of chunks the producer left unanalyzed are computed first."""
    batch.upserts = [
        (paper, chunks, [analyze(c.index_text) for c in chunks])
        if chunks is not None and terms is None
        else (paper, chunks, terms)
        for paper, chunks, terms in batch.upserts
    ]
    store.catalog.apply(upsert=batch.upserts, add_sources=batch.add_sources)
    failpoint("ingest:after-catalog")
    report.added += batch.added
    report.updated += batch.updated
    report.unchanged += batch.unchanged
    report.warnings += batch.warnings


# --- the producer ----------------------------------------------------------------------------


@dataclass
class _Job:
    """What the producer needs (picklable: it crosses to the producer process)."""

    catalog: Path
    files: list[Path]
    chunking: ChunkingSettings
    limits: LimitSettings
    strict: bool
    categories: list[str]
    batch_papers: int
    writer_analyzes: bool = False  # the writer computes the chunks' terms (see the doc)


def _produce(job: _Job, catalog: Catalog) -> Iterator[Batch | Reading]:
    """The batches of ``job``'s files, then the :class:`Reading`. ``catalog`` is only read:
    which papers it holds, with which hashes (papers of earlier batches, committed or not
    yet, are never looked up again: a later entry of one only adds its sources)."""
    log = corpus.ReadLog()
    stream = (
        paper
        for path in job.files
        for paper in corpus.read_file(
            path, log=log, strict=job.strict, categories=job.categories, limits=job.limits
        )
    )
    chunker = Chunker(job.chunking)
    seen: dict[str, Paper] = {}
    held_by: dict[str, set[str]] = {}
    batch: list[Paper] = []
    in_batch: set[str] = set()
    more_sources: list[tuple[str, str]] = []  # repeats of papers of earlier batches
    read = 0
    for paper in stream:
        read += 1
        held_by.setdefault(paper.sources[0], set()).add(paper.paper_id)
        known = seen.get(paper.paper_id)
        if known is not None:  # the same paper again in this run: first entry wins
            if paper.paper_id in in_batch:
                corpus.merge_into(known, paper, log.warnings)
            else:  # in an earlier batch: only its sources can still change
                corpus.merge_into(known, _committed(paper), log.warnings)
                more_sources.extend((paper.paper_id, s) for s in paper.sources)
            continue
        seen[paper.paper_id] = paper
        batch.append(paper)
        in_batch.add(paper.paper_id)
        if len(batch) >= job.batch_papers:
            yield _prepare(catalog, batch, chunker, more_sources, read, job.writer_analyzes)
            seen.update((p.paper_id, _committed(p)) for p in batch)
            batch, in_batch, more_sources = [], set(), []
    if batch or more_sources:
        yield _prepare(catalog, batch, chunker, more_sources, read, job.writer_analyzes)
    yield Reading(log, held_by, read)


def _prepare(
    catalog: Catalog,
    batch: list[Paper],
    chunker: Chunker,
    more_sources: Sequence[tuple[str, str]],
    read: int,
    leave_terms: bool = False,
) -> Batch:
    """Chunk and analyze the new or changed papers of ``batch`` (with ``leave_terms``, only
    chunk them: their terms are None, for the writer to compute)."""
    known = catalog.paper_hashes([p.paper_id for p in batch])
    out = Batch(upserts=[], add_sources=list(more_sources), read=read)
    kept = _kept_originals(catalog, batch, known, out.warnings)
    for paper in batch:
        old = known.get(paper.paper_id)
        if paper.paper_id in kept:
            out.unchanged += 1
            if not kept[paper.paper_id]:  # the same text: this source holds it too
                out.add_sources.extend((paper.paper_id, s) for s in paper.sources)
        elif old is None or old[0] != paper.content_hash:
            chunks = chunker.chunks(paper)
            terms = None if leave_terms else [analyze(c.index_text) for c in chunks]
            out.upserts.append((paper, chunks, terms))
            if old is None:
                out.added += 1
            else:
                out.updated += 1
        elif old[1] != paper.meta_hash:
            out.upserts.append((paper, None, None))
            out.updated += 1
        else:
            out.unchanged += 1
            out.add_sources.extend((paper.paper_id, s) for s in paper.sources)
    return out


def _kept_originals(
    catalog: Catalog, batch: list[Paper], known: dict[str, tuple[str, str]], warnings: list[str]
) -> dict[str, bool]:
    """The papers of ``batch`` that stay as they are indexed although the entry differs:
    the entry comes from another source than the indexed paper's while one of those still
    exists. {paper id: whether the text differs (else only the metadata)}. An upload never
    silently rewrites a bundled paper: a paper changes through a file it came from (or when
    none of them is left), and when the text differs the warnings say whose text won."""
    changed = [p for p in batch if p.paper_id in known and known[p.paper_id] != _hashes(p)]
    if not changed:
        return {}
    indexed = catalog.sources_of([p.paper_id for p in changed])
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
                warnings.append(
                    f"{paper.title!r} in {paper.sources[0]} differs from the indexed paper of "
                    f"the same title (from {names}); kept the indexed one: a paper changes "
                    "only through a file it came from"
                )
        elif text_differs:
            warnings.append(
                f"{paper.title!r} in {paper.sources[0]} replaced the indexed paper of the "
                f"same title, whose file ({names}) is gone"
            )
    return kept


def _hashes(paper: Paper) -> tuple[str, str]:
    return paper.content_hash, paper.meta_hash


PRODUCER = "from rag_assistant.store.ingest import _producer_main; _producer_main()"


def _produced(job: _Job, catalog: Catalog | None) -> Iterator[Batch | Reading]:
    """The producer's output: run here over ``catalog``, or (``catalog`` None) in a process
    of its own (a new interpreter: neither a fork of a process that may run threads, nor a
    re-run of the caller's script), which sends its batches through a pipe: it prepares the
    next batch while the writer works on this one, and waits while one is not taken."""
    if catalog is not None:
        yield from _produce(job, catalog)
        return
    process = subprocess.Popen(
        [sys.executable, "-c", PRODUCER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        pickle.dump(job, process.stdin)
        process.stdin.close()
        while True:
            try:
                message = pickle.load(process.stdout)
            except EOFError:
                raise StorageError(
                    f"the process reading the files stopped (exit code {process.wait()}); "
                    "nothing of its unfinished batch was written"
                ) from None
            if message[0] == "error":
                _, error, trace = message
                raise error from _ProducerTraceback(trace)
            yield message[1]
            if isinstance(message[1], Reading):
                return
    finally:
        process.stdout.close()  # a producer still writing gets a broken pipe and ends
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _ProducerTraceback(Exception):
    """Where an error of the producer process was raised (its traceback, as text)."""

    def __str__(self) -> str:
        return self.args[0]


def _producer_main() -> None:
    """The producer process: reads its job on stdin; writes every batch, then the reading
    report, or the error that stopped it, on stdout. A write to an ingest that is gone
    (killed) fails, and the process ends."""
    import os
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the ingest's to handle
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the channel
    job = pickle.load(sys.stdin.buffer)
    catalog = Catalog(job.catalog)

    def send(message: tuple) -> None:
        pickle.dump(message, channel, protocol=pickle.HIGHEST_PROTOCOL)
        channel.flush()

    try:
        for item in _produce(job, catalog):
            send(("item", item))
    except (BrokenPipeError, ConnectionResetError):
        return
    except Exception as exc:  # handed to the ingest, which raises it
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send(("error", exc, traceback.format_exc()))
    finally:
        catalog.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            channel.close()


def _in_thread(function: Callable[..., None], *args) -> Future:
    """``function(*args)`` started in a thread; its outcome (or error) in the future."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-assistant-ingest")
    try:
        return executor.submit(function, *args)
    finally:
        executor.shutdown(wait=False)


def _wait(future: Future | None) -> None:
    """Wait for ``future``; its error, if it failed, is raised here."""
    if future is not None:
        future.result()


def _prepare_writing(store: Store, dense: DenseWriter | None) -> None:
    """What the writer will need, loaded while the producer process reads: Chroma (its
    import and client take a second or more) and, when this ingest fits the dense model,
    the fit's libraries."""
    store.vectors  # noqa: B018  (opens the store)
    if dense is None and store.settings.embedding.backend == "lsa":
        from .embeddings import load_fit_libraries

        load_fit_libraries()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
