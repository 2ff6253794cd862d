"""How far retrieval's lists can go on a Q&A file: for each kind of question, how often the
fused ranking puts a gold paper first, how often each list alone does (BM25, the dense
model, the sentence encoder), how often the best of them for each question does (an oracle;
fusion passes it only where lists that each rank the paper second or third agree), and how
often some list holds the paper at all (what a better reranker could still reach).

    .venv/bin/python scripts/list_ceiling.py [--qa eval/dev.jsonl] [--home DIR]

Follow-ups are left out (they are asked as rewritten by the conversation), and so are
unanswerable questions (no gold paper). It only reports: a held-out file may be read, as
the eval report reads it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from rag_assistant import Assistant
from rag_assistant.evaluation.dataset import load_qa
from rag_assistant.evaluation.metrics import title_key
from rag_assistant.types import paper_id_of

LISTS = ("BM25", "dense", "sentences")


def paper_rank(ranking: Sequence[tuple[str, float]], gold: set[str]) -> int | None:
    """The rank (from 1) of the first gold paper among the papers of a chunk ranking."""
    papers = list(dict.fromkeys(paper_id_of(chunk_id) for chunk_id, _ in ranking))
    return next((i for i, p in enumerate(papers, start=1) if p in gold), None)


def ceilings(assistant: Assistant, qa_file: str) -> dict[str, Counter]:
    """Per kind (and "all"): questions, fused hit@1, each list's hit@1, the best list's
    hit@1 ("oracle"), a gold paper in some list's top 5 ("any@5") and in some list at all
    ("found": among the ``retrieval.candidates`` chunks a list returns)."""
    catalog = assistant.index.catalog
    out: dict[str, Counter] = {}
    for item in load_qa(qa_file):
        if item.follows or not item.answerable:
            continue
        wanted = {title_key(t) for t in item.gold_titles}
        sources = assistant.retrieve(item.question)
        lists = assistant.retriever.rankings(item.question)
        ranked = (lists.lexical, lists.dense, lists.sentences)
        ids = sorted({paper_id_of(chunk_id) for r in ranked for chunk_id, _ in r})
        gold = {p for p, paper in catalog.papers(ids).items() if title_key(paper.title) in wanted}
        ranks = [paper_rank(r, gold) for r in ranked]
        best = min((r for r in ranks if r is not None), default=None)
        for kind in (item.kind, "all"):
            row = out.setdefault(kind, Counter())
            row["questions"] += 1
            row["fused"] += bool(sources) and title_key(sources[0].title) in wanted
            for name, rank in zip(LISTS, ranks, strict=True):
                row[name] += rank == 1
            row["oracle"] += best == 1
            row["any@5"] += best is not None and best <= 5
            row["found"] += best is not None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qa", default="eval/dev.jsonl", help="the Q&A file to read")
    parser.add_argument("--home", default=None, help="the index folder (default: settings)")
    args = parser.parse_args()
    options = {"answer": {"llm": "offline"}}
    if args.home:
        options["home"] = args.home
    rows = ceilings(Assistant(**options), args.qa)
    if not rows:
        sys.exit(f"{args.qa} has no answerable first-turn question: nothing to rank")
    table = Table(title=f"hit@1 on {args.qa}: fused, each list alone, the best list")
    for column in ("kind", "questions", "fused", *LISTS, "oracle", "any@5", "found"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in sorted(rows, key=lambda k: (k == "all", k)):
        row = rows[kind]
        n = row["questions"]
        shares = [f"{row[c] / n:.3f}" for c in ("fused", *LISTS, "oracle", "any@5", "found")]
        table.add_row(kind, str(n), *shares)
    Console().print(table)


if __name__ == "__main__":
    main()
