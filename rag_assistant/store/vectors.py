"""Chroma as the dense vector store: embedded (``PersistentClient`` in the index directory) or
a ``chroma run`` server (``HttpClient``). Embeddings are always passed in, so Chroma's default
embedding function (which downloads an ONNX model) is never used.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..errors import DiskFullError, IndexCorruptError, StorageError, VectorStoreError
from .files import storage_error, why_unusable

log = logging.getLogger(__name__)


def _chroma_errors(*, connecting: bool = False) -> tuple[type[BaseException], ...]:
    """What chromadb raises when a store or server fails: its own errors, httpx's transport
    and status errors (every call to a server that went away), and OS errors of the embedded
    store (a full disk, a read-only folder). ``connecting``: also ``ValueError``, which
    ``HttpClient`` raises for a refused connection; elsewhere a ``ValueError`` is a bug
    (ours or chromadb's) and keeps its traceback. Only calls into chromadb are wrapped."""
    import chromadb.errors
    import httpx

    errors = (chromadb.errors.ChromaError, httpx.HTTPError, OSError)
    return (*errors, ValueError) if connecting else errors


def _failed(doing: str, exc: BaseException, path: Path | None = None) -> StorageError:
    """The error for a failed call into Chroma: a full disk or a read-only file system as
    their typed errors, anything else as :class:`VectorStoreError`. ``path``: the embedded
    store's folder (Chroma does not always say that its disk is full: "Error in compaction";
    the disk is asked)."""
    if isinstance(exc, OSError):
        typed = storage_error(exc, path)
        if typed is not None:
            return typed
    text = str(exc)
    if "disk is full" in text or "No space left" in text or _nearly_full(path):
        where = f" holding {path}" if path else ""
        return DiskFullError(
            f"{doing} failed: the disk{where} is full ({text}); free some space and try "
            "again: what was already stored is kept, and the next try completes the work"
        )
    return VectorStoreError(f"{doing} failed: {exc}")


def _nearly_full(path: Path | None) -> bool:
    """Whether the disk holding ``path`` has less than 1 MiB left."""
    if path is None:
        return False
    try:
        return shutil.disk_usage(path).free < 2**20
    except OSError:
        return False


def _damaged(text: str) -> bool:
    """Whether what Chroma said on opening an embedded store means its SQLite file is
    damaged (SQLite's codes 11, CORRUPT, and 26, NOTADB)."""
    return any(mark in text for mark in ("(code: 11)", "(code: 26)", "malformed", "not a database"))


def _forget_system(path: Path) -> None:
    """Chroma caches one system per path even when starting it failed; the next client on
    that path would then meet a half-made one ("'RustBindingsAPI' object has no attribute
    'bindings'"). Forget it, so the path can be opened again (after a repair)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(str(path), None)
    SharedSystemClient._identifier_to_refcount.pop(str(path), None)


class VectorStore:
    """One Chroma client; collections named by the manifest."""

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.url = url
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if url:
                parsed = urlparse(url if "://" in url else f"http://{url}")
                self.client = chromadb.HttpClient(
                    host=parsed.hostname or "localhost",
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
                self.client.heartbeat()
            else:
                assert path is not None
                path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            # Chroma's own limit per write (embedded: SQLite's; a server: its setting).
            self.max_batch = max(1, min(self.client.get_max_batch_size(), 5000))
        except _chroma_errors(connecting=True) as exc:
            if url:
                raise VectorStoreError(f"cannot open the Chroma server at {url}: {exc}") from exc
            assert path is not None
            _forget_system(path)
            raise _open_failed(path, exc) from exc
        self.path = path
        self._collections: dict[str, object] = {}

    def close(self) -> None:
        """Release the client (an embedded store's files are closed when no other client in
        this process uses them)."""
        self._collections.clear()
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    @property
    def where(self) -> str:
        return self.url or "embedded"

    def collection(self, name: str, *, create: bool = False):
        """The collection ``name``; with ``create``, made if missing (cosine space)."""
        cached = self._collections.get(name)
        if cached is not None:
            return cached
        try:
            if create:
                coll = self.client.get_or_create_collection(
                    name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                )
            else:
                coll = self.client.get_collection(name, embedding_function=None)
        except _chroma_errors() as exc:
            raise _failed(
                f"opening the Chroma collection {name!r} ({self.where})", exc, self.path
            ) from exc
        self._collections[name] = coll
        return coll

    def has_collection(self, name: str) -> bool:
        return name in self.collection_names()

    def collection_names(self) -> list[str]:
        try:
            names = self.client.list_collections()
        except _chroma_errors() as exc:
            raise _failed(f"reading Chroma ({self.where})", exc, self.path) from exc
        return [c if isinstance(c, str) else c.name for c in names]

    def drop(self, name: str) -> None:
        self._collections.pop(name, None)
        try:
            self.client.delete_collection(name)
        except _chroma_errors() as exc:
            log.debug("dropping collection %s: %s", name, exc)

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str] | None = None,
        metadatas: Sequence[dict] | None = None,
    ) -> None:
        """Write vectors (with their chunk texts and metadata when given) in batches of
        Chroma's maximum size."""
        coll = self.collection(name, create=True)
        for start in range(0, len(ids), self.max_batch):
            end = start + self.max_batch
            extra: dict = {}
            if documents is not None:
                extra["documents"] = list(documents[start:end])
            if metadatas is not None:
                extra["metadatas"] = list(metadatas[start:end])
            try:
                coll.upsert(ids=list(ids[start:end]), embeddings=vectors[start:end], **extra)
            except _chroma_errors() as exc:
                raise _failed(f"writing to Chroma ({self.where})", exc, self.path) from exc

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        coll = self.collection(name, create=True)
        for start in range(0, len(ids), self.max_batch):
            try:
                coll.delete(ids=list(ids[start : start + self.max_batch]))
            except _chroma_errors() as exc:
                raise _failed(f"deleting from Chroma ({self.where})", exc, self.path) from exc

    def ids(self, name: str) -> set[str]:
        """Every id in the collection (paged); a missing collection raises."""
        coll = self.collection(name)
        out: set[str] = set()
        offset = 0
        while True:
            try:
                page = coll.get(include=[], limit=self.max_batch, offset=offset)
            except _chroma_errors() as exc:
                raise _failed(f"reading Chroma ({self.where})", exc, self.path) from exc
            out.update(page["ids"])
            if len(page["ids"]) < self.max_batch:
                return out
            offset += self.max_batch

    def vectors(self, name: str, ids: Sequence[str]) -> np.ndarray:
        """The vectors of ``ids``, in that order (read in pages of Chroma's batch size); an
        id the collection does not hold raises :class:`IndexCorruptError`."""
        coll = self.collection(name)
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), self.max_batch):
            try:
                page = coll.get(
                    ids=list(ids[start : start + self.max_batch]), include=["embeddings"]
                )
            except _chroma_errors() as exc:
                raise _failed(f"reading Chroma ({self.where})", exc, self.path) from exc
            found.update(zip(page["ids"], page["embeddings"], strict=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise IndexCorruptError(
                f"{len(missing)} chunk(s) the catalog holds as embedded are missing from the "
                f"Chroma collection {name!r}; run `rag-assistant index check --repair`"
            )
        if not ids:
            return np.empty((0, 0), dtype=np.float32)
        return np.asarray([found[i] for i in ids], dtype=np.float32)

    def count(self, name: str) -> int:
        try:
            return self.collection(name, create=True).count()
        except _chroma_errors() as exc:
            raise _failed(f"reading Chroma ({self.where})", exc, self.path) from exc

    def query(self, name: str, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """(chunk_id, cosine similarity) of the ``n`` nearest chunks, best first."""
        coll = self.collection(name)
        try:
            result = coll.query(
                query_embeddings=vector[None, :], n_results=n, include=["distances"]
            )
        except _chroma_errors() as exc:
            raise _failed(f"querying Chroma ({self.where})", exc, self.path) from exc
        ids = result["ids"][0]
        distances = result["distances"][0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]


def _open_failed(path: Path, exc: BaseException) -> StorageError:
    """Why the embedded store in ``path`` did not open: damaged (``index check --repair``
    makes it again from the catalog), unreadable (permissions, a read-only disk: not
    damaged, nothing is changed), or another failure."""
    text = str(exc)
    if _damaged(text):
        return IndexCorruptError(
            f"the Chroma store in {path} is damaged ({text}); run `rag-assistant index check "
            "--repair` (makes it again from the catalog)"
        )
    found = why_unusable(path / "chroma.sqlite3") if path.is_dir() else None
    if found is not None:
        return found
    return _failed(f"opening the Chroma store in {path}", exc, path)
