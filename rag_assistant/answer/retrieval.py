"""Retrieval: BM25 and dense results fused by reciprocal rank fusion, grouped by paper so
each paper appears once with its best chunks."""

from __future__ import annotations

from collections.abc import Sequence

from ..index import Index
from ..settings import RetrievalSettings
from ..text.glossary import expand
from ..text.terms import query_terms
from ..types import ChunkHit, Source, paper_id_of


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
    """Hybrid retrieval over an :class:`Index`."""

    def __init__(self, index: Index, settings: RetrievalSettings) -> None:
        self.index = index
        self.settings = settings

    def retrieve(
        self, question: str, k: int | None = None, *, prefer: Sequence[str] = ()
    ) -> list[Source]:
        """The ``k`` best papers for ``question``. ``prefer``: paper ids (e.g. those the
        previous turn cited) added to the fusion as a third, half-weight ranking."""
        s = self.settings
        k = s.k if k is None else k
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
        lexical_ids = [cid for cid, _ in lexical]
        dense_ids = [cid for cid, _ in dense]
        preferred = self.index.catalog.chunk_ids_of(prefer) if prefer else []
        fused = rrf(
            [lexical_ids, dense_ids, preferred],
            k=s.rrf_k,
            weights=[
                s.lexical_weight if lexical else 0.0,
                s.dense_weight if dense else 0.0,
                0.5 * max(s.lexical_weight, s.dense_weight),
            ],
        )
        best_possible = (
            (s.lexical_weight if lexical else 0.0) + (s.dense_weight if dense else 0.0)
        ) / (s.rrf_k + 1)
        lexical_rank = {cid: r for r, cid in enumerate(lexical_ids, start=1)}
        dense_rank = {cid: r for r, cid in enumerate(dense_ids, start=1)}
        dense_sim = dict(dense)

        # Chunks the catalog no longer holds (an interrupted ingest) are dropped here.
        groups = group_by_paper(fused, per_paper=s.chunks_per_paper)
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
                    score=fused[cid] / best_possible if best_possible else 0.0,
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
                )
            )
            if len(sources) == k:
                break
        return sources
