"""Retrieval: BM25, dense, sentence-encoder and name rankings fused by how strong each match
is (distribution-based score fusion; reciprocal rank fusion on request), grouped by paper so
each paper appears once with its best chunks; the first papers then ranked again by
late interaction over the sentence encoder's token vectors."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..index import Index
from ..settings import RetrievalSettings
from ..store.sentence_encoder import SentenceEncoder, SentenceScores, cosines, late_interaction
from ..text.glossary import expand
from ..text.sentences import sentences
from ..text.terms import paper_names, query_terms
from ..types import ChunkHit, Source, paper_id_of

log = logging.getLogger(__name__)

TOKEN_CACHE = 500
"""Papers of an index without stored word vectors whose abstract's content-word vectors a
:class:`Retriever` keeps once read (about 0.2 MB each, as 32-bit floats)."""


def rrf(
    rankings: Sequence[Sequence[str]], *, k: int = 60, weights: Sequence[float] | None = None
) -> dict[str, float]:
    """Reciprocal rank fusion: ``sum_i w_i / (k + rank_i(d))`` with ranks starting at 1."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


def dbsf(
    rankings: Sequence[Sequence[tuple[str, float]]], *, weights: Sequence[float] | None = None
) -> dict[str, float]:
    """Distribution-based score fusion (as Qdrant's ``dbsf``): each list's scores mapped to
    0..1 by its own mean and standard deviation, ``mean - 3 sd`` to 0 and ``mean + 3 sd`` to
    1 (clipped), then weighted and summed; an item a list did not return gets 0 from it.
    A list whose scores are all equal (one item, say) gives each item 1. So a match that
    stands out of its list counts more than one that leads a list of equals, and lists on
    different scales (BM25's unbounded sums, cosines) add up on one scale."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking or weight == 0:
            continue
        values = np.array([value for _, value in ranking], dtype=np.float64)
        mean, sd = float(values.mean()), float(values.std())
        if sd > 0:
            values = np.clip((values - (mean - 3 * sd)) / (6 * sd), 0.0, 1.0)
        else:
            values = np.ones_like(values)
        for (item, _), value in zip(ranking, values, strict=True):
            scores[item] = scores.get(item, 0.0) + weight * float(value)
    return scores


def group_by_paper(scored: dict[str, float], *, per_paper: int) -> list[tuple[str, list[str]]]:
    """Papers ordered by their best chunk's score (ties: more strong chunks first), each with
    its best ``per_paper`` chunk ids."""
    by_paper: dict[str, list[tuple[float, str]]] = {}
    for chunk_id, score in scored.items():
        by_paper.setdefault(paper_id_of(chunk_id), []).append((score, chunk_id))
    ranked = []
    for paper_id, hits in by_paper.items():
        hits.sort(key=lambda h: (-h[0], h[1]))
        key = tuple(-h[0] for h in hits[:per_paper])
        # a missing chunk counts as a score of 0, so that on a tie the paper with more
        # strong chunks comes first (an unpadded shorter tuple would sort before it)
        key += (0.0,) * (per_paper - len(key))
        ranked.append((key, paper_id, [h[1] for h in hits[:per_paper]]))
    ranked.sort(key=lambda r: (r[0][0], r[0][1:], r[1]))
    return [(paper_id, chunk_ids) for _, paper_id, chunk_ids in ranked]


class Retriever:
    """Hybrid retrieval over an :class:`Index`.

    Rankings fused by how strong each match is (``fusion="dbsf"``, the default: each list's
    scores mapped to 0..1 by its own mean and spread, :func:`dbsf`; ``"rrf"``: by rank
    alone, :func:`rrf`), each at its weight:

    * BM25 over chunk terms (titles included);
    * the dense list, weighted by the share of the question's IDF mass the dense model's
      vocabulary knows: words it has never seen (a method named only in papers added after
      the LSA fit) make it step aside instead of ranking noise first;
    * names: papers whose title holds a name of the question verbatim ("R-Tuning", "SLUE
      Phase-2", "Adaptive Guidance" written in title case), found whether or not the other
      lists found them, get a first rank's credit;
    * the papers to prefer (those a follow-up's previous answer cited), at half weight;
    * with the sentence encoder installed, chunks ranked by their sentence closest in meaning
      to the question (all-MiniLM-L6-v2; a lay question finds the abstract that words it
      differently), weighted by the share of the question's IDF mass whose words the
      encoder's vocabulary holds whole: a made-up name is noise to it.

    With ``rerank`` set (10 by default; 0 turns it off) and the encoder installed, the first
    papers are then ranked again by late interaction (:meth:`_rerank`).

    Score fusion, with the sentence list at 1.5 (two lists read words, one meaning), put
    the right paper first more often than rank fusion at any weight (README, "How retrieval
    and refusals were tuned"). Tried and dropped (measured on eval/dev.jsonl, confirmed on
    eval/qa.jsonl): weighting BM25 by the share of the question its best chunk holds, and
    crediting papers by the share of the question their title holds.
    """

    def __init__(self, index: Index, settings: RetrievalSettings) -> None:
        self.index = index
        self.settings = settings
        self._token_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def retrieve(
        self,
        question: str,
        k: int | None = None,
        *,
        prefer: Sequence[str] = (),
        pin: Sequence[str] = (),
    ) -> list[Source]:
        """The ``k`` best papers for ``question``. ``prefer``: paper ids (e.g. those the
        previous turn cited) added to the fusion as a half-weight ranking; ``pin``: paper ids
        the question points at ("the first one"), ranked first in that order."""
        s = self.settings
        k = s.k if k is None else k
        lists = self.rankings(question)
        terms, lexical, dense, meaning = lists.terms, lists.lexical, lists.dense, lists.meaning
        closest = lists.sentences
        preferred = self.index.catalog.chunk_ids_of(prefer) if prefer else []
        weights = Weights(
            lexical=s.lexical_weight if lexical else 0.0,
            dense=s.dense_weight * self.index.dense_confidence(terms) if dense else 0.0,
            preferred=0.5 * max(s.lexical_weight, s.dense_weight) if prefer else 0.0,
            name=s.name_weight,
            sentences=s.sentence_weight * self.index.sentence_confidence(question)
            if closest
            else 0.0,
        )
        by_weight = [weights.lexical, weights.dense, weights.preferred, weights.sentences]
        if s.fusion == "rrf":
            ids = [[cid for cid, _ in ranking] for ranking in (lexical, dense, closest)]
            fused = rrf([ids[0], ids[1], preferred, ids[2]], k=s.rrf_k, weights=by_weight)
            first = 1 / (s.rrf_k + 1)  # a first rank's worth of a list of weight 1
            scale = 1.0  # a name is worth a first rank at its weight
        else:  # the papers to prefer are equals: each gets its list's full credit
            equals = [(chunk_id, 1.0) for chunk_id in preferred]
            fused = dbsf([lexical, dense, equals, closest], weights=by_weight)
            first = 1.0
            # each list spreads its chunks over the whole of 0..1 (rank fusion over a few
            # hundredths of a first rank): a name lifts its paper by that share of them all
            scale = weights.lists
        named = self.index.papers_named(paper_names(question)) if weights.name else {}
        found = {paper_id_of(c) for c in fused}
        for paper_id in named:  # a named paper neither list found enters with its first chunk
            if paper_id not in found:
                fused.update((c, 0.0) for c in self.index.catalog.chunk_ids_of([paper_id])[:1])
        # a paper-level credit, lent to every chunk of the paper; a paper whose title leads
        # with the name ("R-Tuning: ...") is the one named: a first rank's worth for each
        credit = weights.name * scale * first
        led = weights.lists * first
        for chunk_id in fused:
            paper_id = paper_id_of(chunk_id)
            if paper_id in named:
                fused[chunk_id] += credit + led * named[paper_id]
        best_possible = weights.best_possible(named=bool(named), scale=scale) * first

        lexical_rank = {cid: r for r, (cid, _) in enumerate(lexical, start=1)}
        dense_rank = {cid: r for r, (cid, _) in enumerate(dense, start=1)}
        dense_sim = dict(dense)

        # Chunks the catalog no longer holds (an interrupted ingest) are dropped here.
        groups = group_by_paper(fused, per_paper=s.chunks_per_paper)
        if pin:
            pinned = [(p, self.index.catalog.chunk_ids_of([p])[: s.chunks_per_paper]) for p in pin]
            rest = [g for g in groups if g[0] not in set(pin)]
            for _, chunk_ids in pinned:
                for chunk_id in chunk_ids:
                    fused.setdefault(chunk_id, 0.0)
            groups = [g for g in pinned if g[1]] + rest
        reranked = not named and not pin
        if reranked:
            groups = self._rerank(question, groups)
        wanted_chunks = [cid for _, cids in groups[: k * 2] for cid in cids]
        rows = self.index.catalog.chunks(wanted_chunks)
        papers = self.index.catalog.papers([pid for pid, _ in groups[: k * 2]])
        sources: list[Source] = []
        for paper_id, chunk_ids in groups[: k * 2]:
            paper = papers.get(paper_id)
            hits = [
                ChunkHit(
                    chunk_id=cid,
                    text=rows[cid].text,
                    ordinal=rows[cid].ordinal,
                    score=min(1.0, fused[cid] / best_possible) if best_possible else 0.0,
                    lexical_rank=lexical_rank.get(cid),
                    dense_rank=dense_rank.get(cid),
                    dense_similarity=dense_sim.get(cid),
                )
                for cid in chunk_ids
                if cid in rows
            ]
            if paper is None or not hits:
                continue
            hits_in_order = sorted(hits, key=lambda h: h.ordinal)
            sources.append(
                Source(
                    paper_id=paper_id,
                    title=paper.title,
                    score=hits[0].score,
                    text=" … ".join(h.text for h in hits_in_order),
                    abstract=paper.abstract,
                    chunks=hits,
                    url=paper.url,
                    authors=paper.authors,
                    date=paper.date,
                    rank=len(sources) + 1,
                    meaning=meaning.of_paper(paper_id) if meaning else None,
                    sentence_meaning=self._sentence_meaning(meaning, paper_id) if meaning else {},
                )
            )
            if len(sources) == k:
                break
        if reranked:  # each place keeps its score, so that they read in order
            scores = sorted((s.score for s in sources), reverse=True)
            for source, score in zip(sources, scores, strict=True):
                source.score = score
        return sources

    def _rerank(
        self, question: str, groups: list[tuple[str, list[str]]]
    ) -> list[tuple[str, list[str]]]:
        """The first ``rerank`` papers of ``groups`` in a new order: each at ``1 / (1 +
        fused rank) + 1 / (1 + late-interaction rank)`` (ranks from 0), ties kept in the
        fused order; the rest as they were. Late interaction reads each word of the question
        in context against each word of the paper's abstract (:func:`late_interaction`): a
        lay question ("make a chatbot cheaper to run") finds the abstract that says it in its
        own words, which one vector per sentence misses. The abstracts' word vectors are
        the ones the ingest stored (:meth:`Index.token_vectors`); a paper without them (an
        index from before them) is read when first needed (:meth:`_tokens`). Measured on
        eval/dev.jsonl (hit@1 0.878 -> 0.888, lay questions 80 -> 84 of 131; its rank
        weighed twice: lay 90, but three others lost; the first 5 papers only: fewer) and
        confirmed on eval/qa.jsonl (0.923 -> 0.956): README, tuning table."""
        n = min(self.settings.rerank, len(groups))
        encoder = self.index.sentence_encoder() if n > 1 else None
        if encoder is None or self.index.sentence_matrix() is None:
            return groups
        asked = encoder.token_vectors(question, content=True)
        top = groups[:n]
        stored = self.index.token_vectors([paper_id for paper_id, _ in top])
        unread = [paper_id for paper_id, _ in top if paper_id not in stored]
        papers = self.index.catalog.papers(unread) if unread else {}
        if unread and not self._token_cache:  # the first time: say what to do
            log.warning(
                "papers without word vectors (an index from before them: ingest again to "
                "encode them); reranking reads their words when first needed, 0.2 s a paper"
            )
        close = [
            late_interaction(asked, stored[paper_id])
            if paper_id in stored
            else late_interaction(asked, self._tokens(encoder, paper_id, papers[paper_id].abstract))
            if paper_id in papers
            else 0.0
            for paper_id, _ in top
        ]
        by_meaning = sorted(range(n), key=lambda i: (-close[i], i))
        score = [1 / (1 + i) for i in range(n)]
        for rank, i in enumerate(by_meaning):
            score[i] += 1 / (1 + rank)
        order = sorted(range(n), key=lambda i: (-score[i], i))
        return [top[i] for i in order] + groups[n:]

    def _tokens(self, encoder: SentenceEncoder, paper_id: str, abstract: str) -> np.ndarray:
        """The vectors of the abstract's content words (each read in its sentence) of a paper
        whose words the ingest did not store (an index from before it did), kept for the last
        :data:`TOKEN_CACHE` papers asked about: reading a paper costs about 0.2 s (a NumPy
        pass over each sentence), which the cache saves the next question about it."""
        key = (paper_id, hashlib.sha1(abstract.encode()).hexdigest())
        with self._lock:
            if key in self._token_cache:
                self._token_cache.move_to_end(key)
                return self._token_cache[key]
        said = sentences(abstract) or [abstract]
        vectors = np.concatenate([encoder.token_vectors(s, content=True) for s in said])
        with self._lock:
            self._token_cache[key] = vectors
            while len(self._token_cache) > TOKEN_CACHE:
                self._token_cache.popitem(last=False)
        return vectors

    def rankings(self, question: str) -> Rankings:
        """The lists :meth:`retrieve` fuses for ``question`` (those its ``fusion`` setting
        uses; the others empty), each the best ``candidates`` chunks, best first."""
        s = self.settings
        asked = query_terms(question)
        terms = self.index.spelled_terms(asked)
        corrected = [t for t in terms if t not in asked]
        # Lay words ("chatbot", "cheaper") also search for the words abstracts use.
        expansion = expand(question)
        terms += [t for t in expansion.extra if t not in terms]
        dense_query = " ".join([question, *expansion.phrases])
        lexical = self.index.lexical_search(terms, s.candidates) if s.fusion != "dense" else []
        dense = (
            self.index.dense_search(dense_query, s.candidates, extra_terms=corrected)
            if s.fusion != "lexical"
            else []
        )
        hybrid = s.fusion in ("dbsf", "rrf")
        meaning = self.index.sentence_scores(question) if hybrid else None
        closest = meaning.top(s.candidates) if meaning else []
        return Rankings(terms, lexical, dense, closest, meaning)

    def _sentence_meaning(self, meaning: SentenceScores, paper_id: str) -> dict[str, float]:
        """Each sentence of the paper's chunks (split as they were encoded) with its
        closeness to the question, read in its paper's context (the sentence encoded after
        the title: "It needs no retraining" is about unlearning in an unlearning paper);
        the sentence alone where the index has no such vectors (an index from before them,
        until its next ingest)."""
        catalog = self.index.catalog
        chunk_ids = catalog.chunk_ids_of([paper_id])
        rows = catalog.chunks(chunk_ids)
        in_context = self.index.sentence_vectors_in_context(chunk_ids)
        out: dict[str, float] = {}
        for chunk_id in chunk_ids:
            if chunk_id not in rows:
                continue
            said = sentences(rows[chunk_id].text) or [rows[chunk_id].text]
            values = meaning.of_sentences(chunk_id)
            if chunk_id in in_context:
                read = cosines(in_context[chunk_id], meaning.vector)
                values = read if len(read) == len(values) else values
            for sentence, value in zip(said, values, strict=False):
                out[sentence] = max(value, out.get(sentence, -1.0))
        return out


@dataclass
class Rankings:
    """One question's ranked lists (see :meth:`Retriever.rankings`): ``(chunk id, score)``
    pairs, best first."""

    terms: list[str]  # the BM25 query: the question's terms, spelled as the corpus does
    lexical: list[tuple[str, float]]  # BM25
    dense: list[tuple[str, float]]  # the LSA model (or the embedding model set)
    sentences: list[tuple[str, float]]  # by the chunk's sentence closest in meaning
    meaning: SentenceScores | None  # every chunk's closeness (None without the encoder)


@dataclass
class Weights:
    """The weights of one question's rankings (see :class:`Retriever`)."""

    lexical: float
    dense: float
    preferred: float
    name: float
    sentences: float = 0.0

    @property
    def lists(self) -> float:
        """The weights of the rankings that score every question (BM25, dense, sentences)."""
        return self.lexical + self.dense + self.sentences

    def best_possible(self, *, named: bool, scale: float = 1.0) -> float:
        """The fused score of a chunk ranked first by BM25, the dense list and the sentence
        encoder (and named by the question, when a title was, its credit ``name * scale``):
        scores are shown as a share of it, in 0..1."""
        return self.lists + (self.name * scale if named else 0.0)
