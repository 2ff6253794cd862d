"""The llama-index adapters, tested against llama-index's own interfaces: our retriever is a
``BaseRetriever`` that llama-index's ``RetrieverQueryEngine`` runs (with its ``MockLLM``, no
network), our query engine is a ``BaseQueryEngine`` whose ``Response`` carries the checked
citations and claims; the README's example runs as written; and importing the package or
running ``ask`` does not import llama-index."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from llama_index.core import Settings as LlamaSettings
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, QueryBundle
from openai_server import OpenAIServer
from readme import python_blocks

from rag_assistant import Assistant
from rag_assistant.errors import InvalidParameterError
from rag_assistant.settings import Settings

PROJECT = Path(__file__).resolve().parents[1]
QUESTION = "How does SnapKV compress the KV cache?"


def test_as_retriever_runs_our_hybrid_retrieval(assistant):
    retriever = assistant.as_retriever(k=4)
    assert isinstance(retriever, BaseRetriever)
    hits = retriever.retrieve("KV cache compression")
    sources = assistant.retrieve("KV cache compression", k=4)
    assert len(hits) == 4
    for hit, source in zip(hits, sources, strict=True):
        meta = hit.node.metadata
        assert (meta["title"], meta["paper_id"], meta["rank"]) == (
            source.title,
            source.paper_id,
            source.rank,
        )
        assert meta["chunk_ids"] == [c.chunk_id for c in source.chunks]
        assert hit.node.node_id == source.chunks[0].chunk_id
        assert hit.node.get_content() == source.text
        assert hit.score == source.score
    # a model reading a node sees its title beside the chunk, not our ids
    shown = hits[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert f"title: {sources[0].title}" in shown and sources[0].text in shown
    assert sources[0].paper_id not in shown


def test_our_retriever_inside_llama_indexs_retriever_query_engine(assistant):
    """llama-index's own pipeline around our retriever; MockLLM echoes the prompt it was
    given, so the answer shows what llama-index's synthesizer put in front of a model.
    llama-index's global Settings are not touched."""
    llm_before = LlamaSettings._llm
    retriever = assistant.as_retriever(k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUESTION)
    top = assistant.retrieve(QUESTION, k=3)
    assert [n.node.metadata["title"] for n in response.source_nodes] == [s.title for s in top]
    assert top[0].title.startswith("SnapKV")
    prompt = str(response)
    assert QUESTION in prompt
    for source in top:
        assert f"title: {source.title}" in prompt
        assert source.text[:100] in prompt
    assert LlamaSettings._llm is llm_before


def test_as_query_engine_gives_our_checked_answer(assistant):
    engine = assistant.as_query_engine(k=5)
    assert isinstance(engine, BaseQueryEngine)
    response = engine.query(QUESTION)
    answer = assistant.ask(QUESTION, k=5)
    assert isinstance(response, Response)
    assert str(response) == answer.text and re.search(r"\[\d\]", answer.text)
    meta = response.metadata
    expected = answer.to_dict()
    for key in ("citations", "claims", "refused", "mode", "warnings", "notices"):
        assert meta[key] == expected[key], key
    assert meta["refused"] is False and meta["mode"] == "offline"
    assert meta["claims"] and all(isinstance(c["supported"], bool) for c in meta["claims"])
    # the sources are the nodes; each cited one says which [n] it is
    assert [n.node.metadata["paper_id"] for n in response.source_nodes] == [
        s.paper_id for s in answer.sources
    ]
    cited = {
        n.node.metadata["citation"]: n.node.metadata["title"]
        for n in response.source_nodes
        if "citation" in n.node.metadata
    }
    assert cited == {c.number: c.title for c in answer.citations}
    assert [n.node.node_id for n in engine.retrieve(QueryBundle(QUESTION))] == [
        n.node.node_id for n in response.source_nodes
    ]


def test_query_engine_async_and_a_refusal(assistant):
    engine = assistant.as_query_engine()
    response = asyncio.run(engine.aquery("Who won the 1998 football World Cup final in Paris?"))
    assert response.metadata["refused"] is True
    assert response.metadata["citations"] == [] and response.metadata["claims"] == []
    assert not any("citation" in n.node.metadata for n in response.source_nodes)


def test_query_engine_with_a_scripted_model_carries_the_checked_claims(home):
    """Generated answers over the real openai client and a scripted server: the phantom
    marker is removed and counted, the made-up sentence is flagged, in the Response."""
    server = OpenAIServer().start()
    try:
        assistant = Assistant(
            Settings(
                home=home,
                openai={"base_url": server.url, "max_retries": 0},
                # the checked claims themselves are the point here, not the fallback they
                # would trigger (one of three supported)
                answer={"fallback_below": 0.0},
            )
        )
        sources = assistant.retrieve(QUESTION)
        n = next(i for i, s in enumerate(sources, 1) if s.title.startswith("SnapKV"))
        server.script(
            f"SnapKV compresses KV caches by selecting clustered important KV positions [{n}]. "
            f"It was trained on the surface of the moon with 42 telescopes [{n}]. "
            "It beats every model ever made [17]."
        )
        response = assistant.as_query_engine().query(QUESTION)
    finally:
        server.stop()
    meta = response.metadata
    assert meta["mode"] == "llm" and meta["model"] == "gpt-4o-mini"
    assert "[17]" not in str(response)
    assert meta["warnings"] == ["removed citation [17]: it refers to no source (the answer had 5)"]
    assert [c["title"] for c in meta["citations"]] == [sources[n - 1].title]
    verdicts = {c["text"]: c["supported"] for c in meta["claims"]}
    assert verdicts[
        "SnapKV compresses KV caches by selecting clustered important KV positions [1]."
    ]
    assert not next(v for t, v in verdicts.items() if "moon" in t)


def test_k_is_checked_when_the_adapter_is_made(assistant):
    for make in (assistant.as_retriever, assistant.as_query_engine):
        with pytest.raises(InvalidParameterError, match="from 1 to 50, not 0"):
            make(k=0)


def test_the_package_and_ask_do_not_import_llama_index(cli_home_env):
    script = (
        "import sys, rag_assistant; from rag_assistant import Assistant; "
        "from rag_assistant import cli; "
        "status = cli.main(['ask', '--no-stream', 'What is HyperAttention?']); "
        "print(status, sorted({m for m in sys.modules if m.startswith('llama_index')}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"


@pytest.fixture
def cli_home_env(home, monkeypatch):
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(home))
    return home


# --- the README's example runs as written ---------------------------------------------------


def test_readme_llamaindex_example_runs_as_written(home, monkeypatch):
    (code,) = python_blocks("With LlamaIndex")
    monkeypatch.setenv("RAG_ASSISTANT_HOME", str(home))  # holds the bundled corpus already
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # three retrieved papers: score, title, id
    assert all(re.fullmatch(r"[01]\.\d{3} .+ \S+", line) for line in lines[:3])
    assert any(re.fullmatch(r"\d+ SnapKV: .+", line) for line in lines)  # a citation
    assert re.search(r"^False \[(True|False)", result.stdout, re.M)  # not refused; verdicts
    assert lines[-1].startswith("HyperAttention")  # llama-index's engine, our top source
