"""What late-interaction reranking (``retrieval.rerank``) costs a question, and what it does.

On an index of the bundled corpus, the lay questions of a Q&A file (``paraphrase``, first
turns; eval/dev.jsonl by default) are retrieved in one process, each question once per way:
the peer, the fused ranking alone (``rerank`` 0); then with ``rerank`` 10 (the default: the
abstracts' word vectors read from the index, the question's from the pass that encodes it
for retrieval) twice, the second time with each question asked before. It prints the median
and 90th percentile of each, hit@1 of each, the machine and its load average at the start
and the end.

    .venv/bin/python bench/rerank.py                 # fresh temporary index of the bundled corpus
    .venv/bin/python bench/rerank.py --home DIR      # an existing index
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rag_assistant import Assistant
from rag_assistant.evaluation.dataset import load_qa
from rag_assistant.evaluation.metrics import title_key
from rag_assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def timed(assistant: Assistant, questions) -> tuple[list[float], float]:
    """Milliseconds per question, and the share whose first paper is a gold one."""
    ms, hits = [], 0
    for item in questions:
        started = time.perf_counter()
        found = assistant.retrieve(item.question)
        ms.append((time.perf_counter() - started) * 1000)
        gold = {title_key(t) for t in item.gold_titles}
        hits += bool(found) and title_key(found[0].title) in gold
    return ms, hits / len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="an existing index")
    parser.add_argument("--qa", default=str(ROOT / "eval" / "dev.jsonl"), help="Q&A file")
    parser.add_argument("--n", type=int, default=40, help="lay questions timed (default 40)")
    args = parser.parse_args()
    questions = [q for q in load_qa(args.qa) if q.kind == "paraphrase" and not q.follows][: args.n]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        if args.home is None:
            Assistant(Settings(home=home)).ingest_bundled()
        offline = {"home": home, "answer": {"llm": "offline"}}
        peer = Assistant(Settings(**offline, retrieval={"rerank": 0}))
        peer.retrieve("warm up: load the indexes and the encoder")
        rows = [("fused only (rerank 0)", *timed(peer, questions))]
        reranked = Assistant(Settings(**offline, retrieval={"rerank": 10}))
        reranked.retrieve("warm up: load the indexes and the encoder")
        rows.append(("rerank 10 (the default)", *timed(reranked, questions)))
        rows.append(("rerank 10, each asked again", *timed(reranked, questions)))
    load_end = os.getloadavg()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end; {len(questions)} lay questions of {args.qa}"
    )
    print(f"{'retrieve':32s} {'median ms':>10s} {'p90 ms':>10s} {'hit@1':>7s}")
    for name, ms, hit in rows:
        p90 = statistics.quantiles(ms, n=10)[-1]
        print(f"{name:32s} {statistics.median(ms):10.1f} {p90:10.1f} {hit:7.3f}")


if __name__ == "__main__":
    main()
