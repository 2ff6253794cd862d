"""Time to first streamed token of the chat UI, measured the way a user's browser sees it.

Launches the app (offline answers) on an index of the bundled corpus, then asks questions
through gradio_client over HTTP, one at a time, and records for each the time from submitting
the question to the first update that carries answer text, and to the finished answer.
The first question (cold: the lexical index and the dense model are loaded) is reported
apart from the median of the next ``--runs``. Beside it, the floor: the same questions
streamed in-process through ``Assistant.stream`` (time to the first answer text), so what
the UI and HTTP add is visible; and the machine's load average at the start and the end.

    .venv/bin/python bench/ui_ttft.py            # fresh temporary index of the bundled corpus
    .venv/bin/python bench/ui_ttft.py --home DIR # an existing index

Writes bench/results/ui_ttft.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

from gradio_client import Client

from rag_assistant import Assistant
from rag_assistant.settings import Settings
from rag_assistant.types import TextDelta
from rag_assistant.ui import EXAMPLES, serve

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_answer_text(output) -> bool:
    """True once the assistant's message holds answer text (not the 'retrieving…' line)."""
    chat = output[0]
    if not chat or chat[-1]["role"] != "assistant":
        return False
    text = chat[-1]["content"][0]["text"]
    return "▌" in text or "Sources:" in text or "🚫" in text


def ask(client: Client, question: str) -> tuple[float, float]:
    """(seconds to the first answer text, seconds to the finished answer)."""
    started = time.perf_counter()
    job = client.submit(question, [], 5, "offline", api_name="/ask")
    first = None
    for output in job:
        if first is None and has_answer_text(output):
            first = time.perf_counter() - started
    job.result()
    total = time.perf_counter() - started
    return (first if first is not None else total), total


def in_process(assistant: Assistant, question: str) -> float:
    """Seconds to the first answer text streamed by the Python API (no UI, no HTTP)."""
    started = time.perf_counter()
    for event in assistant.stream(question, k=5):
        if isinstance(event, TextDelta):
            return time.perf_counter() - started
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an existing index (default: a fresh one)")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    load_start = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        assistant = Assistant(Settings(home=home, answer={"llm": "offline"}))
        if assistant.index.is_empty():
            assistant.ingest_bundled()
        app, url = serve(assistant, port=free_port(), block=False)
        try:
            client = Client(url, verbose=False)
            cold_first, cold_total = ask(client, EXAMPLES[0])
            runs = [ask(client, EXAMPLES[i % len(EXAMPLES)]) for i in range(args.runs)]
        finally:
            app.close()
        floor = [in_process(assistant, EXAMPLES[i % len(EXAMPLES)]) for i in range(args.runs)]

    firsts = [r[0] for r in runs]
    totals = [r[1] for r in runs]
    result = {
        "what": "chat UI, offline answers, gradio_client over HTTP on localhost",
        "runs": args.runs,
        "cold_first_token_s": round(cold_first, 4),
        "cold_total_s": round(cold_total, 4),
        "median_first_token_s": round(statistics.median(firsts), 4),
        "min_first_token_s": round(min(firsts), 4),
        "max_first_token_s": round(max(firsts), 4),
        "median_total_s": round(statistics.median(totals), 4),
        "first_token_s": [round(x, 4) for x in firsts],
        "floor_median_first_text_s": round(statistics.median(floor), 4),
        "load_average_1m_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ui_ttft.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
