"""Indexes written by earlier versions open, answer and keep ingesting.

``fixtures/index-v0.tar.gz`` is an index of three papers (``papers.jsonl`` beside it)
written by rag-assistant at af36b46, before catalogs recorded a schema version: its manifest
is format 1 and its catalog keeps the dense model's state as four loose meta values.
"""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.errors import IndexCorruptError
from rag_assistant.settings import Settings
from rag_assistant.store.catalog import Catalog
from rag_assistant.store.migrations import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "index-v0.tar.gz"


@pytest.fixture
def old_index(tmp_path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def test_an_index_written_before_schema_versions_opens_and_answers(old_index):
    home = old_index / "home"
    assert user_version(home / "catalog.sqlite3") == 0
    assistant = Assistant(Settings(home=home))
    answer = assistant.ask("How much does Quokka Routing cut latency?")
    assert not answer.refused
    assert [c.title for c in answer.citations][:1] == ["Quokka Routing: Packets Follow the Scent"]
    assert "37%" in answer.text

    catalog = assistant.index.catalog
    assert catalog.schema_version == SCHEMA_VERSION
    dense = catalog.dense_state()
    assert dense is not None and dense.fitted_on_papers == 3
    assert dense.collection == assistant.index.manifest().chroma.collection
    assert dense.model.fit_id == "af76772a49"
    with sqlite3.connect(home / "catalog.sqlite3") as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM meta")}
    assert keys == {"identity", "generation", "dense"}  # the loose values are gone
    assert assistant.check() == []


def test_an_old_index_keeps_ingesting_incrementally(old_index, tmp_path):
    home = old_index / "home"
    assistant = Assistant(Settings(home=home))
    more = tmp_path / "more.jsonl"
    more.write_text(
        json.dumps(
            {
                "title": "Heron Caching for Serverless Inference",
                "abstract": "Heron Caching keeps warm model weights near serverless workers and "
                "cuts cold starts by 5x.",
            }
        )
        + "\n"
    )
    again = assistant.ingest([old_index / "papers.jsonl", more])
    assert (again.added, again.unchanged, again.papers) == (1, 3, 4)
    assert not again.refitted  # 4 papers: the model fitted on 3 is kept
    assert assistant.check() == []
    cited = assistant.ask("How does Heron Caching cut cold starts?").citations
    assert cited[0].title == "Heron Caching for Serverless Inference"


def test_a_catalog_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(IndexCorruptError, match="newer than this rag-assistant knows"):
        Catalog(path)


def test_a_migration_applies_once(old_index):
    path = old_index / "home" / "catalog.sqlite3"
    Catalog(path).close()
    assert user_version(path) == SCHEMA_VERSION
    before = path.read_bytes()
    Catalog(path).close()
    assert user_version(path) == SCHEMA_VERSION and path.read_bytes() == before
