"""Token counting: the question's token limit is checked exactly, and a question of ordinary
length is checked without loading a tiktoken encoding (a cold start's cost): its UTF-8 byte
count bounds its token count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_assistant import Assistant
from rag_assistant.errors import QuestionTooLongError
from rag_assistant.settings import Settings
from rag_assistant.text import tokens

ENCODINGS = tokens.BUNDLED_ENCODINGS


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), name=st.sampled_from(ENCODINGS))
def test_a_text_never_has_more_tokens_than_utf8_bytes(text, name):
    assert tokens.count(text, name) <= len(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=400),
    limit=st.integers(min_value=0, max_value=300),
    name=st.sampled_from(ENCODINGS),
)
def test_count_over_is_the_count_when_it_exceeds_the_limit(text, limit, name):
    n = tokens.count(text, name)
    assert tokens.count_over(text, limit, name) == (n if n > limit else None)


@pytest.fixture
def no_encoding(monkeypatch):
    """Loading an encoding fails the test."""

    def refuse(name):
        raise AssertionError(f"the encoding {name} was loaded")

    monkeypatch.setattr(tokens, "encoding", refuse)


def test_a_question_of_ordinary_length_is_checked_without_an_encoding(tmp_path, no_encoding):
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    question = "How does SnapKV compress the KV cache without fine-tuning the model?"
    assert assistant.validate_question(f"  {question} ") == question
    at_limit = "a" * assistant.settings.answer.max_question_tokens  # 256 bytes, <= 256 tokens
    assert assistant.validate_question(at_limit) == at_limit
    with pytest.raises(AssertionError, match="was loaded"):  # one byte more: counted
        assistant.validate_question(at_limit + "a")


def test_characters_of_several_tokens_each_are_counted(tmp_path):
    """100 kangaroo emoji: 100 characters, far under the character limit, but each emoji is
    more than one token: over the 256-token budget, and refused."""
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    question = "🦘" * 100
    n = tokens.count(question)
    assert n > 256 >= len(question)
    with pytest.raises(QuestionTooLongError, match=f"has {n} tokens; the limit is 256"):
        assistant.validate_question(question)
    fewer = "🦘" * 20  # 80 bytes: within the bound, not counted, accepted
    assert assistant.validate_question(fewer) == fewer
