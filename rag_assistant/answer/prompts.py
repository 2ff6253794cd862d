"""Prompt templates, loaded from plain files at run time.

The templates live in the top-level ``prompts/`` folder of the project and are shipped
inside the wheel as ``rag_assistant/prompts``. ``RAG_ASSISTANT_PROMPTS_DIR`` points at a
folder of edited copies. Every template declares the variables it must use; a template
that misses one, or uses one that is not declared, fails on load with
:class:`~rag_assistant.errors.PromptTemplateError` rather than at the first question.
Literal braces in a template are written ``{{`` and ``}}``.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from pathlib import Path

from ..errors import PromptTemplateError

VARIABLES: dict[str, frozenset[str]] = {
    "answer_system": frozenset({"n_sources", "max_sentences", "refusal"}),
    "answer_user": frozenset({"sources", "question"}),
    "condense": frozenset({"history", "message"}),
    "judge_system": frozenset(),
    "judge_user": frozenset({"evidence", "claim"}),
}
"""Each template's name (file ``<name>.txt``) and the variables it must use."""


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    path: Path

    def format(self, **values: object) -> str:
        expected = VARIABLES[self.name]
        if set(values) != expected:
            raise PromptTemplateError(
                f"prompt {self.name!r} takes {sorted(expected)}, was given {sorted(values)}"
            )
        return self.text.format(**values)


def default_dir() -> Path:
    """The shipped templates: inside the installed package (``rag_assistant/prompts``),
    else the checkout's top-level ``prompts/``."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "prompts", package.parent / "prompts")
    for candidate in candidates:
        if (candidate / "answer_system.txt").is_file():
            return candidate
    raise PromptTemplateError(
        f"the prompt templates are missing (looked in {candidates[0]} and {candidates[1]}); "
        "reinstall rag-assistant"
    )


def _fields(name: str, text: str, path: Path) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise PromptTemplateError(
            f"prompt {path}: {exc} (write literal braces as {{{{ and }}}})"
        ) from None
    out: set[str] = set()
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise PromptTemplateError(
                f"prompt {path}: {{{field}}} is not a plain variable; "
                f"use one of {sorted(VARIABLES[name])}"
            )
        out.add(field)
    return out


@functools.lru_cache(maxsize=32)
def _load(name: str, folder: Path) -> Prompt:
    if name not in VARIABLES:
        raise PromptTemplateError(f"unknown prompt {name!r}; known: {sorted(VARIABLES)}")
    path = folder / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptTemplateError(f"prompt file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptTemplateError(f"prompt file {path} cannot be read: {exc}") from None
    used = _fields(name, text, path)
    expected = VARIABLES[name]
    missing, unknown = expected - used, used - expected
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join('{' + v + '}' for v in sorted(missing))}")
        if unknown:
            parts.append(f"unknown {', '.join('{' + v + '}' for v in sorted(unknown))}")
        raise PromptTemplateError(
            f"prompt {path}: {'; '.join(parts)} (expected {sorted(expected)})"
        )
    return Prompt(name, text.strip() + "\n", path)


def load(name: str, folder: Path | str | None = None) -> Prompt:
    """The template ``name`` from ``folder`` (default: the shipped templates), checked."""
    return _load(name, Path(folder) if folder is not None else default_dir())


def load_all(folder: Path | str | None = None) -> dict[str, Prompt]:
    """Every template, checked (so a broken folder fails at start-up)."""
    return {name: load(name, folder) for name in VARIABLES}
