"""Fusion that uses how strong each match is: an exact rare name ranks its paper first even
when the dense side's best match is noise, and papers added after the dense model was fitted
are found by their own names (the dense side steps aside for words it has never seen)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.answer.retrieval import Weights
from rag_assistant.text.terms import phrases
from rag_assistant.types import paper_id_of

WORDS = (
    "model training data attention layer token sequence retrieval benchmark accuracy latency "
    "memory cache graph image text speech vision policy reward agent search index query "
    "document embedding vector sparse dense loss gradient optimizer batch scale"
).split()


def code_name(rng: random.Random) -> str:
    letters = "bcdfghjkmnpqrstvwxz"
    return "".join(rng.choice(letters) for _ in range(3)) + str(rng.randint(2, 9)) + "x"


def papers(n: int, seed: int, prefix: str) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(60))
        out.append(
            {
                "title": f"{prefix} study {i}: {' '.join(rng.sample(WORDS, 4))}",
                "abstract": f"We study {body}. Code name {code_name(rng)}{i}.",
            }
        )
    return out


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def name_of(record: dict) -> str:
    return record["abstract"].rsplit("Code name ", 1)[1].rstrip(".")


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """300 papers with unique code names, the dense model fitted on them, then 100 more
    (fewer than the 300 fitted on: no refit, so their names are words the model never saw)."""
    root = tmp_path_factory.mktemp("names")
    first = papers(300, seed=1, prefix="Early")
    later = papers(100, seed=2, prefix="Late")
    assistant = Assistant(home=root / "home", auto_ingest_bundled=False)
    assistant.ingest([write(root / "first.jsonl", first)])
    report = assistant.ingest([write(root / "later.jsonl", later)])
    assert not report.refitted
    return assistant, first, later


def test_every_unique_name_ranks_its_paper_first_before_and_after_the_fit(named):
    assistant, first, later = named
    for record in random.Random(3).sample(first, 40) + random.Random(4).sample(later, 40):
        sources = assistant.retrieve(name_of(record), k=3)
        assert sources[0].title == record["title"], name_of(record)


def test_a_noise_level_dense_list_does_not_outvote_an_exact_rare_match(named):
    assistant, _, later = named
    target = later[17]
    name = name_of(target).lower()
    index = assistant.index
    # a question of words the model never saw has no dense vector: no dense list at all
    # (Chroma, searched with the zero vector, returned arbitrary chunks)
    assert index.dense_search(name, 5) == []
    # with one word it knows, the dense list ranks some other paper first: noise
    (top_chunk, _), *_ = index.dense_search(f"{name} model", 5)
    assert index.catalog.titles([paper_id_of(top_chunk)]) != {
        paper_id_of(top_chunk): target["title"]
    }
    # ... and it counts for nothing: the model never saw the word
    assert index.dense_confidence([name]) == 0.0
    assert assistant.retrieve(f"What is {name_of(target)}?", k=1)[0].title == target["title"]
    assert assistant.retrieve(f"{name_of(target)} model", k=1)[0].title == target["title"]


def test_the_sentence_list_steps_aside_for_a_name_it_cannot_read(named):
    """The sentence encoder reads "How does zq7x17 work?" as a question about how things
    work: its closest sentences are noise. Its list is weighted by the share of the
    question's IDF mass it can read (a name BM25 matches exactly, in few chunks, that its
    vocabulary does not hold whole is not), so the exact match ranks first."""
    assistant, first, later = named
    index = assistant.index
    if index.sentence_encoder() is None:
        pytest.skip("the sentence encoder is not installed")
    assert index.sentence_confidence("How does attention work on a long sequence?") == 1.0
    for record in random.Random(5).sample(first, 20) + random.Random(6).sample(later, 20):
        question = f"How does {name_of(record)} work?"
        assert index.sentence_confidence(question) < 0.3, question
        assert assistant.retrieve(question, k=3)[0].title == record["title"], question


def test_scores_are_bounded_and_the_best_possible_is_one():
    weights = Weights(lexical=1.0, dense=0.5, preferred=0.0, name=0.5)
    assert weights.best_possible(named=False) == 1.5
    assert weights.best_possible(named=True) == 2.0
    assert weights.best_possible(named=True, scale=weights.lists) == 1.5 + 0.5 * 1.5


def test_source_scores_lie_in_zero_to_one(assistant):
    for question in ("KV cache compression", "What is HyperAttention?", "speculative decoding"):
        scores = [s.score for s in assistant.retrieve(question, k=10)]
        assert all(0.0 <= x <= 1.0 for x in scores), scores
        assert scores == sorted(scores, reverse=True)


@pytest.fixture(scope="module")
def titled(tmp_path_factory):
    """Papers whose titles lead with a name, beside papers whose titles or abstracts only use
    the name's words ("Layer-wise", "tuning"), many more of those than of the named ones."""
    root = tmp_path_factory.mktemp("titled")
    rng = random.Random(5)
    noise = [
        {
            "title": f"Layer-wise tuning study {i}: {' '.join(rng.sample(WORDS, 3))}",
            "abstract": "We study tuning and layer-wise tuning of "
            + " ".join(rng.choice(WORDS) for _ in range(50))
            + ". Tuning tuning tuning.",
        }
        for i in range(60)
    ]
    named = [
        {"title": "WISE: Rethinking Memory for Editing", "abstract": "We edit model memory."},
        {"title": "R-Tuning: Teaching Models to Refuse", "abstract": "Models learn to refuse."},
        {"title": "SLUE: Spoken Language Tasks", "abstract": "A speech benchmark."},
        {"title": "SLUE Phase-2: More Spoken Tasks", "abstract": "A second speech benchmark."},
        {"title": "Layer Tuning: Fewer Steps", "abstract": "We train fewer steps."},
    ]
    assistant = Assistant(home=root / "home", auto_ingest_bundled=False)
    assistant.ingest([write(root / "papers.jsonl", noise + named)])
    return assistant


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("What is WISE?", "WISE: Rethinking Memory for Editing"),  # not "Layer-wise ..."
        ("How does R-Tuning work?", "R-Tuning: Teaching Models to Refuse"),  # "tuning" is noise
        ("What is SLUE Phase-2?", "SLUE Phase-2: More Spoken Tasks"),  # the longer name
        ("What is SLUE?", "SLUE: Spoken Language Tasks"),
        # a name in title case inside the question, its words common
        ("how many steps does Layer Tuning save?", "Layer Tuning: Fewer Steps"),
    ],
)
def test_a_title_that_leads_with_the_asked_name_ranks_first(titled, question, title):
    assert titled.retrieve(question, k=3)[0].title == title


def test_a_name_in_title_case_inside_a_question_is_a_name():
    """Two or more capitalized words inside a sentence are a name as people write one; the
    sentence's first word and a single capitalized word are not."""
    assert phrases("how much does Adaptive Guidance save?") == ["Adaptive Guidance"]
    assert phrases("is Token Recycling faster, and does Token Recycling need training?") == [
        "Token Recycling"
    ]
    assert phrases("Adaptive guidance saves what?") == []
    assert phrases("what does Mamba remember?") == []
