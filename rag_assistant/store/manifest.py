"""The manifest (``manifest.json``) and the index's identity, as typed models.

The manifest is what readers use: which Chroma collection, lexical folder and dense model
are current, and what the index was built with. It is rewritten atomically at the end of
every ingest, repair and rebuild, so a reader always sees a complete one. The identity (what
the index was built with) and the dense model's state live in the catalog as the same typed
models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import IndexCorruptError
from .files import atomic_write

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Chunking(_Model):
    splitter: str
    sentences: str
    chunk_size: int
    chunk_overlap: int


class ChromaPlace(_Model):
    mode: Literal["embedded", "server"]
    url: str | None = None


class Identity(_Model):
    """What an index was built with; settings that ask for something else are refused."""

    analyzer: str | None = None
    tokenizer: str
    chunking: Chunking
    embedding_backend: str
    embedding_model: str
    chroma: ChromaPlace
    index_id: str | None = None


class DenseModel(_Model):
    """The embedding model the vectors were made with (an LSA fit, or an OpenAI model)."""

    backend: str
    model: str
    dimensions: int
    requested_dimensions: int | None = None
    fit_id: str | None = None
    fitted_on_chunks: int | None = None


class DenseState(_Model):
    """The active dense side: the model, its file (LSA), the Chroma collection its vectors
    are in, and the paper count it was fitted on (a refit is due when the index doubles)."""

    model: DenseModel
    model_file: str | None = None
    collection: str
    fitted_on_papers: int = 0


class ChromaRef(ChromaPlace):
    collection: str | None = None


class LexicalRef(_Model):
    dir: str
    generation: int


class Manifest(_Model):
    """``manifest.json``: what readers use. Format 1."""

    format: Literal[1] = MANIFEST_FORMAT
    index_id: str | None = None
    updated_at: str
    tokenizer: str
    chunking: Chunking
    embedding_backend: str
    embedding_model: str
    embedding: DenseModel | None = None
    dense_model: str | None = None
    chroma: ChromaRef
    lexical: LexicalRef
    generation: int
    papers: int
    chunks: int
    fitted_on_papers: int = 0
    sources: list[str] = []
    vector_copy: str | None = None  # the exact copy of the collection's vectors (a folder)


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, None when there is none; a damaged one raises
    :class:`IndexCorruptError` naming the fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ValueError("unknown manifest format")
        return Manifest.model_validate(data)
    except (OSError, ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0]
        raise IndexCorruptError(
            f"the index manifest {path} is damaged ({reason}); run "
            "`rag-assistant index check --repair` (rebuilds it from the catalog)"
        ) from exc


def write_manifest(path: Path, manifest: Manifest, *, before_replace=None) -> None:
    """Write ``manifest`` to ``path`` atomically."""
    atomic_write(path, manifest.model_dump_json(indent=2), before_replace=before_replace)
