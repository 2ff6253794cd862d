"""scripts/fit_sentence_weights.py, run as a user runs it, on a hand-made index and Q&A file:
it fits a weight for every feature of a candidate sentence, and refuses a held-out file."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_sentence_weights.py"

PAPERS = [
    (
        f"{name} Routing",
        f"Packet routing in mesh networks suffers under heavy load. We propose {name} "
        f"Routing, which follows scent gradients. {name} Routing cuts latency by {n}% on "
        f"mesh networks. Our code is available at https://example.org/{name.lower()}.",
    )
    for name, n in [("Wombat", 41), ("Numbat", 23), ("Quokka", 37), ("Bilby", 12)]
]


@pytest.fixture(scope="module")
def index_and_qa(tmp_path_factory, index_papers):
    folder = tmp_path_factory.mktemp("fit")
    home = index_papers(folder, PAPERS)
    qa = folder / "qa.jsonl"
    qa.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "question": f"How much does {title} cut latency on mesh networks?",
                    "reference_answer": "",
                    "gold_titles": [title],
                    "key_facts": [f"{n}%"],
                    "kind": "single",
                }
            )
            + "\n"
            for i, ((title, _), n) in enumerate(zip(PAPERS, [41, 23, 37, 12], strict=True))
        )
    )
    return home, qa


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_it_fits_a_weight_for_every_feature_and_says_what_it_fitted_on(index_and_qa):
    home, qa = index_and_qa
    done = run("--qa", str(qa), "--home", str(home))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("4 questions, ")
    weights = ast.literal_eval(lines[1].removeprefix("fitted weights: "))
    assert {"lexical", "meaning", "background", "states_number", "bias"} <= weights.keys()
    # the sentences stating the key fact ("cuts latency by 41%") state a number
    assert weights["states_number"] > 0
    assert lines[2].startswith("key facts in the 5 best-scored sentences: hand ")


def test_a_held_out_file_is_refused(index_and_qa, tmp_path):
    home, qa = index_and_qa
    held = tmp_path / "holdout.jsonl"
    held.write_text(qa.read_text())
    done = run("--qa", str(held), "--home", str(home))
    assert done.returncode != 0
    assert "is a held-out set: it is reported, never fitted on" in done.stderr
