"""The answerability policy, signal by signal, on small hand-made abstracts: a number asked
but not stated (or stated only as a change), a method only named as a baseline, an
accidental sub-word match, a lay paraphrase; then follow-ups by position, and the model
path refusing through the same policy before the model is called."""

from __future__ import annotations

import json
import re

import pytest

from rag_assistant import Assistant
from rag_assistant.answer.policy import (
    _DURATION,
    AnswerabilityPolicy,
    Text,
    _generic,
    _kind_asked,
    _quantity,
    _relative,
    asked_about,
    asks_for_papers,
    asks_to_define,
    compatible,
    defines,
    numbers_in,
)
from rag_assistant.types import REFUSAL, Source

ABSTRACTS = {
    "Quokka Routing: Packets Follow the Scent": (
        "We present Quokka Routing, a protocol that routes packets by scent gradients. "
        "Quokka Routing cuts latency by 37% compared to shortest-path routing. "
        "It needs no central controller."
    ),
    "Lantern Attention for Long Documents": (
        "Lantern Attention lights only the relevant blocks of a long document. "
        "Against Heron Pooling and dense attention baselines, it keeps the same accuracy "
        "at 64k tokens."
    ),
    "Capitalizing on Weak Labels": (
        "We capitalize on weak labels to train classifiers. Our method improves F1 on "
        "three benchmarks."
    ),
}


def sources(abstracts: dict[str, str] = ABSTRACTS) -> list[Source]:
    return [
        Source(f"p{i}", title, 1.0, abstract, abstract, rank=i)
        for i, (title, abstract) in enumerate(abstracts.items(), start=1)
    ]


def quokka(abstract: str) -> Source:
    """One paper, "Quokka Routing", with ``abstract``."""
    return Source("p1", "Quokka Routing", 1.0, abstract, abstract, rank=1)


def policy(*signals: str, abstracts: dict[str, str] = ABSTRACTS) -> AnswerabilityPolicy:
    """A policy over the three abstracts (or ``abstracts``, {title: abstract}): IDF from
    their document frequencies."""
    texts = [set(Text.of(t + " " + a).terms) for t, a in abstracts.items()]

    def df(term: str) -> int:
        return sum(term in t for t in texts)

    def idf(term: str) -> float:
        return 3.0 - df(term)

    def spelled(term: str) -> str | None:
        return term if df(term) else None

    return AnswerabilityPolicy(
        idf, min_evidence=0.4, spelled=spelled, df=df, rare_df=1, signals=signals
    )


ALL = AnswerabilityPolicy.SIGNALS


def test_a_question_the_abstracts_answer_is_answered():
    decision = policy(*ALL).decide("How does Quokka Routing route packets?", sources())
    assert decision.answerable and decision.verdict == "answered"


def test_a_number_asked_but_not_stated():
    decision = policy("quantity").decide(
        "How many controllers does Quokka Routing need?", sources()
    )
    assert (decision.answerable, decision.verdict) == (False, "not stated")
    assert "no retrieved abstract states the controller" in decision.reason
    assert policy().decide("How many controllers does Quokka Routing need?", sources()).answerable


def test_an_absolute_value_asked_where_only_a_change_is_stated():
    asked = "What is the latency of Quokka Routing?"
    decision = policy("quantity").decide(asked, sources())
    assert decision.verdict == "not stated"
    assert "[1] reports a change relative to a baseline" in decision.reason
    # asked as a change, the same sentence answers it
    assert (
        policy("quantity").decide("How much does Quokka Routing cut latency?", sources()).answerable
    )


def test_a_percentage_after_by_is_a_difference_whatever_the_verb():
    """ "What accuracy does Pink get on VSR?" was answered with "... surpasses Kosmos-2 by
    24.7% ...": a difference, though "surpasses" is no change word the check knew."""
    said = "Quokka surpasses Heron Routing by 24.7% on delivery accuracy."
    beaten = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    asked = "What delivery accuracy does Quokka Routing reach?"
    assert policy("quantity").decide(asked, [beaten]).verdict == "not stated"
    assert [_relative(said, n) for n in numbers_in(said)] == [True]
    points = "Quokka beats Heron Routing by 3 points of delivery accuracy."
    assert [_relative(points, n) for n in numbers_in(points)] == [True]
    stated = "Quokka reaches 81.2% delivery accuracy, surpassing Heron Routing."
    reached = Source("p1", "Quokka Routing", 1.0, stated, stated, rank=1)
    assert policy("quantity").decide(asked, [reached]).answerable


def test_any_unit_after_a_change_word_and_by_is_a_difference():
    """ "what is DSnoT's actual perplexity ...?" was answered by "DSnoT is able to outperform
    the state-of-the-art Wanda by 26.79 perplexity": a change word in the clause before "by"
    makes the number a difference, in whatever unit; "by" with no change word before it in
    its clause does not."""
    said = "Quokka is able to outperform the well-known Heron Routing by 26.79 perplexity."
    beaten = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    asked = "What is the perplexity of Quokka Routing?"
    assert [_relative(said, n) for n in numbers_in(said)] == [True]
    assert policy("quantity").decide(asked, [beaten]).verdict == "not stated"
    plain = "Trained by Heron Routing, Quokka reaches a perplexity of 8.1 by 3 epochs."
    assert [_relative(plain, n) for n in numbers_in(plain)] == [False, False]
    reached = Source("p1", "Quokka Routing", 1.0, plain, plain, rank=1)
    assert policy("quantity").decide(asked, [reached]).answerable


def test_a_count_in_words_does_not_measure_what_is_asked():
    """ "What's ICR's reranking latency in milliseconds?" was answered by "... experiments with
    two popular open-weight LLMs ... cutting the latency by more than 60%": "two" counts LLMs;
    of the latency, only a change is stated. A count in words still answers "how many"."""
    said = "We test Quokka Routing on two mesh networks, cutting its latency by 40%."
    source = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    decision = policy("quantity").decide("What is the latency of Quokka Routing?", [source])
    assert decision.verdict == "not stated"
    assert "[1] reports a change relative to a baseline" in decision.reason
    counted = "How many mesh networks is Quokka Routing tested on?"
    assert policy("quantity").decide(counted, [source]).answerable
    assert _quantity("What learning rate does Quokka Routing use?").measure  # a rate, too
    assert not _quantity("What number of routers does Quokka Routing need?").measure


def test_a_year_asked_is_stated_only_by_a_year():
    """ "Who introduced the Transformer architecture and in which year?" was answered with
    sentences using "transformer architecture": a question asking when needs a year."""
    assert _quantity("In which year was Quokka Routing introduced?").year
    assert _quantity("When was Quokka Routing released?").year
    assert _quantity("When does Quokka Routing fail?") is None
    asked = "In which year was Quokka Routing introduced?"
    decision = policy("quantity").decide(asked, sources())
    assert decision.verdict == "not stated"  # "37%" is no year
    assert "no retrieved abstract states the year asked for" in decision.reason
    said = "We introduced Quokka Routing in 2021 to route packets by scent."
    dated = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    assert policy("quantity").decide(asked, [dated]).answerable


def test_a_follow_up_asks_for_a_number_only_when_its_own_words_do():
    """A condensed follow-up carries the earlier question as context: that turn's "how many"
    is not what this one asks."""
    condensed = "And how does it route them? (context: How many controllers does Quokka need?)"
    asked = "And how does it route them?"
    # the earlier turn, in parentheses, is an aside: its "how many" is not read even alone
    assert policy("quantity").decide(condensed, sources()).analysis.quantity is None
    decision = policy("quantity").decide(condensed, sources(), asked=asked)
    assert decision.answerable and decision.analysis.quantity is None
    again = "And how many controllers? (context: How does Quokka Routing route packets?)"
    assert (
        policy("quantity").decide(again, sources(), asked="And how many controllers?").verdict
        == "not stated"
    )


def test_a_number_written_with_its_unit_is_a_number():
    said = "Quokka fits LLaMa2-7B in 21GB of memory, answers in 20ms and trains in 3 h."
    assert [m.group(0) for m in numbers_in(said)] == ["21GB", "20ms", "3 h"]  # not "2-7B"
    source = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    asked = "How much memory does Quokka need?"
    assert policy("quantity").decide(asked, [source]).answerable


def test_list_markers_and_citation_years_state_no_quantity():
    """ "How much text, in GB, was RoBERTa pretrained on?" was answered by "... BERT
    pretraining (Devlin et al., 2019) ...", and "How many experts are in each layer of
    Moirai-MoE?" by "(1) Frequency is ...": neither number is a quantity."""
    said = "We revisit scent routing (Heron et al., 2019): (1) scents fade; (ii) they drift."
    assert numbers_in(said) == []
    assert [m.group(0) for m in numbers_in("Kusupati et al. (2022) route 12 packets")] == ["12"]
    source = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    asked = "How many packets does Quokka Routing route per second?"
    assert policy("quantity").decide(asked, [source]).verdict == "not stated"


def test_the_unit_counted_is_in_the_sentence_stating_the_number():
    """A title holding the unit ("... with Sparse Mixture of Experts") does not make every
    number of the abstract a count of it."""
    abstract = "Quokka Routing uses scents. Experiments on 39 networks show it is robust."
    source = Source("p1", "Quokka Routing with a Mixture of Scents", 1.0, abstract, abstract, 1)
    asked = "How many scents are in each Quokka Routing mixture?"
    assert policy("quantity").decide(asked, [source]).verdict == "not stated"
    counted = abstract + " Each mixture holds 8 scents."
    source = Source("p1", source.title, 1.0, counted, counted, rank=1)
    assert policy("quantity").decide(asked, [source]).answerable


def test_a_count_word_joined_to_another_word_counts_only_that_word():
    """ "How much faster is 2DMSE than MRL?" was answered by "... called Two-dimensional
    Matryoshka Sentence Embedding": "Two-" counts dimensions, not a speed-up."""
    said = "We present Two-dimensional Quokka Routing, which follows scents."
    source = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    assert policy("quantity").decide("How much faster is Quokka Routing?", [source]).verdict == (
        "not stated"
    )
    staged = "We present a three-stage Quokka Routing, which follows scents."
    source = Source("p1", "Quokka Routing", 1.0, staged, staged, rank=1)
    assert (
        policy("quantity").decide("How many stages does Quokka Routing have?", [source]).answerable
    )


def test_the_value_a_change_reaches_is_an_absolute_value():
    """ "improve the test accuracy ... from 1% to more than 92%" states the accuracy reached;
    "up to 40%" is still a change."""
    said = "Quokka Routing improves delivery accuracy from 41% to more than 92%."
    assert [_relative(said, n) for n in numbers_in(said)] == [True, False]
    source = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    asked = "What delivery accuracy does Quokka Routing reach?"
    assert policy("quantity").decide(asked, [source]).answerable
    upto = "Quokka Routing improves delivery accuracy by up to 40%."
    assert [_relative(upto, n) for n in numbers_in(upto)] == [True]


def test_a_model_size_is_no_score():
    """ "What HumanEval pass@1 does CodeGen2-16B achieve?" was answered by "... release
    CodeGen2 models in size 1B, 3.7B, 7B, and 16B parameters": sizes, not a score."""
    said = "We release Quokka Routing models in size 1B and 7B, tested on delivery accuracy."
    source = Source("p1", "Quokka Routing", 1.0, said, said, rank=1)
    asked = "What delivery accuracy does Quokka Routing reach?"
    assert policy("quantity").decide(asked, [source]).verdict == "not stated"
    sized = "What is the size of the Quokka Routing models?"
    assert policy("quantity").decide(sized, [source]).answerable


def test_a_number_the_question_states_is_a_condition_not_the_answer():
    """ "How many training tokens was the 1.3B model trained on?" was answered by "...
    train a 1.3B LLM": the question's own number, not the count it asks for."""
    said = "Quokka Routing was tested on a 64-node network, where it delivers packets."
    asked = "What delivery accuracy does Quokka Routing reach on the 64-node network?"
    assert policy("quantity").decide(asked, [quokka(said)]).verdict == "not stated"
    source = quokka(said + " Its delivery accuracy on the 64-node network is 91%.")
    assert policy("quantity").decide(asked, [source]).answerable
    # a follow-up's own words set its conditions, not the earlier turn condensed into it
    condensed = "How many nodes can Quokka Routing on the 64-node network reach?"
    decision = policy("quantity").decide(condensed, [source], asked="How many nodes can it reach?")
    assert decision.answerable


def test_the_questions_own_number_does_not_stand_for_the_unit_asked():
    """ "How many transformer layers does MobileLLM-125M have?" was answered by "... an
    accuracy enhancement of 0.7%/0.8% than MobileLLM 125M/350M": the sentence holds the
    question's own "125M", not the layers it asks to count."""
    said = "Quokka Routing 125M delivers 91% of packets, as Quokka Routing 350M does."
    asked = "How many layers does Quokka Routing 125M have?"
    assert policy("quantity").decide(asked, [quokka(said)]).verdict == "not stated"
    source = quokka(said + " Quokka Routing 125M stacks 30 layers.")
    assert policy("quantity").decide(asked, [source]).answerable


def test_how_long_it_takes_is_stated_only_by_a_duration():
    said = "Quokka Routing occupies 283MB at the same time as it routes 40 packets."
    asked = "How long does it take to train Quokka Routing?"
    assert policy("quantity").decide(asked, [quokka(said)]).verdict == "not stated"
    assert policy("quantity").decide(asked, [quokka(said + " It trains in 3 hours.")]).answerable


def test_a_number_the_title_states_is_stated():
    abstract = "Quokka Routing follows the scent of packets. It beats shortest paths."
    titled = Source("p1", "Quokka Routing From 8 Scents", 1.0, abstract, abstract, rank=1)
    untitled = Source("p1", "Quokka Routing", 1.0, abstract, abstract, rank=1)
    asked = "How many scents does Quokka Routing follow?"
    assert policy("quantity").decide(asked, [titled]).answerable
    assert policy("quantity").decide(asked, [untitled]).verdict == "not stated"


def test_a_number_said_of_the_subject_of_its_paper_is_stated():
    """A paper presenting a name ("We present MeshBench ...") states its numbers without
    repeating the name ("It covers 4,200 routers ..."): the number is said of the subject.
    Refused before (qa: "How many real-world APIs are in the ToolBench dataset?"). A paper
    that only mentions the name states no number of it."""
    abstracts = {
        "A Benchmark of Mesh Networks": "We present MeshBench, a benchmark of mesh networks. "
        "It covers 4,200 routers from 12 cities.",
        "Scent Routing on Mesh Networks": "We route packets on mesh networks, as MeshBench "
        "does. Our testbed covers 300 routers.",
    }
    asked = "How many routers does MeshBench cover?"
    decisions = [
        policy("quantity", abstracts={title: abstract}).decide(
            asked, [Source("p1", title, 1.0, abstract, abstract, rank=1)]
        )
        for title, abstract in abstracts.items()
    ]
    assert [d.verdict for d in decisions] == ["answered", "not stated"]


def test_a_thing_in_words_that_no_paper_describes():
    """ "What is layer normalization?" was answered by any sentence using the words ("... we
    drop layer normalization ..."): a thing the question asks to be explained, in words, that
    no relevant paper presents (its title, a "we propose" sentence) or defines ("X is ...")
    is only touched by the abstracts. A paper that defines it answers."""
    mention = "We route packets with a small network. We drop layer normalization from it."
    defined = (
        "Layer normalization is a rescaling of each layer's activations. We route packets with it."
    )
    asked = "What is layer normalization?"

    def decide(abstract: str):
        title = "Scent Routing"
        source = Source("p1", title, 1.0, abstract, abstract, rank=1)
        return policy("in-passing", abstracts={title: abstract}).decide(asked, [source])

    passing = decide(mention)
    assert passing.verdict == "not stated"
    assert passing.reason == (
        '"layer normalization" appears in [1] only in passing; no indexed abstract describes it'
    )
    assert decide(defined).verdict == "answered"
    # a comparison asks about each thing compared, not about "difference between ..."
    title = "Scent Routing"
    source = Source("p1", title, 1.0, mention, mention, rank=1)
    compared = policy("in-passing", abstracts={title: mention}).decide(
        "What's the difference between layer normalization and dropout?", [source]
    )
    assert compared.reason.startswith('"layer normalization" appears in [1] only in passing')
    assert policy().decide(asked, [Source("p1", "Scent Routing", 1.0, mention, mention)]).answerable


def test_how_each_of_two_papers_does_something_asks_no_thing_to_explain():
    """ "Compare Token Recycling with Lookahead: how does each speed up decoding?" was refused
    with 'no indexed abstract describes "each speed up decoding"': a pronoun after "how
    does" is no thing in words to explain."""
    check = policy("in-passing")
    asked = "Quokka Routing vs Lantern Attention: how does each cut latency?"
    assert check.decide(asked, sources()).answerable


def test_a_clause_about_what_a_pronoun_refers_to_is_no_thing_to_explain():
    """After a question about FreCaS, "what's the guidance trick it uses?" was refused with
    'no indexed abstract describes "guidance trick it uses"': a phrase holding a pronoun
    ("it", "them") is about the thing the conversation named, not a thing in words of its
    own. A phrase without one is still checked."""
    check = policy("in-passing")
    follow_up = "what's the scent trick it uses? (context: how fast is Quokka Routing?)"
    assert check.decide(follow_up, sources(), asked="what's the scent trick it uses?").answerable
    assert check.decide("how do u avoid them? (context: Quokka Routing)", sources()).answerable
    unexplained = check.decide("what's the scent trick? (context: Quokka Routing)", sources())
    assert unexplained.verdict == "not stated"


def test_the_measure_a_question_asks_the_number_of_is_no_thing_to_explain():
    """After a question about Token Recycling, "whats the speedup then" was refused with
    '"speedup then" appears in [1] only in passing': "what's the speedup?" asks for a number
    (the 'quantity' check's), not for the speed-up to be explained."""
    check = policy("in-passing")
    asked = "whats the latency then"
    condensed = f"{asked} (context: How does Quokka Routing route packets?)"
    assert check.decide(condensed, sources(), asked=asked).answerable
    assert check.decide("what is the latency?", sources()).answerable
    unexplained = check.decide("what is the scent gradient trick?", sources())
    assert unexplained.verdict == "not stated"


def test_a_thing_to_explain_in_some_setting_is_the_thing_before_the_setting():
    """ "Can you explain the vanishing gradient problem in deep networks?" was answered from a
    paper on deep networks: the thing asked to be explained ends where its setting ("in
    deep networks") starts, and no relevant paper describes it."""
    abstract = "We route packets with a deep network. Its layer normalization is dropped."
    title = "Scent Routing"
    source = Source("p1", title, 1.0, abstract, abstract, rank=1)
    check = policy("in-passing", abstracts={title: abstract})
    asked = "Can you explain the layer normalization in deep networks for routing?"
    assert check.decide(asked, [source]).reason == (
        '"layer normalization" appears in [1] only in passing; no indexed abstract describes it'
    )
    described = "Layer normalization is a rescaling of activations. " + abstract
    source = Source("p1", title, 1.0, described, described, rank=1)
    assert policy("in-passing", abstracts={title: described}).decide(asked, [source]).answerable


def test_a_method_only_named_as_a_baseline():
    asked = "How does Heron Pooling select blocks?"
    decision = policy("in-passing").decide(asked, sources())
    assert decision.verdict == "not stated"
    assert decision.reason.startswith('"Heron Pooling" appears in [2] only in passing')
    # the paper's own method, named in its title, is what it is about
    assert (
        policy("in-passing")
        .decide("How does Lantern Attention select blocks?", sources())
        .answerable
    )


def test_a_subject_none_of_the_matching_papers_mentions():
    """ "Which vision encoders does the Cambrian MLLM use?" was answered from a paper about
    MLLM encoders that never mentions Cambrian (named elsewhere in passing): the papers that
    match the rest of the question are about something else."""
    asked = "Which scent gradients does Heron Pooling follow to route packets?"
    decision = policy("in-passing").decide(asked, sources())
    assert decision.verdict == "not stated"
    assert decision.reason == (
        'the abstracts that match the question do not mention "Heron Pooling"; [2] mentions it, '
        "not the rest of the question"
    )
    assert policy().decide(asked, sources()).answerable  # the signal off: answered
    own = "Which scent gradients does Quokka Routing follow to route packets?"
    assert policy("in-passing").decide(own, sources()).answerable
    # a size is no subject, though one paper writes it
    lantern = "Lantern Attention for Long Documents"
    sized = {**ABSTRACTS, lantern: ABSTRACTS[lantern] + " It runs on a 405B model."}
    asked = "Which scent gradients does the 405B router follow to route packets?"
    assert policy("in-passing", abstracts=sized).decide(asked, sources(sized)).answerable


NAMED = {
    "Owlet: Benchmarks Written by a Language Model": (
        "We present Owlet, which uses a language model to write benchmark questions. "
        "Owlet's questions are 20% harder than existing benchmarks."
    ),
    "Finch Tuning for Small Classifiers": (
        "We present Finch Tuning, which fine-tunes the FlaxNet-7B language model on ten "
        "tasks. We evaluate it on the stereo PipitSet dataset."
    ),
}


def test_a_kind_of_thing_asked_by_name_that_the_abstract_does_not_name():
    """ "Which language model does AutoBencher use?" was answered with "AutoBencher ... uses
    a language model to search": the abstract says there is one, not which."""
    asked = "Which language model does Owlet use to write its questions?"
    decision = policy("named-detail", abstracts=NAMED).decide(asked, sources(NAMED))
    assert decision.verdict == "not stated"
    assert decision.reason == "[1] mentions the language model but does not name it"
    assert policy(abstracts=NAMED).decide(asked, sources(NAMED)).answerable  # signal off
    # named ("FlaxNet-7B", "PipitSet"): answered
    for named in (
        "Which language model does Finch Tuning fine-tune?",
        "Which dataset was Finch Tuning evaluated on?",
    ):
        assert policy("named-detail", abstracts=NAMED).decide(named, sources(NAMED)).answerable


def test_an_acronym_of_the_kind_or_the_subject_spelled_out_names_nothing():
    """ "We combine ... large language models (LLMs) to create Customized Prompts via Language
    models (CuPL)": "LLMs" is the kind asked, the capitalized words spell out the question's
    own name; neither is the model asked for."""
    cupl = {
        "Prompts from Language Models": (
            "We combine image models with large language models (LLMs) to create Customized "
            "Prompts via Language models (CuPL). CuPL writes class descriptions."
        ),
        "Unrelated Sorting": "We sort lists by merging runs of sorted numbers quickly.",
    }
    asked = "Which LLM does CuPL use to write class descriptions?"
    decision = policy("named-detail", abstracts=cupl).decide(asked, sources(cupl))
    assert decision.verdict == "not stated"
    assert decision.reason == "[1] mentions the llm but does not name it"


def test_an_abbreviation_defined_by_lowercase_words_is_a_kind_not_a_name():
    """ "Which base model did LIMA fine-tune?" was answered from "The alignment tuning of
    large language models (LLMs) typically involves ... supervised fine-tuning (SFT)":
    "LLMs" and "SFT" abbreviate lowercase words, a kind of thing; "Low-Rank Adaptation
    (LoRA)", written in capitals, names one."""
    said = (
        "Large language models (LLMs) are aligned by supervised fine-tuning (SFT) and "
        "reinforcement learning from human feedback (RLHF). Owlet fine-tunes a base model "
        "with {how} on 1K examples."
    )
    assert _generic(said.format(how="LoRA")) == {"llm", "sft", "rlhf"}
    asked = "Which base model did Owlet fine-tune?"
    for how, verdict in (("SFT", "not stated"), ("Low-Rank Adaptation (LoRA)", "answered")):
        owlet = {"Owlet Tuning": said.format(how=how)}
        decided = policy("named-detail", abstracts=owlet).decide(asked, sources(owlet))
        assert decided.verdict == verdict, how
    assert (
        _generic("We use Low-Rank Adaptation (LoRA) and Classifier-Free Guidance (CFG).") == set()
    )


@pytest.mark.parametrize(
    "question, kind",
    [
        ("Which language model does AutoBencher use?", "language model"),
        ("which public model did best?", "public model"),
        ("Which dataset was EgoPoseFormer evaluated on?", "dataset"),
        ("Which LLM and what templates does CuPL use?", "LLM"),
        ("what model did the hybrid-knowledge paper fine-tune?", "model"),
        ("Which specific LLMs (names and sizes) was KaSA tuned on?", "specific LLMs"),  # an aside
        ("Which diffusion model, e.g. which version, was AG evaluated on?", "diffusion model"),
        # not a name asked for by its kind
        ("How does CFSP decide which parts of an LLM to prune?", None),
        ("Can you explain how Wanda decides which LLM weights to prune?", None),
        ("What accuracy do sorting models reach?", None),
        ("Which papers propose new benchmarks?", None),
    ],
)
def test_the_kind_of_name_a_question_asks_for(question, kind):
    found = _kind_asked(question)
    assert (found[1] if found else None) == kind


def test_a_baseline_named_twice_is_still_only_a_baseline():
    """ "How does the D4 data selection method pick examples?" was answered from an abstract
    that names D4 twice, both times as a baseline ("faster than D4", "outperforms leading
    baselines like DSIR and D4"): named more than once, it counted as what the paper is
    about. A use right after a comparison does not count."""
    title = "Gzip Selection"
    abstract = (
        "We introduce Gzip Selection, which picks training examples by compression. "
        "Gzip Selection is two orders of magnitude faster than Heron Sampling. "
        "It outperforms baselines like Heron Sampling on code generation."
    )
    source = Source("p1", title, 1.0, abstract, abstract, rank=1)
    asked = "How does the Heron Sampling method pick training examples?"
    decision = policy("in-passing", abstracts={title: abstract}).decide(asked, [source])
    assert decision.verdict == "not stated"
    assert decision.reason.startswith('"Heron Sampling" appears in [1] only in passing')
    own = "How does Gzip Selection pick training examples?"
    assert policy("in-passing", abstracts={title: abstract}).decide(own, [source]).answerable


def test_who_made_a_name_only_mentioned_is_not_stated():
    """ "Who came up with the Adam optimizer?" and "Which company makes the Claude models?"
    were answered from abstracts naming Adam and Claude in passing, though several
    abstracts mention them (not a rare name): who made X asks an attribute of X."""
    assert asked_about("Which company makes the Heron Pooling models?") >= {"heron", "pool"}
    asked = "Who came up with Heron Pooling?"
    decision = policy("in-passing").decide(asked, sources())
    assert decision.verdict == "not stated"
    assert decision.reason.startswith('"Heron Pooling" appears in [2] only in passing')
    assert policy("in-passing").decide("Who proposed Lantern Attention?", sources()).answerable
    # "Who released Stable Diffusion?" was answered from a diffusion paper that never says
    # "Stable": the papers matching the rest of the question do not mention the name
    weak = "Capitalizing on Weak Labels"
    twice = {**ABSTRACTS, weak: ABSTRACTS[weak] + " Unlike Heron Pooling, it needs no labels."}
    asked = "Who released the Heron Pooling protocol that routes packets by scent gradients?"
    decision = policy("in-passing", abstracts=twice).decide(asked, sources(twice))
    assert decision.verdict == "not stated"
    assert decision.reason.startswith('the abstracts that match the question do not mention "Heron')


def test_a_name_the_question_compares_with_is_not_what_it_asks_about():
    """ "How many examples does Promptagator need, and how does it compare with ColBERT v2?"
    was refused: "how does ... compare with ColBERT" read as a question about ColBERT, which
    the abstract names only as a baseline."""
    asked = "Which blocks does Lantern Attention light, and how does it compare with Heron?"
    assert policy("in-passing").decide(asked, sources()).answerable
    assert not policy("in-passing").decide("How does Heron Pooling work?", sources()).answerable


def test_a_name_in_passing_counts_only_when_the_question_asks_about_it():
    """A baseline named beside what is asked (a dataset, a unit) does not make the question
    one about the baseline: "how does X ...", "what is X", "explain X" ask about X, and so
    does "what / which / how many ... does X ..." ("How many languages does the NLLB-54B
    model translate between?" was answered from papers naming NLLB-54B as a baseline)."""
    assert asked_about("How does the Heron Pooling baseline work?") >= {"heron", "pool"}
    assert asked_about("How many blocks does Lantern Attention keep?") >= {"lantern", "attent"}
    assert asked_about("Which papers route packets by scent?") == set()
    aside = "Which attention keeps accuracy at 64k tokens against Heron Pooling?"
    assert policy("in-passing").decide(aside, sources()).answerable
    attribute = policy("in-passing").decide("How many blocks does Heron Pooling keep?", sources())
    assert attribute.verdict == "not stated"
    assert attribute.reason.startswith('"Heron Pooling" appears in [2] only in passing')
    own = "How many blocks does Lantern Attention keep at 64k tokens?"
    assert policy("in-passing").decide(own, sources()).verdict != "not stated"
    assert not policy("in-passing").decide("What is Heron Pooling?", sources()).answerable


def test_an_unknown_word_capitalized_inside_the_question_is_an_unknown_name():
    asked = "What is the routing latency of Quebec?"  # "routing", "latency" are there
    decision = policy("unknown-names").decide(asked, sources())
    assert decision.verdict == "off topic" and decision.unknown_names == ["Quebec"]
    assert 'no indexed abstract mentions "Quebec"' in decision.reason
    assert policy().decide(asked, sources()).answerable  # coverage alone would answer it


def test_a_version_no_indexed_text_writes_is_an_unknown_name():
    """ "Quokka" is known, "Quokka-3" is not: the version asked is not the one indexed."""
    written = {"quokka-2"}

    def versions(*signals: str) -> AnswerabilityPolicy:
        made = policy(*signals)
        made.written = lambda name: name.lower() in written
        return made

    asked = "How does Quokka-3 route packets?"
    decision = versions("unknown-versions").decide(asked, sources())
    assert decision.verdict == "off topic" and decision.unknown_names == ["Quokka-3"]
    assert 'no indexed abstract mentions "Quokka-3"' in decision.reason
    assert versions("unknown-versions").decide("How does Quokka-2 route packets?", sources())
    assert versions().decide(asked, sources()).answerable  # the check off: answered


def test_an_index_tells_which_versions_its_texts_write(tmp_path):
    path = tmp_path / "versions.jsonl"
    rows = [
        {"title": "Quokka-2: Routing by Scent", "abstract": "Packets follow scent gradients."},
        {"title": "Tuning Llamas", "abstract": "We tune Llama 3.1 and GPT-4o on packet traces."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assistant = Assistant(home=tmp_path / "home", auto_ingest_bundled=False)
    assistant.ingest([path])
    writes = assistant.index.writes
    assert writes("Quokka-2") and writes("QUOKKA-2")  # a title; case aside
    assert writes("Llama-3.1") and writes("GPT-4o")  # "Llama 3.1": the separator aside
    assert not writes("Quokka-3") and not writes("Llama-3.2") and not writes("GPT-4")
    answer = assistant.ask("How does Quokka-7 route packets?")
    assert answer.refused
    assert 'No indexed abstract mentions "Quokka-7".' in answer.notices
    assert not assistant.ask("How does Quokka-2 route packets?").refused


def test_every_version_the_bundled_corpus_writes_is_known_and_no_other(assistant):
    """Over every name with a version the bundled abstracts and titles write (57 of them:
    "FlashAttention-2", "NLLB-54B", "GPT-4o", ...): each is known, and the same name with
    its last number raised by 7 ("FlashAttention-9"), which no text writes, is not."""
    from rag_assistant.answer.policy import _VERSIONED
    from rag_assistant.corpus import bundled_corpus_dir
    from rag_assistant.text.terms import names

    text = "\n".join(p.read_text() for p in sorted(bundled_corpus_dir().iterdir()))
    written = sorted({n for n in names(text) if _VERSIONED.fullmatch(n)})
    assert len(written) >= 50
    policy = assistant.policy()
    assert [n for n in written if policy.unknown_names(f"What is {n}?")] == []

    def raised(name: str) -> str:
        last = list(re.finditer(r"\d+", name))[-1]
        return name[: last.start()] + str(int(last.group()) + 7) + name[last.end() :]

    never = [
        r
        for r in map(raised, written)
        if not re.search(rf"(?<!\w){re.escape(r)}(?!\w)", text, re.IGNORECASE)
    ]
    assert len(never) >= 50
    assert [r for r in never if policy.unknown_names(f"What is {r}?") != [r]] == []


def test_a_sub_word_accident_is_not_evidence():
    assert not compatible("capital", "capitalize")
    assert compatible("model", "models") and compatible("encoding", "encode")
    asked = "What is the capital of Quebec?"
    assert not policy("whole-words").decide(asked, sources()).answerable
    stems_only = policy().decide(asked, sources())
    assert stems_only.per_source[2] > policy("whole-words").decide(asked, sources()).per_source[2]
    # "7-fold" is a multiplier, not the verb
    assert "fold" not in Text.of("a 7-fold speed-up").terms


def test_a_lay_paraphrase_counts_through_the_glossary():
    text = Text.of("We study quantization of language models.")
    assert policy(*ALL).coverage(policy().analyze("models in low precision"), text) == 1.0


def test_a_question_in_other_words_is_answered_when_a_sentence_is_close_in_meaning():
    """Few shared words (coverage below min_evidence): off topic, unless a retrieved
    abstract has a sentence as close to the question in meaning as min_meaning; then the
    papers that close are the ones quoted, and the other checks still apply to them."""
    asked = "Which protocol sends network traffic along smell trails?"

    def with_meaning(*values: float | None) -> list[Source]:
        found = sources()
        for source, value in zip(found, values, strict=True):
            source.meaning = value
        return found

    def meaning_policy(min_meaning: float) -> AnswerabilityPolicy:
        base = policy(*ALL)
        base.min_meaning = base.min_meaning_lay = min_meaning
        return base

    assert policy(*ALL).decide(asked, sources()).evidence < 0.4
    assert not meaning_policy(0.5).decide(asked, sources()).answerable  # no encoder
    assert not meaning_policy(0.5).decide(asked, with_meaning(0.45, 0.2, 0.1)).answerable
    decision = meaning_policy(0.5).decide(asked, with_meaning(0.62, 0.2, 0.55))
    assert decision.answerable and decision.relevant == [0, 2]
    # a name no indexed text uses is refused however close the meaning
    unknown = meaning_policy(0.5).decide(
        "How does Zebrafish Routing route packets?", with_meaning(0.9, 0.2, 0.1)
    )
    assert not unknown.answerable and unknown.unknown_names == ["Zebrafish"]
    # and a number asked that the close papers do not state is still not stated
    number = meaning_policy(0.5).decide(
        "How many controllers does the smell-trail protocol need in its data centre?",
        with_meaning(0.7, 0.2, 0.1),
    )
    assert not number.answerable and number.verdict == "not stated"


def test_a_question_in_lay_words_needs_less_closeness_than_one_naming_something():
    """Lay questions ("how can software tell which people a news story is about?") name
    nothing and share few words with the abstract that answers them: their closest sentence
    sits lower in meaning than a named question's. A question naming something particular
    (a rare or unknown word, a hyphenated name) keeps the stricter floor; "AI" or a word
    many papers use names nothing."""
    base = policy(*ALL)
    base.min_meaning, base.min_meaning_lay = 0.5, 0.45
    found = sources()
    found[0].meaning, found[1].meaning, found[2].meaning = 0.47, 0.2, 0.1
    lay = "Which protocol sends network traffic along smell trails?"
    assert base.decide(lay, found).answerable
    for named in (
        "Which protocol sends Lantern traffic along smell trails?",  # a word one paper uses
        "Which protocol sends network traffic along Smell-Trails?",  # hyphenated
    ):
        assert not base.decide(named, found).answerable, named


@pytest.mark.parametrize(
    ("question", "units", "relative"),
    [
        ("How many GPU hours did it take?", ["gpu", "hour"], False),
        ("What accuracy does Pink get on VSR?", ["accuraci"], False),
        ("How much faster is it than FlashAttention?", [], True),
        ("What is HyperAttention?", None, None),
        ("What pass@1 does CodeSim get on HumanEval?", ["pass"], False),  # a result verb
        ("What savings do they get?", [], True),
        ("What generation speed and memory gains does it report?", ["speed"], True),
        ("How much can Scissorhands shrink the KV cache?", [], True),
        ("What Pearson correlation with Arena rankings does it achieve?", ["correl"], False),
        ("What is MobileLLM-125M's inference speed on a phone?", ["speed"], False),
        ("What context limit in tokens was measured for GPT-4o?", ["token"], False),
        ("How long does it take to train the generator?", list(_DURATION), False),
        ("How long a context can it handle?", [], False),  # a length: any number
        ("What top-1 accuracy does CuPL (the LLM-prompts method) reach?", ["accuraci"], False),
        ("What was GPT-4's average zero-shot accuracy?", ["accuraci"], False),
        ("How many examples does it need, and by how much does it beat ColBERT?", ["exampl"], True),
        ("what is critical batch size?", None, None),  # a concept, not "the size of"
        ("What is the batch size of Quokka?", ["size"], False),
        ("what's MAE-LM, and what's the problem with MLM?", None, None),
    ],
)
def test_the_quantity_a_question_asks_for(question, units, relative):
    found = _quantity(question)
    if units is None:
        assert found is None
    else:
        assert (found.units, found.relative) == (units, relative)


# --- through the assistant ---------------------------------------------------------------------


@pytest.fixture
def three(tmp_path) -> Assistant:
    path = tmp_path / "three.jsonl"
    path.write_text(
        "".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in ABSTRACTS.items())
    )
    assistant = Assistant(
        home=tmp_path / "home",
        auto_ingest_bundled=False,
        answer={"signals": ["whole-words", "unknown-names", "quantity"]},
    )
    assistant.ingest([path])
    return assistant


def test_a_not_stated_answer_leads_with_the_refusal_and_says_what_is_there(three):
    answer = three.ask("What is the latency of Quokka Routing?")
    assert answer.refused
    assert answer.text.startswith(REFUSAL)
    assert "reports a change relative to a baseline" in answer.text
    assert [c.title for c in answer.citations] == ["Quokka Routing: Packets Follow the Scent"]


def test_a_follow_up_is_not_refused_for_the_number_its_previous_turn_asked(three):
    chat = three.conversation()
    first = chat.ask("How many controllers does Quokka Routing need?")
    assert first.refused and "controller" in first.text
    follow = chat.ask("And how does it route the packets?")
    assert "(context:" in follow.standalone_question
    assert not follow.refused
    assert follow.citations[0].title == "Quokka Routing: Packets Follow the Scent"


def test_offline_claims_are_quotes_that_say_whether_they_address_the_question(three):
    answer = three.ask("How does Quokka Routing route packets?")
    assert not answer.refused and answer.claims
    assert {c.basis for c in answer.claims} == {"quoted"}
    assert any(c.addresses for c in answer.claims)
    assert all(c.to_dict()["basis"] == "quoted" for c in answer.claims)


def test_a_follow_up_by_position_asks_about_that_paper(assistant):
    chat = assistant.conversation()
    first = chat.ask("Which papers compress the KV cache?")
    assert len(first.citations) >= 2
    second = first.citations[1]
    follow = chat.ask("How much memory does the second one save?")
    assert follow.sources[0].paper_id == second.paper_id
    assert second.title in follow.standalone_question
    if not follow.refused:
        assert follow.citations[0].paper_id == second.paper_id


def test_a_follow_up_naming_a_kind_asks_about_the_name_the_previous_answer_gave_it(tmp_path):
    """ "and what ROUGE-1 does that reranker get ... by itself?", after an answer quoting "We
    apply an existing re-ranker (BRIO) ...", was asked of the paper that applied BRIO (and
    refused); "that reranker" is BRIO."""
    assistant = ingested(
        tmp_path,
        [
            {
                "title": "Plan-Guided Candidates for Summary Re-Ranking",
                "abstract": "We apply an existing re-ranker (Wombat) to the candidates of "
                "our plan-guided decoder. Our candidates raise ROUGE by 2 points over beam "
                "search candidates.",
            },
            {
                "title": "Wombat: Ordering Candidate Summaries",
                "abstract": "We present Wombat, a contrastive re-ranker of candidate "
                "summaries. Wombat reaches a ROUGE-1 of 47.8 on the news set.",
            },
        ],
    )
    chat = assistant.conversation()
    first = chat.ask("Which existing re-ranker does the plan-guided candidates paper apply?")
    assert "re-ranker (Wombat)" in first.text
    follow = chat.ask("And what ROUGE-1 does that reranker reach by itself?")
    assert follow.standalone_question == "And what ROUGE-1 does Wombat reach by itself?"
    assert not follow.refused and "47.8" in follow.text
    assert follow.citations[0].title == "Wombat: Ordering Candidate Summaries"


@pytest.mark.parametrize(
    ("message", "reply", "expected"),
    [
        ("is that model open?", "We tune the LLaMA-2 model.", ("that model", "LLaMA-2")),
        (
            "and this dataset?",
            "A dataset (MS MARCO Web Search) of clicks.",
            ("this dataset", "MS MARCO Web Search"),
        ),
        # two of the kind named: which one is meant is not known
        ("is that model open?", "We tune the LLaMA-2 model and the GPT-4 model.", None),
        # the kind named by no name, or in parentheses that are no name
        ("how fast is that method?", "We propose a method to do it.", None),
        ("is that approach better?", "Our approach (see [2]) works.", None),
        ("is that reranker good?", "The re-ranker orders candidates.", None),  # "The" opens it
    ],
)
def test_the_name_a_kind_was_given(message, reply, expected):
    from rag_assistant.answer.conversation import named_reference

    assert named_reference(message, reply) == expected


@pytest.mark.parametrize(
    ("message", "follows"),
    [
        ("how much faster is it?", True),
        ("whats the LS variant then", True),  # "then" closes a turn of a conversation
        ("and what's the latency like compared to BM25?", True),  # "and" opens one
        ("So which one is cheapest?", True),
        ("the tencent one — how much does it save?", True),  # "the <word> one"
        ("What is the Cosine Adapter for embedding-based retrieval?", False),
        ("Which papers study protein folding?", False),
        ("How does Android run on-device language models?", False),  # "and" inside a word
    ],
)
def test_a_follow_up_is_recognized_by_how_it_refers_back(message, follows):
    """Offline, a message is condensed with the previous question when it refers back: by a
    pronoun, by position, "the <word> one", or as a turn of a conversation ("and ...",
    "so ...", "... then"). "whats the LS variant then", after a question about small
    on-device models, had been searched alone and answered from an unrelated paper."""
    from rag_assistant.answer.conversation import is_follow_up

    assert is_follow_up(message) is follows


def test_the_model_path_refuses_through_the_same_policy_before_calling_the_model(home):
    """An unknown name is refused by the policy (the offline answerer's rule once), and the
    model is never called for it."""
    from openai_server import OpenAIServer

    server = OpenAIServer().start()
    try:
        assistant = Assistant(
            home=home, openai={"base_url": server.url, "api_key": "sk-test", "max_retries": 0}
        )
        assert assistant.mode == "llm"
        answer = assistant.ask("How does RAPTOR organize retrieved passages into a tree?")
        offline = assistant.with_answer_mode("offline").ask(
            "How does RAPTOR organize retrieved passages into a tree?"
        )
    finally:
        server.stop()
    assert answer.refused and offline.refused
    assert server.requests == []
    assert any(
        'without calling the model: no indexed abstract mentions "RAPTOR"' in n
        for n in answer.notices
    )


def ingested(tmp_path, records: list[dict]) -> Assistant:
    """An assistant over ``records`` (title, abstract) alone."""
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assistant = Assistant(home=tmp_path / "home", auto_ingest_bundled=False)
    assistant.ingest([path])
    return assistant


def first_answer(tmp_path, title: str, said: list[str], question: str):
    """The answer to ``question`` over one paper whose abstract is the sentences ``said``."""
    return ingested(tmp_path, [{"title": title, "abstract": " ".join(said)}]).ask(question)


def among_routing_papers(tmp_path, records: list[dict]) -> Assistant:
    """An assistant over ``records`` and four short papers on other kinds of routing."""
    others = [
        {"title": f"{topic} Routing", "abstract": f"We study {topic.lower()} routing of packets."}
        for topic in ("Greedy", "Geographic", "Multipath", "Adaptive")
    ]
    return ingested(tmp_path, records + others)


def cited(answer) -> set[str]:
    """The titles an answer cites (it must answer)."""
    assert not answer.refused
    return {c.title for c in answer.citations}


def test_background_never_leads_and_the_papers_own_statement_is_preferred(tmp_path):
    """Issue 12: background sentences ("Packet routing in mesh networks ...") were quoted
    before the sentence that states the result. What an abstract says before it says what the
    paper does is background: it counts less, and never leads the paper's quotes."""
    said = [
        "Packet routing in mesh networks suffers from high latency under heavy load.",
        "Existing mesh routing protocols flood the network to find a route.",
        "We propose Wombat Routing, which routes packets along scent gradients.",
        "Wombat Routing cuts routing latency in mesh networks by 41% under heavy load.",
    ]
    asked = "How much does Wombat Routing cut latency in mesh networks?"
    answer = first_answer(tmp_path, "Wombat Routing", said, asked)
    assert not answer.refused
    assert answer.text.startswith("Wombat Routing cuts routing latency in mesh networks by 41%")


def wombat(tmp_path, said: list[str], *, max_sentences: int) -> Assistant:
    """An assistant over one paper, "Wombat Routing", whose abstract is the sentences
    ``said``, quoting at most ``max_sentences`` sentences an answer."""
    path = tmp_path / "papers.jsonl"
    path.write_text(json.dumps({"title": "Wombat Routing", "abstract": " ".join(said)}) + "\n")
    assistant = Assistant(
        home=tmp_path / "home", auto_ingest_bundled=False, answer={"max_sentences": max_sentences}
    )
    assistant.ingest([path])
    return assistant


def test_the_answer_says_what_the_paper_proposes_and_how_well_it_does(tmp_path):
    """Issue 12: answers quoted the sentences sharing most of the question's words and left
    out the paper's proposal ("We present ... HyperAttention") and its result (the number):
    with three sentences to quote, the best match, the proposal and the outcome are quoted,
    not three restatements of the question."""
    said = [
        "Mesh networks route packets under heavy load by flooding every link.",
        "Routing packets in mesh networks under heavy load wastes bandwidth.",
        "We propose Wombat Routing, a protocol that follows scent gradients.",
        "Under heavy load, mesh networks route packets over congested links.",
        "Wombat Routing delivers 98% of packets and is 3x faster than flooding.",
        "Packets in mesh networks under heavy load need routing tables to be routed.",
    ]
    assistant = wombat(tmp_path, said, max_sentences=3)
    answer = assistant.ask("How do mesh networks route packets under heavy load?")
    quoted = [s for s in said if s in answer.text]
    assert len(quoted) == 3, answer.text
    assert said[2] in quoted and said[4] in quoted, answer.text


def test_a_sentence_about_the_release_is_not_quoted_for_the_answer(tmp_path):
    """ "Our code will be released at https://github.com/..." was quoted (it holds the method's
    name and the question's words) in place of the sentence stating the fact asked; unless
    the question asks where the code is."""
    said = [
        "We propose Wombat Routing for packets in mesh networks.",
        "Wombat Routing code for routing packets in mesh networks is publicly available at "
        "https://github.com/example/wombat.",
        "In Wombat Routing, each node forwards packets toward the neighbour with the "
        "strongest scent.",
    ]
    assistant = wombat(tmp_path, said, max_sentences=2)
    answer = assistant.ask("How does Wombat Routing forward packets in mesh networks?")
    assert "strongest scent" in answer.text and "github" not in answer.text
    where = assistant.ask("Where is the Wombat Routing code for mesh networks available?")
    assert "github.com/example/wombat" in where.text


def test_a_question_asking_for_papers_has_room_for_each_of_them(tmp_path):
    """A list question ("Which papers ...?") answered by several papers gets up to
    ``list_sentences`` quotes (8), others ``max_sentences`` (5): with one sentence a paper,
    what each paper changes was left out."""
    assert asks_for_papers("Which papers compress the KV cache, and how?")
    assert asks_for_papers("Is there work on routing packets by scent?")
    assert not asks_for_papers("How does Wombat Routing route packets by scent?")
    records = [
        {
            "title": f"{name} Routing",
            "abstract": f"We propose {name} Routing, which routes packets by scent. "
            f"{name} Routing follows scent gradients through mesh routers. "
            f"{name} Routing cuts scent routing latency by {10 + i}% on mesh networks.",
        }
        for i, name in enumerate(["Wombat", "Numbat", "Quokka", "Bilby"])
    ]
    assistant = ingested(tmp_path, records)
    listed = assistant.ask("Which papers route packets by scent gradients on mesh networks?")
    asked = assistant.ask("How do scent routing methods route packets on mesh networks?")
    assert not listed.refused and not asked.refused
    assert 5 < len(listed.claims) <= 8
    assert len(asked.claims) <= 5


def test_a_question_naming_a_paper_is_answered_from_that_paper(tmp_path):
    """A question about a named method was answered from its paper and from the papers beside
    it that share its words (a competitor comparing against it): the named paper — a name of
    the question in its title — is the one quoted. A list question keeps every paper."""
    records = [
        {
            "title": "Wombat Routing: Scent Gradients for Mesh Networks",
            "abstract": "We propose Wombat Routing, which routes packets along scent gradients. "
            "Wombat Routing cuts routing latency in mesh networks by 41% under heavy load.",
        },
        {
            "title": "Scent-Free Mesh Routing",
            "abstract": "Mesh routing by scent gradients, as in Wombat Routing, floods the "
            "network under heavy load. We route packets in mesh networks without scent, "
            "cutting routing latency by 12% under heavy load.",
        },
    ]
    # routing is common here, as in any corpus about it: only "Wombat" names a paper
    assistant = among_routing_papers(tmp_path, records)
    named = assistant.ask("How much does Wombat Routing cut routing latency in mesh networks?")
    assert cited(named) == {records[0]["title"]}
    assert "41%" in named.text and "12%" not in named.text
    listed = assistant.ask("Which papers cut routing latency in mesh networks, as Wombat Routing?")
    assert {c.title for c in listed.citations} == {r["title"] for r in records}


def test_a_paper_named_by_a_name_of_common_words_is_the_one_answering(tmp_path):
    """ "What is R-Tuning ...?" and "... the INTERS dataset" were answered from five papers:
    the name's words ("tuning", "inters" as "inter") are common, so no distinctive word of the
    question named the paper. A name of the question that a title holds whole names it; of
    "SLUE Phase-2", the title holding both names ("SLUE Phase-2: ...") before "SLUE: ..."."""
    tuning = [
        {
            "title": f"{kind} Tuning Makes Models Refuse",
            "abstract": f"We study {kind.lower()} tuning, which tunes models to refuse questions "
            f"they cannot answer. Unlike R-Tuning, {kind.lower()} tuning reaches a refusal "
            f"accuracy of {60 + i}%.",
        }
        for i, kind in enumerate(["Prompt", "Prefix", "Adapter", "Ladder", "Bias"])
    ]
    records = [
        {
            "title": "R-Tuning: Teaching Models to Refuse",
            "abstract": "We propose R-Tuning, which tunes models to refuse questions they cannot "
            "answer. R-Tuning reaches a refusal accuracy of 81%.",
        },
        {
            "title": "SLUE: Spoken Language Tasks",
            "abstract": "We present SLUE, spoken language tasks: named entity recognition and "
            "sentiment analysis on speech. Its phase 2 will add more spoken language tasks.",
        },
        {
            "title": "SLUE Phase-2: More Spoken Language Tasks",
            "abstract": "We present SLUE Phase-2, which adds spoken language tasks: question "
            "answering and dialog act classification on speech.",
        },
    ]
    assistant = ingested(tmp_path, tuning + records)
    answer = assistant.ask("What refusal accuracy does R-Tuning reach when it tunes models?")
    assert cited(answer) == {records[0]["title"]}
    assert "81%" in answer.text and "60%" not in answer.text
    phase2 = assistant.ask("Which spoken language tasks does SLUE Phase-2 add?")
    assert cited(phase2) == {records[2]["title"]}


def test_what_is_x_leads_with_the_sentence_presenting_x(tmp_path):
    """Issue 12: "What is HyperAttention?" led with a speed-up, not with "We present an
    approximate attention mechanism named HyperAttention". A question asking what a named
    thing is gets the sentence presenting it first; "what's X's latency?" asks for a number."""
    assert asks_to_define("What is Wombat Routing and how fast is it?") == {"wombat"}
    assert asks_to_define("what's Wombat's latency?") == set()
    assert asks_to_define("What is the latency of Wombat Routing?") == set()
    abstract = (
        "Mesh networks need routing that survives heavy load. "
        "We propose Wombat, a routing protocol that follows scent gradients. "
        "Wombat reduces routing latency by 41% and improves delivery by 12% in mesh networks "
        "under heavy load, and Wombat speeds up recovery after link failures. "
        "Wombat needs no central controller."
    )
    assistant = ingested(tmp_path, [{"title": "Fast Mesh Routing", "abstract": abstract}])
    for question in ("What is Wombat?", "What is Wombat and how fast is it?"):
        answer = assistant.ask(question)
        assert answer.text.startswith("We propose Wombat, a routing protocol"), answer.text
        assert "41%" in answer.text  # the result is still quoted, after the definition
    asked = assistant.ask("How much does Wombat reduce routing latency?")
    assert asked.text.startswith("Wombat reduces routing latency by 41%"), asked.text


def test_how_does_x_work_leads_with_the_sentence_saying_what_x_is(tmp_path):
    """ "How does speculative decoding work?" led with "we propose Token Recycling", while
    the abstract's "Speculative decoding represents a lossless approach ..." (background to
    that paper, the answer to this question) came after it."""
    assert defines("How does scent routing work?", "Scent routing is a family of protocols.")
    assert defines("What is scent routing?", "Scent routing (SR) refers to forwarding.")
    assert not defines("How does scent routing work?", "We propose Wombat, a scent router.")
    said = [
        "Scent routing is a family of protocols that forward each packet toward a stronger "
        "scent left by earlier packets.",
        "We propose Wombat, a scent routing protocol for mesh networks.",
        "Wombat reduces routing latency by 41% under heavy load.",
    ]
    answer = first_answer(tmp_path, "Wombat", said, "How does scent routing work?")
    assert answer.text.startswith("Scent routing is a family of protocols"), answer.text


def test_a_paper_beside_the_first_is_quoted_for_what_it_says_not_to_fill_a_slot(tmp_path):
    """Every relevant paper had a sentence reserved, so a question one paper answers well
    also quoted the best, however weak, sentence of each paper beside it ("Packets queue at
    routers under heavy load."), taking the budget from the first paper's facts. Only the
    first relevant paper (each paper, for a list question) has one reserved; the others are
    quoted when a sentence of theirs scores among the best."""
    records = [
        {
            "title": "Wombat Routing: Scent Gradients for Mesh Networks",
            "abstract": "We propose Wombat Routing, which routes packets along scent gradients "
            "in mesh networks. Wombat Routing keeps a scent table at every mesh router. "
            "Packets follow the steepest scent gradient toward their destination. "
            "Scent decays at each hop so routes to moved nodes fade. "
            "Wombat Routing cuts routing latency in mesh networks by 41% under heavy load. "
            "Its scent tables need 12 KB of router memory.",
        },
        {
            "title": "Gradient Fields for Packet Scheduling",
            "abstract": "Packets queue at routers under heavy load. "
            "We schedule them by a gradient field over queue lengths. "
            "Scent-like markers, as in animal trails, inspire the field. "
            "Mesh testbeds confirm shorter queues.",
        },
    ]
    assistant = among_routing_papers(tmp_path, records)
    answer = assistant.ask("How do routers route packets along scent gradients in mesh networks?")
    assert cited(answer) == {records[0]["title"]}
    assert "41%" in answer.text


def test_a_question_naming_two_papers_is_answered_from_both(assistant):
    """ "What is the difference between HyperAttention and Landmark Attention?" was answered
    from HyperAttention alone: the papers a question names are kept name by name, not only
    those naming most of the question ("SLUE Phase-2: ..." still wins over "SLUE: ...")."""
    policy = assistant.policy()

    def kept(question: str) -> list[str]:
        sources = assistant.retrieve(question)
        decision = policy.decide(question, sources)
        return sorted(sources[i].title.split(":")[0] for i in decision.relevant)

    assert kept("What is the difference between HyperAttention and Landmark Attention?") == [
        "HyperAttention",
        "Landmark Attention",
    ]
    assert kept("What tasks does SLUE Phase-2 add?") == ["SLUE Phase-2"]


def test_a_comparison_is_answered_from_each_paper_it_names(assistant):
    """A comparison naming two papers by their titles keeps both, though one holds few of
    its other words: "HyperAttention versus LM-Infinite" had been refused, 'the abstracts
    that match the question do not mention "HyperAttention"'."""
    policy = assistant.policy()

    def kept(question: str) -> tuple[str, list[str]]:
        sources = assistant.retrieve(question)
        decision = policy.decide(question, sources)
        return decision.verdict, sorted(sources[i].title.split(":")[0] for i in decision.relevant)

    assert kept("HyperAttention versus LM-Infinite: how do they handle long inputs?") == (
        "answered",
        ["HyperAttention", "LM-Infinite"],
    )
    assert kept("Compare SnapKV and DuoAttention: do they agree on which tokens matter?") == (
        "answered",
        ["DuoAttention", "SnapKV"],
    )


def test_a_sentences_score_is_its_features_weighted_as_the_answerer_is_told():
    """Each candidate sentence carries the features its score is made of; the answerer's
    ``weights`` (the hand-chosen ones by default, fitted ones by
    ``scripts/fit_sentence_weights.py``) decide which sentence leads."""
    from rag_assistant.answer.extractive import HAND_WEIGHTS, ExtractiveAnswerer
    from rag_assistant.answer.judges import LexicalJudge

    said = {
        "Quokka Routing: Packets Follow the Scent": ABSTRACTS[
            "Quokka Routing: Packets Follow the Scent"
        ]
    }
    question = "How much does Quokka Routing cut latency?"
    judge = LexicalJudge(0.5)
    hand = ExtractiveAnswerer(policy(abstracts=said), judge)
    decision = hand.policy.decide(question, sources(said))
    for c in hand.candidates(question, sources(said), decision):
        weighted = sum(HAND_WEIGHTS.get(n, 0.0) * v for n, v in c.features.items())
        assert c.score == pytest.approx(weighted)
    assert hand.extract(question, sources(said)).text.startswith("Quokka Routing cuts latency")
    first = ExtractiveAnswerer(policy(abstracts=said), judge, weights={"first": 1.0})
    assert first.extract(question, sources(said)).text.startswith("We present Quokka Routing")


def test_a_question_joining_two_named_subjects_is_answered_from_a_paper_for_each():
    """ "How do PreSelect and MATES differ in the way they pick pretraining data?" was
    answered from MATES alone: the PreSelect paper held fewer of the question's words than
    0.6 of the best. A paper about a name of the question that no relevant paper holds (in
    its title or its contribution) joins them, and is quoted by a sentence holding that name;
    a paper merely sharing a common word of the question does not, and nothing joins for a
    question on one subject that names a second thing ("How much GPU memory does OwLore need
    to fine-tune LLaMa2-7B?"). Each paper gets its share of the answer."""
    from rag_assistant.answer.extractive import ExtractiveAnswerer
    from rag_assistant.answer.judges import LexicalJudge

    said = {
        "Quokka Routing: Packets Follow the Scent": ABSTRACTS[
            "Quokka Routing: Packets Follow the Scent"
        ],
        "Lantern Attention for Long Documents": ABSTRACTS["Lantern Attention for Long Documents"],
        "Capitalizing on Weak Labels": ABSTRACTS["Capitalizing on Weak Labels"]
        + " It keeps packets of labels apart.",
    }
    asked = "How do Quokka Routing and Lantern Attention route packets to cut latency?"
    off = policy(*[s for s in ALL if s != "complements"], abstracts=said).decide(
        asked, sources(said)
    )
    assert off.relevant == [0]  # Lantern holds too few of the question's words
    decision = policy(*ALL, abstracts=said).decide(asked, sources(said))
    assert decision.answerable
    assert decision.relevant == [0, 1] and decision.joined == {1: ["lantern", "attent"]}  # stems
    answerer = ExtractiveAnswerer(policy(*ALL, abstracts=said), LexicalJudge(0.5))
    text = answerer.extract(asked, sources(said)).text
    assert "Lantern Attention lights only the relevant blocks" in text and "[2]" in text
    assert "[3]" not in text  # "packets" alone: a common word, no name of the question
    # one subject, or a second name that is not a second subject: nothing joins
    single = "How much latency does Quokka Routing cut on Lantern Attention packets?"
    assert policy(*ALL, abstracts=said).decide(single, sources(said)).joined == {}
    alone = policy(*ALL, abstracts=said).decide(
        "How does Quokka Routing route packets?", sources(said)
    )
    assert alone.joined == {}


def test_no_paper_is_quoted_for_its_background_alone(tmp_path):
    """ "Which papers shrink the KV cache?" quoted DuoAttention for "Existing KV cache pruning
    methods either damage ..." alone: its motivation, not what it does. A paper whose quotes
    would all be background is quoted for its best own statement instead. Where the paper
    says what it does is its first "we propose ..." sentence, not a release sentence ("Our
    code will be released at ..." made every sentence before it background)."""
    records = [
        {
            "title": "Wombat Routing: Scent Gradients for Mesh Networks",
            "abstract": "We propose Wombat Routing, which routes packets by scent gradients "
            "in mesh networks. Wombat Routing cuts mesh routing latency by 41%.",
        },
        {
            "title": "Numbat Routing",
            "abstract": "Existing protocols that route packets by scent gradients in mesh "
            "networks flood every router with scent. We propose Numbat Routing, a protocol "
            "with one table per router. It halves the flooded traffic.",
        },
        {
            "title": "Bilby Routing",
            "abstract": "Bilby Routing routes packets by scent gradients in mesh networks "
            "and adapts the scent decay. Our code will be released at "
            "https://github.com/example/bilby.",
        },
    ]
    assistant = among_routing_papers(tmp_path, records)
    answer = assistant.ask("Which papers route packets by scent gradients in mesh networks?")
    assert cited(answer) == {r["title"] for r in records}
    assert "We propose Numbat Routing" in answer.text, answer.text
    assert "Existing protocols" not in answer.text
    assert "Bilby Routing routes packets" in answer.text and "github" not in answer.text


def test_a_name_in_a_link_is_no_mention_of_it():
    """ "what architecture is Reka Core? Vibe-Eval uses it as the judge" was answered: Vibe-Eval
    names Reka Core once, as its judge, but its link "github.com/reka-ai/reka-vibe-eval" wrote
    "reka" twice more, and a name used more than once passed for what the paper is about."""
    title = "Wombat-Eval: Judging Chat Models"
    abstract = (
        "We introduce Wombat-Eval, a benchmark of hard prompts for chat models. "
        "Automatic judging with Quokka Core roughly agrees with human judges. "
        "The code is at https://github.com/quokka-ai/quokka-wombat-eval."
    )
    said = {title: abstract}
    asked = "What architecture is Quokka Core? Wombat-Eval uses it as the judge"
    decision = policy("in-passing", abstracts=said).decide(asked, sources(said))
    assert decision.verdict == "not stated", decision
    assert decision.reason.startswith('"Quokka Core" appears in [1] only in passing')
    # named again in the text (not in a link), it is what the paper uses as its own
    again = {title: abstract.replace("The code", "Quokka Core scores agree. The code")}
    assert policy("in-passing", abstracts=again).decide(asked, sources(again)).answerable


def test_what_a_pronoun_does_is_no_thing_asked_about():
    """ "HyperAttention speedups: ... and what does it do to ChatGLM2 perplexity at 32k?" was
    refused as asking about ChatGLM2, which the paper names only as the model it runs on:
    after "what does it", the words say what "it" does, as after "how does each"."""
    assert asked_about("what does it do to ChatGLM2 perplexity?") == set()
    assert asked_about("what does Lantern Attention keep?") == {"lantern", "attent", "keep"}
    asked = "Lantern Attention: what does it do to Heron Pooling accuracy at 64k tokens?"
    assert policy("in-passing").decide(asked, sources()).answerable


def test_a_who_question_needs_the_act_stated_with_its_doer():
    """ "Who wrote the Harry Potter books?" was answered from an unlearning paper that
    unlearns them, and "who founded 01.AI?" from "Yi: ... by 01.AI": an abstract about a
    thing that never says who made it does not answer who did. The act must be the one
    asked ("open-sourced by Meta" says who released a model, not who wrote a book)."""
    books = {
        "Forgetting the Kestrel Novels": (
            "We unlearn the Kestrel novels from a Llama model (a language model recently "
            "open-sourced by Meta). Unlearning the Kestrel novels takes one GPU hour."
        ),
        "Heron Pooling Revisited": (
            "Heron Pooling, released by Ibis Labs in 2021, pools tokens by their salience. "
            "We revisit Heron Pooling on long documents."
        ),
    }
    signals = ("named-detail",)
    decision = policy(*signals, abstracts=books).decide(
        "Who wrote the Kestrel novels?", sources(books)
    )
    assert decision.verdict == "not stated"
    assert decision.reason == "[1] does not say who wrote the Kestrel novels"
    # the act and a doer in one sentence: answered
    for asked in ("Who released Heron Pooling?", "Which company made Heron Pooling?"):
        assert policy(*signals, abstracts=books).decide(asked, sources(books)).answerable, asked
    assert (
        policy(*signals, abstracts=books)
        .decide("Who released the Llama model?", sources(books))
        .answerable
    )
    # founding is an act of its own: releasing a model does not state who founded anything
    decision = policy(*signals, abstracts=books).decide("Who founded Ibis Labs?", sources(books))
    assert decision.verdict == "not stated"
    # a paper's own method, with no doer named: the abstracts do not say who proposed it
    decision = policy(*ALL).decide("Who proposed Lantern Attention?", sources())
    assert (decision.verdict, decision.reason) == (
        "not stated",
        "[2] does not say who proposed Lantern Attention",
    )


def decided(signal: str, abstracts: dict[str, str], asked: str):
    """The decision of a policy with one ``signal`` over ``abstracts`` on ``asked``."""
    return policy(signal, abstracts=abstracts).decide(asked, sources(abstracts))


def test_a_name_given_as_an_example_is_not_what_a_paper_is_about():
    """ "How does Mamba's selective state space mechanism work?" was answered from a paper
    that names Mamba twice, both times as an example ("(e.g. H3, Mamba, RWKV)"): a name used
    more than once passed for the paper's subject. An example is a mention in passing."""
    examples = {
        "Fixed-State Language Models": (
            "Efficient alternatives to attention (e.g. Quill, Heron, Ibis) keep a fixed-size "
            "state. We present Lark, which recalls better than models such as Heron or Ibis."
        ),
    }
    heron = decided("in-passing", examples, "How does Heron's selective state mechanism work?")
    assert heron.verdict == "not stated"
    assert heron.reason.startswith('"Heron" appears in [1] only in passing')
    # the paper's own model is what it is about
    assert decided("in-passing", examples, "How does Lark keep a fixed-size state?").answerable


def test_any_question_opening_with_who_asks_for_a_doer():
    """ "who won the Turing Award for deep learning?" was answered with sentences about deep
    learning: whatever the act, "who ..." asks who did it, and the act must be stated with
    its doer. "Who" inside a clause about people ("a tool for people who stutter") asks for
    nobody."""
    prize = {
        "The Kestrel Prize Papers": (
            "We study the papers that won the Kestrel Prize for speech research. "
            "Speech models for people who stutter are still rare."
        ),
    }
    asked = "who won the Kestrel Prize for speech research?"
    won = decided("named-detail", prize, asked)
    assert (won.verdict, won.reason) == (
        "not stated",
        "[1] does not say who won the Kestrel Prize",
    )
    stated = {
        title: text + " The first Kestrel Prize was won by Ibis Labs."
        for title, text in prize.items()
    }
    assert decided("named-detail", stated, asked).answerable
    assert decided(
        "named-detail", prize, "Is there a speech model for people who stutter?"
    ).answerable


def test_questions_typed_without_apostrophes_are_read_as_with_them():
    """ "whats MUVERA's actual query latency in milliseconds?" was answered with a relative
    latency, and "what's the D4 data selection method ...?" as if D4 were described: "whats"
    asked for no quantity, "what's the X" asked about nothing. Both read as "what is" now."""
    for asked in (
        "whats the latency of Quokka Routing?",
        "what’s the latency of Quokka Routing?",
    ):
        decision = policy(*ALL).decide(asked, sources())
        assert decision.verdict == "not stated", asked
        assert "relative to a baseline" in decision.reason
    decision = policy(*ALL).decide(
        "what's the Heron Pooling baseline and how does it work?", sources()
    )
    assert decision.verdict == "not stated"
    assert decision.reason.startswith('"Heron Pooling" appears in [2] only in passing')


def test_a_signed_number_is_a_change():
    sentence = "The method achieved +4.03% and +2.40% Recall@50 on FashionIQ and Shoes."
    signed = [n for n in numbers_in(sentence) if n.group(0) in ("4.03%", "2.40%")]
    assert len(signed) == 2 and all(_relative(sentence, n) for n in signed)
    assert not _relative(
        "It reaches 41.2% Recall@50.", numbers_in("It reaches 41.2% Recall@50.")[0]
    )
    # the sign is read where the number is, after the names before it are set aside
    # ("FashionIQ, Fashion200k": the number's place in the sentence without them)
    named = "On FashionIQ, Fashion200k and Shoes, it achieved +4.03% and +3.38% Recall@50."
    signed = [n for n in numbers_in(named) if n.group(0) in ("4.03%", "3.38%")]
    assert len(signed) == 2 and all(_relative(named, n) for n in signed)
