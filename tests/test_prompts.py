"""Prompt templates: checked on load, shipped inside the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rag_assistant.answer import prompts
from rag_assistant.errors import PromptTemplateError
from rag_assistant.types import REFUSAL

PROJECT = Path(__file__).resolve().parents[1]


def copy_prompts(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    shutil.copytree(PROJECT / "prompts", folder)
    return folder


def test_shipped_templates_load_and_format():
    loaded = prompts.load_all()
    assert set(loaded) == set(prompts.VARIABLES)
    rules = {"n_sources": 3, "max_sentences": 4, "refusal": REFUSAL}
    system = loaded["answer_system"].format(**rules)
    user = loaded["answer_user"].format(sources="[1] A\nabc", question="Why?", **rules)
    prompt = system + user
    assert "1 to 3" in prompt and REFUSAL in prompt and "at most 4" in prompt
    # the refusal sentence last, the question close to the sources
    assert user.rstrip().endswith(REFUSAL)
    assert user.index("</sources>") < user.index("Why?")
    assert '{"supported"' in loaded["judge_system"].format()  # literal braces survive


def test_missing_variable_fails_on_load(tmp_path):
    folder = copy_prompts(tmp_path)
    path = folder / "answer_user.txt"
    path.write_text(path.read_text().replace("{question}", "the question"))
    with pytest.raises(PromptTemplateError, match=r"missing \{question\}"):
        prompts.load("answer_user", folder)


def test_unknown_variable_fails_on_load(tmp_path):
    folder = copy_prompts(tmp_path)
    path = folder / "condense.txt"
    path.write_text(path.read_text() + "\nUser name: {user_name}\n")
    with pytest.raises(PromptTemplateError, match=r"unknown \{user_name\}"):
        prompts.load("condense", folder)


def test_unbalanced_brace_and_missing_file_fail_on_load(tmp_path):
    folder = copy_prompts(tmp_path)
    (folder / "judge_system.txt").write_text('Reply {"supported": true}')
    with pytest.raises(PromptTemplateError, match="judge_system"):
        prompts.load("judge_system", folder)
    (folder / "judge_user.txt").unlink()
    with pytest.raises(PromptTemplateError, match="does not exist"):
        prompts.load("judge_user", folder)


def test_the_answer_prompt_must_state_the_refusal_sentence(tmp_path):
    folder = copy_prompts(tmp_path)
    path = folder / "answer_user.txt"
    path.write_text(path.read_text().replace("{refusal}", "the refusal"))
    prompts.load("answer_user", folder)  # alone it is fine: the system prompt may state it
    with pytest.raises(PromptTemplateError, match=r"neither uses \{refusal\}"):
        prompts.answer_pair(folder)


def test_format_rejects_wrong_values():
    with pytest.raises(PromptTemplateError, match="takes"):
        prompts.load("answer_user").format(sources="x")


def test_wheel_ships_the_prompts_and_loads_them_from_elsewhere(tmp_path):
    """Build the wheel, install it (not editable) into a target folder, and load the prompts
    from a process whose working directory is not the checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(PROJECT)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("rag_assistant-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in prompts.VARIABLES:
        assert f"rag_assistant/prompts/{name}.txt" in names
    assert any(n.startswith("rag_assistant/data/corpus/") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import rag_assistant, rag_assistant.answer.prompts as p; "
        "print(rag_assistant.__file__); print(p.default_dir()); print(len(p.load_all()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[0].startswith(str(target))
    assert out[1] == str(target / "rag_assistant" / "prompts")
    assert out[2] == str(len(prompts.VARIABLES))
