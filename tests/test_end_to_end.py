"""The issue's acceptance check, through the installed console script as a user runs it."""

from __future__ import annotations

import json

from clirun import run_cli

from rag_assistant import Assistant


def test_ask_json_cites_hyperattention_on_a_fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(tmp_path / "fresh"))
    result = run_cli("ask", "What is HyperAttention and how fast is it?", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "offline"
    assert answer["refused"] is False
    titles = [c["title"] for c in answer["citations"]]
    assert "HyperAttention: Long-context Attention in Near-Linear Time" in titles
    # every [n] in the text has a citation, and every citation is used
    numbers = {c["number"] for c in answer["citations"]}
    used = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", answer["text"])}
    assert used == numbers
    assert any("bundled sample corpus was ingested" in n for n in answer["notices"])
    assert any("Offline extractive answer" in n for n in answer["notices"])


def test_api_contract(assistant: Assistant):
    sources = assistant.retrieve("KV cache compression", k=5)
    assert len(sources) == 5
    assert len({s.paper_id for s in sources}) == 5  # grouped: one entry per paper
    for s in sources:
        assert s.title and s.paper_id and s.text and s.score > 0
    answer = assistant.ask("How does SnapKV compress the KV cache?")
    assert not answer.refused and answer.mode == "offline"
    assert answer.citations and all(c.title and c.paper_id for c in answer.citations)
    indexed = {s.paper_id: s.title for s in answer.sources}
    for c in answer.citations:
        assert indexed[c.paper_id] == c.title
