"""An exact copy of the vectors Chroma holds, searched without opening Chroma.

A question searches the dense side once; opening Chroma for it costs a new process more than
half a second (importing ``chromadb`` alone), and Chroma's HNSW search is approximate (its
recall@10 against exact search was 0.76 at 10,000 papers and 0.40 at 100,000 in
``bench/run.py``). The copy is one ``float32`` matrix of unit rows, memory-mapped, plus the
chunk ids in row order: an exact search is one matrix-vector product (9.6 ms, median of 30,
over 103,475 chunks of 384 dimensions, warm).

It is derived like the lexical index: each sync writes ``vectors/g<generation>/`` from the
previous copy (rows of removed chunks dropped; those of new chunks taken from what this
process wrote to Chroma, :class:`WrittenVectors`, else read back from Chroma by id), and the
manifest names it. Readers use it only while it is the copy of the collection
the manifest names, at the manifest's generation, and while an embedded Chroma store is
still a SQLite database (a damaged store is reported, not hidden behind its copy); else
they search Chroma.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np

from .files import load_array, reading_part, replace_dir, strictly_increasing

VECTORS_FILE = "vectors.npy"
IDS_FILE = "chunk_ids.json"
META_FILE = "copy.json"
REPAIR = "run `rag-assistant index check --repair` (copies the vectors again from Chroma)"
_ROWS_PER_STEP = 8192  # rows copied at a time: the old matrix is never read whole


class VectorCopy:
    """Chunk ids and their vectors (unit rows, in id order) of one Chroma collection at one
    catalog generation."""

    def __init__(
        self,
        ids: list[str],
        vectors: np.ndarray,
        *,
        collection: str,
        generation: int,
        directory: Path | None = None,
    ) -> None:
        self.ids, self.vectors = ids, vectors
        self.collection, self.generation = collection, generation
        self.directory = directory

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """(chunk_id, cosine similarity) of the ``n`` nearest chunks, best first (ties by
        chunk id, so the order does not depend on how the copy was built)."""
        if not self.ids or n <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if norm == 0.0:
            return []
        scores = self.vectors @ (query / norm)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.ids[i], float(scores[i])) for i in top]

    # --- writing -------------------------------------------------------------------------

    @staticmethod
    def write(
        directory: Path,
        *,
        collection: str,
        generation: int,
        ids: Sequence[str],
        base: VectorCopy | None,
        fetch: Callable[[list[str]], np.ndarray],
        dimensions: int,
    ) -> VectorCopy:
        """Write the copy of ``ids`` (the catalog's chunks) to ``directory``: rows ``base``
        holds are copied from it a block at a time, the others read with ``fetch`` (from
        Chroma, in the order given). Written to a new folder and fsynced; the caller
        switches the manifest to it."""
        ids = sorted(ids)
        known = {} if base is None else {cid: row for row, cid in enumerate(base.ids)}
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        out = np.lib.format.open_memmap(
            tmp / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(len(ids), dimensions)
        )
        for start in range(0, len(ids), _ROWS_PER_STEP):
            part = ids[start : start + _ROWS_PER_STEP]
            rows = np.array([known.get(cid, -1) for cid in part], dtype=np.int64)
            block = np.empty((len(part), dimensions), dtype=np.float32)
            have = rows >= 0
            if have.any():
                assert base is not None
                block[have] = base.vectors[rows[have]]
            if not have.all():
                missing = [cid for cid, row in zip(part, rows, strict=True) if row < 0]
                block[~have] = _unit_rows(np.asarray(fetch(missing), dtype=np.float32))
            out[start : start + len(part)] = block
        out.flush()
        del out
        (tmp / IDS_FILE).write_text(json.dumps(ids))
        meta = {
            "collection": collection,
            "generation": generation,
            "chunks": len(ids),
            "dimensions": dimensions,
        }
        (tmp / META_FILE).write_text(json.dumps(meta))
        replace_dir(tmp, directory)
        return VectorCopy.load(directory)

    # --- reading -------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> VectorCopy:
        """The copy in ``directory``, memory-mapped; a missing or damaged one raises
        :class:`IndexCorruptError` naming the fix."""
        with reading_part(f"the copy of the vectors {directory}", REPAIR):
            meta = json.loads((directory / META_FILE).read_text())
            ids = json.loads((directory / IDS_FILE).read_text())
            vectors = load_array(directory / VECTORS_FILE)
            expected = (int(meta["chunks"]), int(meta["dimensions"]))
            if vectors.dtype != np.float32 or vectors.shape != expected:
                raise ValueError(f"a {vectors.dtype} matrix of {vectors.shape}, not {expected}")
            if len(ids) != expected[0]:
                raise ValueError(f"{len(ids)} chunk ids for {expected[0]} rows")
            if not strictly_increasing(ids):
                raise ValueError(f"the chunk ids of {IDS_FILE} are out of order")
            return cls(
                ids,
                vectors,
                collection=str(meta["collection"]),
                generation=int(meta["generation"]),
                directory=directory,
            )

    def is_of(self, collection: str | None, generation: int) -> bool:
        """Whether this is the copy of ``collection`` at catalog ``generation``."""
        return self.collection == collection and self.generation == generation

    def holds(self, ids: Collection[str]) -> bool:
        """Whether the copy holds exactly these chunks."""
        return len(ids) == len(self.ids) and set(self.ids) == set(ids)


class WrittenVectors:
    """The vectors this process wrote to Chroma, by collection and chunk id, kept up to
    ``budget`` bytes, so that the copy a sync writes reads back from Chroma only what it
    did not keep (at 10,000 papers reading them back was about 3% of an ingest). What Chroma
    holds for an id is the last vector written for it, and so is what is kept."""

    def __init__(self, budget: int = 64 * 2**20) -> None:
        self.budget = budget
        self._rows: dict[str, dict[str, np.ndarray]] = {}
        self._bytes = 0

    def add(self, collection: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        rows = self._rows.setdefault(collection, {})
        for cid, row in zip(ids, np.asarray(vectors, dtype=np.float32), strict=True):
            if cid not in rows:
                if self._bytes + row.nbytes > self.budget:
                    rows.pop(cid, None)
                    continue
                self._bytes += row.nbytes
            rows[cid] = row

    def fetcher(
        self, collection: str, read: Callable[[list[str]], np.ndarray]
    ) -> Callable[[list[str]], np.ndarray]:
        """A ``fetch`` for :meth:`VectorCopy.write`: kept rows, the others from ``read``."""
        rows = self._rows.get(collection, {})

        def fetch(ids: list[str]) -> np.ndarray:
            missing = [cid for cid in ids if cid not in rows]
            read_back = dict(zip(missing, read(missing), strict=True)) if missing else {}
            return np.asarray([rows[c] if c in rows else read_back[c] for c in ids])

        return fetch

    def clear(self) -> None:
        self._rows.clear()
        self._bytes = 0


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` starts as a SQLite database does (16 bytes read): how a reader that
    does not open Chroma still sees that its embedded store was damaged."""
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
