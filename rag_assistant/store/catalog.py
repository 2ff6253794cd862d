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

import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFullError, IndexCorruptError, IndexUnreadableError, StorageError
from ..types import Chunk, Paper
from .files import why_unusable
from .manifest import DenseState, Identity
from .migrations import migrate

# SQLite's primary result codes (the low byte of an extended code)
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26


def sqlite_error(exc: sqlite3.Error, path: Path) -> StorageError:
    """The typed error for what SQLite said about the catalog ``path``: damaged (rebuild
    it), a full disk, or a catalog that cannot be opened, with the reason found on disk
    (permissions, a read-only file system) — never called damaged."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _SQLITE_FULL or "disk is full" in text:
        return DiskFullError(
            f"the disk holding the catalog {path} is full ({text}); free some space and try "
            "again: what was already stored is kept, and the next try completes the work"
        )
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (
        primary is None and ("malformed" in text or "not a database" in text)
    ):
        return IndexCorruptError(
            f"the catalog {path} is damaged ({text}); run `rag-assistant index rebuild` "
            "(rebuilds it from the source files the manifest lists, and keeps the damaged "
            "file as catalog.damaged.sqlite3)"
        )
    found = why_unusable(path)
    if found is not None:
        return found
    return IndexUnreadableError(
        f"the catalog {path} cannot be used ({text}); it was not changed. Check the disk "
        "and the folder's permissions, then try again"
    )


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


def _reading(method):
    """SQLite's errors met by a read (a damaged page past the header, a vanished file)
    become the typed errors of :func:`sqlite_error`; a bug's keep their traceback."""

    @functools.wraps(method)
    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise
        except sqlite3.DatabaseError as exc:
            raise sqlite_error(exc, self.path) from exc

    return read


class _Writes:
    """The writes of :class:`Catalog` (its other half), one transaction each: one process
    writes at a time (the index's file lock sees to that), its threads take
    ``_write_lock``."""

    def set_identity(self, identity: Identity) -> None:
        self._set_meta("identity", identity.model_dump_json())

    def set_dense_state(self, state: DenseState) -> None:
        self._set_meta("dense", state.model_dump_json())

    def checkpoint(self) -> None:
        """Move everything in the write-ahead log into the database file and close, so the
        file alone is the whole catalog (before it is renamed)."""
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()

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
                # a failed COMMIT (a full disk) may have rolled back already
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, under the write lock, in a transaction committed on
        leaving (rolled back on an error)."""
        with self._write_lock:
            conn = self._conn()
            with conn:
                yield conn

    def mark_embedded(self, chunk_ids: Sequence[str]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE chunks SET embedded = 1 WHERE chunk_id = ?", [(i,) for i in chunk_ids]
            )

    def clear_dense_state(self) -> None:
        """Forget the dense model (missing or damaged): the next sync fits a new one and
        embeds every chunk into a new collection."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = 'dense'")
            conn.execute("UPDATE chunks SET embedded = 0")

    def continue_generation(self, after: int) -> None:
        """Number this (new) catalog's generations after ``after``, those of the catalog it
        replaces, so the parts built from it never take the names of that one's."""
        if self.generation < after:
            self._set_meta("generation", str(after))

    def mark_all_pending(self) -> None:
        """Every chunk needs a vector again (a new collection after a refit or rebuild)."""
        with self._transaction() as conn:
            conn.execute("UPDATE chunks SET embedded = 0")

    def add_sentence_vectors(
        self, model: str, rows: Sequence[tuple[str, bytes, bytes, bytes]]
    ) -> None:
        """Store (chunk id, float16 vectors of its sentences, of the same sentences in their
        paper's context, 8-bit vectors of their content words) rows encoded by ``model``; a
        chunk deleted meanwhile gets none."""
        with self._transaction() as conn:
            for column, table in enumerate(_SENTENCE_TABLES, start=1):
                conn.executemany(
                    f"INSERT OR REPLACE INTO {table} (chunk_id, model, vectors) "
                    "SELECT chunk_id, ?, ? FROM chunks WHERE chunk_id = ?",
                    [(model, row[column], row[0]) for row in rows],
                )

    def drop_sentence_vectors_not_of(self, model: str) -> None:
        """Forget vectors another encoder made (they are encoded again)."""
        with self._transaction() as conn:
            for table in _SENTENCE_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE model != ?", (model,))

    def clear_tombstones(self, chunk_ids: Sequence[str]) -> None:
        with self._transaction() as conn:
            conn.executemany("DELETE FROM tombstones WHERE chunk_id = ?", [(i,) for i in chunk_ids])

    def _set_meta(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value = excluded.value",
                (key, value),
            )


class Catalog(_Writes):
    """SQLite catalog. Reads are safe from many threads; one process writes at a time (the
    index's file lock sees to that)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            migrate(self._conn())
            self.inode = path.stat().st_ino
        except sqlite3.Error as exc:
            self.close()
            raise sqlite_error(exc, path) from exc

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

    @_reading
    def identity(self) -> Identity | None:
        """What the index was built with (None for a new index)."""
        raw = self._get_meta("identity")
        return Identity.model_validate_json(raw) if raw else None

    @_reading
    def dense_state(self) -> DenseState | None:
        """The active dense model and collection (None before the first fit)."""
        raw = self._get_meta("dense")
        return DenseState.model_validate_json(raw) if raw else None

    # --- reads -------------------------------------------------------------------------

    @_reading
    def counts(self) -> tuple[int, int]:
        """(papers, chunks)."""
        conn = self._conn()
        papers = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return papers, chunks

    @_reading
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

    @_reading
    def papers(self, paper_ids: Sequence[str]) -> dict[str, Paper]:
        """The papers with these ids that exist, with their sources."""
        conn = self._conn()
        out: dict[str, Paper] = {}
        for batch in _batches(paper_ids, 500):
            marks = ",".join("?" * len(batch))
            sources = self.sources_of(batch)
            for row in conn.execute(f"SELECT * FROM papers WHERE paper_id IN ({marks})", batch):
                out[row["paper_id"]] = _paper_from_row(row, sources.get(row["paper_id"], []))
        return out

    @_reading
    def titles(self, paper_ids: Sequence[str]) -> dict[str, str]:
        """{paper_id: title} for the ids that are in the catalog."""
        query = "SELECT paper_id, title FROM papers WHERE paper_id IN ({})"
        out: dict[str, str] = {}
        for batch in _batches(paper_ids, 500):
            out.update(self._conn().execute(query.format(",".join("?" * len(batch))), batch))
        return out

    def titles_with_words(
        self, words: Sequence[str], limit: int, *, at_start: bool = False
    ) -> dict[str, str]:
        """{paper_id: title} of up to ``limit`` papers whose title holds ``words`` in that
        order (a phrase of the full-text title index); ``at_start``: as its first words."""
        phrase = ("^" if at_start else "") + '"' + " ".join(w.replace('"', "") for w in words) + '"'
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

    @_reading
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

    @_reading
    def chunk_ids_of(self, paper_ids: Sequence[str]) -> list[str]:
        """The chunk ids of these papers, in the papers' order, each paper's in order."""
        rows = self._grouped(
            "SELECT paper_id, chunk_id FROM chunks WHERE paper_id IN ({marks}) ORDER BY ordinal",
            paper_ids,
        )
        return [cid for pid in paper_ids for cid in rows.get(pid, [])]

    @_reading
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

    def chunks_to_encode(self, *, batch_size: int) -> Iterator[list[tuple[str, str, str]]]:
        """(chunk id, text, its paper's title) of the chunks without sentence vectors, alone
        or in context, in batches."""
        for rows in self._paged("text, paper_id", _TO_ENCODE, batch_size):
            titles = self.titles(sorted({r[2] for r in rows}))
            yield [(r[0], r[1], titles.get(r[2], "")) for r in rows]

    @_reading
    def sentence_vector_counts(self, table: str = "sentence_vectors") -> tuple[int, int]:
        """(chunks with vectors in ``table``, one of :data:`_SENTENCE_TABLES`, chunks without)."""
        with_vectors = self._conn().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        total = self._conn().execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return with_vectors, total - with_vectors

    @_reading
    def count_chunks_to_encode(self) -> int:
        """The chunks :meth:`chunks_to_encode` yields."""
        query = f"SELECT COUNT(*) FROM chunks WHERE 1 {_TO_ENCODE}"
        return self._conn().execute(query).fetchone()[0]

    @_reading
    def sentence_vectors_in_context(self, model: str, chunk_ids: Sequence[str]) -> dict[str, bytes]:
        """{chunk id: float16 vectors of its sentences in their paper's context} for those
        of ``chunk_ids`` that ``model`` encoded so."""
        out: dict[str, bytes] = {}
        for batch in _batches(chunk_ids, 500):
            marks = ",".join("?" * len(batch))
            query = (
                "SELECT chunk_id, vectors FROM sentence_vectors_in_context "
                f"WHERE model = ? AND chunk_id IN ({marks})"
            )
            out.update(self._conn().execute(query, (model, *batch)).fetchall())
        return out

    @_reading
    def token_vectors(self, model: str, paper_ids: Sequence[str]) -> dict[str, list[bytes]]:
        """{paper id: the 8-bit word vectors of each of its chunks, in order} for those of
        ``paper_ids`` whose every chunk ``model`` encoded so."""
        rows = self._grouped(
            "SELECT c.paper_id, t.vectors FROM chunks c LEFT JOIN token_vectors t ON "
            "t.chunk_id = c.chunk_id AND t.model = ? WHERE c.paper_id IN ({marks}) "
            "ORDER BY c.ordinal",
            paper_ids,
            model,
        )
        return {paper_id: blobs for paper_id, blobs in rows.items() if None not in blobs}

    @_reading
    def sentence_vectors(self, model: str) -> list[tuple[str, bytes]]:
        """(chunk id, float16 sentence vectors) of every chunk ``model`` encoded, by id."""
        query = "SELECT chunk_id, vectors FROM sentence_vectors WHERE model = ? ORDER BY chunk_id"
        return self._conn().execute(query, (model,)).fetchall()

    @_reading
    def pending_count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM chunks WHERE embedded = 0").fetchone()[0]

    def tombstones(self) -> list[str]:
        return self._column("SELECT chunk_id FROM tombstones")

    @_reading
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

    @_reading
    def sources_of(self, paper_ids: Sequence[str]) -> dict[str, list[str]]:
        """{paper_id: its sources} for the ids that have any."""
        return self._grouped(
            "SELECT paper_id, source FROM paper_sources WHERE paper_id IN ({marks}) "
            "ORDER BY source",
            paper_ids,
        )

    def _grouped(self, query: str, keys: Sequence[str], *args: object) -> dict[str, list]:
        """{key: values} from ``query``'s (key, value) rows, asked for the keys in batches
        (``{marks}`` in the query stands for a batch's placeholders, after ``args``')."""
        out: dict[str, list] = {}
        for batch in _batches(keys, 500):
            marks = ",".join("?" * len(batch))
            for key, value in self._conn().execute(query.format(marks=marks), (*args, *batch)):
                out.setdefault(key, []).append(value)
        return out

    @_reading
    def integrity_problems(self, *, full: bool = False) -> list[str]:
        """What SQLite's ``quick_check`` (``integrity_check`` with ``full``) finds wrong."""
        pragma = "integrity_check" if full else "quick_check"
        rows = self._conn().execute(f"PRAGMA {pragma}").fetchall()
        return [r[0] for r in rows if r[0] != "ok"]


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
    for table in _SENTENCE_TABLES:
        conn.executemany(f"DELETE FROM {table} WHERE chunk_id = ?", [(i,) for i in chunk_ids])
    conn.executemany(
        "INSERT OR IGNORE INTO tombstones (chunk_id) VALUES (?)", [(i,) for i in chunk_ids]
    )


# the sentences of each chunk encoded alone, and in their paper's context, and the vectors
# of their words (migrations 4, 5, 6)
_SENTENCE_TABLES = ("sentence_vectors", "sentence_vectors_in_context", "token_vectors")
# a chunk lacking any is encoded again (a catalog of version 4 lacks the second, of 5 the third)
_TO_ENCODE = (
    "AND ("
    + " OR ".join(f"chunk_id NOT IN (SELECT chunk_id FROM {table})" for table in _SENTENCE_TABLES)
    + ")"
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
