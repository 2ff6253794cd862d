"""The package's shape, checked: no import cycle among its modules (imports inside functions
and under ``TYPE_CHECKING`` included), the module of the answer types imports nothing
heavy, and no class grows past the size a reader can hold."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rag_assistant

PACKAGE = Path(rag_assistant.__file__).parent
MAX_CLASS_LINES = 300


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module ``name`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "rag_assistant":
                found.add(target)
    return found


def test_no_import_cycle_among_the_modules():
    mods = modules()
    graph = {name: imports_of(name, path, set(mods)) for name, path in mods.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_the_answer_types_import_nothing_heavy():
    script = (
        "import sys, rag_assistant.types as t; "
        "print([m for m in ('chromadb', 'numpy', 'sqlite3', 'pydantic') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_class_is_longer_than_a_reader_can_hold():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


NOT_FOR_ANSWERING = ("llama_index.core", "gradio", "matplotlib", "sklearn", "tiktoken", "openai")


def test_a_cold_ask_imports_only_what_answering_needs(bundled_home):
    """`rag-assistant ask` on an existing index, offline: no chunker (llama-index), UI,
    plotting, fitting, tokenizer or LLM client is imported (each costs a cold start)."""
    script = (
        "import sys\n"
        "from rag_assistant.cli import main\n"
        "status = main(['ask', '--home', sys.argv[1], '--llm', 'offline', '--no-stream',\n"
        "               'What is HyperAttention and how fast is it?'])\n"
        f"print(status, [m for m in {NOT_FOR_ANSWERING!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(bundled_home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HyperAttention" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "0 []"
