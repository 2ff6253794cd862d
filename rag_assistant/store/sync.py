"""Bringing the derived parts in line with the catalog: the dense model fitted (or refitted
when the collection has doubled), pending chunks embedded into Chroma and tombstones dropped,
the lexical index of the catalog's generation built by delta, then the manifest switched and
the parts it no longer names removed.

Each step is idempotent and reads its work from the catalog (pending flags, tombstones, the
generation), so a sync killed anywhere is completed by the next. When the model needs no fit,
an ingest writes the vectors of each batch as soon as it is committed
(:class:`DenseWriter`), and the sync finds only what is left pending.

What Chroma holds of a chunk: its id and vector, and with ``settings.chroma_keeps_texts``
(the default with a Chroma server) its text, title and paper id too. The embedded store
needs no copy of what the catalog holds: readers take texts and titles from the catalog,
and no query filters on Chroma's metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator

import numpy as np

from ..errors import IndexCorruptError
from ..faults import failpoint
from ..types import IngestReport, Progress
from .catalog import ChunkRow
from .lexical import LexicalIndex
from .manifest import ChromaRef, DenseState, LexicalRef, Manifest, write_manifest
from .parts import Store
from .sentence_encoder import in_paper

log = logging.getLogger(__name__)


def sync(store: Store, progress: Progress, report: IngestReport | None = None) -> None:
    """Dense side, lexical side, manifest, clean-up; stage times go to ``report``."""
    stages: dict[str, float] = report.stages if report is not None else {}
    started = time.perf_counter()
    embedded, refitted = _sync_dense(store, progress, stages)
    failpoint("ingest:after-chroma")
    # (added to the time an ingest spent writing the vectors of its batches)
    stages["dense"] = stages.get("dense", 0.0) + (
        time.perf_counter() - started - stages.get("fit", 0.0)
    )
    started = time.perf_counter()
    encoded = _sync_sentences(store, progress)
    if encoded:
        stages["sentences"] = time.perf_counter() - started
        if report is not None:
            report.encoded = encoded
    started = time.perf_counter()
    lexical_dir = _sync_lexical(store, progress)
    failpoint("ingest:after-lexical")
    stages["lexical"] = time.perf_counter() - started
    started = time.perf_counter()
    copy_dir = _sync_copy(store, progress)
    stages["copy"] = time.perf_counter() - started
    started = time.perf_counter()
    _switch_manifest(store, lexical_dir, copy_dir)
    _cleanup(store)
    stages["manifest"] = time.perf_counter() - started
    if report is not None:
        report.embedded += embedded
        report.refitted = refitted
    log.info("ingest stages: %s", ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))


# --- the dense side --------------------------------------------------------------------------


def _sync_dense(store: Store, progress: Progress, stages: dict[str, float]) -> tuple[int, bool]:
    cat = store.catalog
    papers, _ = cat.counts()
    dense = cat.dense_state()
    refitted = False
    if papers and _needs_fit(store, dense, papers):
        started = time.perf_counter()
        dense = _refit(store, papers)
        refitted = True
        stages["fit"] = time.perf_counter() - started
    if dense is None:
        return 0, refitted
    embedder = store.embedder_for(dense)
    tombstones = cat.tombstones()
    if tombstones:
        store.vectors.delete(dense.collection, tombstones)
        cat.clear_tombstones(tombstones)
    total, done = cat.pending_count(), 0
    for rows in cat.iter_chunks(pending_only=True, batch_size=_batch_size(store)):
        titles = cat.titles(sorted({r.paper_id for r in rows}))
        done += write_vectors(store, dense.collection, embedder, rows, titles)
        progress("embedding", done, total)
    return done, refitted


def _sync_sentences(store: Store, progress: Progress) -> int:
    """Encode the sentences of every chunk without sentence vectors (all of them the first
    time, the new ones after), when the sentence encoder is installed; returns the count.
    Each sentence is encoded twice: alone (retrieval, and how close a paper comes to the
    question) and after its paper's title, "<title>: <sentence>" (how well it answers, as
    part of its paper: "It needs no retraining" says nothing alone). The first pass also
    keeps the vectors of the sentence's content words, for late interaction (8 bits a
    value)."""
    encoder = store.sentence_encoder()
    if encoder is None:
        return 0
    from ..text.sentences import sentences

    cat = store.catalog
    cat.drop_sentence_vectors_not_of(encoder.name)
    total = cat.count_chunks_to_encode()
    done = 0
    for rows in cat.chunks_to_encode(batch_size=store.settings.encoder.batch_size):
        pieces = [sentences(text) or [text] for _, text, _ in rows]
        alone = [s for piece in pieces for s in piece]
        in_context = [
            in_paper(title, s)
            for (_, _, title), piece in zip(rows, pieces, strict=True)
            for s in piece
        ]
        vectors, words = encoder.encode_with_tokens(alone, packed=True)
        vectors = vectors.astype(np.float16)
        read_in_context = encoder.encode(in_context).astype(np.float16)
        blobs, start = [], 0
        for (chunk_id, _, _), piece in zip(rows, pieces, strict=True):
            end = start + len(piece)
            blobs.append(
                (
                    chunk_id,
                    vectors[start:end].tobytes(),
                    read_in_context[start:end].tobytes(),
                    # pack_tokens scales each row alone: the sentences' bytes, joined, are
                    # the chunk's
                    b"".join(words[start:end]),
                )
            )
            start = end
        cat.add_sentence_vectors(encoder.name, blobs)
        done += len(rows)
        progress("encoding sentences", done, total)
    return done


def _batch_size(store: Store) -> int:
    """Chunks per embedding call and Chroma write: the setting, bounded by Chroma's limit."""
    return min(store.settings.embedding.batch_size, store.vectors.max_batch)


def _needs_fit(store: Store, dense: DenseState | None, papers: int) -> bool:
    if dense is None:
        return True
    if store.settings.embedding.backend != "lsa":
        return False
    return papers >= store.settings.embedding.refit_growth * max(dense.fitted_on_papers, 1)


def _refit(store: Store, papers: int) -> DenseState:
    """Fit a new dense model (LSA) or name the collection (OpenAI); every chunk becomes
    pending for the new collection. The manifest switches only when all are embedded."""
    cat = store.catalog
    settings = store.settings.embedding
    if settings.backend == "lsa":
        from .embeddings import LSAEmbedder

        sample = cat.sample_chunk_terms(settings.fit_sample)
        model = LSAEmbedder.fit(sample, dimensions=settings.dimensions)
        model_file = str(model.save(store.home / "dense").relative_to(store.home))
        identity = model.identity
        collection = store.collection_name(f"lsa-{model.fit_id}")
    else:
        identity = store.embedder_for(None).identity
        model_file = None
        collection = store.collection_name(f"openai-{identity.model}")
    store.vectors.drop(collection)
    store.vectors.collection(collection, create=True)
    cat.mark_all_pending()
    state = DenseState(
        model=identity, model_file=model_file, collection=collection, fitted_on_papers=papers
    )
    cat.set_dense_state(state)
    log.info("dense model %s fitted on %d papers", identity.model, papers)
    return state


def write_vectors(
    store: Store, collection: str, embedder, rows: list[ChunkRow], titles: dict[str, str]
) -> int:
    """Embed ``rows`` and write them to Chroma, then mark them embedded in the catalog (in
    that order, so a kill in between leaves them pending, to be written again), a batch
    at a time; returns how many."""
    keep_texts = store.settings.chroma_keeps_texts
    size = _batch_size(store)
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        texts = [f"{titles.get(r.paper_id, '')}\n{r.text}" for r in part]
        vectors = embedder.embed(texts, terms=[r.terms for r in part])
        ids = [r.chunk_id for r in part]
        if keep_texts:  # a collection other readers can use on its own
            store.vectors.upsert(
                collection,
                ids,
                vectors,
                documents=[r.text for r in part],
                metadatas=[
                    {
                        "paper_id": r.paper_id,
                        "title": titles.get(r.paper_id, ""),
                        "ordinal": r.ordinal,
                    }
                    for r in part
                ],
            )
        else:
            store.vectors.upsert(collection, ids, vectors)
        store.written.add(collection, ids, vectors)
        failpoint("ingest:during-embedding")
        store.catalog.mark_embedded(ids)
    return len(rows)


class DenseWriter:
    """Writes the vectors of each batch an ingest commits, while the next batch is read
    (:mod:`.ingest`), when the index has a dense model that this ingest will not refit. It
    stops as soon as the papers committed reach the refit point: the sync then refits and
    embeds everything into a new collection."""

    def __init__(self, store: Store, dense: DenseState, embedder, papers: int) -> None:
        self.store, self.dense, self.embedder, self.papers = store, dense, embedder, papers
        self.active = True
        self.embedded = 0
        self.seconds = 0.0

    @classmethod
    def for_ingest(cls, store: Store) -> DenseWriter | None:
        """A writer for the index's active model, or None when there is none yet (the first
        ingest fits one after reading everything) or it is due for a refit."""
        dense = store.catalog.dense_state()
        papers, _ = store.catalog.counts()
        if dense is None or _needs_fit(store, dense, papers):
            return None
        embedder = store.embedder_for(dense)
        return None if embedder is None else cls(store, dense, embedder, papers)

    def write(self, upserts: list, added: int) -> None:
        """The vectors of the chunks of ``upserts`` (a committed batch, :func:`.ingest`'s
        ``(paper, chunks, terms)``), which added ``added`` papers."""
        self.papers += added
        if self.active and _needs_fit(self.store, self.dense, self.papers):
            self.active = False
        if not self.active:
            return
        started = time.perf_counter()
        rows, titles = [], {}
        for paper, chunks, term_lists in upserts:
            if chunks is None:
                continue
            titles[paper.paper_id] = paper.title
            rows += [
                ChunkRow(c.chunk_id, c.paper_id, c.ordinal, c.text, t)
                for c, t in zip(chunks, term_lists, strict=True)
            ]
        self.embedded += write_vectors(
            self.store, self.dense.collection, self.embedder, rows, titles
        )
        self.seconds += time.perf_counter() - started


# --- the lexical side -------------------------------------------------------------------------


def _sync_lexical(store: Store, progress: Progress) -> str:
    """The lexical index of the catalog's current generation: the previous one (the
    manifest's) with the catalog's changes applied, or built from every chunk's stored
    terms when there is no usable previous one."""
    cat = store.catalog
    generation = cat.generation
    directory = f"lexical/g{generation}"
    meta_file = store.home / directory / "lexical.json"
    if meta_file.exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(meta_file.read_text())["generation"] == generation:
                return directory
    base = _previous_lexical(store)
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
    lexical.save(store.home / directory)
    return directory


def _previous_lexical(store: Store) -> LexicalIndex | None:
    """The lexical index the manifest names, with its term counts, or None."""
    try:
        manifest = store.read_manifest()
        if manifest is None:
            return None
        lexical = LexicalIndex.load(store.home / manifest.lexical.dir)
        lexical.counts()
    except IndexCorruptError as exc:
        log.info("building the lexical index from every chunk (%s)", exc)
        return None
    return lexical


# --- the exact copy of the vectors -------------------------------------------------------------


def _sync_copy(store: Store, progress: Progress) -> str | None:
    """The copy of the active collection's vectors at the catalog's generation (see
    :mod:`.vector_copy`): the manifest's copy with removed chunks dropped and new ones
    added (the vectors this process wrote, else read back from Chroma); every vector read
    from Chroma when there is no usable copy."""
    from .vector_copy import VectorCopy

    cat = store.catalog
    dense = cat.dense_state()
    if dense is None:
        return None
    generation = cat.generation
    directory = f"vectors/g{generation}"
    with contextlib.suppress(IndexCorruptError):
        made = VectorCopy.load(store.home / directory)
        if made.is_of(dense.collection, generation):
            return directory
    base = _previous_copy(store, dense.collection)
    ids = sorted(cat.chunk_ids())
    progress("copy", 0, len(ids))
    VectorCopy.write(
        store.home / directory,
        collection=dense.collection,
        generation=generation,
        ids=ids,
        base=base,
        fetch=store.written.fetcher(
            dense.collection, lambda missing: store.vectors.vectors(dense.collection, missing)
        ),
        dimensions=dense.model.dimensions,
    )
    progress("copy", len(ids), len(ids))
    store.written.clear()
    return directory


def _previous_copy(store: Store, collection: str):
    """The copy the manifest names, when it is of ``collection`` and intact; else None."""
    from .vector_copy import VectorCopy

    try:
        manifest = store.read_manifest()
        if manifest is None or manifest.vector_copy is None:
            return None
        copy = VectorCopy.load(store.home / manifest.vector_copy)
    except IndexCorruptError as exc:
        log.info("copying every vector from Chroma (%s)", exc)
        return None
    return copy if copy.collection == collection else None


# --- the switch ------------------------------------------------------------------------------


def _switch_manifest(store: Store, lexical_dir: str, copy_dir: str | None) -> None:
    """Write the manifest that names the parts just brought in line (readers switch to them
    when they next look)."""
    cat = store.catalog
    identity = store.identity() or store.wanted()
    papers, chunks = cat.counts()
    dense = cat.dense_state()
    manifest = Manifest(
        index_id=identity.index_id,
        updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        tokenizer=identity.tokenizer,
        chunking=identity.chunking,
        embedding_backend=identity.embedding_backend,
        embedding_model=identity.embedding_model,
        embedding=dense.model if dense else None,
        dense_model=dense.model_file if dense else None,
        chroma=ChromaRef(
            mode=identity.chroma.mode,
            url=identity.chroma.url,
            collection=dense.collection if dense else None,
        ),
        lexical=LexicalRef(dir=lexical_dir, generation=cat.generation),
        generation=cat.generation,
        papers=papers,
        chunks=chunks,
        fitted_on_papers=dense.fitted_on_papers if dense else 0,
        sources=cat.sources(),
        vector_copy=copy_dir,
    )
    write_manifest(
        store.manifest_path,
        manifest,
        before_replace=lambda: failpoint("ingest:during-manifest"),
    )


def _remove_all_but(store: Store, folder: str, kept: str | None) -> None:
    """Remove the folders in ``folder`` of the index but ``kept`` (a path the manifest names,
    relative to the index)."""
    root = store.home / folder
    if root.is_dir():
        for d in root.iterdir():
            if str(d.relative_to(store.home)) != kept:
                shutil.rmtree(d, ignore_errors=True)


def _cleanup(store: Store) -> None:
    """Remove parts the manifest no longer names (old lexical dirs, models, collections)."""
    manifest = store.read_manifest()
    if manifest is None:
        return
    _remove_all_but(store, "lexical", manifest.lexical.dir)
    _remove_all_but(store, "vectors", manifest.vector_copy)
    dense_root = store.home / "dense"
    if dense_root.is_dir():
        for f in dense_root.iterdir():
            if str(f.relative_to(store.home)) != manifest.dense_model:
                f.unlink(missing_ok=True)
    active = manifest.chroma.collection
    prefix = store.collection_name("")
    for name in store.vectors.collection_names():
        if name.startswith(prefix) and name != active:
            store.vectors.drop(name)
