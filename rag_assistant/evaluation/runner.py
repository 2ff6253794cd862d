"""The evaluation run: every question of a Q&A file asked through the public API (a
follow-up as the next turn of its conversation), scored with :mod:`.metrics`, aggregated
overall, by kind and by category into the report dict that :mod:`.reports` writes and
:mod:`.gate` checks. A question that fails is recorded and the run goes on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ..answer.judges import LexicalJudge, SupportJudge
from ..errors import (
    ConfigurationError,
    IndexEmptyError,
    LLMAuthenticationError,
    RagAssistantError,
)
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
    gold_cited,
    is_correct,
    key_fact_recall,
    retrieval_scores,
    token_f1,
)

if TYPE_CHECKING:
    from ..assistant import Assistant

log = logging.getLogger(__name__)

REPORT_VERSION = 2
RANK_DEPTH = 10

NOTES = [
    "Retrieval metrics are over answerable questions. The ranked list is the answer's own "
    f"sources, continued to {RANK_DEPTH} by retrieving its standalone question.",
    "Faithfulness (citation recall/precision, grounded) is over answered questions only: a "
    "refusal has no sentences. Each is the mean of the per-answer shares (as in ALCE).",
    "Correctness (key-fact recall, token F1, gold_cited: the share of the gold papers the "
    "answer cites) is over answerable questions; a refusal scores its refusal sentence (and "
    "cites none).",
    "A question is correct when an unanswerable one is refused, or an answerable one is "
    f"answered citing a gold paper with at least {CORRECT_MIN_KEY_FACTS:.0%} of its key "
    "facts; answer_precision = correct / answered, answer_accuracy = correct / all "
    "(PaperQA2).",
    "Judge verdicts that failed (unparseable replies) are left out and counted in judge_failures.",
    "A question whose answering failed (the model timed out, say) is counted in 'failed' and "
    "left out of every metric; a report with failed questions is marked partial.",
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
        **_item_fields(item),
        "failed": False,
        "error": None,
        "standalone_question": answer.standalone_question,
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
    row["gold_cited"] = gold_cited(answer, item.gold_titles) if item.answerable else None
    row["correct"] = is_correct(answer, item.gold_titles, kf)
    return row


def failed_row(item: QAItem, error: BaseException, seconds: float) -> dict:
    """The report row of a question whose answering (or scoring) failed: no metrics, the
    error's type and message."""
    return {
        **_item_fields(item),
        "failed": True,
        "error": {"type": type(error).__name__, "message": str(error)},
        "seconds": round(seconds, 3),
    }


def _item_fields(item: QAItem) -> dict:
    return {
        "id": item.id,
        "kind": item.kind,
        "category": item.category,
        "line": item.line,
        "question": item.question,
        "follows": item.follows,
        "answerable": item.answerable,
    }


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def aggregate(rows: Sequence[dict]) -> dict:
    """Metrics and counts over ``rows`` (see :data:`NOTES` for what each is over). Failed
    rows are counted (``failed``) and left out of every metric."""
    failed = [r for r in rows if r.get("failed")]
    rows = [r for r in rows if not r.get("failed")]
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
        "questions": len(rows) + len(failed),
        "failed": len(failed),
        "answerable": len(answerable),
        "unanswerable": len(rows) - len(answerable),
        "answered": len(answered),
        "refused": len(rows) - len(answered),
        "correct": refusals.correct,
        "sentences": sum(r["sentences"] for r in answered),
        "citations": citations,
    }
    return {"metrics": metrics, "counts": counts}


def _groups(rows: Sequence[dict], key: str, order: Sequence[str] = ()) -> dict:
    """:func:`aggregate` per value of ``rows[key]`` (``order`` first, then sorted); rows
    without a value are grouped as 'uncategorized' when others have one."""
    values = {r.get(key) for r in rows}
    named = [v for v in order if v in values] + sorted(v for v in values - {None} - set(order))
    out = {v: aggregate([r for r in rows if r.get(key) == v]) for v in named}
    if named and None in values:
        out[UNCATEGORIZED] = aggregate([r for r in rows if r.get(key) is None])
    return out


UNCATEGORIZED = "uncategorized"
FATAL = (ConfigurationError, LLMAuthenticationError)
"""Errors no later question can escape (a bad setting, a rejected key): the run stops."""


class _Run:
    """One pass over the questions: the conversations so far, the rows, and why it ended
    early (if it did)."""

    def __init__(self, assistant: Assistant, judge: SupportJudge, name: str) -> None:
        self.assistant = assistant
        self.judge = judge
        self.name = name
        self.conversations: dict[str, list[Turn]] = {}
        self.rows: list[dict] = []
        self.stopped: str | None = None
        self.interrupted = False

    def ask(self, item: QAItem) -> dict:
        """Ask one question (after the turns it follows) and score the answer."""
        assistant = self.assistant
        history = self.conversations[item.follows] if item.follows else []
        answer = assistant.chat(history, item.question)
        standalone = answer.standalone_question or item.question
        self.conversations[item.id] = [*history, Turn(item.question, standalone, answer)]
        ranked = [s.title for s in answer.sources]
        for source in assistant.retrieve(standalone, k=RANK_DEPTH):
            if source.title not in ranked:
                ranked.append(source.title)
        return score_question(item, answer, ranked[:RANK_DEPTH], self.judge)

    def run(self, items: Sequence[QAItem], progress: Progress, max_failures: int) -> None:
        in_a_row = 0
        progress("questions", 0, len(items))
        for done, item in enumerate(items, start=1):
            t0 = time.perf_counter()
            try:
                if item.follows is not None and item.follows not in self.conversations:
                    raise PreviousTurnFailed(
                        f"not asked: the turn it follows, {item.follows!r}, failed"
                    )
                row = self.ask(item)
                row["seconds"] = round(time.perf_counter() - t0, 3)
                in_a_row = 0
            except KeyboardInterrupt:
                self.interrupted = True
                return
            except RagAssistantError as exc:
                row = failed_row(item, exc, time.perf_counter() - t0)
                in_a_row += not isinstance(exc, PreviousTurnFailed)
                log.warning(
                    "%s line %d (%s) failed: %s: %s",
                    self.name or "Q&A file",
                    item.line,
                    item.id,
                    type(exc).__name__,
                    exc,
                )
                if isinstance(exc, FATAL):
                    self.stopped = f"stopped at {item.id!r}: {type(exc).__name__}: {exc}"
                elif max_failures and in_a_row >= max_failures:
                    self.stopped = (
                        f"stopped after {in_a_row} failed questions in a row (the last: "
                        f"{type(exc).__name__}: {exc})"
                    )
            self.rows.append(row)
            progress("questions", done, len(items))
            if self.stopped:
                return

    def partial(self, total: int, subset: dict | None) -> list[str]:
        """Why the report does not measure every question of the file (empty: it does)."""
        reasons = []
        if subset is not None:
            how = (
                f"--limit {subset['limit']}"
                if subset["limit"]
                else "--ids " + ",".join(subset["ids"])
            )
            reasons.append(
                f"a subset: {total} of the {subset['questions_in_file']} questions of the file "
                f"({how})"
            )
        failed = sum(1 for r in self.rows if r["failed"])
        if failed:
            reasons.append(
                f"{failed} of {len(self.rows)} questions failed; the metrics are over the "
                f"other {len(self.rows) - failed}"
            )
        if self.interrupted:
            reasons.append(f"interrupted after {len(self.rows)} of {total} questions")
        if self.stopped:
            reasons.append(f"{self.stopped}; {total - len(self.rows)} questions not asked")
        return reasons


class PreviousTurnFailed(RagAssistantError):
    """A follow-up is not asked when the turn it follows failed."""


def run_eval(
    assistant: Assistant,
    items: Sequence[QAItem],
    *,
    judge: SupportJudge | None = None,
    qa_path: str | Path | None = None,
    progress: Progress = no_progress,
    subset: dict | None = None,
    index_kind: str = "current",
    max_failures: int = 5,
) -> dict:
    """Ask every question through ``assistant`` (follow-ups with the earlier turns of their
    conversation) and score the answers with ``judge`` (default: the assistant's). Returns
    the report as a dict.

    A question whose answering fails (any :class:`RagAssistantError`: the model timed out,
    a question too long, ...) is recorded as failed with its error and the run goes on; a
    follow-up of a failed turn is not asked. The run stops early on an error no question
    can escape (a rejected key, a bad setting), after ``max_failures`` failed questions in
    a row (0: never), or on Ctrl+C (KeyboardInterrupt is not raised: the report so far is
    returned). Any of these, and a ``subset`` (from :func:`~.dataset.select`), make the
    report partial: ``report["partial"]`` lists why, and the metrics are over the questions
    that were answered.
    """
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
    hint = (
        "; the evaluation runs on a fresh index of the bundled corpus: use --index current "
        "to evaluate the papers in your own index"
        if index_kind == "fresh"
        else ""
    )
    check_gold_titles(
        items, (p.title for p in assistant.index.catalog.iter_papers()), name, hint=hint
    )
    run = _Run(assistant, judge, name)
    run.run(items, progress, max_failures)
    rows = run.rows
    settings = assistant.settings
    return {
        "report_version": REPORT_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "qa_file": str(qa_path) if qa_path else None,
        "qa_sha256": _sha256(qa_path) if qa_path else None,
        "partial": run.partial(len(items), subset),
        "subset": subset,
        "interrupted": run.interrupted,
        "stopped": run.stopped,
        "config": {
            "mode": assistant.mode,
            "model": settings.openai.model if assistant.mode == "llm" else None,
            "judge": judge_name(judge),
            "k": settings.retrieval.k,
            "fusion": settings.retrieval.fusion,
            # reranking reads the sentence encoder's word vectors: nothing without it
            "rerank": settings.retrieval.rerank if assistant.index.sentence_encoder() else 0,
            "embedding": settings.embedding.backend,
            "min_evidence": settings.answer.min_evidence,
        },
        "index": describe_index(assistant, index_kind),
        "settings": settings_record(settings),
        "seconds": round(time.perf_counter() - started, 2),
        "totals": aggregate(rows),
        "by_kind": _groups(rows, "kind", KINDS),
        "by_category": _groups(rows, "category"),
        "judge": _judge_stats(judge),
        "notes": NOTES,
        "questions": rows,
    }


def describe_index(assistant: Assistant, kind: str) -> dict:
    """What the index held: papers, chunks, how it was built, and a digest of its catalog
    (every paper id with its content hash) that is equal exactly when two indexes hold the
    same paper texts."""
    index = assistant.index
    status = index.status()
    ids = index.catalog.all_paper_ids()
    hashes = index.catalog.paper_hashes(ids)
    digest = hashlib.sha256()
    for paper_id in sorted(hashes):
        digest.update(f"{paper_id}\t{hashes[paper_id][0]}\n".encode())
    return {
        "kind": kind,
        "home": None if kind == "fresh" else status.home,
        "papers": status.papers,
        "chunks": status.chunks,
        "catalog_sha256": digest.hexdigest(),
        "embedding": status.embedding,
        "dimensions": status.dimensions,
        "tokenizer": status.tokenizer,
        "chunking": status.chunking,
        "chroma": status.chroma,
    }


def settings_record(settings: Settings) -> dict:
    """The settings that shape answers and scores, for the report: no secrets, no paths of
    this machine, no UI options; a base URL without any user or password in it."""
    record = settings.model_dump(
        mode="json",
        exclude={"home": True, "ui": True, "openai": {"api_key"}, "chroma_url": True},
    )
    base_url = record["openai"].get("base_url")
    if base_url:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        record["openai"]["base_url"] = urlunsplit(parts._replace(netloc=netloc))
    record["chroma"] = "server" if settings.chroma_url else "embedded"
    if settings.prompts_dir is not None:
        record["prompts_dir"] = f"custom ({settings.prompts_dir.name})"
    return record


@contextlib.contextmanager
def fresh_index(
    settings: Settings, *, judge: SupportJudge | None = None, progress: Progress = no_progress
) -> Iterator[Assistant]:
    """An assistant over a new temporary index of the bundled corpus, built with
    ``settings`` (chunking, embedding, retrieval...) in an embedded Chroma, and removed
    afterwards: a run on it measures the code and the settings, not what an index has been
    through. ``judge`` keeps its own cache (the LLM judge's is in the real index folder)."""
    from ..assistant import Assistant

    with tempfile.TemporaryDirectory(
        prefix="rag-assistant-eval-", ignore_cleanup_errors=True
    ) as tmp:
        fresh = settings.merged(home=str(Path(tmp) / "index"), chroma_url=None)
        assistant = Assistant(fresh, judge=judge)
        assistant.ingest_bundled(progress=progress)
        yield assistant


def _judge_stats(judge: SupportJudge) -> dict:
    stats: dict = {"name": judge_name(judge)}
    for attr in ("calls", "cache_hits", "parse_failures"):
        if hasattr(judge, attr):
            stats[attr] = getattr(judge, attr)
    return stats


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
