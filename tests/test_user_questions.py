"""Questions asked the way people ask: lay words reach the abstracts' words through the
glossary, and a question naming something the corpus never mentions is refused."""

from __future__ import annotations

from rag_assistant.answer.policy import AnswerabilityPolicy
from rag_assistant.text.glossary import entries, expand
from rag_assistant.text.terms import names, query_terms, terms


def test_glossary_phrases_match_whole_stemmed_words():
    found = expand("Can my chatbots reply faster?")
    assert {"llm", "acceler", "latenc"} <= set(found.extra)
    assert found.alternates["chatbot"] >= {"llm", "languag"}
    # "botany" contains "bot" but is not the word "bot"; "make" alone is not "make up"
    assert expand("botany make sense").extra == []
    assert "hallucin" in expand("the model makes up facts").extra


def test_a_lay_phrase_counts_as_covered_by_its_research_terms():
    """The alternates are keyed by the phrase's terms analyzed as a question's are: "low
    precision" is covered by an abstract that says "quantization" ("precision" is the term
    "precis", which re-stemming the stem would have turned into "preci")."""
    question = "models in low precision"
    found = expand(question)
    assert set(found.alternates) == {"low", "precis"} <= set(query_terms(question))
    policy = AnswerabilityPolicy(lambda term: 1.0, min_evidence=0.4)
    analysis = policy.analyze(question)
    abstract = set(terms("We study quantization of large language models."))
    assert policy.coverage(analysis, abstract) == 1.0


def test_every_glossary_entry_has_a_phrase_and_research_terms():
    assert len(entries()) > 50
    assert all(e.key and e.expansion_terms for e in entries())


def test_names_are_words_written_like_names():
    assert names("Is RAPTOR better than HyDE or Yi-34B on WMT14? What about BERT") == [
        "RAPTOR",
        "HyDE",
        "Yi-34B",
        "WMT14",
        "BERT",
    ]
    assert names("What is retrieval? Which papers study it") == []


def test_a_lay_question_finds_the_paper_written_in_research_words(assistant):
    # The abstract speaks of "time-to-first-token" and "prompt tokens", the user of waiting
    # for the first word; without the glossary the paper is not retrieved at all.
    question = (
        "How can I reduce the wait for the first word from a large model by feeding it only "
        "the important prompt words?"
    )
    titles = [s.title for s in assistant.retrieve(question, k=5)]
    assert any(t.startswith("Speculative Prefill") for t in titles), titles


def test_a_question_about_an_unknown_name_is_refused_and_says_which(assistant):
    answer = assistant.ask("How does RAPTOR build a tree of recursive summaries for retrieval?")
    assert answer.refused and not answer.citations
    assert 'No indexed abstract mentions "RAPTOR".' in answer.notices
    # nothing is quoted, and the offline notice does not say that something below is
    assert not any("sentences below are quoted" in n for n in answer.notices)
    assert any(n.startswith("Offline extractive answer") for n in answer.notices)


def test_an_offline_answer_says_its_sentences_are_quoted(assistant):
    answer = assistant.ask("What is HyperAttention?")
    assert not answer.refused
    assert any("sentences below are quoted" in n for n in answer.notices)


def test_a_misspelled_known_name_is_still_answered(assistant):
    answer = assistant.ask("What is HyperAtention and how fast is it?")
    assert not answer.refused
    assert answer.citations[0].title.startswith("HyperAttention")


def test_filler_words_are_dropped_unless_written_as_a_name():
    from rag_assistant.text.terms import query_terms

    assert query_terms("Does everything else still run without the cache?") == ["run", "cach"]
    # "LESS" is a method's name; "less" is a word
    assert "less" in query_terms("What is LESS and how much data does it need?")
    assert "less" not in query_terms("Does it need less data?")


def test_a_follow_up_quotes_what_it_asks_not_the_previous_answer_again(assistant):
    chat = assistant.conversation()
    first = chat.ask("How does SnapKV compress the KV cache?")
    follow = chat.ask("How much faster does it make generation, and on what hardware?")
    assert first.citations[0].title.startswith("SnapKV")
    assert follow.citations[0].title.startswith("SnapKV")
    # it leads with what it asks; what answered the previous question is not quoted again
    # (a sentence of the previous answer may come back when it also answers this one)
    assert "3.6x" in follow.claims[0].text and 1 in follow.claims[0].citations
    assert first.claims[0].text not in {c.text for c in follow.claims}
