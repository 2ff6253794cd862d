"""The evaluation run: every question of a Q&A file asked through the public API (a
follow-up as the next turn of its conversation), scored with :mod:`.metrics`, aggregated
overall and by kind into the report dict that :mod:`.reports` writes and :mod:`.gate`
checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..answer.judges import LexicalJudge, SupportJudge
from ..errors import ConfigurationError, IndexEmptyError, InputError
from ..settings import Settings
from ..types import Answer, Progress, Turn, no_progress
from .dataset import KINDS, QAItem, check_gold_titles
from .metrics import (
    CORRECT_MIN_KEY_FACTS,
    CORRECTNESS_METRICS,
    FAITHFULNESS_METRICS,
    RETRIEVAL_METRICS,
    RefusalCounts,
    alce_scores,
    citation_check,
    is_correct,
    key_fact_recall,
    retrieval_scores,
    token_f1,
)

if TYPE_CHECKING:
    from ..assistant import Assistant

REPORT_VERSION = 1
RANK_DEPTH = 10

NOTES = [
    "Retrieval metrics are over answerable questions. The ranked list is the answer's own "
    f"sources, continued to {RANK_DEPTH} by retrieving its standalone question.",
    "Faithfulness (citation recall/precision, grounded) is over answered questions only: a "
    "refusal has no sentences. Each is the mean of the per-answer shares (as in ALCE).",
    "Correctness (key-fact recall, token F1) is over answerable questions; a refusal scores "
    "its refusal sentence.",
    "A question is correct when an unanswerable one is refused, or an answerable one is "
    f"answered citing a gold paper with at least {CORRECT_MIN_KEY_FACTS:.0%} of its key "
    "facts; answer_precision = correct / answered, answer_accuracy = correct / all "
    "(PaperQA2).",
    "Judge verdicts that failed (unparseable replies) are left out and counted in judge_failures.",
]


# --- running ---------------------------------------------------------------------------------


def make_judge(settings: Settings, name: str) -> SupportJudge:
    """The support judge for ``--judge``: 'lexical' (deterministic) or 'openai' (an LLM at
    temperature 0, cached in ``<home>/judge-cache``; needs a key or base URL)."""
    if name == "lexical":
        return LexicalJudge(settings.answer.support_threshold)
    if name == "openai":
        if not settings.llm_configured:
            raise ConfigurationError(
                "--judge openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible "
                "server); neither is set. Use --judge lexical to evaluate offline."
            )
        from ..answer.judges import LLMJudge
        from ..answer.llm import ChatModel

        return LLMJudge(ChatModel(settings), cache_dir=settings.home / "judge-cache")
    raise ConfigurationError(f"unknown judge {name!r}: use 'lexical' or 'openai'")


def judge_name(judge: SupportJudge) -> str:
    model = getattr(getattr(judge, "model", None), "model", None)
    return f"llm:{model}" if model else "lexical"


def score_question(
    item: QAItem, answer: Answer, ranked_titles: Sequence[str], judge: SupportJudge
) -> dict:
    """The per-question row of the report."""
    row: dict = {
        "id": item.id,
        "kind": item.kind,
        "line": item.line,
        "question": item.question,
        "follows": item.follows,
        "standalone_question": answer.standalone_question,
        "answerable": item.answerable,
        "refused": answer.refused,
        "mode": answer.mode,
        "answer": answer.text,
        "gold_titles": list(item.gold_titles),
        "retrieved": list(ranked_titles[:RANK_DEPTH]),
        "cited": [c.title for c in answer.citations],
    }
    if item.answerable:
        row.update(retrieval_scores(ranked_titles, item.gold_titles))
    else:
        row.update(dict.fromkeys(RETRIEVAL_METRICS))
    check = citation_check(answer)
    row.update(
        citations=check.total,
        valid_citations=check.valid,
        phantom_citations=check.phantoms,
        removed_citations=check.removed,
    )
    faith = alce_scores(answer, judge)
    row.update(
        sentences=len(faith.sentences),
        citation_recall=faith.citation_recall,
        citation_precision=faith.citation_precision,
        grounded=faith.grounded,
        judge_failures=faith.judge_failures,
        unsupported=[s.text for s in faith.sentences if s.supported is False],
    )
    kf = key_fact_recall(answer.text, item.key_facts) if item.answerable else None
    row["key_fact_recall"] = kf
    row["token_f1"] = token_f1(answer.text, item.reference_answer) if item.answerable else None
    row["correct"] = is_correct(answer, item.gold_titles, kf)
    return row


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def aggregate(rows: Sequence[dict]) -> dict:
    """Metrics and counts over ``rows`` (see :data:`NOTES` for what each is over)."""
    refusals = RefusalCounts()
    for row in rows:
        refusals.add(answerable=row["answerable"], refused=row["refused"], correct=row["correct"])
    answered = [r for r in rows if not r["refused"]]
    answerable = [r for r in rows if r["answerable"]]
    citations = sum(r["citations"] for r in rows)
    metrics: dict[str, float | int | None] = {
        m: _mean(r[m] for r in answerable) for m in RETRIEVAL_METRICS
    }
    metrics["citation_validity"] = (
        sum(r["valid_citations"] for r in rows) / citations if citations else None
    )
    metrics["phantom_citations"] = sum(r["phantom_citations"] for r in rows)
    metrics["removed_citations"] = sum(r["removed_citations"] for r in rows)
    for m in FAITHFULNESS_METRICS:
        metrics[m] = _mean(r[m] for r in answered)
    for m in CORRECTNESS_METRICS:
        metrics[m] = _mean(r[m] for r in answerable)
    metrics.update(refusals.rates())
    metrics["judge_failures"] = sum(r["judge_failures"] for r in rows)
    counts = {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(rows) - len(answerable),
        "answered": len(answered),
        "refused": len(rows) - len(answered),
        "correct": refusals.correct,
        "sentences": sum(r["sentences"] for r in answered),
        "citations": citations,
    }
    return {"metrics": metrics, "counts": counts}


def run_eval(
    assistant: Assistant,
    items: Sequence[QAItem],
    *,
    judge: SupportJudge | None = None,
    qa_path: str | Path | None = None,
    progress: Progress = no_progress,
) -> dict:
    """Ask every question through ``assistant`` (follow-ups with the earlier turns of their
    conversation) and score the answers with ``judge`` (default: the assistant's). Returns
    the report as a dict."""
    judge = judge or assistant.judge
    started = time.perf_counter()
    if assistant.index.is_empty():
        if not assistant.settings.auto_ingest_bundled:
            raise IndexEmptyError(
                f"the index in {assistant.settings.home} is empty; ingest the papers the "
                "Q&A file is about first"
            )
        assistant.ingest_bundled()  # what the first question would do
    name = Path(qa_path).name if qa_path else ""
    check_gold_titles(items, (p.title for p in assistant.index.catalog.iter_papers()), name)
    conversations: dict[str, list[Turn]] = {}
    rows: list[dict] = []
    progress("questions", 0, len(items))
    for done, item in enumerate(items, start=1):
        t0 = time.perf_counter()
        history = conversations[item.follows] if item.follows else []
        try:
            answer = assistant.chat(history, item.question)
        except InputError as exc:
            raise InputError(f"{name or 'Q&A file'} line {item.line}: {exc}") from None
        standalone = answer.standalone_question or item.question
        conversations[item.id] = [*history, Turn(item.question, standalone, answer)]
        ranked = [s.title for s in answer.sources]
        for source in assistant.retrieve(standalone, k=RANK_DEPTH):
            if source.title not in ranked:
                ranked.append(source.title)
        row = score_question(item, answer, ranked[:RANK_DEPTH], judge)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        progress("questions", done, len(items))
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    settings = assistant.settings
    report = {
        "report_version": REPORT_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "qa_file": str(qa_path) if qa_path else None,
        "qa_sha256": _sha256(qa_path) if qa_path else None,
        "config": {
            "mode": assistant.mode,
            "model": settings.openai.model if assistant.mode == "llm" else None,
            "judge": judge_name(judge),
            "k": settings.retrieval.k,
            "fusion": settings.retrieval.fusion,
            "embedding": settings.embedding.backend,
            "min_evidence": settings.answer.min_evidence,
        },
        "seconds": round(time.perf_counter() - started, 2),
        "totals": aggregate(rows),
        "by_kind": {k: aggregate([r for r in rows if r["kind"] == k]) for k in kinds},
        "judge": _judge_stats(judge),
        "notes": NOTES,
        "questions": rows,
    }
    return report


def _judge_stats(judge: SupportJudge) -> dict:
    stats: dict = {"name": judge_name(judge)}
    for attr in ("calls", "cache_hits", "parse_failures"):
        if hasattr(judge, attr):
            stats[attr] = getattr(judge, attr)
    return stats


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
