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

ANSWER_RULES = frozenset({"n_sources", "max_sentences", "refusal"})
"""The answering prompt's rules, which its system or its user template states (either may;
together they must state the refusal sentence, see :func:`answer_pair`)."""

VARIABLES: dict[str, frozenset[str]] = {
    "answer_system": frozenset(),
    "answer_user": frozenset({"sources", "question"}),
    "source": frozenset({"number", "title", "text"}),
    "follow_up": frozenset({"message", "standalone"}),
    "condense": frozenset({"history", "message"}),
    "judge_system": frozenset(),
    "judge_user": frozenset({"evidence", "claim"}),
}
"""Each template's name (file ``<name>.txt``) and the variables it must use."""

OPTIONAL: dict[str, frozenset[str]] = {
    "answer_system": ANSWER_RULES,
    "answer_user": ANSWER_RULES,
}
"""Variables a template may use besides its own (it is always given them)."""


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    path: Path
    used: frozenset[str] = frozenset()

    def format(self, **values: object) -> str:
        expected = VARIABLES[self.name] | OPTIONAL.get(self.name, frozenset())
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
    missing, unknown = expected - used, used - expected - OPTIONAL.get(name, frozenset())
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join('{' + v + '}' for v in sorted(missing))}")
        if unknown:
            parts.append(f"unknown {', '.join('{' + v + '}' for v in sorted(unknown))}")
        raise PromptTemplateError(
            f"prompt {path}: {'; '.join(parts)} (expected {sorted(expected)})"
        )
    return Prompt(name, text.strip() + "\n", path, frozenset(used))


def load(name: str, folder: Path | str | None = None) -> Prompt:
    """The template ``name`` from ``folder`` (default: the shipped templates), checked."""
    return _load(name, Path(folder) if folder is not None else default_dir())


def answer_pair(folder: Path | str | None = None) -> tuple[Prompt, Prompt]:
    """The answering prompt's system and user templates, checked together: between them
    they must state the refusal sentence (``{refusal}``), or a model could not know it."""
    system, user = load("answer_system", folder), load("answer_user", folder)
    if "refusal" not in system.used | user.used:
        raise PromptTemplateError(
            f"prompts {system.path} and {user.path}: neither uses {{refusal}}, the sentence "
            "a model must reply when the sources do not answer"
        )
    return system, user


def load_all(folder: Path | str | None = None) -> dict[str, Prompt]:
    """Every template, checked (so a broken folder fails at start-up)."""
    loaded = {name: load(name, folder) for name in VARIABLES}
    answer_pair(folder)
    return loaded
