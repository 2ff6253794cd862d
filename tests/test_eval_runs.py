"""An evaluation run that survives what a real model server does to it, and reports a
reader can compare: a question whose answering fails is recorded and the run goes on
(scripted failures from tests/openai_server.py over the real ``openai`` client), Ctrl+C
writes the report so far, ``--limit`` / ``--ids`` ask a subset, progress shows off a
terminal; the report records the index and the settings, shows each question's text,
aggregates by category, and its chart tells a measured 0.0 from "does not apply"."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import run_cli
from openai_server import OpenAIServer, Reply

from rag_assistant import cli
from rag_assistant.errors import InputError
from rag_assistant.evaluation.dataset import load_qa, select
from rag_assistant.evaluation.gate import check_thresholds, save_thresholds
from rag_assistant.evaluation.metrics import METRICS
from rag_assistant.evaluation.reports import CHART_METRICS, chart_bars, chart_figure
from rag_assistant.evaluation.runner import aggregate

DATA = Path(__file__).parent / "data"
QA_SMALL = DATA / "qa_small.jsonl"
KEY = "sk-test-SENTINEL-4d1e07"

# the start of each question of qa_small.jsonl, as the answering model is sent it
HYPER = "What is HyperAttention and how much faster"
SNAPKV = "Which approach shrinks the key-value cache"
FOLLOWUP = "And how much does it improve memory efficiency?"
DIFFUSION = "Which papers reduce the computation of classifier-free guidance"


@pytest.fixture
def server():
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def asked(server: OpenAIServer, text: str) -> int:
    """How many chat requests carried ``text`` in a user message."""
    return sum(
        text in m["content"]
        for r in server.requests
        for m in r["json"]["messages"]
        if m["role"] == "user"
    )


def script_by_question(server: OpenAIServer, failures: dict[str, Reply]) -> None:
    """Reply with ``failures[start]`` to a request about a question starting so, else with
    a short cited sentence."""

    def reply(body: dict) -> Reply:
        user = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        for start, failure in failures.items():
            if start in user:
                return failure
        return Reply("The first source describes a method for this [1].")

    server.default = reply


def llm_env(monkeypatch, server: OpenAIServer, **extra: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("RAG_ASSISTANT_OPENAI__MAX_RETRIES", "0")
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def eval_args(home: Path, out: Path, *more: str) -> list[str]:
    return ["eval", "--qa", str(QA_SMALL), "--home", str(home), "--out", str(out), *more]


def read(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


# --- failures are recorded, the run goes on ------------------------------------------------


def test_a_failed_question_is_recorded_and_the_run_goes_on(home, tmp_path, server, monkeypatch):
    """A timeout, a 500 and an unusable reply each fail their question; the others are
    answered and scored, the report is written and marked partial, exit status 1. A
    follow-up of a failed turn is not asked."""
    script_by_question(
        server,
        {
            HYPER: Reply("too late", hang=3.0),
            SNAPKV: Reply(status=500),
            DIFFUSION: Reply(garbage=True),
        },
    )
    llm_env(monkeypatch, server, RAG_ASSISTANT_OPENAI__TIMEOUT="1")
    out = tmp_path / "run"
    status = cli.main(eval_args(home, out, "--llm", "openai", "--index", "current"))
    assert status == 1
    report = read(out)
    rows = {r["id"]: r for r in report["questions"]}
    assert list(rows) == [
        "hyperattention-speed",
        "snapkv-paraphrase",
        "snapkv-memory-followup",
        "diffusion-speedups",
        "kasa-baselines",
        "worldcup-unanswerable",
    ]
    errors = {i: r["error"]["type"] for i, r in rows.items() if r["failed"]}
    assert errors == {
        "hyperattention-speed": "LLMTimeoutError",
        "snapkv-paraphrase": "LLMUnavailableError",
        "snapkv-memory-followup": "PreviousTurnFailed",
        "diffusion-speedups": "LLMResponseError",
    }
    assert "snapkv-paraphrase" in rows["snapkv-memory-followup"]["error"]["message"]
    assert asked(server, FOLLOWUP) == 0
    # the two that did not fail were answered and scored
    assert rows["kasa-baselines"]["failed"] is False and rows["kasa-baselines"]["hit@1"] == 1.0
    assert rows["worldcup-unanswerable"]["refused"] is True
    counts = report["totals"]["counts"]
    assert (counts["questions"], counts["failed"], counts["answerable"]) == (6, 4, 1)
    assert report["totals"]["metrics"]["hit@1"] == 1.0  # over kasa-baselines alone
    assert report["totals"]["metrics"]["refusal_accuracy"] == 1.0
    assert report["partial"] == ["4 of 6 questions failed; the metrics are over the other 2"]
    assert report["by_kind"]["follow-up"]["counts"]["failed"] == 1
    markdown = (out / "report.md").read_text()
    assert markdown.count("**Partial report.** 4 of 6 questions failed") == 1
    assert "| LLMUnavailableError: " in markdown
    assert KEY not in (out / "report.json").read_text() + markdown


def test_a_rejected_key_stops_the_run_and_writes_the_report(home, tmp_path, server, monkeypatch):
    """No question can get past a rejected key: the first failure stops the run (exit 2),
    the report says so and how many were not asked."""
    script_by_question(server, {"": Reply(status=401)})
    llm_env(monkeypatch, server)
    out = tmp_path / "run"
    assert cli.main(eval_args(home, out, "--llm", "openai", "--index", "current")) == 2
    report = read(out)
    assert [r["error"]["type"] for r in report["questions"]] == ["LLMAuthenticationError"]
    assert len(server.requests) == 1
    (reason,) = report["partial"][1:]
    assert reason.startswith("stopped at 'hyperattention-speed': LLMAuthenticationError")
    assert reason.endswith("; 5 questions not asked")


def test_failures_in_a_row_stop_the_run(home, tmp_path, server, monkeypatch, capsys):
    script_by_question(server, {"": Reply(status=503)})
    llm_env(monkeypatch, server)
    out = tmp_path / "run"
    args = eval_args(home, out, "--llm", "openai", "--index", "current", "--max-failures", "2")
    assert cli.main(args) == 2
    report = read(out)
    assert [r["id"] for r in report["questions"]] == ["hyperattention-speed", "snapkv-paraphrase"]
    assert report["stopped"].startswith("stopped after 2 failed questions in a row")
    assert "error: stopped after 2 failed questions in a row" in capsys.readouterr().err


def test_ctrl_c_writes_the_report_so_far(home, tmp_path, server):
    """SIGINT to a real ``rag-assistant eval`` while the model is answering the fourth
    question: exit 130, and the report holds the three questions asked before it."""
    script_by_question(server, {DIFFUSION: Reply("never sent", hang=60.0)})
    out = tmp_path / "run"
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server.url,
        "OPENAI_API_KEY": KEY,
        "RAG_ASSISTANT_OPENAI__TIMEOUT": "120",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rag_assistant.cli", *eval_args(home, out, "--index", "current")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not asked(server, DIFFUSION) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        assert asked(server, DIFFUSION), "the fourth question never reached the model"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted: the report holds the questions asked so far" in stderr
    report = read(out)
    assert report["interrupted"] is True
    assert [r["id"] for r in report["questions"]] == [
        "hyperattention-speed",
        "snapkv-paraphrase",
        "snapkv-memory-followup",
    ]
    assert "interrupted after 3 of 6 questions" in report["partial"]
    assert report["totals"]["counts"]["questions"] == 3
    assert (out / "report.md").read_text().startswith("# Evaluation report\n\n**Partial report.")


# --- subsets --------------------------------------------------------------------------------


def test_select_a_limit_or_ids_with_the_turns_a_follow_up_needs():
    items = load_qa(QA_SMALL)
    assert select(items) == (items, None)
    assert select(items, limit=6) == (items, None)
    first, subset = select(items, limit=2)
    assert [i.id for i in first] == ["hyperattention-speed", "snapkv-paraphrase"]
    assert subset == {"questions_in_file": 6, "limit": 2, "ids": None, "added_as_context": []}
    picked, subset = select(items, ids=["worldcup-unanswerable", "snapkv-memory-followup"])
    # file order; the follow-up's previous turn is pulled in
    assert [i.id for i in picked] == [
        "snapkv-paraphrase",
        "snapkv-memory-followup",
        "worldcup-unanswerable",
    ]
    assert subset["added_as_context"] == ["snapkv-paraphrase"]
    assert subset["ids"] == ["worldcup-unanswerable", "snapkv-memory-followup"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": ["snapkv-followup"]}, r"qa\.jsonl has no question with id 'snapkv-followup'; "),
        ({"ids": ["snapkv-followup"]}, r"did you mean 'snapkv-memory-followup'\?"),
        ({"limit": 0}, r"at least 1, not 0"),
        ({"limit": 2, "ids": ["kasa-baselines"]}, "either a limit or ids, not both"),
    ],
)
def test_select_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        select(load_qa(QA_SMALL), name="qa.jsonl", **kwargs)


def test_eval_ids_asks_the_subset_and_skips_the_files_own_thresholds(home, tmp_path, capsys):
    qa = tmp_path / "qa.jsonl"
    shutil.copy(QA_SMALL, qa)
    # thresholds beside the file that no subset could meet
    (tmp_path / "qa.thresholds.json").write_text(json.dumps({"min": {"token_f1": 0.99}}))
    out = tmp_path / "run"
    args = ["eval", "--qa", str(qa), "--home", str(home), "--index", "current", "--out", str(out)]
    assert cli.main([*args, "--ids", "snapkv-memory-followup"]) == 0
    printed = capsys.readouterr().out
    assert "PARTIAL: a subset: 2 of the 6 questions of the file (--ids snapkv-memory-followup)" in (
        printed
    )
    assert "qa.thresholds.json not checked: a subset was asked" in printed
    report = read(out)
    assert [r["id"] for r in report["questions"]] == ["snapkv-paraphrase", "snapkv-memory-followup"]
    # the follow-up was still asked as the second turn of its conversation
    assert "(context:" in report["questions"][1]["standalone_question"]
    # a threshold file named on purpose is checked, and a subset does not pass it
    strict = tmp_path / "loose.json"
    strict.write_text(json.dumps({"min": {"hit@5": 0.1}}))
    assert cli.main([*args, "--limit", "1", "--threshold", str(strict)]) == 1
    err = capsys.readouterr().err
    assert "the report is partial: a subset: 1 of the 6 questions of the file (--limit 1)" in err
    with pytest.raises(InputError, match="a partial report cannot set thresholds"):
        save_thresholds(read(out), tmp_path / "new.json")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "argument --limit: must be at least 1, not 0"),
        (["--limit", "two"], "argument --limit: expected a whole number, not 'two'"),
        (["--ids", "a,,b"], "argument --ids: expected ID[,ID...] with no empty id"),
        (["--limit", "1", "--ids", "a"], "argument --ids: not allowed with argument --limit"),
        (["--max-failures", "-1"], "argument --max-failures: must be 0 or more, not -1"),
        (["--index", "old"], "argument --index: invalid choice: 'old'"),
    ],
)
def test_eval_options_bad_input(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "--qa", str(QA_SMALL), *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_eval_unknown_id_is_one_line_and_writes_nothing(tmp_path, capsys):
    status = cli.main(["eval", "--qa", str(QA_SMALL), "--out", str(tmp_path), "--ids", "nope"])
    assert status == 2
    assert capsys.readouterr().err == "error: qa_small.jsonl has no question with id 'nope'\n"
    assert not list(tmp_path.iterdir())


# --- progress off a terminal ----------------------------------------------------------------


def test_progress_off_a_terminal_prints_a_line_every_n_questions(capsys):
    with cli._progress(lines=["questions"], every=2, seconds=3600) as progress:
        for done in range(6):
            progress("questions", done, 5)  # 0..5
        for done in range(4):
            progress("reading", done, 3)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err] == [
        "questions: 2/5",
        "questions: 4/5",
        "questions: 5/5",
    ]


def test_eval_in_a_pipe_shows_progress_lines(home, tmp_path):
    result = run_cli(*eval_args(home, tmp_path / "run", "--index", "current"))
    assert result.returncode == 0, result.stderr
    assert "questions: 6/6 (" in result.stderr


# --- what a report records --------------------------------------------------------------------


def with_categories(tmp_path: Path) -> Path:
    """qa_small.jsonl with categories on all but the last question, and a field of its own."""
    lines = QA_SMALL.read_text().splitlines()
    categories = ["lay", "lay", "lay", "near-miss-quantity", "near-miss-quantity"]
    out = []
    for line, category in zip(lines, [*categories, None], strict=True):
        record = json.loads(line)
        if category:
            record["category"] = category
        record["reviewer"] = "ab"
        out.append(json.dumps(record))
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path


def test_qa_items_keep_their_category_and_other_fields(tmp_path):
    items = load_qa(with_categories(tmp_path))
    assert [i.category for i in items] == [*["lay"] * 3, *["near-miss-quantity"] * 2, None]
    assert all(i.extra == {"reviewer": "ab"} for i in items)
    bad = tmp_path / "bad.jsonl"
    record = json.loads(QA_SMALL.read_text().splitlines()[0])
    bad.write_text(json.dumps({**record, "category": 3}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl line 1: 'category' must be a non-empty"):
        load_qa(bad)


def test_report_by_category_records_index_settings_and_question_text(home, tmp_path, monkeypatch):
    qa = with_categories(tmp_path)
    # a key and a base URL with a password must not reach the report
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:pa55word@127.0.0.1:9/v1")
    out = tmp_path / "run"
    args = ["eval", "--qa", str(qa), "--home", str(home), "--out", str(out), "--llm", "offline"]
    assert cli.main([*args, "--index", "current"]) == 0
    report = read(out)
    assert list(report["by_category"]) == ["lay", "near-miss-quantity", "uncategorized"]
    assert [report["by_category"][c]["counts"]["questions"] for c in report["by_category"]] == [
        3,
        2,
        1,
    ]
    lay = [r for r in report["questions"] if r["category"] == "lay"]
    assert report["by_category"]["lay"] == aggregate(lay)
    text = (out / "report.json").read_text()
    assert KEY not in text and "pa55word" not in text and "user:" not in text
    assert report["settings"]["openai"]["base_url"] == "http://127.0.0.1:9/v1"
    assert report["settings"]["answer"]["min_evidence"] == 0.40
    index = report["index"]
    assert (index["papers"], index["chunks"], index["embedding"]) == (530, 536, "lsa-tfidf-svd-384")
    assert len(index["catalog_sha256"]) == 64
    markdown = (out / "report.md").read_text()
    assert "## Totals by category" in markdown
    assert "| metric | all | lay | near-miss-quantity | uncategorized |" in markdown
    assert "| kasa-baselines | How many PEFT baselines and benchmarks does KaSA outperform? |" in (
        markdown
    )
    assert "catalog sha256 " + index["catalog_sha256"][:12] in markdown


def test_the_catalog_digest_changes_with_the_papers(home, tmp_path):
    """One paper more in the index: another digest (a reader sees the runs measured
    different indexes)."""
    qa = tmp_path / "qa.jsonl"
    qa.write_text(QA_SMALL.read_text().splitlines()[0] + "\n")
    args = ["eval", "--qa", str(qa), "--home", str(home), "--index", "current", "--out"]
    assert cli.main([*args, str(tmp_path / "before")]) == 0
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"title": "A Paper Added Later", "abstract": "It adds " * 20}))
    assert cli.main(["ingest", str(extra), "--home", str(home)]) == 0
    assert cli.main([*args, str(tmp_path / "after")]) == 0
    before, after = read(tmp_path / "before")["index"], read(tmp_path / "after")["index"]
    assert after["papers"] == before["papers"] + 1
    assert after["catalog_sha256"] != before["catalog_sha256"]


def test_a_gold_title_missing_from_the_fresh_index_says_how_to_use_your_own(tmp_path, capsys):
    record = json.loads(QA_SMALL.read_text().splitlines()[0])
    qa = tmp_path / "mine.jsonl"
    qa.write_text(json.dumps({**record, "gold_titles": ["My Own Unbundled Paper"]}) + "\n")
    status = cli.main(["eval", "--qa", str(qa), "--out", str(tmp_path / "run")])
    assert status == 2
    err = capsys.readouterr().err
    assert "gold title 'My Own Unbundled Paper' is not in the index" in err
    assert "use --index current to evaluate the papers in your own index" in err


def chart_report(**kinds: dict) -> dict:
    return {
        "config": {"mode": "offline", "judge": "lexical"},
        "totals": {"metrics": {m: 0.5 for m in METRICS}},
        "by_kind": {k: {"metrics": v} for k, v in kinds.items()},
    }


def test_the_chart_tells_a_measured_zero_from_not_applicable():
    report = chart_report(
        single={"hit@1": 0.0, "refusal_accuracy": None, "false_refusal_rate": 0.0},
        unanswerable={"hit@1": None, "refusal_accuracy": 0.0, "false_refusal_rate": None},
    )
    assert {"hit@1", "refusal_accuracy", "false_refusal_rate"} <= set(CHART_METRICS)
    bars = {(b.group, b.metric): b for b in chart_bars(report)}
    assert bars["single", "hit@1"].zero and not bars["unanswerable", "hit@1"].zero
    assert bars["unanswerable", "hit@1"].value is None
    fig = chart_figure(report)
    (ax,) = fig.axes
    marks = {t.get_gid(): t.get_text() for t in ax.texts}
    assert marks["zero single hit@1"] == "0"
    assert marks["n/a unanswerable hit@1"] == "n/a"
    assert marks["zero unanswerable refusal_accuracy"] == "0"
    assert marks["n/a single refusal_accuracy"] == "n/a"
    assert "zero all hit@1" not in marks and "n/a all hit@1" not in marks
    # a measured 0.0 is a visible bar; "not applicable" has none
    patches = [p for p in ax.patches if p.get_visible()]
    single = [b for b in chart_bars(report) if b.group in ("all", "single", "unanswerable")]
    assert len(patches) == sum(b.value is not None for b in single)
    assert min(p.get_height() for p in patches) > 0
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "false_refusal_rate (lower is better)" in labels


def test_a_partial_report_fails_any_gate():
    report = {"totals": {"metrics": {"hit@5": 1.0}}, "partial": ["1 of 6 questions failed"]}
    assert check_thresholds(report, {"min": {"hit@5": 0.5}, "max": {}}) == [
        "the report is partial: 1 of 6 questions failed"
    ]
