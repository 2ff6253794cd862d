"""What a chunk's payload costs Chroma: the chunks of an existing index written into fresh
embedded collections with (a) ids and vectors only, (b) plus the paper id as metadata (what
a filter by paper would need), (c) plus the chunk text, title and paper id (what was
written before, and what a Chroma server keeps by default). Wall and CPU seconds, chunks
per second and the store's size on disk; the load average beside each.

    python bench/chroma_payload.py --home /tmp/rag-fit/home-10000
    python bench/chroma_payload.py --home ... --chunks 5000 --repeat 3

Vectors are the index's own (its fitted model), written in batches of the ingest's size.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="an index directory")
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks written per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per payload (median)")
    opts = parser.parse_args(argv)

    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from rag_assistant.index import Index
    from rag_assistant.settings import Settings

    index = Index(Settings(home=opts.home))
    embedder = index.embedder()
    rows = []
    for batch in index.catalog.iter_chunks(batch_size=5000):
        rows += batch
        if len(rows) >= opts.chunks:
            break
    rows = rows[: opts.chunks]
    titles = index.catalog.titles(sorted({r.paper_id for r in rows}))
    vectors = embedder.embed([r.text for r in rows], terms=[r.terms for r in rows])
    batch_size = index.settings.embedding.batch_size

    def payload(kind: str, part: list) -> dict:
        if kind == "ids + vectors":
            return {}
        if kind == "+ paper id":
            return {"metadatas": [{"paper_id": r.paper_id} for r in part]}
        return {
            "documents": [r.text for r in part],
            "metadatas": [
                {"paper_id": r.paper_id, "title": titles[r.paper_id], "ordinal": r.ordinal}
                for r in part
            ],
        }

    print(
        f"{len(rows):,} chunks of {opts.home}, {vectors.shape[1]} dimensions, batches of "
        f"{batch_size}"
    )
    print(f"{'payload':<22} {'wall s':>7} {'cpu s':>7} {'chunks/s':>9} {'MiB':>6}  load")
    for kind in ("ids + vectors", "+ paper id", "+ text, title, paper id"):
        runs = []
        for _ in range(opts.repeat):
            directory = Path(tempfile.mkdtemp(prefix="chroma-payload-"))
            try:
                client = chromadb.PersistentClient(
                    path=str(directory), settings=ChromaSettings(anonymized_telemetry=False)
                )
                collection = client.get_or_create_collection(
                    "payload", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                )
                load = os.getloadavg()[0]
                wall, cpu = time.perf_counter(), _cpu()
                for start in range(0, len(rows), batch_size):
                    part = rows[start : start + batch_size]
                    collection.upsert(
                        ids=[r.chunk_id for r in part],
                        embeddings=vectors[start : start + batch_size],
                        **payload(kind, part),
                    )
                wall, cpu = time.perf_counter() - wall, _cpu() - cpu
                size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
                runs.append((wall, cpu, size / 2**20, load))
            finally:
                shutil.rmtree(directory, ignore_errors=True)
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(
            f"{kind:<22} {wall:7.2f} {cpu:7.2f} {len(rows) / wall:9,.0f} {runs[0][2]:6.0f}  "
            + ", ".join(f"{r[3]:.1f}" for r in runs),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
