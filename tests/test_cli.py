"""The command line as a user runs it (a subprocess, RAG_ASSISTANT_HOME in a temporary
folder): every bad input is one specific line on stderr and a non-zero exit, with the
indexed papers untouched; every command has --help; ``ask --json`` prints the documented
keys; and the README's Python API example runs as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run_cli
from readme import python_blocks

from rag_assistant import cli
from rag_assistant.store.catalog import Catalog

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
COMMANDS = ["ingest", "ask", "retrieve", "index", "eval", "ui"]


run = run_cli


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory, bundled_home) -> Path:
    """One copy of the bundled index for the bad-input tests, none of which may change it."""
    target = tmp_path_factory.mktemp("cli") / "home"
    shutil.copytree(bundled_home, target)
    return target


@pytest.fixture
def cli_home(shared_home, monkeypatch) -> Path:
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(shared_home))
    return shared_home


def snapshot(home: Path) -> tuple:
    catalog = Catalog(home / "catalog.sqlite3")
    try:
        return catalog.counts(), catalog.generation, (home / "manifest.json").read_bytes()
    finally:
        catalog.close()


# --- bad input: one line on stderr, exit status 2, nothing lost -----------------------------


def _missing(tmp: Path) -> tuple[list[str], str]:
    path = tmp / "nowhere.jsonl"
    return ["ingest", str(path)], f"no such file or folder: {path}"


def _empty_folder(tmp: Path):
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.pdf").write_text("not a paper")
    return ["ingest", str(tmp / "empty")], (
        f"folder {tmp / 'empty'} holds no paper files "
        "(looked for .txt, .md, .jsonl, .ndjson, .json, .csv, .tsv, optionally .gz)"
    )


def _empty_file(tmp: Path):
    (tmp / "empty.jsonl").write_text("")
    return ["ingest", str(tmp / "empty.jsonl")], f"{tmp / 'empty.jsonl'}: the file is empty"


def _unsupported(tmp: Path):
    (tmp / "paper.pdf").write_bytes(b"%PDF-1.4")
    return ["ingest", str(tmp / "paper.pdf")], (
        f"{tmp / 'paper.pdf'}: unsupported file type; use .txt, .md, .jsonl, .ndjson, .json, "
        ".csv, .tsv (or .gz)"
    )


def _latin1(tmp: Path):
    path = tmp / "latin.jsonl"
    path.write_bytes(
        b'{"title": "Alpha", "abstract": "About alpha."}\n'
        b'{"title": "Caf\xe9 Models", "abstract": "About caf\xe9s."}\n'
    )
    return ["ingest", str(path)], (
        f"{path}: not UTF-8 text (byte 0xe9 on line 2); convert it, e.g. `iconv -f latin1 -t utf-8`"
    )


def _no_entries_listing(tmp: Path):
    path = tmp / "chrome.txt"
    path.write_text("new\nSubscribe\nDaily Papers\nMar 18\n")
    return ["ingest", str(path)], (
        f"{path}: no title/abstract entries found (expected a title line followed by an "
        "abstract line, or use .jsonl/.csv with 'title' and 'abstract' fields)"
    )


def _no_entries_jsonl(tmp: Path):
    path = tmp / "blank.jsonl"
    path.write_text("\n   \n\n")
    return ["ingest", str(path)], f"{path}: no records with 'title' and 'abstract' found"


def _malformed_jsonl(tmp: Path):
    path = tmp / "bad.jsonl"
    path.write_text(
        '{"title": "A New Paper", "abstract": "It is new."}\n{"title": "Broken", "abstract": \n'
    )
    # line 2 is cut off after its 32 characters: the value is missing at column 33
    return ["ingest", str(path)], (
        f"{path}:2: not valid JSON (Expecting value at column 33) (fix the record, or ingest "
        "with --skip-invalid)"
    )


EMPTY = "the question is empty; ask something about the papers"
# "cache" and " cache" are one cl100k_base token each
TOO_MANY_TOKENS = (
    "the question has 300 tokens; the limit is 256 (RAG_ASSISTANT_ANSWER__MAX_QUESTION_TOKENS)"
)
TOO_MANY_CHARS = (
    "the question is 4,001 characters long; the limit is 4,000 characters and 256 tokens"
)

CASES = {
    "missing path": _missing,
    "empty folder": _empty_folder,
    "empty file": _empty_file,
    "unsupported file": _unsupported,
    "non-UTF-8 file": _latin1,
    "listing without entries": _no_entries_listing,
    "JSON lines without records": _no_entries_jsonl,
    "malformed JSON line": _malformed_jsonl,
    "empty question": lambda tmp: (["ask", ""], EMPTY),
    "whitespace question": lambda tmp: (["ask", "  \n\t "], EMPTY),
    "whitespace query": lambda tmp: (["retrieve", "   "], EMPTY),
    "question over the token budget": lambda tmp: (
        ["ask", " ".join(["cache"] * 300)],
        TOO_MANY_TOKENS,
    ),
    "question over the character limit": lambda tmp: (["ask", "x" * 4001], TOO_MANY_CHARS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line_and_loses_nothing(case, cli_home, tmp_path, capsys):
    """In-process (``main(argv)``): the same code path as the console script, quicker."""
    before = snapshot(cli_home)
    assert before[0][0] == 530  # papers
    args, message = CASES[case](tmp_path)
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""
    assert snapshot(cli_home) == before  # the indexed papers are all still there


def test_bad_input_in_a_process_of_its_own(cli_home, tmp_path):
    """One case as a user meets it: the installed command, a new process, no traceback."""
    args, message = _latin1(tmp_path)
    result = run(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {message}\n"


def test_skip_invalid_goes_past_the_broken_line(cli_home, tmp_path):
    """The way out the malformed-line message names works (on a copy: this one writes)."""
    home = tmp_path / "home"
    shutil.copytree(cli_home, home)
    args, _ = _malformed_jsonl(tmp_path)
    result = run(*args, "--skip-invalid", "--json", "--home", str(home))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["added"], report["papers"]) == (1, 531)
    assert report["skipped"] == [
        f"{tmp_path / 'bad.jsonl'}:2: not valid JSON (Expecting value at column 33)"
    ]


# --- help -----------------------------------------------------------------------------------


def test_top_level_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: rag-assistant")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.M), command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rag-assistant {command}")
    assert "--home DIR" in out


# --- ask --json -------------------------------------------------------------------------------


def documented_json_keys() -> tuple[set[str], set[str]]:
    """The keys README.md documents for ``ask --json``: the answer's, and a citation's."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"`--json` on `ask` prints\s+`(\{.*?\})`", text, re.S)
    assert match, "README.md no longer documents the ask --json shape"
    shape = match.group(1)
    inner = re.search(r"\[\{(.*?)\}\]", shape).group(1)
    outer = shape.replace(inner, "")
    return set(re.findall(r'"(\w+)"', outer)), set(re.findall(r'"(\w+)"', inner))


def test_ask_json_prints_the_documented_keys(cli_home):
    answer_keys, citation_keys = documented_json_keys()
    assert answer_keys == {"text", "citations", "refused", "mode", "claims"}
    assert citation_keys == {"number", "title", "paper_id"}

    result = run("ask", "How does SnapKV compress the KV cache?", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer_keys <= answer.keys()
    assert (answer["mode"], answer["refused"]) == ("offline", False)
    assert answer["citations"]
    catalog = Catalog(cli_home / "catalog.sqlite3")
    try:
        titles = catalog.papers([c["paper_id"] for c in answer["citations"]])
    finally:
        catalog.close()
    for citation in answer["citations"]:
        assert citation.keys() == citation_keys
        assert citation["title"] == titles[citation["paper_id"]].title  # from the index
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer["text"])}
    assert numbers == {c["number"] for c in answer["citations"]}
    for claim in answer["claims"]:
        assert set(claim["citations"]) <= numbers and isinstance(claim["supported"], bool)


# --- the README stays true ----------------------------------------------------------------------


def test_readme_python_api_example_runs_as_written(home, monkeypatch):
    blocks = python_blocks("Python API")
    assert blocks
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(home))  # holds the bundled corpus already
    for code in blocks:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    # the ingest of the corpus folder the example names is the bundled corpus: unchanged
    assert lines[0] == "added: 0, updated: 0, unchanged: 530, removed: 0, skipped: 0"
    assert lines[1].startswith("572 entries in 5 file(s); the index holds 530 papers")
    ranked = lines[2:7]
    assert [line.split(" ", 1)[0] for line in ranked] == ["1", "2", "3", "4", "5"]
    # as the example's comment says: the answer is not refused, and it is offline
    assert "False offline" in lines
