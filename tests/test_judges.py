"""The LLM support judge over the local OpenAI-compatible server: JSON verdicts, a cache by
model + prompt hash, and parse failures counted rather than scored."""

from __future__ import annotations

import pytest
from openai_server import OpenAIServer

from rag_assistant.answer.judges import LLMJudge, parse_verdict
from rag_assistant.answer.llm import ChatModel
from rag_assistant.settings import Settings


@pytest.fixture
def server():
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def judge_for(server, tmp_path) -> LLMJudge:
    settings = Settings(home=tmp_path / "home", openai={"base_url": server.url, "max_retries": 0})
    return LLMJudge(ChatModel(settings), cache_dir=tmp_path / "cache")


def test_verdicts_are_parsed_and_cached(server, tmp_path):
    judge = judge_for(server, tmp_path)
    server.script('{"supported": true, "reason": "stated"}', '{"supported": false}')
    first = judge.judge("X is fast.", ["X is fast."])
    again = judge.judge("X is fast.", ["X is fast."])
    other = judge.judge("X is slow.", ["X is fast."])
    assert (first.supported, again.supported, other.supported) == (True, True, False)
    assert len(server.requests) == 2 and judge.cache_hits == 1
    body = server.requests[0]["json"]
    assert body["temperature"] == 0 and body["response_format"] == {"type": "json_object"}
    assert "<evidence>" in body["messages"][1]["content"]

    reloaded = judge_for(server, tmp_path)  # a new run reads the cache file
    assert reloaded.judge("X is fast.", ["X is fast."]).supported
    assert len(server.requests) == 2


def test_unparseable_reply_is_a_counted_failure(server, tmp_path):
    judge = judge_for(server, tmp_path)
    server.script("Yes, I think so.", '{"supported": "maybe"}')
    a = judge.judge("X is fast.", ["X is fast."])
    b = judge.judge("Y is fast.", ["Y is fast."])
    assert a.failed and b.failed and judge.parse_failures == 2
    assert not judge.judge("Z.", []).failed  # no evidence: unsupported, not a failure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"supported": true, "reason": "r"}', (True, "r")),
        ('```json\n{"supported": false}\n```', (False, "")),
        ("supported: yes", None),
        ('{"supported": 1}', None),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    ("reply", "supported", "failed"),
    [
        ('{"supported": true, "reason": "This claim is false"}', False, True),
        ('{"supported": true, "reason": "The evidence does not mention it."}', False, True),
        ('{"supported": false, "reason": "The claim is stated in the evidence."}', False, True),
        ('{"supported": true, "reason": "The evidence states the speedup."}', True, False),
        ('{"supported": false, "reason": "The number 42 is not in the evidence."}', False, False),
        ('{"supported": true}', True, False),
    ],
)
def test_a_verdict_its_reason_contradicts_is_a_failed_verdict(
    server, tmp_path, reply, supported, failed
):
    """Issue 15: ``{"supported": true, "reason": "This claim is false"}`` was stored as
    supported."""
    judge = judge_for(server, tmp_path)
    server.script(reply)
    verdict = judge.judge("X is fast.", ["X is fast."])
    assert (verdict.supported, verdict.failed) == (supported, failed)
    assert judge.inconsistent == int(failed)
    server.script('{"supported": true, "reason": "stated"}')
    again = judge.judge("X is fast.", ["X is fast."])  # a failed verdict is not cached
    assert len(server.requests) == (2 if failed else 1) and (again.failed is False)


def test_a_claim_with_no_content_words_is_never_supported():
    from rag_assistant.answer.judges import LexicalJudge

    verdict = LexicalJudge().judge("It is.", ["It is. The method is fast."])
    assert not verdict.supported and verdict.score == 0.0
