"""Speed and scale of rag-assistant, measured: ingest throughput, warm query latency, cold
start, peak memory and index size at several corpus sizes — beside the least work retrieval
can do (bare bm25s plus a NumPy brute-force dot product over the same vectors) and beside the
pipeline a user would otherwise build (LlamaIndex's ``VectorStoreIndex`` over
``ChromaVectorStore`` with the same embeddings).

    python bench/run.py                                   # bundled, 10,000 and 100,000 papers
    python bench/run.py --quick                           # bundled and 10,000, 50 questions
    python bench/run.py --sizes 200 --questions 5         # a smoke run (seconds)
    python bench/run.py --peer-sizes all --ingest-runs 3  # the peer at 100,000 too; 3 rounds

The LlamaIndex peer runs at the sizes of ``--peer-sizes`` (by default bundled and 10,000,
to spare shared cores); ``--peer-sizes all`` adds it at 100,000 (at the ~100-300 papers/s
measured at 10,000 on 2 shared cores, 6-15 minutes more). Ours is reported as a ratio to
the peer of the same run (ingest papers/s, ``retrieve`` median), which holds better than
times on a shared machine: with ``--ingest-runs N`` ours and the peer ingest in turn N
times, and the ratio is the median of the N back-to-back pairs.

**Times are only comparable on an idle machine.** The 1-minute load average is recorded
before and after every step and printed beside each size; a load above the number of cores
means other work took turns on them, and every time of that run is pessimistic. CPU seconds
are printed beside the ingest and start-up times: less sensitive to load than wall time.

Needs the bench extra (``pip install -e ".[bench]"``) for the peer. Synthetic corpora are
generated from the bundled one (``bench/synth.py``; arXiv-snapshot JSON lines) into the work
directory and reused when it is kept (``--workdir``). Every measurement runs in a fresh child
process, so imports are cold where they should be and each peak RSS is that step's own. The
table is printed and written as JSON to ``bench/results/latest.json`` (``--out``), with a
Markdown table beside it (``latest.md``). Offline throughout: no key, no network.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGETS = {
    "help_s": 0.5,
    "cold_ask_s": 1.0,
    "ask_ms_bundled": 25.0,
    "ask_ms_100k": 60.0,
    "retrieve_floor_ratio_100k": 5.0,
    "ingest_peer_ratio_10k": 2.0,
    "ingest_papers_per_s_100k": 600.0,
    "ingest_rss_mib_100k": 1536.0,
}
INCREMENTAL_PAPERS = 10
CANDIDATES = 40  # chunks each retriever hands to fusion (RetrievalSettings.candidates)


LOAD_SAMPLES: list[float] = []  # the 1-minute load average at each step of the run


def _log(message: str) -> None:
    LOAD_SAMPLES.append(os.getloadavg()[0])
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": p95,
        "min": ordered[0],
        "max": ordered[-1],
    }


def _clean_env() -> dict:
    """The environment of a user with no key and no rag-assistant variables, whose Python
    caches bytecode (pip compiles an installed package; ``PYTHONDONTWRITEBYTECODE``, set on
    some development machines, would make every cold start compile the package)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAG_", "OPENAI_", "TIKTOKEN")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONHASHSEED"] = "0"
    env.update(_SIZE_ENV)
    return env


_SIZE_ENV: dict[str, str] = {}
"""Settings of the size being measured (the sentence encoder off where it does not run)."""


# --- child tasks (each in its own process) ---------------------------------------------


def task_ingest(args: dict) -> dict:
    """Our ingest, timed (like the peer's) from before its imports: a fresh process, as a
    user's ``rag-assistant ingest`` is."""
    started = time.perf_counter()
    from rag_assistant import Assistant
    from rag_assistant.settings import Settings

    assistant = Assistant(Settings(home=args["home"], auto_ingest_bundled=False))
    report = assistant.ingest(args["paths"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": _cpu_s(),
        "papers": report.papers,
        "chunks": report.chunks,
        "added": report.added,
        "embedded": report.embedded,
        "refitted": report.refitted,
        "stages": report.stages,
        "maxrss_mib": _maxrss_mib(),
        # the producer process's peak (0 when it ran in this process)
        "producer_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def task_query(args: dict) -> dict:
    import numpy as np

    from rag_assistant import Assistant
    from rag_assistant.settings import Settings
    from rag_assistant.text.terms import query_terms

    questions = args["questions"]
    assistant = Assistant(Settings(home=args["home"], answer={"llm": "offline"}))
    for q in questions[:5]:  # warm: models, caches, connections
        assistant.ask(q)
    retrieve_ms, ask_ms, refused = [], [], 0
    for q in questions:
        t = time.perf_counter()
        assistant.retrieve(q)
        retrieve_ms.append((time.perf_counter() - t) * 1000)
    for q in questions:
        t = time.perf_counter()
        answer = assistant.ask(q)
        ask_ms.append((time.perf_counter() - t) * 1000)
        refused += answer.refused
    ours_rss = _maxrss_mib()

    # The floor: bare bm25s over the same terms, NumPy brute force over the same vectors.
    import bm25s

    index = assistant.index
    started = time.perf_counter()
    ids, term_lists = [], []
    for chunk_id, terms in index.catalog.iter_terms():
        ids.append(chunk_id)
        term_lists.append(terms)
    floor_bm25 = bm25s.BM25()
    floor_bm25.index(term_lists, show_progress=False)
    bm25_build_s = time.perf_counter() - started
    del term_lists
    collection = index.vectors.collection(index.manifest().chroma.collection)
    row = {cid: i for i, cid in enumerate(ids)}
    matrix = np.zeros((len(ids), index.embedder().dimensions), np.float32)
    offset = 0
    while True:
        page = collection.get(include=["embeddings"], limit=5000, offset=offset)
        for cid, vector in zip(page["ids"], page["embeddings"], strict=True):
            matrix[row[cid]] = vector
        if len(page["ids"]) < 5000:
            break
        offset += 5000
    embedder = index.embedder()
    floor_ms, prep_ms, bm25_ms, dot_ms, recall = [], [], [], [], []
    k = min(CANDIDATES, len(ids))
    collection_name = index.manifest().chroma.collection
    for q in questions:
        t0 = time.perf_counter()
        terms = query_terms(q)
        vector = embedder.embed_query(q)
        t1 = time.perf_counter()
        known = [t for t in terms if t in floor_bm25.vocab_dict]
        if known:
            scores = floor_bm25.get_scores(known)
            top = np.argpartition(-scores, k - 1)[:k]
            top[np.argsort(-scores[top])]
        t2 = time.perf_counter()
        sims = matrix @ vector
        top = np.argpartition(-sims, k - 1)[:k]
        top[np.argsort(-sims[top])]
        t3 = time.perf_counter()
        prep_ms.append((t1 - t0) * 1000)
        bm25_ms.append((t2 - t1) * 1000)
        dot_ms.append((t3 - t2) * 1000)
        floor_ms.append((t3 - t0) * 1000)
        # Chroma's approximate (HNSW) candidates against the exact ones, same vector, in
        # the first 10 and in all k; a chunk tied with the exact n-th best counts as found
        found = [row[cid] for cid, _ in index.vectors.query(collection_name, vector, k)]
        exact = np.sort(sims)[::-1]
        recall.append(
            [
                sum(float(sims[i]) >= float(exact[n - 1]) - 1e-6 for i in found[:n]) / n
                for n in (min(10, k), k)
            ]
        )
    return {
        "retrieve_ms": retrieve_ms,
        "ask_ms": ask_ms,
        "refused": refused,
        "maxrss_mib": ours_rss,
        "floor": {
            "ms": floor_ms,
            "query_analysis_and_embedding_ms": prep_ms,
            "bm25_ms": bm25_ms,
            "dot_ms": dot_ms,
            "bm25_build_s": bm25_build_s,
            "chunks": len(ids),
            "dense_recall": recall,
        },
    }


def task_peer(args: dict) -> dict:
    """LlamaIndex's tutorial pipeline: Documents -> SentenceSplitter -> VectorStoreIndex over
    ChromaVectorStore, with our fitted LSA embedder wrapped as a BaseEmbedding (the same
    embedding model). Timed from before its imports, as ours is; loading our fitted model
    is left out (the peer is handed the model ours fits within its time)."""
    started = time.perf_counter()
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from pydantic import PrivateAttr

    from rag_assistant import corpus
    from rag_assistant.settings import Settings
    from rag_assistant.store.embeddings import LSAEmbedder

    home = Path(args["home"])
    chunking = Settings().chunking  # the same chunk size and overlap as ours
    manifest = json.loads((home / "manifest.json").read_text())
    loading = time.perf_counter()
    lsa = LSAEmbedder.load(home / manifest["dense_model"])
    started += time.perf_counter() - loading

    class LSAEmbedding(BaseEmbedding):
        _lsa: LSAEmbedder = PrivateAttr()

        def __init__(self, model: LSAEmbedder) -> None:
            super().__init__(model_name="lsa")
            self._lsa = model

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._lsa.embed_query(query).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._lsa.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._lsa.embed(texts).tolist()

    documents = []
    for path in args["paths"]:
        if Path(path).is_dir():  # listing pages: the user needs a parser; ours is given
            for paper in corpus.parse_paths([path]).papers.values():
                documents.append(Document(text=paper.abstract, metadata={"title": paper.title}))
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                documents.append(
                    Document(
                        text=" ".join(record["abstract"].split()),
                        metadata={"title": " ".join(record["title"].split())},
                    )
                )
    client = chromadb.PersistentClient(
        path=args["chroma"], settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection("peer", embedding_function=None)
    storage = StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=collection)
    )
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=storage,
        embed_model=LSAEmbedding(lsa),
        transformations=[
            SentenceSplitter(chunk_size=chunking.chunk_size, chunk_overlap=chunking.chunk_overlap)
        ],
    )
    ingest_s = time.perf_counter() - started
    nodes = collection.count()
    retriever = index.as_retriever(similarity_top_k=5)
    for q in args["questions"][:5]:
        retriever.retrieve(q)
    query_ms = []
    for q in args["questions"]:
        t = time.perf_counter()
        retriever.retrieve(q)
        query_ms.append((time.perf_counter() - t) * 1000)
    return {
        "ingest_s": ingest_s,
        "cpu_s": _cpu_s(),
        "papers": len(documents),
        "nodes": nodes,
        "query_ms": query_ms,
        "maxrss_mib": _maxrss_mib(),
    }


TASKS = {"ingest": task_ingest, "query": task_query, "peer": task_peer}


def child(task: str, args: dict, *, timeout: float = 7200) -> dict:
    """Run ``task`` in a fresh interpreter; its result comes back as JSON on stdout, with
    the 1-minute load average before and after it."""
    load_before = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(args, handle)
    try:
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "_child", task, handle.name],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise RuntimeError(f"bench task {task} failed:\n{result.stderr[-4000:]}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["load"] = [load_before, os.getloadavg()[0]]
    return out


# --- the orchestration ---------------------------------------------------------------------


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for name in (
        "rag-assistant",
        "chromadb",
        "llama-index-core",
        "llama-index-vector-stores-chroma",
        "bm25s",
        "numpy",
        "scipy",
        "scikit-learn",
        "tiktoken",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory / 2**30, 1),
        "cpu": cpu,
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _du(path: Path) -> dict:
    sizes: dict[str, int] = {}
    total = 0
    for f in path.rglob("*"):
        if f.is_file():
            size = f.stat().st_size
            total += size
            part = f.relative_to(path).parts[0]
            sizes[part] = sizes.get(part, 0) + size
    return {
        "total_mib": total / 2**20,
        "parts_mib": {k: v / 2**20 for k, v in sorted(sizes.items())},
    }


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "rag-assistant"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag_assistant.cli"]


def _timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command``. On a busy machine the CPU
    time of a one-threaded start-up is close to what its wall time would be on an idle one."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env())
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (a producer process)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def corpus_for(size: str, workdir: Path, n_questions: int, seed: int):
    """(paths, paper count, questions, incremental file) for a size."""
    import synth

    from rag_assistant import corpus

    generator = None
    if size == "bundled":
        papers = sorted(
            corpus.parse_paths([corpus.bundled_corpus_dir()]).papers.values(),
            key=lambda p: p.paper_id,
        )
        paths = [str(corpus.bundled_corpus_dir())]
        picked = [(p.paper_id, p.title, p.abstract) for p in papers]
        n = len(papers)
    else:
        n = int(size)
        path = workdir / f"arxiv-synthetic-{n}-seed{seed}.json"
        if not path.exists():
            _log(f"generating {n:,} synthetic abstracts -> {path}")
            generator = synth.Generator(seed)
            generator.write(path, n)
        paths = [str(path)]
        picked = synth.sample_for_questions(path, n, n_questions, seed=seed)
    questions = [q.text for q in synth.questions_for(picked, n_questions, seed=seed)]
    extra = workdir / f"arxiv-synthetic-extra-{size}-seed{seed}.json"
    (generator or synth.Generator(seed)).write(extra, INCREMENTAL_PAPERS, start=10_000_000)
    return paths, n, questions, extra


def _median_run(runs: list[dict], key: str) -> dict:
    """The run of median ``key`` (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2]


def run_size(size: str, opts, workdir: Path) -> dict:
    paths, _, questions, extra = corpus_for(size, workdir, opts.questions, opts.seed)
    home = workdir / f"home-{size}"
    out: dict = {"size": size, "questions": len(questions)}
    peer_here = opts.peer and (opts.peer_sizes == "all" or size in opts.peer_sizes.split(","))
    peer_chroma = workdir / f"peer-{size}"
    encoder_here = opts.encoder_sizes == "all" or size in opts.encoder_sizes.split(",")
    _SIZE_ENV.clear()
    if not encoder_here:
        _SIZE_ENV["RAG_ASSISTANT_ENCODER__MODEL"] = "off"
    out["encoder"] = "auto (on when installed)" if encoder_here else "off"

    # Ours and the peer ingest in turn, each round back to back: a pair sees about the
    # same load, and the ratio of a pair is what the table reports (median over rounds).
    ours, peers = [], []
    for round_ in range(1, opts.ingest_runs + 1):
        of = f" (round {round_} of {opts.ingest_runs})" if opts.ingest_runs > 1 else ""
        shutil.rmtree(home, ignore_errors=True)
        _log(f"[{size}] ingest{of}")
        ours.append(child("ingest", {"home": str(home), "paths": paths}))
        if peer_here:
            _log(f"[{size}] peer: LlamaIndex VectorStoreIndex over ChromaVectorStore{of}")
            shutil.rmtree(peer_chroma, ignore_errors=True)
            peer = child(
                "peer",
                {
                    "home": str(home),
                    "paths": paths,
                    "questions": questions,
                    "chroma": str(peer_chroma),
                },
            )
            peer["index_size_mib"] = _du(peer_chroma)["total_mib"]
            peers.append(peer)
            if not opts.keep:
                shutil.rmtree(peer_chroma, ignore_errors=True)
    out["ingest"] = _median_run(ours, "seconds")
    out["ingest_runs"] = ours
    if peers:
        out["peer"] = _median_run(peers, "ingest_s")
        out["peer_runs"] = peers
    out["index_size"] = _du(home)
    _log(f"[{size}] incremental ingest of {INCREMENTAL_PAPERS} papers")
    out["incremental"] = child("ingest", {"home": str(home), "paths": [str(extra)]})

    _log(f"[{size}] warm retrieve / ask / floor over {len(questions)} questions")
    out["query"] = child("query", {"home": str(home), "questions": questions})

    _log(f"[{size}] cold `rag-assistant ask` x{opts.cold_runs}")
    cold = []
    load_before = os.getloadavg()[0]
    for q in questions[: opts.cold_runs]:
        cold.append(
            _timed([*_cli(), "ask", "--home", str(home), "--llm", "offline", "--no-stream", q])
        )
    out["cold_ask_s"] = [wall for wall, _ in cold]
    out["cold_ask_cpu_s"] = [cpu for _, cpu in cold]
    out["cold_ask_load"] = [load_before, os.getloadavg()[0]]
    if not opts.keep:
        shutil.rmtree(home, ignore_errors=True)
    return out


def summarize(results: dict) -> dict:
    """Per size: the numbers of the table."""
    rows = []
    for r in results["sizes"]:
        ing, q = r["ingest"], r["query"]
        retrieve, ask, floor = (
            _stats(q["retrieve_ms"]),
            _stats(q["ask_ms"]),
            _stats(q["floor"]["ms"]),
        )
        row = {
            "size": r["size"],
            "encoder": r.get("encoder", "?"),
            "papers": ing["papers"],
            "chunks": ing["chunks"],
            "ingest_s": ing["seconds"],
            "papers_per_s": ing["papers"] / ing["seconds"],
            "chunks_per_s": ing["chunks"] / ing["seconds"],
            "ingest_stages_s": ing["stages"],
            # the writer's peak plus the producer's: at least the peak of both at once
            "ingest_rss_mib": ing["maxrss_mib"] + ing.get("producer_maxrss_mib", 0.0),
            "ingest_rss_parts_mib": [ing["maxrss_mib"], ing.get("producer_maxrss_mib", 0.0)],
            "incremental_s": r["incremental"]["seconds"],
            "incremental_embedded": r["incremental"]["embedded"],
            "incremental_refitted": r["incremental"]["refitted"],
            "index_mib": r["index_size"]["total_mib"],
            "index_parts_mib": r["index_size"]["parts_mib"],
            "retrieve_ms": retrieve,
            "ask_ms": ask,
            "refused": q["refused"],
            "query_rss_mib": q["maxrss_mib"],
            "floor_ms": floor,
            "floor_parts_ms": {
                "analysis+embedding": _stats(q["floor"]["query_analysis_and_embedding_ms"])[
                    "median"
                ],
                "bm25s": _stats(q["floor"]["bm25_ms"])["median"],
                "numpy_dot": _stats(q["floor"]["dot_ms"])["median"],
            },
            "retrieve_over_floor": retrieve["median"] / floor["median"],
            "retrieve_over_floor_p95": retrieve["p95"] / floor["p95"],
            "dense_recall": [
                statistics.fmean(pair[i] for pair in q["floor"]["dense_recall"]) for i in (0, 1)
            ],
            "cold_ask_s": _stats(r["cold_ask_s"]),
            "cold_ask_cpu_s": _stats(r["cold_ask_cpu_s"]),
            "ingest_cpu_s": ing["cpu_s"],
            "ingest_rounds": len(r["ingest_runs"]),
            "load": {
                "ingest": ing["load"],
                "query": q["load"],
                "cold_ask": r["cold_ask_load"],
            },
        }
        if "peer" in r:
            p = r["peer"]
            peer_query = _stats(p["query_ms"])
            row["peer"] = {
                "ingest_s": p["ingest_s"],
                "cpu_s": p["cpu_s"],
                "papers_per_s": p["papers"] / p["ingest_s"],
                "nodes": p["nodes"],
                "query_ms": peer_query,
                "rss_mib": p["maxrss_mib"],
                "index_mib": p["index_size_mib"],
                "load": p["load"],
            }
            # ours / peer, from this run: above 1 ingests faster; below 1 retrieves faster.
            # Each round's pair ran back to back; the median of the pairs' ratios.
            pairs = [
                peer["ingest_s"] / mine["seconds"]
                for mine, peer in zip(r["ingest_runs"], r["peer_runs"], strict=True)
            ]
            row["ingest_over_peer_rounds"] = pairs
            row["ingest_over_peer"] = statistics.median(pairs)
            row["ingest_cpu_over_peer"] = p["cpu_s"] / ing["cpu_s"]
            row["retrieve_over_peer"] = retrieve["median"] / peer_query["median"]
        rows.append(row)
    return {
        "rows": rows,
        "help_s": _stats(results["help_s"]),
        "help_cpu_s": _stats(results["help_cpu_s"]),
    }


def targets(summary: dict) -> list[dict]:
    """Each target of issues 6 and 17 with the measured value, where this run measured it."""
    by_size = {r["size"]: r for r in summary["rows"]}
    checks = [("`--help` wall time (median)", summary["help_s"]["median"], TARGETS["help_s"], "s")]
    for r in summary["rows"]:
        checks.append(
            (
                f"cold `ask` median, {r['size']}",
                r["cold_ask_s"]["median"],
                TARGETS["cold_ask_s"],
                "s",
            )
        )
    if "bundled" in by_size:
        checks.append(
            (
                "warm ask median, bundled",
                by_size["bundled"]["ask_ms"]["median"],
                TARGETS["ask_ms_bundled"],
                "ms",
            )
        )
    if "ingest_over_peer" in by_size.get("10000", {}):
        checks.append(
            (
                "ingest papers/s over the peer's, 10k",
                by_size["10000"]["ingest_over_peer"],
                TARGETS["ingest_peer_ratio_10k"],
                "x (ours / peer)",
            )
        )
    if "100000" in by_size:
        r = by_size["100000"]
        checks += [
            ("warm ask median, 100k", r["ask_ms"]["median"], TARGETS["ask_ms_100k"], "ms"),
            (
                "retrieve / floor (median), 100k",
                r["retrieve_over_floor"],
                TARGETS["retrieve_floor_ratio_100k"],
                "x",
            ),
            ("ingest peak RSS, 100k", r["ingest_rss_mib"], TARGETS["ingest_rss_mib_100k"], "MiB"),
            (
                "ingest throughput, 100k",
                r["papers_per_s"],
                TARGETS["ingest_papers_per_s_100k"],
                "papers/s",
            ),
        ]
        if "ingest_over_peer" in r and "ingest_over_peer" in by_size.get("10000", {}):
            # on a loaded machine: the ratio to the peer holds at 100k as at 10k
            checks.append(
                (
                    "ingest over the peer, 100k (at least the 10k ratio)",
                    r["ingest_over_peer"],
                    by_size["10000"]["ingest_over_peer"],
                    "x (ours / peer)",
                )
            )
    out = []
    for name, value, target, unit in checks:
        higher_is_better = unit == "papers/s" or unit.startswith("x (ours")
        met = value >= target if higher_is_better else value <= target
        out.append({"target": name, "value": value, "limit": target, "unit": unit, "met": met})
    return out


def _fmt(st: dict, scale: float = 1.0, digits: int = 1) -> str:
    """median / p95"""
    return f"{st['median'] * scale:.{digits}f} / {st['p95'] * scale:.{digits}f}"


def _preamble(results: dict) -> list[str]:
    m = results["machine"]
    return [
        f"machine: {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gib']} GiB, "
        f"{m['cpu']}; Python {m['python']}",
        f"load average (1 min) at start {m['load_average_at_start'][0]:.2f}, at end "
        f"{m['load_average_at_end'][0]:.2f}, mean of samples between steps "
        f"{m['load_average_mean']:.2f} ({m['cores']} cores): "
        + (
            "the machine was not idle, so times are pessimistic; compare ratios"
            if m["load_average_mean"] > 0.5
            else "about idle"
        ),
        "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"questions per size: {results['options']['questions']}; times: median / p95",
        *([f"note: {results['note']}"] if results.get("note") else []),
    ]


def _table(results: dict) -> list[list[str]]:
    """The rows of the table (the first is the header)."""
    s = results["summary"]

    def load(pair: list[float]) -> str:
        return f"{pair[0]:.1f}→{pair[1]:.1f}"

    header = ["", *[r["size"] for r in s["rows"]]]
    table = [
        [
            "load avg: ingest / queries",
            *[f"{load(r['load']['ingest'])} / {load(r['load']['query'])}" for r in s["rows"]],
        ],
        ["sentence encoder", *[r.get("encoder", "?") for r in s["rows"]]],
        ["papers", *[f"{r['papers']:,}" for r in s["rows"]]],
        ["chunks", *[f"{r['chunks']:,}" for r in s["rows"]]],
        ["ingest (s)", *[f"{r['ingest_s']:.1f}" for r in s["rows"]]],
        ["  CPU (s, both processes)", *[f"{r['ingest_cpu_s']:.1f}" for r in s["rows"]]],
        ["  papers/s", *[f"{r['papers_per_s']:,.0f}" for r in s["rows"]]],
        ["  chunks/s", *[f"{r['chunks_per_s']:,.0f}" for r in s["rows"]]],
        [
            "  catalog/fit/dense/sentences/lexical (s)",
            *[
                "/".join(
                    f"{r['ingest_stages_s'].get(k, 0):.1f}"
                    for k in ("catalog", "fit", "dense", "sentences", "lexical")
                )
                for r in s["rows"]
            ],
        ],
        [
            f"+{INCREMENTAL_PAPERS} papers later (s)",
            *[f"{r['incremental_s']:.2f}" for r in s["rows"]],
        ],
        [
            "ingest peak RSS (MiB): writer + producer",
            *[
                f"{r['ingest_rss_mib']:,.0f} ({r['ingest_rss_parts_mib'][0]:,.0f} + "
                f"{r['ingest_rss_parts_mib'][1]:,.0f})"
                for r in s["rows"]
            ],
        ],
        ["index on disk (MiB)", *[f"{r['index_mib']:,.0f}" for r in s["rows"]]],
        ["warm retrieve (ms)", *[_fmt(r["retrieve_ms"]) for r in s["rows"]]],
        ["floor: bm25s + NumPy (ms)", *[_fmt(r["floor_ms"]) for r in s["rows"]]],
        [
            "retrieve / floor",
            *[
                f"{r['retrieve_over_floor']:.1f}x / {r['retrieve_over_floor_p95']:.1f}x"
                for r in s["rows"]
            ],
        ],
        [
            "dense recall@10 / @40 (HNSW vs exact)",
            *[f"{r['dense_recall'][0]:.3f} / {r['dense_recall'][1]:.3f}" for r in s["rows"]],
        ],
        ["warm ask, offline (ms)", *[_fmt(r["ask_ms"]) for r in s["rows"]]],
        ["query peak RSS (MiB)", *[f"{r['query_rss_mib']:,.0f}" for r in s["rows"]]],
        ["cold `rag-assistant ask` (s)", *[_fmt(r["cold_ask_s"], digits=2) for r in s["rows"]]],
        ["  its CPU time (s)", *[_fmt(r["cold_ask_cpu_s"], digits=2) for r in s["rows"]]],
    ]
    if any("peer" in r for r in s["rows"]):
        table += [
            [
                "ours / peer: ingest papers/s",
                *[f"{r['ingest_over_peer']:.2f}x" if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "  per round (peer s / ours s)",
                *[
                    " ".join(f"{x:.2f}" for x in r["ingest_over_peer_rounds"])
                    if "peer" in r
                    else "-"
                    for r in s["rows"]
                ],
            ],
            [
                "  CPU: peer / ours",
                *[f"{r['ingest_cpu_over_peer']:.2f}x" if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "ours / peer: retrieve median",
                *[f"{r['retrieve_over_peer']:.2f}x" if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "peer: load avg",
                *[load(r["peer"]["load"]) if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "peer: LlamaIndex ingest (s)",
                *[f"{r['peer']['ingest_s']:.1f}" if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "  papers/s",
                *[f"{r['peer']['papers_per_s']:,.0f}" if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "peer: retrieve (ms)",
                *[_fmt(r["peer"]["query_ms"]) if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "peer: peak RSS (MiB)",
                *[f"{r['peer']['rss_mib']:,.0f}" if "peer" in r else "-" for r in s["rows"]],
            ],
            [
                "peer: index on disk (MiB)",
                *[f"{r['peer']['index_mib']:,.0f}" if "peer" in r else "-" for r in s["rows"]],
            ],
        ]
    return [header, *table]


def _verdicts(results: dict) -> list[tuple[str, str]]:
    out = []
    for t in results["targets"]:
        sign = "≥" if t["unit"] == "papers/s" or t["unit"].startswith("x (ours") else "≤"
        out.append(
            (
                "met" if t["met"] else "MISSED",
                f"{t['target']}: {t['value']:.2f} {t['unit']} (target {sign} {t['limit']:g})",
            )
        )
    return out


def render(results: dict) -> str:
    """The printed table."""
    s = results["summary"]
    rows = _table(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [*_preamble(results), ""]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)
            )
        )
    lines.append(
        f"`rag-assistant --help`: {_fmt(s['help_s'], digits=2)} s "
        f"(CPU {_fmt(s['help_cpu_s'], digits=2)} s)"
    )
    lines.append("")
    lines += [f"{mark:6s} {text}" for mark, text in _verdicts(results)]
    return "\n".join(lines)


def render_markdown(results: dict) -> str:
    """The same table in Markdown (for the README)."""
    s = results["summary"]
    rows = _table(results)
    lines = [f"`{results['command']}`, {results['started']}", ""]
    lines += [f"- {line}" for line in _preamble(results)]
    lines.append("")
    lines.append("| " + " | ".join(c or "size" for c in rows[0]) + " |")
    lines.append("|---" + "|---:" * (len(rows[0]) - 1) + "|")
    for row in rows[1:]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    lines.append("")
    lines.append(
        f"`rag-assistant --help`: {_fmt(s['help_s'], digits=2)} s (median / p95; CPU "
        f"{_fmt(s['help_cpu_s'], digits=2)} s)"
    )
    lines.append("")
    lines += [f"- {mark}: {text}" for mark, text in _verdicts(results)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="bundled,10000,100000",
        help="comma-separated: bundled and/or numbers of synthetic papers",
    )
    parser.add_argument("--questions", type=int, default=200, help="questions per size")
    parser.add_argument(
        "--cold-runs", type=int, default=5, help="cold `rag-assistant ask` runs per size"
    )
    parser.add_argument("--help-runs", type=int, default=10, help="`rag-assistant --help` runs")
    parser.add_argument(
        "--ingest-runs",
        type=int,
        default=1,
        help="ingests per size, ours and the peer's in turn (medians; the ratio is the "
        "median of each round's pair)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="bundled and 10,000 papers, 50 questions, fewer cold runs (a few minutes)",
    )
    parser.add_argument(
        "--peer-sizes",
        default="bundled,10000",
        help="sizes at which the LlamaIndex peer runs too ('all' for every size)",
    )
    parser.add_argument(
        "--no-peer", dest="peer", action="store_false", help="skip the LlamaIndex peer"
    )
    parser.add_argument(
        "--encoder-sizes",
        default="bundled",
        help="sizes at which the sentence encoder runs when installed ('all' for every size; "
        "elsewhere RAG_ASSISTANT_ENCODER__MODEL=off: encoding 100,000 papers takes hours)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="a remark printed with the results")
    parser.add_argument("--workdir", type=Path, help="keep corpora (and with --keep, indexes) here")
    parser.add_argument("--keep", action="store_true", help="keep the indexes built")
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON output, with a Markdown table beside it as .md (default "
        "bench/results/latest.json)",
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.sizes, opts.questions, opts.cold_runs, opts.help_runs = "bundled,10000", 50, 3, 5

    started = time.perf_counter()
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "machine": machine(),
        "sizes": [],
    }
    try:
        for size in [s.strip() for s in opts.sizes.split(",") if s.strip()]:
            results["sizes"].append(run_size(size, opts, workdir))
        _log(f"`rag-assistant --help` x{opts.help_runs}")
        helps = [_timed([*_cli(), "--help"]) for _ in range(opts.help_runs)]
        results["help_s"] = [wall for wall, _ in helps]
        results["help_cpu_s"] = [cpu for _, cpu in helps]
    finally:
        if opts.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["summary"] = summarize(results)
    results["targets"] = targets(results["summary"])
    results["wall_s"] = time.perf_counter() - started
    results["machine"]["load_average_at_end"] = os.getloadavg()
    LOAD_SAMPLES.append(os.getloadavg()[0])
    results["machine"]["load_average_mean"] = statistics.fmean(LOAD_SAMPLES)
    results["note"] = opts.note
    text = render(results)
    print(text)
    out = opts.out or HERE / "results" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(render_markdown(results))
    print(
        f"\nwritten: {out} and {out.with_suffix('.md')} "
        f"(benchmark wall time {results['wall_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_child":
        args = json.loads(Path(sys.argv[3]).read_text())
        print(json.dumps(TASKS[sys.argv[2]](args)))
        sys.exit(0)
    sys.exit(main())
