"""Memory soak: ask many questions (offline answers) through one Assistant and report the
process's resident memory (RSS) before and after, and the growth.

The questions cycle through eval/qa.jsonl. RSS is read after a warm-up of ``--warmup``
questions (the lexical index, the dense model and Chroma are loaded by then), so the delta
is what the steady state adds, not start-up.

    .venv/bin/python bench/soak.py                 # 1,000 questions, fresh bundled index
    .venv/bin/python bench/soak.py --questions 200 --home DIR

Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from rag_assistant import Assistant
from rag_assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc; psutil elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil  # the [bench] extra

        return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--home", help="an existing index (default: a fresh bundled one)")
    args = parser.parse_args()

    questions = [
        json.loads(line)["question"]
        for line in (ROOT / "eval" / "qa.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(args.home) if args.home else Path(tmp) / "home"
        assistant = Assistant(Settings(home=home, answer={"llm": "offline"}))
        if assistant.index.is_empty():
            assistant.ingest_bundled()
        for q in questions[: args.warmup]:
            assistant.ask(q)
        gc.collect()
        start = rss_mib()
        began = time.perf_counter()
        refused = 0
        for i in range(args.questions):
            refused += assistant.ask(questions[i % len(questions)]).refused
        seconds = time.perf_counter() - began
        gc.collect()
        end = rss_mib()
    result = {
        "questions": args.questions,
        "warmup": args.warmup,
        "rss_start_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "rss_delta_mib": round(end - start, 1),
        "seconds": round(seconds, 1),
        "refused": refused,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.questions} questions in {seconds:.1f} s ({refused} refused); RSS "
        f"{start:.1f} MiB -> {end:.1f} MiB (delta {end - start:+.1f} MiB)"
    )


if __name__ == "__main__":
    main()
