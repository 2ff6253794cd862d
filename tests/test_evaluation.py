"""The evaluation metrics, tested like code: hand-computed values on tiny fixtures, mutation
tests (each mutation must lower the score that measures it), the Q&A loader's errors,
report comparison and thresholds, and the ``eval`` command end to end."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from clirun import run_cli

from rag_assistant import cli
from rag_assistant.answer.citations import claims, resolve
from rag_assistant.answer.judges import LexicalJudge, LLMJudge
from rag_assistant.answer.llm import Completion
from rag_assistant.errors import InputError
from rag_assistant.evaluation.dataset import check_gold_titles, load_qa
from rag_assistant.evaluation.gate import (
    check_thresholds,
    load_thresholds,
    save_thresholds,
    thresholds_for,
)
from rag_assistant.evaluation.metrics import (
    METRICS,
    RefusalCounts,
    alce_scores,
    citation_check,
    gold_cited,
    is_correct,
    key_fact_recall,
    normalize_fact,
    retrieval_scores,
    token_f1,
)
from rag_assistant.evaluation.reports import compare_reports, render_deltas, render_markdown
from rag_assistant.evaluation.runner import aggregate
from rag_assistant.settings import Settings
from rag_assistant.store.sentence_encoder import find_model_dir
from rag_assistant.types import Answer, Citation, Claim, Source, Verdict

PROJECT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
QA_SMALL = DATA / "qa_small.jsonl"

# A judge that needs every content word and number of a sentence in the evidence, so the
# expected verdicts below can be worked out by hand.
STRICT = LexicalJudge(threshold=1.0)


def source(paper_id: str, abstract: str, rank: int) -> Source:
    return Source(
        paper_id=paper_id,
        title=f"Paper {paper_id.upper()}",
        score=1.0 / rank,
        text=abstract,
        abstract=abstract,
        rank=rank,
    )


SOURCES = [
    source("a", "Alpha reduces memory by 40 percent.", 1),
    source("b", "Beta doubles decoding speed.", 2),
    source("c", "Gamma studies protein folding.", 3),
]


def hand_answer() -> Answer:
    """Five sentences whose verdicts under STRICT are, by hand:

    1. "Alpha reduces memory by 40 percent [1]."  cites A: supported; its one citation precise.
    2. "... Alpha ... and Beta doubles decoding speed [1][2]."  A+B together support it, neither
       alone: both citations needed (2 precise of 2).
    3. "Beta doubles decoding speed [2][3]."  supported; B alone supports it (precise), C does
       not and B without C still does, so C is not needed (1 of 2).
    4. "Gamma doubles memory [3]."  C has "gamma" only: unsupported, its citation imprecise.
    5. "Delta is great."  no citation: unsupported.

    Citation recall 3/5; precision (1 + 2 + 1 + 0) / (1 + 2 + 2 + 1) = 4/6; grounded (some
    single retrieved abstract supports it): sentences 1 and 3, 2/5.
    """
    sentences = [
        ("Alpha reduces memory by 40 percent [1].", [1]),
        ("Alpha reduces memory and Beta doubles decoding speed [1][2].", [1, 2]),
        ("Beta doubles decoding speed [2][3].", [2, 3]),
        ("Gamma doubles memory [3].", [3]),
        ("Delta is great.", []),
    ]
    return Answer(
        question="What do the papers report?",
        text=" ".join(s for s, _ in sentences),
        citations=[Citation(i + 1, s.paper_id, s.title) for i, s in enumerate(SOURCES)],
        refused=False,
        mode="offline",
        claims=[Claim(text, cites, False, 0.0) for text, cites in sentences],
        sources=list(SOURCES),
    )


def pipeline_answer(text: str, sources=SOURCES, judge=STRICT) -> Answer:
    """An answer built from text with ``[n]`` (n = source position) the way the assistant
    builds one: markers resolved by code, then sentences checked."""
    resolved, citations, warnings = resolve(text, sources)
    return Answer(
        question="q",
        text=resolved,
        citations=citations,
        refused=False,
        mode="offline",
        claims=claims(resolved, citations, sources, judge),
        sources=list(sources),
        warnings=warnings,
    )


# --- hand-computed values ---------------------------------------------------------------------


def test_retrieval_scores_by_hand():
    ranked = ["P1", "G1", "P3", "P4", "P5", "P6", "G2", "P8", "P9", "P10", "G3"]
    scores = retrieval_scores(ranked, ["G1", "G2", "G3"])
    assert scores == {"hit@1": 0.0, "hit@5": 1.0, "mrr@10": 0.5, "recall@10": pytest.approx(2 / 3)}
    # titles compare without case or spacing differences
    assert retrieval_scores(["g1  ", "x"], ["G1"])["hit@1"] == 1.0
    assert retrieval_scores(["x"] * 10 + ["G"], ["G"]) == {
        "hit@1": 0.0,
        "hit@5": 0.0,
        "mrr@10": 0.0,
        "recall@10": 0.0,
    }
    with pytest.raises(ValueError):
        retrieval_scores(["x"], [])


def test_alce_scores_by_hand():
    faith = alce_scores(hand_answer(), STRICT)
    assert [s.supported for s in faith.sentences] == [True, True, True, False, False]
    assert [(s.precise, s.cited) for s in faith.sentences] == [
        (1, 1),
        (2, 2),
        (1, 2),
        (0, 1),
        (0, 0),
    ]
    assert [s.grounded for s in faith.sentences] == [True, False, True, False, False]
    assert faith.citation_recall == pytest.approx(3 / 5)
    assert faith.citation_precision == pytest.approx(4 / 6)
    assert faith.grounded == pytest.approx(2 / 5)
    assert faith.judge_failures == 0


def test_a_refusal_has_no_faithfulness_scores():
    answer = hand_answer()
    answer.refused, answer.claims, answer.citations = True, [], []
    faith = alce_scores(answer, STRICT)
    assert faith.sentences == []
    assert faith.citation_recall is None
    assert faith.citation_precision is None
    assert faith.grounded is None


class FailsOnBeta:
    """A judge that cannot decide about any sentence mentioning Beta."""

    def judge(self, claim, evidence):
        if "Beta" in claim:
            return Verdict(False, 0.0, "unparseable", failed=True)
        return STRICT.judge(claim, evidence)


def test_failed_verdicts_are_left_out_and_counted_never_zero():
    faith = alce_scores(hand_answer(), FailsOnBeta())
    # sentences 2 and 3 mention Beta: their joint verdict failed, so they are not scored
    assert [s.supported for s in faith.sentences] == [True, None, None, False, False]
    assert faith.citation_recall == pytest.approx(1 / 3)
    assert faith.citation_precision == pytest.approx(1 / 2)  # sentences 1 and 4: 1 of 2
    assert faith.grounded == pytest.approx(1 / 3)
    # joint verdicts of sentences 2, 3 and one per retrieved abstract for each
    assert faith.judge_failures == 2 + 2 * len(SOURCES)


class ScriptedModel:
    """Replies like a chat model: a JSON verdict, or prose for claims about Beta."""

    model = "scripted"

    def __init__(self):
        self.calls = 0

    def complete(self, messages, *, json_output, temperature, max_tokens):
        self.calls += 1
        assert json_output and temperature == 0.0
        claim = messages[-1]["content"].rsplit("Claim:", 1)[-1]
        if "Beta" in claim:
            return Completion("I think it is supported.")
        return Completion(json.dumps({"supported": "Alpha" in claim, "reason": "scripted"}))


def test_llm_judge_wiring_counts_parse_failures(tmp_path):
    judge = LLMJudge(ScriptedModel(), cache_dir=tmp_path / "cache")
    faith = alce_scores(hand_answer(), judge)
    assert [s.supported for s in faith.sentences] == [True, None, None, False, False]
    assert faith.judge_failures == judge.parse_failures == 2 + 2 * len(SOURCES)
    assert faith.citation_recall == pytest.approx(1 / 3)
    # verdicts are cached: a second evaluation asks the model only for the failed ones
    again = LLMJudge(judge.model, cache_dir=tmp_path / "cache")
    calls = judge.model.calls
    alce_scores(hand_answer(), again)
    assert judge.model.calls - calls == again.parse_failures == 2 + 2 * len(SOURCES)


def test_citation_check_by_hand():
    answer = hand_answer()
    check = citation_check(answer)
    assert (check.total, check.valid, check.phantoms, check.removed) == (3, 3, 0, 0)
    assert check.validity == 1.0
    answer.citations[1].title = "A Title The Model Made Up"
    answer.text += " Epsilon [7]."
    answer.warnings.append("removed citation [9]: it refers to no source (the answer had 3)")
    check = citation_check(answer)
    assert (check.total, check.valid, check.phantoms, check.removed) == (3, 2, 1, 1)
    assert check.validity == pytest.approx(2 / 3)


def test_key_fact_recall_normalizes_case_dashes_latex_and_markers():
    text = (
        "FreCaS is about 2.86times faster [1]. It uses a KV–cache of 50% size; "
        "SnapKV reaches 3.6× speed\u00a0ups."
    )
    facts = ["2.86\\times faster", "kv-cache", "50\\%", "3.6x speed ups", "8.2x"]
    assert key_fact_recall(text, facts) == pytest.approx(4 / 5)
    assert normalize_fact(r"\textbf{SnapKV} — 8.2x.") == "snapkv 8.2x"
    # whole words only: "4" is not found inside "40"
    assert key_fact_recall("a 40 percent cut", ["4 percent"]) == 0.0
    assert key_fact_recall("anything", []) is None


def test_token_f1_by_hand():
    assert token_f1("The cat sat on the mat [1].", "a cat sat on a mat") == 1.0
    # prediction {cat, sat}, reference {cat, sat, on, mat}: P = 1, R = 1/2, F1 = 2/3
    assert token_f1("Cat sat!", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0


def test_refusal_rates_by_hand():
    counts = RefusalCounts()
    # answerable: one refused, one answered correctly, one answered wrongly
    counts.add(answerable=True, refused=True, correct=False)
    counts.add(answerable=True, refused=False, correct=True)
    counts.add(answerable=True, refused=False, correct=False)
    # unanswerable: one refused (correct), one answered (wrong)
    counts.add(answerable=False, refused=True, correct=True)
    counts.add(answerable=False, refused=False, correct=False)
    assert counts.answered == 3
    assert counts.rates() == {
        "refusal_accuracy": 0.5,
        "false_refusal_rate": pytest.approx(1 / 3),
        "answer_precision": pytest.approx(1 / 3),  # correct and answered / answered
        "answer_accuracy": pytest.approx(2 / 5),  # correct / all
    }
    assert RefusalCounts().rates() == dict.fromkeys(counts.rates())


def test_is_correct():
    answer = hand_answer()
    assert is_correct(answer, ["Paper A"], 1.0)
    assert is_correct(answer, ["paper  a"], None)
    assert not is_correct(answer, ["Paper A"], 0.4)  # too few key facts
    assert not is_correct(answer, ["Paper Z"], 1.0)  # no gold paper cited
    assert not is_correct(answer, [], 1.0)  # unanswerable, yet answered
    answer.refused = True
    assert is_correct(answer, [], None)
    assert not is_correct(answer, ["Paper A"], 1.0)


def test_gold_cited_is_the_share_of_the_gold_papers_the_answer_cites():
    answer = hand_answer()
    cited = {c.title for c in answer.citations}
    assert "Paper A" in cited and "Paper Z" not in cited
    assert gold_cited(answer, ["paper  a"]) == 1.0
    assert gold_cited(answer, ["Paper A", "Paper Z"]) == 0.5  # a comparison citing one
    assert gold_cited(answer, ["Paper Z"]) == 0.0
    assert gold_cited(answer, []) is None  # unanswerable: not scored
    answer.refused = True
    assert gold_cited(answer, ["Paper A"]) == 0.0


def test_aggregate_over_the_right_questions():
    def row(kind, answerable, refused, correct, **metrics):
        base = dict.fromkeys(METRICS)
        base.update(
            kind=kind,
            answerable=answerable,
            refused=refused,
            correct=correct,
            citations=0,
            valid_citations=0,
            phantom_citations=0,
            removed_citations=0,
            judge_failures=0,
            sentences=0,
        )
        base.update(metrics)
        return base

    rows = [
        row("single", True, False, True, **{"hit@5": 1.0, "citation_recall": 1.0}),
        row("single", True, False, False, **{"hit@5": 0.0, "citation_recall": 0.5}),
        # a false refusal: scored for retrieval and correctness, not for faithfulness
        row("single", True, True, False, **{"hit@5": 1.0, "key_fact_recall": 0.0}),
        row("unanswerable", False, True, True),
    ]
    rows[0].update(citations=2, valid_citations=2, sentences=2, key_fact_recall=1.0)
    rows[1].update(citations=2, valid_citations=1, sentences=1, key_fact_recall=0.5)
    out = aggregate(rows)
    m = out["metrics"]
    assert m["hit@5"] == pytest.approx(2 / 3)
    assert m["citation_recall"] == pytest.approx(0.75)
    assert m["key_fact_recall"] == pytest.approx(0.5)
    assert m["citation_validity"] == pytest.approx(3 / 4)
    assert m["refusal_accuracy"] == 1.0
    assert m["false_refusal_rate"] == pytest.approx(1 / 3)
    assert m["answer_precision"] == pytest.approx(1 / 2)
    assert m["answer_accuracy"] == pytest.approx(2 / 4)
    assert out["counts"]["answered"] == 2 and out["counts"]["sentences"] == 3


# --- mutations: each must lower the score that measures it ------------------------------------

GOOD = "Alpha reduces memory by 40 percent [1]. Beta doubles decoding speed [2]."


def scores(answer: Answer, key_facts=("40 percent", "doubles decoding speed")) -> dict:
    faith = alce_scores(answer, STRICT)
    return {
        "citation_validity": citation_check(answer).validity,
        "citation_recall": faith.citation_recall,
        "citation_precision": faith.citation_precision,
        "grounded": faith.grounded,
        "key_fact_recall": key_fact_recall(answer.text, key_facts),
        "token_f1": token_f1(answer.text, GOOD),
    }


def test_the_unmutated_answer_scores_full_marks():
    assert set(scores(pipeline_answer(GOOD)).values()) == {1.0}


def test_mutation_swapped_cited_title_lowers_citation_validity():
    answer = pipeline_answer(GOOD)
    answer.citations[0].title = SOURCES[2].title  # the title of a paper it does not cite
    before, after = scores(pipeline_answer(GOOD)), scores(answer)
    assert after["citation_validity"] == 0.5 < before["citation_validity"]


def test_mutation_swapped_cited_paper_lowers_citation_recall_and_precision():
    mutated = pipeline_answer("Alpha reduces memory by 40 percent [3]. " + GOOD.split(". ")[1])
    before, after = scores(pipeline_answer(GOOD)), scores(mutated)
    assert after["citation_recall"] == 0.5 < before["citation_recall"]
    assert after["citation_precision"] == 0.5 < before["citation_precision"]
    assert after["citation_validity"] == 1.0  # still a retrieved paper with its own title


def test_mutation_changed_number_lowers_citation_recall_and_key_facts():
    mutated = pipeline_answer(GOOD.replace("40", "60"))
    before, after = scores(pipeline_answer(GOOD)), scores(mutated)
    assert after["citation_recall"] == 0.5 < before["citation_recall"]
    assert after["grounded"] == 0.5 < before["grounded"]
    assert after["key_fact_recall"] == 0.5 < before["key_fact_recall"]


def test_mutation_off_topic_sentence_lowers_faithfulness_and_f1():
    mutated = pipeline_answer(GOOD + " The weather in Paris is pleasant in spring [1].")
    before, after = scores(pipeline_answer(GOOD)), scores(mutated)
    for metric in ("citation_recall", "citation_precision", "grounded"):
        assert after[metric] == pytest.approx(2 / 3)
        assert after[metric] < before[metric]
    assert after["token_f1"] < before["token_f1"]
    assert after["key_fact_recall"] == before["key_fact_recall"]


def test_mutation_dropped_citation_lowers_citation_recall():
    mutated = pipeline_answer(GOOD.replace(" [2]", ""))
    before, after = scores(pipeline_answer(GOOD)), scores(mutated)
    assert after["citation_recall"] == 0.5 < before["citation_recall"]
    assert after["grounded"] == before["grounded"]  # the sentence is still true


def test_mutation_dropped_one_of_two_needed_citations_lowers_citation_recall():
    both = "Alpha reduces memory and Beta doubles decoding speed [1][2]."
    before = scores(pipeline_answer(both))
    after = scores(pipeline_answer(both.replace("[2]", "")))
    assert before["citation_recall"] == 1.0 and after["citation_recall"] == 0.0


# --- the Q&A file -----------------------------------------------------------------------------

ITEM = {
    "id": "q1",
    "question": "What does Alpha reduce?",
    "reference_answer": "Memory, by 40 percent.",
    "gold_titles": ["Paper A"],
    "key_facts": ["40 percent"],
    "kind": "single",
    "source_files": [],
}


def write_qa(tmp_path: Path, *records: object) -> Path:
    path = tmp_path / "qa.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_qa_reads_the_small_fixture():
    items = load_qa(QA_SMALL)
    assert len(items) == 6
    assert {i.kind for i in items} == {"single", "paraphrase", "multi", "unanswerable", "follow-up"}
    follow = next(i for i in items if i.kind == "follow-up")
    assert follow.follows == "snapkv-paraphrase"
    assert [i.answerable for i in items].count(False) == 1


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("{not json", r"qa.jsonl line 3: not valid JSON"),
        ('["a list"]', r"line 3: expected a JSON object"),
        ({**ITEM, "id": "q2", "kind": "easy"}, r"line 3: kind 'easy' is not one of"),
        ({k: v for k, v in ITEM.items() if k != "gold_titles"}, r"line 3: missing field\(s\) gold"),
        ({**ITEM, "id": "q1"}, r"line 3: id 'q1' is already used on line 1"),
        ({**ITEM, "id": "q2", "key_facts": "40"}, r"line 3: 'key_facts' must be a list"),
        ({**ITEM, "id": "q2", "question": " "}, r"line 3: 'question' must be a non-empty"),
        ({**ITEM, "id": "q2", "kind": "unanswerable"}, r"line 3: an unanswerable question must"),
        ({**ITEM, "id": "q2", "kind": "multi"}, r"line 3: a multi question needs at least two"),
        ({**ITEM, "id": "q2", "kind": "single", "gold_titles": []}, r"line 3: a single question"),
        ({**ITEM, "id": "q2", "kind": "follow-up"}, r"line 3: a follow-up needs 'follows'"),
        ({**ITEM, "id": "q2", "kind": "follow-up", "follows": "q9"}, r"'q9', which is not the id"),
        ({**ITEM, "id": "q2", "follows": "q1"}, r"line 3: only a follow-up may have 'follows'"),
    ],
)
def test_load_qa_errors_name_the_line(tmp_path, second, message):
    path = write_qa(tmp_path, ITEM, "", second)  # line 2 is blank: skipped, still counted
    with pytest.raises(InputError, match=message):
        load_qa(path)


def test_load_qa_missing_or_empty_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_qa(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="holds no questions"):
        load_qa(write_qa(tmp_path, ""))


def test_gold_titles_must_be_in_the_index(tmp_path):
    items = load_qa(write_qa(tmp_path, ITEM, {**ITEM, "id": "q2", "gold_titles": ["Paper Bx"]}))
    check_gold_titles(items[:1], ["paper a", "Paper B"])
    with pytest.raises(InputError, match=r"line 2: gold title 'Paper Bx' .*did you mean 'Paper B'"):
        check_gold_titles(items, ["Paper A", "Paper B"], "qa.jsonl")


# --- comparing and thresholds -----------------------------------------------------------------


def report_with(**metrics) -> dict:
    values = dict.fromkeys(METRICS)
    values.update(metrics)
    return {"totals": {"metrics": values}, "by_kind": {"single": {"metrics": dict(values)}}}


def test_compare_reports_deltas():
    old = report_with(**{"hit@5": 0.5, "false_refusal_rate": 0.2, "token_f1": 0.3})
    new = report_with(**{"hit@5": 0.75, "false_refusal_rate": 0.3, "token_f1": 0.3})
    deltas = {(d.scope, d.metric): d for d in compare_reports(new, old)}
    assert deltas["all", "hit@5"].delta == pytest.approx(0.25)
    assert deltas["all", "hit@5"].better is True
    assert deltas["all", "false_refusal_rate"].better is False  # more refusals is worse
    assert deltas["all", "token_f1"].better is None
    assert deltas["single", "hit@5"].delta == pytest.approx(0.25)
    assert deltas["all", "mrr@10"].delta is None
    text = render_deltas(compare_reports(new, old))
    assert re.search(r"all\s+hit@5\s+0\.500\s+0\.750\s+\+0\.250\s+better", text)


def test_compare_reports_by_category():
    old = report_with(**{"hit@5": 0.5})
    new = report_with(**{"hit@5": 0.5})
    old["by_category"] = {"lay": {"metrics": {"hit@5": 0.4}}}
    new["by_category"] = {
        "lay": {"metrics": {"hit@5": 0.6}},
        "off-topic": {"metrics": {"refusal_accuracy": 1.0}},
    }
    deltas = {(d.scope, d.metric): d for d in compare_reports(new, old)}
    assert deltas["category:lay", "hit@5"].delta == pytest.approx(0.2)
    assert deltas["category:off-topic", "refusal_accuracy"].old is None
    text = render_deltas(compare_reports(new, old), changed_only=True)
    assert re.search(r"category:lay\s+hit@5\s+0\.400\s+0\.600\s+\+0\.200\s+better", text)


def test_thresholds(tmp_path):
    path = tmp_path / "thresholds.json"
    path.write_text(
        json.dumps(
            {
                "comment": "set from the baseline",
                "min": {"hit@5": 0.8, "citation_validity": 1.0, "mrr@10": 0.5},
                "max": {"phantom_citations": 0},
            }
        )
    )
    thresholds = load_thresholds(path)
    ok = report_with(**{"hit@5": 0.8, "citation_validity": 1.0, "mrr@10": 0.6})
    ok["totals"]["metrics"]["phantom_citations"] = 0
    assert check_thresholds(ok, thresholds) == []
    bad = report_with(**{"hit@5": 0.79, "citation_validity": 1.0, "phantom_citations": 2})
    failures = check_thresholds(bad, thresholds)
    assert failures == [
        "hit@5: 0.790 is below the minimum 0.8",
        "mrr@10: not measured (threshold min 0.5)",
        "phantom_citations: 2 is above the maximum 0",
    ]
    path.write_text(json.dumps({"min": {"hit@50": 0.5}}))
    with pytest.raises(InputError, match="unknown metric 'hit@50'"):
        load_thresholds(path)


def test_thresholds_are_pinned_to_the_qa_file_they_were_measured_on(tmp_path):
    """Editing the Q&A file cannot silently move the gate: thresholds carry the file's
    sha256, and a report of another version of the file fails it."""
    qa = tmp_path / "eval" / "qa.jsonl"
    qa.parent.mkdir()
    shutil.copyfile(QA_SMALL, qa)
    report = report_with(**{"hit@5": 0.8})
    report.update(created="2026-12-03T10:00:00+00:00", qa_file=str(qa))
    report["qa_sha256"] = hashlib.sha256(qa.read_bytes()).hexdigest()
    report["config"] = {"mode": "offline", "judge": "lexical"}
    path = save_thresholds(report, tmp_path / "eval" / "qa.thresholds.json")
    assert thresholds_for(qa) == path
    thresholds = load_thresholds(path)
    assert thresholds["qa_sha256"] == report["qa_sha256"]
    assert check_thresholds(report, thresholds) == []

    qa.write_text(qa.read_text() + "\n")  # an edit, however small
    edited = {**report, "qa_sha256": hashlib.sha256(qa.read_bytes()).hexdigest()}
    (failure,) = check_thresholds(edited, thresholds)
    assert "is not the Q&A file these thresholds were measured on" in failure
    assert thresholds_for(tmp_path / "eval" / "dev.jsonl") is None


def test_the_checked_in_thresholds_pin_the_checked_in_qa_files():
    for qa in (PROJECT / "eval").glob("*.jsonl"):
        pinned = thresholds_for(qa)
        if pinned is not None:
            digest = hashlib.sha256(qa.read_bytes()).hexdigest()
            assert load_thresholds(pinned)["qa_sha256"] == digest, qa.name


def test_baseline_thresholds_are_the_measured_scores(tmp_path):
    report = report_with(
        **{"hit@5": 0.8, "mrr@10": 0.6666666, "false_refusal_rate": 0.1234, "phantom_citations": 0}
    )
    report.update(created="2026-11-23T10:00:00+00:00", qa_file="eval/qa.jsonl")
    report["config"] = {"mode": "offline", "judge": "lexical"}
    path = save_thresholds(report, tmp_path / "eval" / "thresholds.json")
    thresholds = load_thresholds(path)
    assert thresholds["min"] == {"hit@5": 0.8, "mrr@10": 0.666}
    assert thresholds["max"] == {"false_refusal_rate": 0.124, "phantom_citations": 0}
    assert check_thresholds(report, thresholds) == []
    with pytest.raises(InputError, match="never rewritten"):
        save_thresholds(report, path)


def test_judge_openai_without_a_key_is_a_clear_error(tmp_path, capsys):
    status = cli.main(["eval", "--qa", str(QA_SMALL), "--judge", "openai", "--out", str(tmp_path)])
    assert status == 2
    assert "--judge openai needs OPENAI_API_KEY" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --- the command, end to end ------------------------------------------------------------------


def run_eval_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli("eval", *args, cwd=cwd)


def test_eval_command_end_to_end(home, tmp_path):
    """By default on a fresh index of the bundled corpus (nothing is read from or written to
    --home), then on the current index with a comparison and a threshold it misses."""
    unused = tmp_path / "unused-home"
    first = tmp_path / "first"
    result = run_eval_cli(
        "--qa", str(QA_SMALL), "--home", str(unused), "--out", str(first), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "building a fresh index of the bundled corpus" in result.stderr
    assert "fresh index: 530 papers" in result.stderr
    assert not unused.exists() or not any(unused.iterdir())
    for name in ("report.json", "report.md", "report.png"):
        assert (first / name).stat().st_size > 0
    assert (first / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((first / "report.json").read_text())
    assert set(report["totals"]["metrics"]) == set(METRICS)
    assert report["totals"]["counts"]["questions"] == 6
    assert report["config"] == report["config"] | {"mode": "offline", "judge": "lexical"}
    assert set(report["by_kind"]) == {"single", "paraphrase", "multi", "unanswerable", "follow-up"}
    metrics = report["totals"]["metrics"]
    assert metrics["citation_validity"] == 1.0 and metrics["phantom_citations"] == 0
    rows = {r["id"]: r for r in report["questions"]}
    assert rows["worldcup-unanswerable"]["refused"] is True
    assert rows["worldcup-unanswerable"]["citation_recall"] is None
    assert rows["hyperattention-speed"]["hit@1"] == 1.0
    # the follow-up was asked as the second turn of its conversation
    assert "(context:" in rows["snapkv-memory-followup"]["standalone_question"]
    markdown = (first / "report.md").read_text()
    assert (
        "| hyperattention-speed | What is HyperAttention and how much faster does it make "
        "ChatGLM2 inference? | single |" in markdown
    )
    assert report["partial"] == [] and "Partial report" not in markdown
    assert report["index"]["kind"] == "fresh" and report["index"]["home"] is None
    assert (report["index"]["papers"], report["index"]["chunks"]) == (530, 536)
    assert report["settings"]["retrieval"]["k"] == 5
    assert report["settings"]["chunking"]["chunk_size"] == 384
    # the report says how the papers were ranked: the first 10 reranked by default, with
    # the sentence encoder installed (CI installs it); without it, none
    installed = find_model_dir(Settings()) is not None
    assert report["config"]["rerank"] == (10 if installed else 0)
    reranked = render_markdown({**report, "config": {**report["config"], "rerank": 10}})
    assert (
        "- retrieval: k=5, fusion dbsf, the first 10 reranked by late interaction, "
        "embedding lsa\n" in reranked
    )
    fused = render_markdown({**report, "config": {**report["config"], "rerank": 0}})
    assert "- retrieval: k=5, fusion dbsf, embedding lsa\n" in fused
    assert ("the first 10 reranked by late interaction" in markdown) == installed

    thresholds = tmp_path / "strict.json"
    # a threshold the offline answers miss whatever the retrieval: they quote abstracts,
    # so their token F1 against hand-written reference answers stays far below 0.99
    assert metrics["token_f1"] < 0.99
    thresholds.write_text(json.dumps({"min": {"token_f1": 0.99, "hit@5": 0.5}}))
    again = run_eval_cli(
        "--qa",
        str(QA_SMALL),
        "--home",
        str(home),
        "--out",
        str(tmp_path / "second"),
        "--compare",
        str(first),
        "--threshold",
        str(thresholds),
        "--index",
        "current",
        cwd=tmp_path,
    )
    assert again.returncode == 1, again.stderr
    second = json.loads((tmp_path / "second" / "report.json").read_text())
    assert second["index"]["kind"] == "current" and second["index"]["home"] == str(home)
    # the same papers with the same texts: the same catalog digest as the fresh index
    assert second["index"]["catalog_sha256"] == report["index"]["catalog_sha256"]
    assert f"change since {first}" in again.stdout
    assert re.search(r"all\s+hit@5\s+1\.000\s+1\.000", again.stdout)
    assert "token_f1:" in again.stderr and "below the minimum 0.99" in again.stderr
    assert "hit@5" not in again.stderr


def test_default_out_dir_is_under_eval_runs(home, tmp_path, monkeypatch):
    qa = tmp_path / "qa.jsonl"
    shutil.copy(QA_SMALL, qa)
    qa.write_text(qa.read_text().splitlines()[0] + "\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", "--qa", str(qa), "--home", str(home), "--index", "current"]) == 0
    runs = list((tmp_path / "eval" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "report.json").is_file()


def test_run_eval_on_an_empty_index_that_may_not_bootstrap(empty_assistant):
    from rag_assistant.errors import IndexEmptyError
    from rag_assistant.evaluation.runner import run_eval

    with pytest.raises(IndexEmptyError, match="is empty"):
        run_eval(empty_assistant, load_qa(QA_SMALL))


def test_eval_with_the_llm_judge_over_http_reports_parse_failures(home, tmp_path, monkeypatch):
    """Wiring only: the judge's replies are scripted (prose for sentences about KaSA), the
    answers offline. Failed verdicts are counted and left out, never scored."""
    from openai_server import OpenAIServer, Reply

    def reply(body: dict) -> Reply:
        claim = body["messages"][-1]["content"].rsplit("Claim:", 1)[-1]
        if "KaSA" in claim:
            return Reply("It seems supported to me.")
        return Reply(json.dumps({"supported": True, "reason": "scripted"}))

    server = OpenAIServer().start()
    server.default = reply
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("RAG_ASSISTANT_OPENAI__MAX_RETRIES", "0")
        monkeypatch.chdir(tmp_path)
        out = tmp_path / "run"
        args = ["eval", "--qa", str(QA_SMALL), "--home", str(home), "--out", str(out)]
        assert cli.main([*args, "--judge", "openai", "--llm", "offline", "--index", "current"]) == 0
    finally:
        server.stop()
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["mode"] == "offline"
    assert report["config"]["judge"] == "llm:gpt-4o-mini"
    assert all(r["json"]["temperature"] == 0 for r in server.requests)
    failures = report["totals"]["metrics"]["judge_failures"]
    assert failures > 0 and report["judge"]["parse_failures"] >= failures
    kasa = next(r for r in report["questions"] if r["id"] == "kasa-baselines")
    assert kasa["judge_failures"] > 0 and kasa["citation_recall"] is None
    others = [r for r in report["questions"] if not r["refused"] and r is not kasa]
    assert all(r["citation_recall"] == 1.0 for r in others)
    assert "NaN" not in (out / "report.json").read_text()
