"""Input checked where it enters: settings overrides merged and validated, ``k`` a whole
number in range in the Python API, the CLI and the UI's handler, the CLI's common options
before or after the command, and ``index check --repair --json`` one JSON document."""

from __future__ import annotations

import json

import pytest

from rag_assistant import Assistant, cli
from rag_assistant.errors import ConfigurationError, InvalidParameterError
from rag_assistant.settings import MAX_K, Settings
from rag_assistant.ui import ChatUI

# --- settings overrides ------------------------------------------------------------------------


def test_overrides_on_given_settings_are_merged(tmp_path):
    base = Settings(home=tmp_path / "a", retrieval={"k": 7, "candidates": 30})
    assistant = Assistant(base, home=str(tmp_path / "b"), retrieval={"k": 3})
    assert assistant.settings.home == tmp_path / "b"  # a str became a Path
    assert assistant.settings.retrieval.k == 3
    assert assistant.settings.retrieval.candidates == 30  # the rest of the group is kept
    assert base.retrieval.k == 7  # the given settings are left as they were


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"retrieval": {"k": 0}}, r"retrieval\.k: Input should be greater than or equal to 1"),
        ({"retrieval": {"kk": 3}}, r"unknown setting 'retrieval\.kk'"),
        ({"homes": "x"}, r"unknown setting 'homes'"),
        ({"answer": {"llm": "gpt"}}, r"answer\.llm: Input should be 'auto', 'offline' or"),
    ],
)
def test_invalid_overrides_are_refused_with_the_setting_named(tmp_path, overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        Assistant(Settings(home=tmp_path), **overrides)
    with pytest.raises(ConfigurationError, match=message):
        Assistant(home=tmp_path, **overrides)


# --- k -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [-1, 0, MAX_K + 1, 2.5, "3", True])
def test_k_out_of_range_is_refused_by_the_api(assistant, k):
    with pytest.raises(InvalidParameterError, match=f"from 1 to {MAX_K}"):
        assistant.retrieve("KV cache compression", k=k)
    with pytest.raises(InvalidParameterError, match=f"from 1 to {MAX_K}"):
        assistant.ask("KV cache compression", k=k)


@pytest.mark.parametrize("k", [1, 3, 3.0])
def test_k_in_range_returns_that_many(assistant, k):
    assert len(assistant.retrieve("KV cache compression", k=k)) == int(k)


@pytest.mark.parametrize("k", ["0", "-1", "51", "x"])
def test_k_out_of_range_is_refused_by_the_cli(home, capsys, k):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["retrieve", "KV cache", "--k", k, "--home", str(home)])
    assert exit_.value.code == 2
    assert "argument --k:" in capsys.readouterr().err


def test_k_out_of_range_through_the_ui_is_an_error_message(assistant):
    ui = ChatUI(assistant)
    *_, (chat, _evidence, _box, _turns) = ui.respond("KV cache compression", [], [], 0, "offline")
    assert "Error" in chat[-1]["content"] and "from 1 to" in chat[-1]["content"]


# --- the CLI's common options ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_home_is_honoured_before_or_after_the_command(home, capsys, where, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(tmp_path / "elsewhere"))
    args = ["retrieve", "speculative decoding", "--json"]
    argv = ["--home", str(home), *args] if where == "before" else [*args, "--home", str(home)]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)  # found papers: the bundled index was used
    assert not (tmp_path / "elsewhere").exists()


# --- index check --repair --json -----------------------------------------------------------------


def test_check_repair_json_is_one_document(home, capsys):
    for d in (home / "lexical").iterdir():
        for f in d.iterdir():
            f.unlink()
    assert cli.main(["index", "check", "--repair", "--json", "--home", str(home)]) == 0
    document = json.loads(capsys.readouterr().out)  # the whole output parses as one
    assert document["repaired"] is True and document["remaining"] == []
    assert [p["part"] for p in document["problems"]] == ["lexical"]

    assert cli.main(["index", "check", "--repair", "--json", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "problems": [],
        "repaired": False,
        "remaining": [],
    }
