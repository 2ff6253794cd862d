"""scripts/list_ceiling.py, run as a user runs it, on a hand-made index and Q&A file: per
kind, the fused hit@1, each list's and the best list's; follow-ups and unanswerable questions
left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "list_ceiling.py"

PAPERS = [
    (
        f"{name} Routing",
        f"Packet routing in mesh networks suffers under heavy load. We propose {name} "
        f"Routing, which follows {clue}. {name} Routing cuts latency by {n}% on mesh networks.",
    )
    for name, clue, n in [
        ("Wombat", "scent gradients", 41),
        ("Numbat", "termite trails", 23),
        ("Quokka", "sunlight angles", 37),
        ("Bilby", "moisture levels", 12),
    ]
]


def line(id_: str, question: str, kind: str, gold: list[str], **extra) -> str:
    record = {
        "id": id_,
        "question": question,
        "reference_answer": "",
        "gold_titles": gold,
        "key_facts": [],
        "kind": kind,
        **extra,
    }
    return json.dumps(record) + "\n"


@pytest.fixture(scope="module")
def index_and_qa(tmp_path_factory, index_papers):
    folder = tmp_path_factory.mktemp("ceiling")
    home = index_papers(folder, PAPERS)
    qa = folder / "qa.jsonl"
    qa.write_text(
        line("a", "Which routing follows scent gradients?", "single", ["Wombat Routing"])
        + line("b", "Which routing follows termite trails?", "single", ["Numbat Routing"])
        # every list puts Quokka Routing first: none can rank the gold paper first
        + line("c", "Which routing follows sunlight angles?", "paraphrase", ["Bilby Routing"])
        + line("d", "Who won the 1998 World Cup?", "unanswerable", [])
        + line("e", "And by how much?", "follow-up", ["Numbat Routing"], follows="b")
    )
    return home, qa


def rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by kind: questions, fused, BM25, dense, sentences, oracle, any@5,
    found."""
    out = {}
    for text in stdout.splitlines():
        cells = [c.strip() for c in text.strip().strip("│").split("│")]
        if len(cells) == 9 and cells[1].isdigit():
            out[cells[0]] = cells[1:]
    return out


def test_it_reports_each_list_and_the_best_of_them_by_kind(index_and_qa):
    home, qa = index_and_qa
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--qa", str(qa), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert set(table) == {"single", "paraphrase", "all"}  # no follow-up, no unanswerable
    questions, fused, bm25, _, _, oracle, _, _ = table["single"]
    assert (questions, fused, bm25, oracle) == ("2", "1.000", "1.000", "1.000")
    questions, fused, bm25, _, _, oracle, any5, found = table["paraphrase"]
    assert (questions, fused, bm25, oracle) == ("1", "0.000", "0.000", "0.000")
    assert any5 == found == "1.000"  # four papers: the gold one is in BM25's top 5
    assert table["all"][:2] == ["3", "0.667"]


def test_a_file_without_an_answerable_question_says_so(index_and_qa, tmp_path):
    home, _ = index_and_qa
    qa = tmp_path / "qa.jsonl"
    qa.write_text(line("d", "Who won the 1998 World Cup?", "unanswerable", []))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--qa", str(qa), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "has no answerable first-turn question: nothing to rank" in done.stderr
