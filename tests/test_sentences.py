"""The sentence splitter that offline answers quote from: a quote must be a whole sentence."""

from __future__ import annotations

import pytest

from rag_assistant.text.sentences import sentences


@pytest.mark.parametrize(
    "text",
    [
        "Models such as Mamba (e.g. H3, Mamba, RWKV) keep a fixed state. It fails at recall.",
        "We compare with prior work (i.e. SnapKV) on 16 tasks. It is faster.",
        'Baselines ("e.g. Mamba") lose. It is faster.',
        "As Smith et al. Show, it works. It is faster.",
        "Accuracy rises by 3.5 points with J. Smith's method. It is faster.",
    ],
)
def test_an_abbreviation_does_not_end_a_sentence_even_after_a_bracket(text):
    """ "(e.g. Mamba)" was cut after "e.g.": the quote began "Mamba) in perplexity and ...",
    because the word before the period was read as "(e.g", not "e.g"."""
    said = sentences(text)
    assert len(said) == 2, said
    assert said[1] == "It fails at recall." or said[1] == "It is faster."


def test_sentences_end_at_periods_before_capitals_and_in_text_dumped_without_spaces():
    assert sentences("It is fast. It is small! Is it? Yes.") == [
        "It is fast.",
        "It is small!",
        "Is it?",
        "Yes.",
    ]
    assert sentences("It is fast.It is small.") == ["It is fast.", "It is small."]
