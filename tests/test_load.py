"""Load: 50 ``Assistant.ask`` calls at once from threads on the bundled index are all
answered, with the same answer and the same cited papers as the same question asked alone.

The p95 latency is printed for the record (never asserted: performance is measured in
``bench/``; the memory soak is ``bench/soak.py``).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rag_assistant import Assistant

QA = Path(__file__).resolve().parents[1] / "eval" / "qa.jsonl"
CALLS = 50
DISTINCT = 10


def questions() -> list[str]:
    lines = QA.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines[:DISTINCT]]


def test_fifty_concurrent_questions_get_the_sequential_answers(
    assistant: Assistant, say, record_property
):
    asked = questions()
    alone = {q: assistant.ask(q) for q in asked}  # the reference, one at a time
    assert any(a.citations for a in alone.values())  # real answers, not all refusals

    start = threading.Barrier(CALLS, timeout=120)

    def ask(i: int):
        question = asked[i % DISTINCT]
        start.wait()  # all 50 in flight together
        began = time.perf_counter()
        answer = assistant.ask(question)
        return question, answer, time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        results = list(pool.map(ask, range(CALLS)))  # re-raises any error of a call

    assert len(results) == CALLS
    for question, answer, _ in results:
        reference = alone[question]
        assert answer.text == reference.text
        assert [c.to_dict() for c in answer.citations] == [c.to_dict() for c in reference.citations]
        assert answer.refused == reference.refused
        assert [s.paper_id for s in answer.sources] == [s.paper_id for s in reference.sources]

    seconds = np.array([r[2] for r in results])
    line = (
        f"load: {CALLS} concurrent asks, p50 {np.percentile(seconds, 50):.2f} s, "
        f"p95 {np.percentile(seconds, 95):.2f} s, max {seconds.max():.2f} s"
    )
    record_property("p95_seconds", float(np.percentile(seconds, 95)))
    say(line)
