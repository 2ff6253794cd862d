"""The catalog's schema and its migrations.

``PRAGMA user_version`` holds the schema version of a catalog. Opening a catalog applies, in
one transaction each, every migration above its version; a catalog from a newer version of
rag-assistant is refused rather than misread. A catalog written before versions were
recorded has version 0 (its tables exist; migration 1 finds them in place).

To change the schema: append a migration, never edit one that has shipped, and extend
``tests/test_migrations.py`` (which opens an index written by an earlier version).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from ..errors import IndexCorruptError

BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    paper_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    abstract TEXT NOT NULL,
    url TEXT,
    authors TEXT NOT NULL DEFAULT '[]',
    date TEXT,
    categories TEXT NOT NULL DEFAULT '[]',
    content_hash TEXT NOT NULL,
    meta_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS paper_sources (
    paper_id TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (paper_id, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS paper_sources_by_source ON paper_sources(source);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    paper_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    terms TEXT NOT NULL,
    embedded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_by_paper ON chunks(paper_id);
CREATE INDEX IF NOT EXISTS chunks_pending ON chunks(embedded) WHERE embedded = 0;
CREATE TABLE IF NOT EXISTS tombstones (chunk_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


def _v1_base_schema(conn: sqlite3.Connection) -> None:
    for statement in BASE_SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v2_typed_dense_state(conn: sqlite3.Connection) -> None:
    """The dense model's four loose meta values (identity, model file, collection, papers
    fitted on) become one typed ``dense`` record (:class:`~.manifest.DenseState`)."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    collection = meta.get("dense_collection")
    if collection:
        state = {
            "model": json.loads(meta.get("dense_identity") or "null"),
            "model_file": meta.get("dense_model") or None,
            "collection": collection,
            "fitted_on_papers": int(meta.get("fitted_on_papers") or 0),
        }
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('dense', ?) ON CONFLICT(key) "
            "DO UPDATE SET value = excluded.value",
            (json.dumps(state),),
        )
    conn.execute(
        "DELETE FROM meta WHERE key IN "
        "('dense_identity', 'dense_model', 'dense_collection', 'fitted_on_papers')"
    )


def _v3_title_search(conn: sqlite3.Connection) -> None:
    """A full-text index of the titles (SQLite's FTS5, kept by triggers), so a name in a
    question finds the papers whose title holds it without a scan of every title."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS title_search USING fts5("
        "title, content='papers', content_rowid='rowid', tokenize='unicode61')"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS papers_title_insert AFTER INSERT ON papers BEGIN "
        "INSERT INTO title_search(rowid, title) VALUES (new.rowid, new.title); END"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS papers_title_delete AFTER DELETE ON papers BEGIN "
        "INSERT INTO title_search(title_search, rowid, title) "
        "VALUES ('delete', old.rowid, old.title); END"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS papers_title_update AFTER UPDATE OF title ON papers BEGIN "
        "INSERT INTO title_search(title_search, rowid, title) "
        "VALUES ('delete', old.rowid, old.title); "
        "INSERT INTO title_search(rowid, title) VALUES (new.rowid, new.title); END"
    )
    conn.execute("INSERT INTO title_search(title_search) VALUES ('rebuild')")


def _v4_sentence_vectors(conn: sqlite3.Connection) -> None:
    """The sentence encoder's vectors of each chunk's sentences (float16 rows in one blob
    per chunk, ``model`` naming the encoder), deleted with their chunk; a chunk without a
    row is still to be encoded."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS sentence_vectors (chunk_id TEXT PRIMARY KEY, "
        "model TEXT NOT NULL, vectors BLOB NOT NULL) WITHOUT ROWID"
    )


def _v5_sentence_vectors_in_context(conn: sqlite3.Connection) -> None:
    """The same sentences encoded in their paper's context ("<title>: <sentence>"), for the
    answerer to read how close each one is to a question as part of its paper; one blob per
    chunk, as in ``sentence_vectors``. A catalog of version 4 has none until its next ingest
    encodes them (readers fall back to the sentences alone)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS sentence_vectors_in_context (chunk_id TEXT PRIMARY KEY, "
        "model TEXT NOT NULL, vectors BLOB NOT NULL) WITHOUT ROWID"
    )


def _v6_token_vectors(conn: sqlite3.Connection) -> None:
    """The vectors of each chunk's content words, each read in its sentence (8 bits a value,
    :func:`~.sentence_encoder.pack_tokens`), for late interaction; one blob per chunk, its
    sentences' words in order. A catalog of version 5 has none until its next ingest
    encodes them (the reranker computes a paper's words when it first needs them)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS token_vectors (chunk_id TEXT PRIMARY KEY, "
        "model TEXT NOT NULL, vectors BLOB NOT NULL) WITHOUT ROWID"
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_base_schema,
    _v2_typed_dense_state,
    _v3_title_search,
    _v4_sentence_vectors,
    _v5_sentence_vectors_in_context,
    _v6_token_vectors,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the catalog open on ``conn`` to :data:`SCHEMA_VERSION`; returns the version it
    had. Each step commits with its new ``user_version``, so an interrupted migration resumes
    at the step it stopped in."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise IndexCorruptError(
            f"the catalog has schema version {version}, newer than this rag-assistant knows "
            f"({SCHEMA_VERSION}); upgrade rag-assistant"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT may have rolled back already
                conn.execute("ROLLBACK")
            raise
    return version
