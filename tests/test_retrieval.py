"""Retrieval: distribution-based score fusion (the default), reciprocal rank fusion, and
grouping by paper, with scores computed by hand.

The fused rankings are scripted (given chunk scores in, fused papers out) over a real catalog
of four papers; the last test runs the real BM25 and Chroma rankings through the retriever
and checks it reports them faithfully."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag_assistant import Assistant
from rag_assistant.answer.retrieval import Retriever, dbsf, group_by_paper, rrf
from rag_assistant.corpus import paper_id_for_title
from rag_assistant.settings import RetrievalSettings, Settings
from rag_assistant.store.sentence_encoder import DIMENSIONS, SentenceMatrix

# --- the fusion function ----------------------------------------------------------------


def test_rrf_by_hand():
    scores = rrf([["a", "b", "c"], ["c", "a"]], k=60)
    assert scores == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61})
    # c is first in one list and third in the other; a is first and second: a wins
    assert max(scores, key=scores.get) == "a"


def test_rrf_weights_and_constant_by_hand():
    scores = rrf([["a", "b"], ["b"], ["a"]], k=1, weights=[1.0, 2.0, 0.0])
    assert scores == pytest.approx({"a": 1 / 2 + 0.0, "b": 1 / 3 + 2 / 2})
    with pytest.raises(ValueError):  # a weight per ranking, no more, no less
        rrf([["a"], ["b"]], weights=[1.0])


def spread(values: list[float]) -> list[float]:
    """DBSF's mapping by hand: mean - 3 sd -> 0, mean + 3 sd -> 1 (population sd)."""
    if not values:
        return []
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return [min(1.0, max(0.0, (v - (mean - 3 * sd)) / (6 * sd))) for v in values]


def test_dbsf_by_hand():
    lexical = [("a", 10.0), ("b", 9.0), ("c", 8.0), ("d", 7.0)]
    dense = [("c", 0.9), ("a", 0.5)]
    scores = dbsf([lexical, dense], weights=[1.0, 2.0])
    lex, den = spread([10, 9, 8, 7]), spread([0.9, 0.5])
    assert scores == pytest.approx(
        {"a": lex[0] + 2 * den[1], "b": lex[1], "c": lex[2] + 2 * den[0], "d": lex[3]}
    )
    # two items sit at mean -/+ 1 sd: 1/3 and 2/3 of the way
    assert den == pytest.approx([2 / 3, 1 / 3])
    # a list of equals (one item, say) gives each item its full weight; weight 0 adds nothing
    assert dbsf([[("x", 3.0)], [("y", 0.2), ("z", 0.2)], [("w", 1.0)]], weights=[1, 0.5, 0]) == {
        "x": 1.0,
        "y": 0.5,
        "z": 0.5,
    }
    with pytest.raises(ValueError):  # a weight per ranking, no more, no less
        dbsf([[("a", 1.0)], [("b", 1.0)]], weights=[1.0])


def test_dbsf_counts_how_far_a_match_stands_out_not_only_its_rank():
    """BM25 finds one chunk far above the rest ("a": every rare word of the question); the
    dense list's first ("b") leads a gentle slope of near-equals. Rank fusion gives both the
    same credit, and the paper id would decide; score fusion puts "a" first."""
    lexical = [("a", 14.0)] + [(f"l{i}", 2.0 - i / 100) for i in range(30)]
    dense = [("b", 0.33)] + [(f"d{i}", 0.329 - i / 1000) for i in range(30)]
    by_rank = rrf([[i for i, _ in lexical], [i for i, _ in dense]])
    assert by_rank["a"] == by_rank["b"] == max(by_rank.values())
    by_score = dbsf([lexical, dense])
    assert by_score["a"] == 1.0  # far above mean + 3 sd: clipped to 1
    assert 0.7 < by_score["b"] < 0.85  # about 1.7 sd above its list's mean
    assert max(by_score, key=by_score.get) == "a"


def test_group_by_paper_keeps_each_paper_once_with_its_best_chunks():
    scored = {
        "p::h::0": 0.10,
        "p::h::1": 0.40,
        "p::h::2": 0.30,
        "q::h::0": 0.35,
        "r::h::5": 0.20,
    }
    assert group_by_paper(scored, per_paper=2) == [
        ("p", ["p::h::1", "p::h::2"]),  # best 0.40; its weakest chunk (0.10) is left out
        ("q", ["q::h::0"]),
        ("r", ["r::h::5"]),
    ]
    assert group_by_paper(scored, per_paper=1)[0] == ("p", ["p::h::1"])


def test_group_by_paper_ties_go_to_more_strong_chunks_then_to_the_id():
    scored = {"a::h::0": 0.5, "b::h::0": 0.5, "b::h::1": 0.3, "c::h::0": 0.5, "c::h::1": 0.4}
    assert [p for p, _ in group_by_paper(scored, per_paper=2)] == ["c", "b", "a"]
    assert [p for p, _ in group_by_paper(scored, per_paper=1)] == ["a", "b", "c"]


# --- the retriever over a real catalog, with scripted rankings ------------------------------

TITLES = ["Alpha Sparse Attention", "Beta Speculative Decoding", "Gamma Table QA", "Delta Cache"]
ABSTRACTS = [
    # long enough for several 32-token chunks
    "Alpha compresses attention by keeping the top scoring blocks of each row, so that "
    "long inputs fit in the memory of one accelerator. Blocks are chosen by a cheap "
    "estimate of their attention mass, which keeps the output close to dense attention. "
    "On four long-context benchmarks Alpha is three times faster and loses less than one "
    "point of accuracy, and it needs no training at all, so any pretrained model can use "
    "it at inference time.",
    "Beta drafts tokens with a small model and verifies them with the large one.",
    "Gamma answers questions over tables by retrieving rows before reading them.",
    "Delta merges the cached keys of adjacent tokens to save memory.",
]


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> Assistant:
    folder = tmp_path_factory.mktemp("four")
    path = folder / "papers.jsonl"
    path.write_text(
        "".join(
            json.dumps({"title": t, "abstract": a}) + "\n"
            for t, a in zip(TITLES, ABSTRACTS, strict=True)
        )
    )
    assistant = Assistant(
        Settings(
            home=folder / "home",
            auto_ingest_bundled=False,
            chunking={"chunk_size": 32, "chunk_overlap": 4},
        )
    )
    assistant.ingest([path])
    return assistant


@pytest.fixture(scope="module")
def ids(four) -> dict[str, str]:
    """Short names for the chunk ids: a0, a1, a2, ... b0, c0, d0."""
    out = {}
    for letter, title in zip("abcd", TITLES, strict=True):
        for n, cid in enumerate(four.index.catalog.chunk_ids_of([paper_id_for_title(title)])):
            out[f"{letter}{n}"] = cid
    assert {"a0", "a1", "a2", "b0", "c0", "d0"} <= out.keys() and "b1" not in out
    return out


class ScriptedIndex:
    """The index's reads, with rankings given by the test and the real catalog."""

    def __init__(
        self,
        index,
        lexical: list[str],
        dense: list[tuple[str, float]],
        dense_confidence: float = 1.0,
        sentences: list[tuple[str, list[float]]] | None = None,
    ) -> None:
        self.catalog = index.catalog
        self.papers_named = index.papers_named  # the real title lookup
        self.lexical = [(cid, 10.0 - i) for i, cid in enumerate(lexical)]
        self.dense = dense
        self.confidence = dense_confidence
        self.sentences = sentences
        self.words: dict[str, np.ndarray] = {}  # each paper's stored word vectors: none
        self.calls: list[str] = []

    def sentence_scores(self, question):
        """The sentence encoder's scores: None (no encoder) unless the test gives each
        chunk's sentence closeness; then the real per-chunk scoring over one-hot vectors."""
        if self.sentences is None:
            return None
        self.calls.append("sentences")
        width = max(len(values) for _, values in self.sentences)
        rows = []
        for chunk_id, values in self.sentences:
            vectors = np.zeros((len(values), DIMENSIONS), np.float32)
            for i, value in enumerate(values):  # closeness value along axis 0
                vectors[i, 0], vectors[i, 1 + i % width] = value, (1 - value**2) ** 0.5
            rows.append((chunk_id, vectors.astype(np.float16).tobytes()))
        query = np.zeros(DIMENSIONS, np.float32)
        query[0] = 1.0
        return SentenceMatrix(sorted(rows)).query(query)

    def sentence_vectors_in_context(self, chunk_ids):
        return {}  # none encoded in context: each sentence is read alone

    def sentence_encoder(self):
        return None  # none installed, unless a test gives one

    def sentence_matrix(self):
        return None

    def token_vectors(self, paper_ids):
        return {p: self.words[p] for p in paper_ids if p in self.words}

    def dense_confidence(self, terms):
        return self.confidence

    def sentence_confidence(self, question):
        return 1.0

    def lexical_search(self, terms, n):
        self.calls.append("lexical")
        return self.lexical[:n]

    def dense_search(self, text, n, extra_terms=()):
        self.calls.append("dense")
        return self.dense[:n]

    def spelled_terms(self, terms):
        return list(terms)


def scripted(four, ids, dense_confidence=1.0, **settings):
    """The scripted rankings, fused by reciprocal rank fusion unless a test says ``fusion``;
    names left out (``name_weight`` 0) and no reranking (``rerank`` 0) unless a test sets
    them."""
    index = ScriptedIndex(
        four.index,
        lexical=[ids[x] for x in ("b0", "a1", "c0", "a0")],
        dense=[(ids["a2"], 0.9), (ids["b0"], 0.8), (ids["d0"], 0.7), (ids["a1"], 0.6)],
        dense_confidence=dense_confidence,
    )
    defaults = {"name_weight": 0.0, "fusion": "rrf", "sentence_weight": 1.0, "rerank": 0}
    return index, Retriever(index, RetrievalSettings(**{**defaults, **settings}))


def test_fused_papers_and_scores_by_hand_with_dbsf_the_default(four, ids):
    """BM25 scores b0 10, a1 9, c0 8, a0 7; the dense list a2 0.9, b0 0.8, d0 0.7, a1 0.6:
    each mapped to 0..1 by its mean and sd, summed; the best possible is 1 + 1."""
    _, retriever = scripted(four, ids, fusion="dbsf")
    assert RetrievalSettings().fusion == "dbsf"
    sources = retriever.retrieve("anything", k=4)
    lex, den = spread([10, 9, 8, 7]), spread([0.9, 0.8, 0.7, 0.6])
    assert [s.title for s in sources][:2] == [TITLES[1], TITLES[0]]
    assert {s.title for s in sources[2:]} == {TITLES[2], TITLES[3]}
    beta, alpha, *rest = sources
    assert beta.score == pytest.approx((lex[0] + den[1]) / 2)
    assert alpha.score == pytest.approx((lex[1] + den[3]) / 2)  # a1, ahead of a2 (den[0])
    assert [h.chunk_id for h in alpha.chunks] == [ids["a1"], ids["a2"]]
    # c0 (third by BM25) and d0 (third in the dense list) are equals but for rounding
    assert [s.score for s in rest] == pytest.approx([lex[2] / 2, den[2] / 2])
    # papers to prefer (a follow-up's) get half a list's full credit each: Gamma's c0
    # (lex[2] + 0.5) passes Alpha's a1 (lex[1] + den[3])
    preferred = retriever.retrieve("anything", k=4, prefer=[paper_id_for_title(TITLES[2])])
    assert [s.title for s in preferred][:3] == [TITLES[1], TITLES[2], TITLES[0]]
    assert preferred[1].score == pytest.approx((lex[2] + 0.5) / 2)


def test_fused_papers_and_scores_by_hand(four, ids):
    _, retriever = scripted(four, ids)
    sources = retriever.retrieve("anything", k=4)
    # fused chunk scores (k = 60): b0 = 1/61 + 1/62, a1 = 1/62 + 1/64, a2 = 1/61,
    # c0 = d0 = 1/63, a0 = 1/64; a score is divided by the best possible, 2/61
    best = 2 / 61
    assert [s.title for s in sources] == [TITLES[1], TITLES[0], TITLES[3], TITLES[2]]
    assert [s.rank for s in sources] == [1, 2, 3, 4]
    beta, alpha, delta, gamma = sources
    assert beta.score == pytest.approx((1 / 61 + 1 / 62) / best)
    assert alpha.score == pytest.approx((1 / 62 + 1 / 64) / best)
    # Gamma and Delta tie at 1/63 and hold one chunk each: the paper id decides
    assert paper_id_for_title(TITLES[3]) < paper_id_for_title(TITLES[2])
    assert delta.score == gamma.score == pytest.approx((1 / 63) / best)

    # Alpha appears once, with its two best chunks (a1, a2); a0 (1/64) is left out
    assert [h.chunk_id for h in alpha.chunks] == [ids["a1"], ids["a2"]]
    assert [(h.lexical_rank, h.dense_rank, h.dense_similarity) for h in alpha.chunks] == [
        (2, 4, 0.6),
        (None, 1, 0.9),
    ]
    assert [h.score for h in alpha.chunks] == pytest.approx([alpha.score, (1 / 61) / best])
    rows = four.index.catalog.chunks([ids["a1"], ids["a2"]])
    assert alpha.text == rows[ids["a1"]].text + " … " + rows[ids["a2"]].text  # in text order
    assert alpha.abstract == ABSTRACTS[0]


def test_the_sentence_encoders_ranking_is_a_third_list_at_its_weight(four, ids):
    """Chunks ranked by their sentence closest to the question: d0 (0.9) first, then a0
    (its best sentence, 0.7), then b0 (0.5)."""
    index, retriever = scripted(four, ids, sentence_weight=1.0)
    index.sentences = [(ids["d0"], [0.9]), (ids["a0"], [0.1, 0.7]), (ids["b0"], [0.5])]
    sources = retriever.retrieve("anything", k=4)
    # b0 = 1/61 + 1/62 + 1/63; d0 = 1/63 + 1/61; a1 = 1/62 + 1/64; a0 = 1/64 + 1/62;
    # a2 = 1/61; c0 = 1/63; the best possible is 3/61
    best = 3 / 61
    assert [s.title for s in sources] == [TITLES[1], TITLES[3], TITLES[0], TITLES[2]]
    assert sources[0].score == pytest.approx((1 / 61 + 1 / 62 + 1 / 63) / best)
    assert sources[1].score == pytest.approx((1 / 63 + 1 / 61) / best)
    # each paper carries its closest sentence's closeness (None: no encoded sentence)
    assert [s.meaning for s in sources] == pytest.approx([0.5, 0.9, 0.7, None], abs=2e-3)
    assert index.calls.count("sentences") == 1
    _, without = scripted(four, ids, sentence_weight=0.0)
    without.index.sentences = index.sentences
    assert [s.title for s in without.retrieve("anything", k=4)][:2] == [TITLES[1], TITLES[0]]


def toward(value: float) -> np.ndarray:
    """One token vector at cosine ``value`` from axis 0 (the scripted question's token)."""
    vector = np.zeros((1, 4), np.float32)
    vector[0, 0], vector[0, 1] = value, (1 - value**2) ** 0.5
    return vector


class ScriptedTokens:
    """A sentence encoder whose token vectors are given: the question's one token is axis 0;
    each token of a paper's sentences is as close to it as the test says of that paper."""

    def __init__(self, closeness: dict[str, float]) -> None:
        self.closeness = closeness  # by the first word of the abstract: "Alpha", ...
        self.read: list[str] = []

    def token_vectors(self, text: str, *, content: bool = False) -> np.ndarray:
        paper = next((a.split()[0] for a in ABSTRACTS if text in a), None)
        if paper is None:  # the question
            return toward(1.0)
        self.read.append(paper)
        return toward(self.closeness[paper])


def reranking(four, ids, closeness: dict[str, float], **settings):
    index, retriever = scripted(four, ids, **settings)
    encoder = ScriptedTokens(closeness)
    index.sentence_encoder = lambda: encoder
    index.sentence_matrix = lambda: object()  # every chunk encoded
    return encoder, retriever


def test_late_interaction_ranks_the_first_papers_again_by_hand(four, ids):
    """Fused (rank fusion): Beta, Alpha, Delta, Gamma. By late interaction: Gamma 0.9, Delta
    0.5, Alpha 0.2, Beta 0.1. Each paper scores 1 / (1 + its fused rank) + 1 / (1 + its late
    interaction rank), ranks from 0: Beta 1 + 1/4, Alpha 1/2 + 1/3, Delta 1/3 + 1/2, Gamma
    1/4 + 1; ties keep the fused order: Beta, Gamma, Alpha, Delta."""
    closeness = {"Alpha": 0.2, "Beta": 0.1, "Gamma": 0.9, "Delta": 0.5}
    encoder, retriever = reranking(four, ids, closeness, rerank=10)
    sources = retriever.retrieve("anything", k=4)
    assert [s.title for s in sources] == [TITLES[1], TITLES[2], TITLES[0], TITLES[3]]
    assert [s.rank for s in sources] == [1, 2, 3, 4]
    # an index without stored word vectors: each paper's sentences are read once, and
    # asked again, the cache answers
    read = sorted(encoder.read)
    assert sorted(set(read)) == ["Alpha", "Beta", "Delta", "Gamma"]
    retriever.retrieve("anything else", k=4)
    assert sorted(encoder.read) == read
    # the word vectors the ingest stored are read instead, and none is computed: with
    # Alpha's stored closer than Gamma's (0.95), Alpha 1/2 + 1 leads Beta 1 + 1/4
    encoder, retriever = reranking(four, ids, closeness, rerank=10)
    stored = {"Alpha": 0.95, "Beta": 0.1, "Gamma": 0.9, "Delta": 0.5}
    retriever.index.words = {paper_id_for_title(t): toward(stored[t.split()[0]]) for t in TITLES}
    sources = retriever.retrieve("anything", k=4)
    assert [s.title for s in sources] == [TITLES[0], TITLES[1], TITLES[2], TITLES[3]]
    assert encoder.read == []
    # the first two only: Beta 1 + 1/2 and Alpha 1/2 + 1 tie, Delta and Gamma stay behind
    _, two = reranking(four, ids, closeness, rerank=2)
    assert [s.title for s in two.retrieve("anything", k=4)] == [
        TITLES[1],
        TITLES[0],
        TITLES[3],
        TITLES[2],
    ]


def test_late_interaction_leaves_named_pinned_and_default_rankings_alone(four, ids):
    closeness = {"Alpha": 0.2, "Beta": 0.1, "Gamma": 0.9, "Delta": 0.5}
    fused = [TITLES[1], TITLES[0], TITLES[3], TITLES[2]]
    assert RetrievalSettings().rerank == 10  # on by default; 0 turns it off
    encoder, retriever = reranking(four, ids, closeness, rerank=0)
    assert [s.title for s in retriever.retrieve("anything", k=4)] == fused
    assert encoder.read == []
    encoder, retriever = reranking(four, ids, closeness, rerank=10, name_weight=0.5)
    # a question naming a title ("DELTA") is about that paper: its ranking stands
    named = retriever.retrieve("What does DELTA do?", k=4)
    assert [s.title for s in named] == [TITLES[1], TITLES[0], TITLES[3], TITLES[2]]
    # a follow-up pointing at a paper ("the first one") has it first, whatever its meaning
    pinned = retriever.retrieve("anything", k=4, pin=[paper_id_for_title(TITLES[0])])
    assert pinned[0].title == TITLES[0]
    assert encoder.read == []


def test_k_cuts_the_list_of_papers(four, ids):
    _, retriever = scripted(four, ids)
    assert [s.title for s in retriever.retrieve("anything", k=2)] == [TITLES[1], TITLES[0]]


def test_preferred_papers_are_a_third_ranking_at_half_weight(four, ids):
    _, retriever = scripted(four, ids)
    sources = retriever.retrieve("anything", k=4, prefer=[paper_id_for_title(TITLES[2])])
    # Gamma's one chunk gains 0.5/61 (first in the preferred ranking): 1/63 + 0.5/61
    assert [s.title for s in sources] == [TITLES[1], TITLES[0], TITLES[2], TITLES[3]]
    assert sources[2].score == pytest.approx((1 / 63 + 0.5 / 61) / (2 / 61))


def test_lexical_only_fusion_never_asks_the_dense_index(four, ids):
    index, retriever = scripted(four, ids, fusion="lexical")
    sources = retriever.retrieve("anything", k=5)
    assert index.calls == ["lexical"]
    # b0 10, a1 9, c0 8 (a0 7) mapped by their mean and sd; Delta only had dense
    assert [s.title for s in sources] == [TITLES[1], TITLES[0], TITLES[2]]
    assert [s.score for s in sources] == pytest.approx(spread([10, 9, 8, 7])[:3])
    assert [h.chunk_id for h in sources[1].chunks] == [ids["a1"], ids["a0"]]


def test_chunks_the_catalog_no_longer_holds_are_dropped(four, ids):
    index = ScriptedIndex(
        four.index,
        lexical=["ghost-paper-0123456789::abc::0", ids["c0"]],
        dense=[("ghost-paper-0123456789::abc::0", 0.9)],
    )
    sources = Retriever(index, RetrievalSettings(name_weight=0.0)).retrieve("anything", k=5)
    assert [(s.title, s.rank) for s in sources] == [(TITLES[2], 1)]


def test_the_dense_list_is_weighted_by_the_share_of_the_question_its_model_knows(four, ids):
    """A dense list the model can half trust (its vocabulary holds half the question's IDF
    mass) counts half: b0 = 1/61 + 0.5/62, a1 = 1/62 + 0.5/64, a2 = 0.5/61 (behind c0)."""
    _, retriever = scripted(four, ids, dense_confidence=0.5)
    sources = retriever.retrieve("anything", k=4)
    best = 1.5 / 61
    assert [s.title for s in sources] == [TITLES[1], TITLES[0], TITLES[2], TITLES[3]]
    beta, alpha, gamma, delta = sources
    assert beta.score == pytest.approx((1 / 61 + 0.5 / 62) / best)
    assert alpha.score == pytest.approx((1 / 62 + 0.5 / 64) / best)
    assert gamma.score == pytest.approx((1 / 63) / best)
    assert delta.score == pytest.approx((0.5 / 63) / best)
    # a dense list of words the model never saw counts for nothing
    _, retriever = scripted(four, ids, dense_confidence=0.0)
    assert [s.title for s in retriever.retrieve("anything", k=3)] == [
        TITLES[1],
        TITLES[0],
        TITLES[2],
    ]


def test_a_paper_whose_title_holds_a_name_of_the_question_gets_first_rank_credit(four, ids):
    """ "Delta" written as a name ("DeltaCache" style: here the question writes it "DELTA")
    is in Delta Cache's title: Delta gains 0.5/61 and leaves its tie with Gamma (1/63 each)
    for third place alone."""
    _, retriever = scripted(four, ids, name_weight=0.5)
    sources = retriever.retrieve("What does DELTA do?", k=4)
    best = (1 + 1 + 0.5) / 61
    assert [s.title for s in sources] == [TITLES[1], TITLES[0], TITLES[3], TITLES[2]]
    assert sources[2].score == pytest.approx((1 / 63 + 0.5 / 61) / best)
    assert sources[3].score == pytest.approx((1 / 63) / best)


def test_with_dbsf_a_name_is_worth_its_weight_of_every_lists_whole_spread(four, ids):
    """Score fusion spreads each list over 0..1, so a name's credit is ``name_weight`` of all
    the lists' weights (rank fusion's first rank would be lost in that spread): "DELTA" in
    Delta Cache's title lifts d0 (third in the dense list) by 0.5 * 2 = 1.0, past b0."""
    _, retriever = scripted(four, ids, fusion="dbsf", name_weight=0.5)
    sources = retriever.retrieve("What does DELTA do?", k=4)
    lex, den = spread([10, 9, 8, 7]), spread([0.9, 0.8, 0.7, 0.6])
    assert [s.title for s in sources][:3] == [TITLES[3], TITLES[1], TITLES[0]]
    best = 2 + 0.5 * 2  # both lists' first place, and the name
    assert sources[0].score == pytest.approx((den[2] + 1.0) / best)
    assert sources[1].score == pytest.approx((lex[0] + den[1]) / best)


# --- the real rankings --------------------------------------------------------------------


def test_real_rankings_are_fused_and_grouped_as_documented(four):
    question = "attention blocks memory"
    index = four.index
    sources = Retriever(index, RetrievalSettings(name_weight=0.0)).retrieve(question, k=4)
    from rag_assistant.text.terms import query_terms

    terms = query_terms(question)
    scored = [index.lexical_search(terms, 40), index.dense_search(question, 40)]
    lexical, dense = ([cid for cid, _ in ranking] for ranking in scored)
    assert lexical and dense
    # the sentence encoder's ranking, when its model is installed
    meaning = index.sentence_scores(question)
    scored.append(meaning.top(40) if meaning else [])
    weights = (1.0, index.dense_confidence(terms), 1.5 if scored[2] else 0.0)
    assert weights[1] == 1.0  # the model was fitted on these four abstracts: it knows all
    mapped = [dict(zip([c for c, _ in r], spread([v for _, v in r]), strict=True)) for r in scored]

    def fused(cid: str) -> float:
        pairs = zip(mapped, weights, strict=True)
        return sum(w * m.get(cid, 0.0) for m, w in pairs) / sum(weights)

    assert len({s.paper_id for s in sources}) == len(sources)  # each paper once
    assert [s.rank for s in sources] == list(range(1, len(sources) + 1))
    assert sources[0].title == TITLES[0]  # the only abstract with all three words
    for source in sources:
        assert 1 <= len(source.chunks) <= 2
        for hit in source.chunks:
            assert hit.score == pytest.approx(fused(hit.chunk_id))
            assert hit.lexical_rank == (
                lexical.index(hit.chunk_id) + 1 if hit.chunk_id in lexical else None
            )
            assert hit.dense_rank == (
                dense.index(hit.chunk_id) + 1 if hit.chunk_id in dense else None
            )
        assert source.score == source.chunks[0].score
        # no chunk of this paper that was left out scores higher than one that was kept
        kept = {h.chunk_id for h in source.chunks}
        others = [fused(c) for c in index.catalog.chunk_ids_of([source.paper_id]) if c not in kept]
        assert all(score <= source.chunks[-1].score for score in others)
    assert [s.score for s in sources] == sorted((s.score for s in sources), reverse=True)


# --- names: a paper's own, or a field's term ----------------------------------------------

FIELD = [
    ("Resources for the BEIR Leaderboard", "We release reference runs for every BEIR dataset."),
    ("Streaming Video QA with KV-Cache Retrieval", "Video frames are kept in a KV cache."),
    ("Dense Retrievers Without Labels", "A contrastive retriever beats BM25 on BEIR."),
    ("Sparse Retrievers at Scale", "Learned sparse retrieval evaluated on BEIR and MS MARCO."),
    ("Head-wise Cache Budgets", "Only retrieval heads keep a full KV cache; others keep less."),
    ("Eviction by Attention", "We evict KV cache entries with low attention scores."),
    ("Zorblat: Memory for Agents", "Zorblat stores episodes in a graph."),
    ("Agents That Remember", "Unlike Zorblat, our agent forgets on purpose."),
    ("Quillfeather Search Engine", "Quillfeather ranks pages by their links."),
]


@pytest.fixture(scope="module")
def field(tmp_path_factory) -> Assistant:
    folder = tmp_path_factory.mktemp("field")
    path = folder / "papers.jsonl"
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in FIELD))
    assistant = Assistant(Settings(home=folder / "home", auto_ingest_bundled=False))
    assistant.ingest([path])
    return assistant


def test_a_name_more_abstracts_write_than_titles_hold_names_no_paper(field):
    """ "BEIR" is in one title and three other abstracts, "KV-cache" in one title (as the
    question writes it) and three abstracts written "KV cache": a field's terms, so no paper
    gets a name's credit for them. "Quillfeather" is only its own paper's; "Zorblat" leads its
    paper's title, whatever other abstracts say of it."""
    named = field.index.papers_named
    own = {t: paper_id_for_title(t) for t, _ in FIELD}
    assert named(["BEIR"]) == {}
    assert named(["KV-cache"]) == {}
    assert named(["Quillfeather"]) == {own["Quillfeather Search Engine"]: 0}
    assert named(["Zorblat"]) == {own["Zorblat: Memory for Agents"]: 1}


def test_what_was_learnt_of_a_name_is_forgotten_when_papers_are_added(tmp_path):
    """Whether a name is its titled papers' own is kept between questions (the policy asks it
    again of each question's names): papers added later that write the name in their
    abstracts make it a field's term, and the next question sees that."""
    first = tmp_path / "first.jsonl"
    first.write_text(json.dumps({"title": FIELD[-1][0], "abstract": FIELD[-1][1]}) + "\n")
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    assistant.ingest([first])
    own = paper_id_for_title(FIELD[-1][0])
    assert assistant.index.papers_named(["Quillfeather"]) == {own: 0}
    later = tmp_path / "later.jsonl"
    later.write_text(
        "".join(
            json.dumps(
                {"title": f"Search Study {i}", "abstract": f"We compare with Quillfeather {i}."}
            )
            + "\n"
            for i in range(3)
        )
    )
    assistant.ingest([later])
    assert assistant.index.papers_named(["Quillfeather"]) == {}
