"""The evaluation runner: a Q&A file run through the public API, scored with
:mod:`rag_assistant.evaluation`, aggregated by kind, written as ``report.json``,
``report.md`` and ``report.png``, compared with an earlier report, checked against
thresholds.

The Q&A file holds one JSON object per line: ``id``, ``question``, ``reference_answer``,
``gold_titles`` (exact index titles; ``[]`` for an unanswerable question), ``key_facts``,
``kind`` (one of :data:`KINDS`), ``source_files`` and, for a follow-up, ``follows`` (the id
of the previous turn of the same conversation, on an earlier line).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .answers import Answer
from .citations import LexicalJudge, SupportJudge
from .conversation import Turn
from .errors import ConfigurationError, IndexEmptyError, InputError
from .evaluation import (
    CORRECT_MIN_KEY_FACTS,
    RefusalCounts,
    alce_scores,
    citation_check,
    is_correct,
    key_fact_recall,
    retrieval_scores,
    title_key,
    token_f1,
)
from .settings import Settings

if TYPE_CHECKING:
    from .assistant import Assistant

KINDS = ("single", "paraphrase", "multi", "unanswerable", "follow-up")
REPORT_VERSION = 1
RANK_DEPTH = 10

RETRIEVAL_METRICS = ("hit@1", "hit@5", "mrr@10", "recall@10")
CITATION_METRICS = ("citation_validity", "phantom_citations", "removed_citations")
FAITHFULNESS_METRICS = ("citation_recall", "citation_precision", "grounded")
CORRECTNESS_METRICS = ("key_fact_recall", "token_f1")
REFUSAL_METRICS = ("refusal_accuracy", "false_refusal_rate", "answer_precision", "answer_accuracy")
METRICS = (
    *RETRIEVAL_METRICS,
    *CITATION_METRICS,
    *FAITHFULNESS_METRICS,
    *CORRECTNESS_METRICS,
    *REFUSAL_METRICS,
    "judge_failures",
)
LOWER_IS_BETTER = frozenset(
    {"phantom_citations", "removed_citations", "false_refusal_rate", "judge_failures"}
)

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


@dataclass(frozen=True)
class QAItem:
    """One question of a Q&A file; ``line`` is its line number in the file."""

    id: str
    question: str
    reference_answer: str
    gold_titles: tuple[str, ...]
    key_facts: tuple[str, ...]
    kind: str
    source_files: tuple[str, ...]
    follows: str | None
    line: int

    @property
    def answerable(self) -> bool:
        return bool(self.gold_titles)


# --- the Q&A file ----------------------------------------------------------------------------


def _strings(value: object, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(f"{where}: {name!r} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _text(record: dict, name: str, where: str, *, empty_ok: bool = False) -> str:
    value = record.get(name)
    if not isinstance(value, str) or (not empty_ok and not value.strip()):
        raise InputError(f"{where}: {name!r} must be a non-empty string")
    return value.strip()


def parse_item(record: object, where: str, line: int) -> QAItem:
    """One Q&A record checked field by field; ``where`` names it in errors."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, found {type(record).__name__}")
    missing = [
        name
        for name in ("id", "question", "reference_answer", "gold_titles", "key_facts", "kind")
        if name not in record
    ]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    kind = record["kind"]
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    gold = _strings(record["gold_titles"], where, "gold_titles")
    if kind == "unanswerable" and gold:
        raise InputError(f"{where}: an unanswerable question must have gold_titles []")
    if kind in ("single", "paraphrase") and not gold:
        raise InputError(f"{where}: a {kind} question needs at least one gold title")
    if kind == "multi" and len(gold) < 2:
        raise InputError(f"{where}: a multi question needs at least two gold titles")
    follows = record.get("follows")
    if kind == "follow-up" and not (isinstance(follows, str) and follows.strip()):
        raise InputError(f"{where}: a follow-up needs 'follows': the id of the previous turn")
    if kind != "follow-up" and follows is not None:
        raise InputError(f"{where}: only a follow-up may have 'follows' (kind is {kind!r})")
    return QAItem(
        id=_text(record, "id", where),
        question=_text(record, "question", where),
        reference_answer=_text(record, "reference_answer", where, empty_ok=True),
        gold_titles=gold,
        key_facts=_strings(record["key_facts"], where, "key_facts"),
        kind=kind,
        source_files=_strings(record.get("source_files", []), where, "source_files"),
        follows=follows.strip() if isinstance(follows, str) else None,
        line=line,
    )


def load_qa(path: str | Path) -> list[QAItem]:
    """The items of a Q&A file (JSON lines), checked: every error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"the Q&A file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        item = parse_item(record, where, number)
        if item.id in seen:
            raise InputError(f"{where}: id {item.id!r} is already used on line {seen[item.id]}")
        if item.follows is not None and item.follows not in seen:
            raise InputError(
                f"{where}: 'follows' is {item.follows!r}, which is not the id of an earlier line"
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise InputError(f"{path} holds no questions")
    return items


def check_gold_titles(items: Sequence[QAItem], titles: Iterable[str], name: str = "") -> None:
    """Every gold title must be a title of the index (compared by :func:`title_key`)."""
    known = {title_key(t): t for t in titles}
    for item in items:
        for gold in item.gold_titles:
            if title_key(gold) not in known:
                close = difflib.get_close_matches(gold, list(known.values()), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InputError(
                    f"{name or 'Q&A file'} line {item.line}: gold title {gold!r} is not in the "
                    f"index{hint}"
                )


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
        from .judges import LLMJudge
        from .llm import ChatModel

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


Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, label: str) -> None:
    return None


def run_eval(
    assistant: Assistant,
    items: Sequence[QAItem],
    *,
    judge: SupportJudge | None = None,
    qa_path: str | Path | None = None,
    progress: Progress = _no_progress,
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
    progress(0, len(items), "")
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
        progress(done, len(items), item.id)
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


# --- the report files ------------------------------------------------------------------------


def default_out_dir(base: str | Path = "eval/runs") -> Path:
    return Path(base) / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_report(report: dict, out_dir: str | Path) -> list[Path]:
    """``report.json``, ``report.md`` and ``report.png`` in ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.png"]
    paths[0].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    paths[1].write_text(render_markdown(report), "utf-8")
    render_chart(report, paths[2])
    return paths


def load_report(path: str | Path) -> dict:
    """A report written by :func:`write_report`: its ``report.json`` or the run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise InputError(f"no report at {path}")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a JSON report ({exc})") from None
    if not isinstance(report, dict) or "totals" not in report:
        raise InputError(f"{path} is not an evaluation report (no 'totals')")
    return report


def fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [fmt(c).replace("|", "\\|").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict) -> str:
    """The report as Markdown: configuration, totals, totals by kind, one row per question."""
    cfg = report["config"]
    totals = report["totals"]
    kinds = list(report["by_kind"])
    lines = [
        "# Evaluation report",
        "",
        f"- created: {report['created']}",
        f"- Q&A file: {report.get('qa_file')} ({report['totals']['counts']['questions']} "
        "questions)",
        f"- mode: {cfg['mode']}" + (f" ({cfg['model']})" if cfg.get("model") else ""),
        f"- judge: {cfg['judge']}; failed verdicts: {totals['metrics']['judge_failures']}",
        f"- retrieval: k={cfg['k']}, fusion {cfg['fusion']}, embedding {cfg['embedding']}",
        f"- time: {report['seconds']} s",
        "",
        "## Totals",
        "",
        *_table(
            ["metric", "all", *kinds],
            (
                [
                    m,
                    report["totals"]["metrics"][m],
                    *(report["by_kind"][k]["metrics"][m] for k in kinds),
                ]
                for m in METRICS
            ),
        ),
        "",
        *_table(
            ["count", "all", *kinds],
            (
                [c, n, *(report["by_kind"][k]["counts"][c] for k in kinds)]
                for c, n in report["totals"]["counts"].items()
            ),
        ),
        "",
        "## Questions",
        "",
        *_table(
            [
                "id",
                "kind",
                "hit@5",
                "mrr@10",
                "cit. recall",
                "cit. precision",
                "grounded",
                "key facts",
                "F1",
                "refused",
                "correct",
            ],
            (
                [
                    r["id"],
                    r["kind"],
                    r["hit@5"],
                    r["mrr@10"],
                    r["citation_recall"],
                    r["citation_precision"],
                    r["grounded"],
                    r["key_fact_recall"],
                    r["token_f1"],
                    r["refused"],
                    r["correct"],
                ]
                for r in report["questions"]
            ),
        ),
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in report.get("notes", [])),
        "",
    ]
    return "\n".join(lines)


CHART_METRICS = (
    "hit@5",
    "mrr@10",
    "recall@10",
    "citation_validity",
    "citation_recall",
    "citation_precision",
    "grounded",
    "key_fact_recall",
    "token_f1",
    "answer_precision",
    "answer_accuracy",
)


def render_chart(report: dict, path: Path) -> None:
    """Grouped bars: the main 0-1 metrics, all questions and each kind (Agg canvas; no
    pyplot, so no global backend is touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = {"all": report["totals"]["metrics"]}
    groups.update({k: v["metrics"] for k, v in report["by_kind"].items()})
    fig = Figure(figsize=(13, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(groups)
    for g, (name, metrics) in enumerate(groups.items()):
        xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(CHART_METRICS))]
        values = [metrics.get(m) for m in CHART_METRICS]
        measured = [isinstance(v, (int, float)) and not math.isnan(v) for v in values]
        heights = [v if ok else 0.0 for v, ok in zip(values, measured, strict=True)]
        ax.bar(xs, heights, width, label=name)
        for x, ok in zip(xs, measured, strict=True):
            if not ok:
                ax.text(x, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(CHART_METRICS)))
    ax.set_xticklabels(CHART_METRICS, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    cfg = report["config"]
    ax.set_title(f"rag-assistant eval · {cfg['mode']} · judge {cfg['judge']} (n/a: not measured)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


# --- comparing and gating ------------------------------------------------------------------


@dataclass
class Delta:
    scope: str  # "all" or a kind
    metric: str
    old: float | int | None
    new: float | int | None

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def better(self) -> bool | None:
        d = self.delta
        if d is None or abs(d) < 1e-9:
            return None
        return (d < 0) if self.metric in LOWER_IS_BETTER else (d > 0)


def compare_reports(new: dict, old: dict) -> list[Delta]:
    """Every metric of ``new`` against ``old``, for all questions then for each kind either
    report has."""
    out = [
        Delta("all", m, old["totals"]["metrics"].get(m), new["totals"]["metrics"].get(m))
        for m in METRICS
    ]
    kinds = [k for k in KINDS if k in new.get("by_kind", {}) or k in old.get("by_kind", {})]
    for kind in kinds:
        a = old.get("by_kind", {}).get(kind, {}).get("metrics", {})
        b = new.get("by_kind", {}).get(kind, {}).get("metrics", {})
        out += [Delta(kind, m, a.get(m), b.get(m)) for m in METRICS]
    return out


def render_deltas(deltas: Sequence[Delta], *, changed_only: bool = False) -> str:
    lines = [f"{'scope':<13} {'metric':<20} {'before':>8} {'after':>8} {'delta':>8}"]
    for d in deltas:
        if changed_only and d.scope != "all" and d.better is None:
            continue
        sign = {True: "  better", False: "  worse", None: ""}[d.better]
        change = "–" if d.delta is None else f"{d.delta:+.3f}"
        lines.append(
            f"{d.scope:<13} {d.metric:<20} {fmt(d.old):>8} {fmt(d.new):>8} {change:>8}{sign}"
        )
    return "\n".join(lines)


def load_thresholds(path: str | Path) -> dict[str, dict[str, float]]:
    """``{"min": {metric: value}, "max": {metric: value}}`` from a JSON file (other keys,
    such as a comment or the baseline it was set from, are ignored)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no thresholds file at {path}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    out: dict[str, dict[str, float]] = {}
    for bound in ("min", "max"):
        values = data.get(bound, {}) if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise InputError(f"{path}: {bound!r} must be an object of metric: number")
        for metric, value in values.items():
            if metric not in METRICS:
                raise InputError(f"{path}: unknown metric {metric!r} in {bound!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{path}: {bound}.{metric} must be a number")
        out[bound] = dict(values)
    if not out["min"] and not out["max"]:
        raise InputError(f"{path} sets no thresholds (expected 'min' and/or 'max')")
    return out


def baseline_thresholds(report: dict) -> dict:
    """Thresholds at the scores of ``report``, a measured baseline: the minimum of each
    higher-is-better metric is its score rounded down to 3 decimals, the maximum of each
    lower-is-better one its score rounded up."""
    mins: dict[str, float] = {}
    maxs: dict[str, float] = {}
    for metric, value in report["totals"]["metrics"].items():
        if value is None:
            continue
        scaled = round(value * 1000, 6)
        if metric in LOWER_IS_BETTER:
            maxs[metric] = value if isinstance(value, int) else math.ceil(scaled) / 1000
        else:
            mins[metric] = math.floor(scaled) / 1000
    cfg = report["config"]
    return {
        "comment": f"set from the baseline measured {report['created']} on "
        f"{report.get('qa_file')} ({cfg['mode']}, judge {cfg['judge']}); raise them when the "
        "assistant improves, never lower them to make the gate pass",
        "qa_sha256": report.get("qa_sha256"),
        "min": mins,
        "max": maxs,
    }


def save_thresholds(report: dict, path: str | Path) -> Path:
    """Write :func:`baseline_thresholds` to ``path``, which must not exist yet."""
    path = Path(path)
    if path.exists():
        raise InputError(
            f"{path} exists; thresholds are raised by editing it, never rewritten from a run"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_thresholds(report), indent=2) + "\n", "utf-8")
    return path


def check_thresholds(report: dict, thresholds: dict[str, dict[str, float]]) -> list[str]:
    """One line per metric of the totals that falls below its minimum or above its maximum
    (or was not measured); empty when the report passes."""
    metrics = report["totals"]["metrics"]
    failures = []
    for bound in ("min", "max"):
        for metric, limit in thresholds.get(bound, {}).items():
            value = metrics.get(metric)
            if value is None:
                failures.append(f"{metric}: not measured (threshold {bound} {limit})")
            elif bound == "min" and round(value, 9) < limit:
                failures.append(f"{metric}: {value:.3f} is below the minimum {limit}")
            elif bound == "max" and round(value, 9) > limit:
                failures.append(f"{metric}: {fmt(value)} is above the maximum {limit}")
    return failures
