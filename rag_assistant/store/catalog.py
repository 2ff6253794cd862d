"""The catalog: the committed record of what is indexed (papers, their sources, their chunks
with analyzed terms), in SQLite beside Chroma.

The catalog is the source of truth inside the index directory. Chroma and the lexical index
are derived from it and brought back in line with it after any interruption:

* chunks carry an ``embedded`` flag: 0 until their vector is in the active Chroma collection;
* chunk ids deleted from the catalog are kept as tombstones until Chroma has dropped them;
* ``generation`` grows with every committed change; the lexical index records the generation
  it was built from.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import IndexCorruptError
from ..types import Chunk, Paper
from .manifest import DenseState, Identity
from .migrations import migrate


@dataclass
class ChunkRow:
    """A chunk as stored: text for display and embedding, terms for BM25."""

    chunk_id: str
    paper_id: str
    ordinal: int
    text: str
    terms: list[str]


def _paper_from_row(row: sqlite3.Row, sources: list[str]) -> Paper:
    return Paper(
        paper_id=row["paper_id"],
        title=row["title"],
        abstract=row["abstract"],
        url=row["url"],
        authors=json.loads(row["authors"]),
        date=row["date"],
        categories=json.loads(row["categories"]),
        sources=sources,
    )


class Catalog:
    """SQLite catalog. Reads are safe from many threads; one process writes at a time (the
    index's file lock sees to that)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            migrate(self._conn())
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"the catalog {path} is damaged ({exc}); run `rag-assistant index rebuild`"
            ) from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- meta --------------------------------------------------------------------------

    def _get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def schema_version(self) -> int:
        return self._conn().execute("PRAGMA user_version").fetchone()[0]

    @property
    def generation(self) -> int:
        """Grows with every committed change (the lexical index records the one it is of)."""
        return int(self._get_meta("generation") or 0)

    def identity(self) -> Identity | None:
        """What the index was built with (None for a new index)."""
        raw = self._get_meta("identity")
        return Identity.model_validate_json(raw) if raw else None

    def set_identity(self, identity: Identity) -> None:
        self._set_meta("identity", identity.model_dump_json())

    def dense_state(self) -> DenseState | None:
        """The active dense model and collection (None before the first fit)."""
        raw = self._get_meta("dense")
        return DenseState.model_validate_json(raw) if raw else None

    def set_dense_state(self, state: DenseState) -> None:
        self._set_meta("dense", state.model_dump_json())

    # --- reads -------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(papers, chunks)."""
        conn = self._conn()
        papers = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return papers, chunks

    def paper_hashes(self, paper_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{paper_id: (content_hash, meta_hash)} for the ids that are in the catalog."""
        out: dict[str, tuple[str, str]] = {}
        conn = self._conn()
        for batch in _batches(paper_ids, 500):
            marks = ",".join("?" * len(batch))
            for row in conn.execute(
                f"SELECT paper_id, content_hash, meta_hash FROM papers WHERE paper_id IN ({marks})",
                batch,
            ):
                out[row[0]] = (row[1], row[2])
        return out

    def papers(self, paper_ids: Sequence[str]) -> dict[str, Paper]:
        """The papers with these ids that exist, with their sources."""
        conn = self._conn()
        out: dict[str, Paper] = {}
        for batch in _batches(paper_ids, 500):
            marks = ",".join("?" * len(batch))
            sources: dict[str, list[str]] = {}
            for pid, source in conn.execute(
                f"SELECT paper_id, source FROM paper_sources WHERE paper_id IN ({marks}) "
                "ORDER BY source",
                batch,
            ):
                sources.setdefault(pid, []).append(source)
            for row in conn.execute(f"SELECT * FROM papers WHERE paper_id IN ({marks})", batch):
                out[row["paper_id"]] = _paper_from_row(row, sources.get(row["paper_id"], []))
        return out

    def titles(self, paper_ids: Sequence[str]) -> dict[str, str]:
        """{paper_id: title} for the ids that are in the catalog."""
        query = "SELECT paper_id, title FROM papers WHERE paper_id IN ({})"
        out: dict[str, str] = {}
        for batch in _batches(paper_ids, 500):
            out.update(self._conn().execute(query.format(",".join("?" * len(batch))), batch))
        return out

    def titles_with_words(self, words: Sequence[str], limit: int) -> dict[str, str]:
        """{paper_id: title} of up to ``limit`` papers whose title holds ``words`` in that
        order (a phrase of the full-text title index)."""
        phrase = '"' + " ".join(w.replace('"', "") for w in words) + '"'
        rows = self._conn().execute(
            "SELECT p.paper_id, p.title FROM title_search JOIN papers p ON p.rowid = "
            "title_search.rowid WHERE title_search MATCH ? LIMIT ?",
            (phrase, limit),
        )
        return dict(rows.fetchall())

    def all_paper_ids(self) -> list[str]:
        return self._column("SELECT paper_id FROM papers ORDER BY paper_id")

    def iter_papers(self) -> Iterator[Paper]:
        """Every paper, with sources, in id order."""
        ids = self.all_paper_ids()
        for batch in _batches(ids, 1000):
            found = self.papers(batch)
            for pid in batch:
                if pid in found:
                    yield found[pid]

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """The chunks with these ids that exist."""
        conn = self._conn()
        out: dict[str, ChunkRow] = {}
        for batch in _batches(chunk_ids, 500):
            marks = ",".join("?" * len(batch))
            for row in conn.execute(
                f"SELECT chunk_id, paper_id, ordinal, text, terms FROM chunks "
                f"WHERE chunk_id IN ({marks})",
                batch,
            ):
                out[row[0]] = ChunkRow(row[0], row[1], row[2], row[3], row[4].split())
        return out

    def chunk_ids_of(self, paper_ids: Sequence[str]) -> list[str]:
        """The chunk ids of these papers, in the papers' order, each paper's in order."""
        rows: dict[str, list[str]] = {}
        for batch in _batches(paper_ids, 500):
            marks = ",".join("?" * len(batch))
            for pid, cid in self._conn().execute(
                f"SELECT paper_id, chunk_id FROM chunks WHERE paper_id IN ({marks}) "
                "ORDER BY ordinal",
                batch,
            ):
                rows.setdefault(pid, []).append(cid)
        return [cid for pid in paper_ids for cid in rows.get(pid, [])]

    def chunk_ids(self) -> set[str]:
        return set(self._column("SELECT chunk_id FROM chunks"))

    def _paged(self, columns: str, where: str, batch_size: int) -> Iterator[list[tuple]]:
        """Rows of ``chunks`` in chunk-id order, a batch at a time (keyset pagination: each
        batch starts after the last id of the one before)."""
        query = f"SELECT chunk_id, {columns} FROM chunks WHERE chunk_id > ? {where} "
        query += "ORDER BY chunk_id LIMIT ?"
        last = ""
        while rows := self._conn().execute(query, (last, batch_size)).fetchall():
            yield rows
            last = rows[-1][0]

    def iter_chunks(
        self, *, pending_only: bool = False, batch_size: int = 2000
    ) -> Iterator[list[ChunkRow]]:
        """All chunks (or those not yet embedded), in batches, ordered by chunk id."""
        where = "AND embedded = 0" if pending_only else ""
        for rows in self._paged("paper_id, ordinal, text, terms", where, batch_size):
            yield [ChunkRow(r[0], r[1], r[2], r[3], r[4].split()) for r in rows]

    def iter_terms(
        self, chunk_ids: Sequence[str] | None = None, *, batch_size: int = 5000
    ) -> Iterator[tuple[str, list[str]]]:
        """(chunk_id, terms) of every chunk in chunk-id order, or of the chunks ``chunk_ids``
        names that exist, in that order."""
        if chunk_ids is None:
            for rows in self._paged("terms", "", batch_size):
                yield from ((chunk_id, terms.split()) for chunk_id, terms in rows)
            return
        for batch in _batches(chunk_ids, 500):
            marks = ",".join("?" * len(batch))
            query = f"SELECT chunk_id, terms FROM chunks WHERE chunk_id IN ({marks})"
            found = dict(self._conn().execute(query, batch).fetchall())
            yield from ((cid, found[cid].split()) for cid in batch if cid in found)

    def sample_chunk_terms(self, limit: int) -> TermSample:
        """Terms of up to ``limit`` chunks spread evenly over the catalog (for fitting), read
        from SQLite each time they are iterated rather than held in memory."""
        total = self._conn().execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return TermSample(self, step=max(1, total // max(1, limit)), limit=limit)

    def pending_count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM chunks WHERE embedded = 0").fetchone()[0]

    def tombstones(self) -> list[str]:
        return self._column("SELECT chunk_id FROM tombstones")

    def _column(self, query: str, *args: object) -> list:
        """The first column of ``query``'s rows."""
        return [r[0] for r in self._conn().execute(query, args)]

    def paper_ids_by_source(self, source: str) -> set[str]:
        return set(self._column("SELECT paper_id FROM paper_sources WHERE source = ?", source))

    def sources(self) -> list[str]:
        return self._column("SELECT DISTINCT source FROM paper_sources ORDER BY source")

    def orphan_paper_ids(self) -> list[str]:
        """Papers no source holds any more (removed by ``ingest --prune``)."""
        return self._column(
            "SELECT paper_id FROM papers WHERE paper_id NOT IN (SELECT paper_id FROM paper_sources)"
        )

    def backup_to(self, path: Path) -> None:
        """A consistent copy of the whole catalog (SQLite's online backup)."""
        target = sqlite3.connect(path)
        try:
            self._conn().backup(target)
        finally:
            target.close()

    def integrity_problems(self) -> list[str]:
        rows = self._conn().execute("PRAGMA quick_check").fetchall()
        return [r[0] for r in rows if r[0] != "ok"]

    # --- writes (one transaction each) --------------------------------------------------

    def apply(
        self,
        *,
        upsert: Iterable[tuple[Paper, list[Chunk], list[list[str]]] | tuple[Paper, None, None]],
        add_sources: Iterable[tuple[str, str]] = (),
        drop_sources: Iterable[tuple[str, str]] = (),
        remove: Iterable[str] = (),
    ) -> None:
        """Commit one batch of changes atomically; the generation grows if anything changed.

        ``upsert`` holds (paper, chunks, terms per chunk); chunks ``None`` keeps the paper's
        chunks (a metadata-only change). Replaced or removed chunks become tombstones.
        """
        with self._write_lock:
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                before = conn.total_changes
                _write_changes(conn, upsert, add_sources, drop_sources, remove)
                if conn.total_changes != before:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT(key) "
                        "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def mark_embedded(self, chunk_ids: Sequence[str]) -> None:
        with self._write_lock:
            conn = self._conn()
            with conn:
                conn.executemany(
                    "UPDATE chunks SET embedded = 1 WHERE chunk_id = ?", [(i,) for i in chunk_ids]
                )

    def mark_all_pending(self) -> None:
        """Every chunk needs a vector again (a new collection after a refit or rebuild)."""
        with self._write_lock:
            conn = self._conn()
            with conn:
                conn.execute("UPDATE chunks SET embedded = 0")

    def clear_tombstones(self, chunk_ids: Sequence[str]) -> None:
        with self._write_lock:
            conn = self._conn()
            with conn:
                conn.executemany(
                    "DELETE FROM tombstones WHERE chunk_id = ?", [(i,) for i in chunk_ids]
                )

    def _set_meta(self, key: str, value: str) -> None:
        with self._write_lock:
            conn = self._conn()
            with conn:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                    "DO UPDATE SET value = excluded.value",
                    (key, value),
                )


def _write_changes(
    conn: sqlite3.Connection,
    upsert: Iterable[tuple[Paper, list[Chunk] | None, list[list[str]] | None]],
    add_sources: Iterable[tuple[str, str]],
    drop_sources: Iterable[tuple[str, str]],
    remove: Iterable[str],
) -> None:
    """The statements of :meth:`Catalog.apply`, inside its transaction."""
    for paper, chunks, term_lists in upsert:
        conn.execute(
            "INSERT INTO papers (paper_id, title, abstract, url, authors, date, "
            "categories, content_hash, meta_hash) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(paper_id) DO UPDATE SET title=excluded.title, "
            "abstract=excluded.abstract, url=excluded.url, authors=excluded.authors, "
            "date=excluded.date, categories=excluded.categories, "
            "content_hash=excluded.content_hash, meta_hash=excluded.meta_hash",
            (
                paper.paper_id,
                paper.title,
                paper.abstract,
                paper.url,
                json.dumps(paper.authors),
                paper.date,
                json.dumps(paper.categories),
                paper.content_hash,
                paper.meta_hash,
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO paper_sources (paper_id, source) VALUES (?, ?)",
            [(paper.paper_id, s) for s in paper.sources],
        )
        if chunks is None:
            continue
        new_ids = {c.chunk_id for c in chunks}
        old = [
            r[0]
            for r in conn.execute(
                "SELECT chunk_id FROM chunks WHERE paper_id = ?", (paper.paper_id,)
            )
            if r[0] not in new_ids
        ]
        _delete_chunks(conn, old)
        conn.executemany(
            "INSERT OR IGNORE INTO chunks (chunk_id, paper_id, ordinal, text, terms) "
            "VALUES (?,?,?,?,?)",
            [
                (c.chunk_id, c.paper_id, c.ordinal, c.text, " ".join(t))
                for c, t in zip(chunks, term_lists or [], strict=True)
            ],
        )
        conn.executemany("DELETE FROM tombstones WHERE chunk_id = ?", [(i,) for i in new_ids])
    conn.executemany(
        "INSERT OR IGNORE INTO paper_sources (paper_id, source) VALUES (?, ?)", list(add_sources)
    )
    conn.executemany(
        "DELETE FROM paper_sources WHERE paper_id = ? AND source = ?", list(drop_sources)
    )
    for paper_id in remove:
        ids = [
            r[0]
            for r in conn.execute("SELECT chunk_id FROM chunks WHERE paper_id = ?", (paper_id,))
        ]
        _delete_chunks(conn, ids)
        conn.execute("DELETE FROM paper_sources WHERE paper_id = ?", (paper_id,))
        conn.execute("DELETE FROM papers WHERE paper_id = ?", (paper_id,))


def _delete_chunks(conn: sqlite3.Connection, chunk_ids: list[str]) -> None:
    """Delete chunks, keeping their ids as tombstones until Chroma has dropped them."""
    if not chunk_ids:
        return
    conn.executemany("DELETE FROM chunks WHERE chunk_id = ?", [(i,) for i in chunk_ids])
    conn.executemany(
        "INSERT OR IGNORE INTO tombstones (chunk_id) VALUES (?)", [(i,) for i in chunk_ids]
    )


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TermSample:
    """Every ``step``-th chunk's terms (by rowid, at most ``limit``), streamed from the
    catalog on each iteration: the same lists in the same order every time, while nothing
    writes. At 100,000 papers the lists of a 50,000-chunk sample take ~400 MB as Python
    objects, most of it never given back to the OS; streamed, a fit holds one batch."""

    def __init__(self, catalog: Catalog, *, step: int, limit: int) -> None:
        self._catalog, self.step, self.limit = catalog, step, limit

    def __iter__(self) -> Iterator[list[str]]:
        cursor = self._catalog._conn().execute(
            "SELECT terms FROM chunks WHERE rowid % ? = 0 ORDER BY rowid LIMIT ?",
            (self.step, self.limit),
        )
        for (terms,) in cursor:
            yield terms.split()
