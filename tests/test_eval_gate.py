"""The CI gate: the offline evaluations of ``eval/qa.jsonl`` and of the blind held-out sets
``eval/holdout.jsonl`` to ``eval/holdout8.jsonl`` must meet the thresholds in
``eval/<name>.thresholds.json``. The thresholds are set from a measured baseline and are
never lowered to make this pass: a failure means a change made the assistant worse."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.evaluation.dataset import load_qa
from rag_assistant.evaluation.gate import check_thresholds, load_thresholds
from rag_assistant.evaluation.reports import write_report
from rag_assistant.evaluation.runner import run_eval
from rag_assistant.settings import Settings

PROJECT = Path(__file__).resolve().parents[1]
SETS = [
    "qa",
    "holdout",
    "holdout2",
    "holdout3",
    "holdout4",
    "holdout5",
    "holdout6",
    "holdout7",
    "holdout8",
]  # holdout*: written blind, reported, never tuned on


@pytest.mark.parametrize("name", SETS)
def test_offline_eval_meets_the_thresholds(home, tmp_path, name):
    QA = PROJECT / "eval" / f"{name}.jsonl"
    THRESHOLDS = PROJECT / "eval" / f"{name}.thresholds.json"
    missing = [str(p.relative_to(PROJECT)) for p in (QA, THRESHOLDS) if not p.is_file()]
    assert not missing, (
        f"the eval gate needs {' and '.join(missing)}: the Q&A file and the thresholds "
        "set from its measured baseline (`rag-assistant eval --llm offline`)"
    )
    assistant = Assistant(Settings(home=home, answer={"llm": "offline"}))
    report = run_eval(assistant, load_qa(QA), qa_path=QA)
    paths = write_report(report, tmp_path / "run")
    failures = check_thresholds(report, load_thresholds(THRESHOLDS))
    assert not failures, (
        f"the offline eval fell below {THRESHOLDS.name} (report: {paths[1]}):\n  "
        + "\n  ".join(failures)
    )
