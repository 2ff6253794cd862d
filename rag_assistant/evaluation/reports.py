"""The report files of an evaluation run (``report.json``, ``report.md``, ``report.png``),
and the comparison of two runs."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .dataset import KINDS
from .metrics import LOWER_IS_BETTER, METRICS


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


def _metric_table(report: dict, groups: str, label: str) -> list[str]:
    """Metrics (rows) by ``report[groups]`` (columns), with the totals first, then the
    counts the same way."""
    names = list(report.get(groups) or {})
    columns = [report["totals"], *(report[groups][n] for n in names)]
    metrics = _table(
        ["metric", "all", *names], ([m, *(c["metrics"].get(m) for c in columns)] for m in METRICS)
    )
    counts = _table(
        [label, "all", *names],
        ([name, *(c["counts"].get(name) for c in columns)] for name in report["totals"]["counts"]),
    )
    return [*metrics, "", *counts]


def _index_line(index: dict | None) -> str:
    if not index:
        return "- index: not recorded"
    where = (
        "a fresh index of the bundled corpus"
        if index["kind"] == "fresh"
        else f"the current index ({index.get('home')})"
    )
    return (
        f"- index: {where}: {index['papers']} papers, {index['chunks']} chunks, "
        f"{index['embedding']}, chunks {index['chunking']}; catalog sha256 "
        f"{index['catalog_sha256'][:12]}…"
    )


QUESTION_COLUMNS = (
    ("hit@1", "hit@1"),
    ("hit@5", "hit@5"),
    ("mrr@10", "mrr@10"),
    ("citation_recall", "cit. recall"),
    ("citation_precision", "cit. precision"),
    ("grounded", "grounded"),
    ("key_fact_recall", "key facts"),
    ("gold_cited", "gold cited"),
    ("token_f1", "F1"),
    ("refused", "refused"),
    ("correct", "correct"),
)


def _question_cells(row: dict, with_category: bool) -> list[object]:
    head = [row["id"], row["question"], row["kind"]]
    if with_category:
        head.append(row.get("category"))
    if row.get("failed"):
        error = row["error"]
        return [*head, *([None] * len(QUESTION_COLUMNS)), f"{error['type']}: {error['message']}"]
    return [*head, *(row.get(key) for key, _ in QUESTION_COLUMNS), ""]


def render_markdown(report: dict) -> str:
    """The report as Markdown: whether it is partial, configuration and index, totals by
    kind and by category, one row per question (with its text, and its error if it
    failed)."""
    cfg = report["config"]
    totals = report["totals"]
    counts = totals["counts"]
    partial = report.get("partial") or []
    with_category = bool(report.get("by_category"))
    lines = ["# Evaluation report", ""]
    if partial:
        lines += ["**Partial report.** " + "; ".join(partial) + ".", ""]
    lines += [
        f"- created: {report['created']}",
        f"- Q&A file: {report.get('qa_file')} ({counts['questions']} questions asked, "
        f"{counts.get('failed', 0)} failed)",
        f"- mode: {cfg['mode']}" + (f" ({cfg['model']})" if cfg.get("model") else ""),
        f"- judge: {cfg['judge']}; failed verdicts: {totals['metrics']['judge_failures']}",
        f"- retrieval: k={cfg['k']}, fusion {cfg['fusion']}"
        + (f", the first {cfg['rerank']} reranked by late interaction" if cfg.get("rerank") else "")
        + f", embedding {cfg['embedding']}",
        _index_line(report.get("index")),
        f"- time: {report['seconds']} s",
        "",
        "## Totals by kind",
        "",
        *_metric_table(report, "by_kind", "count"),
        "",
    ]
    if with_category:
        lines += ["## Totals by category", "", *_metric_table(report, "by_category", "count"), ""]
    header = ["id", "question", "kind", *(["category"] if with_category else [])]
    lines += [
        "## Questions",
        "",
        *_table(
            [*header, *(label for _, label in QUESTION_COLUMNS), "error"],
            (_question_cells(r, with_category) for r in report["questions"]),
        ),
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in report.get("notes", [])),
        "",
    ]
    return "\n".join(lines)


CHART_METRICS = (
    "hit@1",
    "hit@5",
    "mrr@10",
    "recall@10",
    "citation_validity",
    "citation_recall",
    "citation_precision",
    "grounded",
    "key_fact_recall",
    "token_f1",
    "gold_cited",
    "refusal_accuracy",
    "false_refusal_rate",
    "answer_precision",
    "answer_accuracy",
)

ZERO_MARK = 0.012
"""The height of the mark a measured 0.0 gets in the chart (a bar of height 0 is invisible,
and would look like a metric that was not measured)."""


@dataclass
class Bar:
    """One bar of the chart: a measured value (``zero``: it is 0.0, drawn as a thin mark
    labelled 0) or, with ``value`` None, a metric that does not apply (labelled n/a)."""

    group: str
    metric: str
    value: float | None

    @property
    def zero(self) -> bool:
        return self.value is not None and abs(self.value) < 1e-12


def chart_bars(report: dict) -> list[Bar]:
    """The bars of :func:`render_chart`: each of :data:`CHART_METRICS` for all questions and
    for each kind."""
    groups = {"all": report["totals"]["metrics"]}
    groups.update({k: v["metrics"] for k, v in report["by_kind"].items()})
    bars = []
    for name, metrics in groups.items():
        for metric in CHART_METRICS:
            value = metrics.get(metric)
            measured = isinstance(value, (int, float)) and not math.isnan(value)
            bars.append(Bar(name, metric, float(value) if measured else None))
    return bars


def chart_figure(report: dict):
    """The chart as a matplotlib ``Figure`` (Agg canvas; no pyplot, so no global backend is
    touched): grouped bars of the 0-1 metrics, all questions and each kind. A measured 0.0
    is a thin dark mark labelled "0"; a metric that does not apply to a group (no
    unanswerable questions for refusal accuracy, say) has no bar and is labelled "n/a"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    bars = chart_bars(report)
    groups = list(dict.fromkeys(b.group for b in bars))
    fig = Figure(figsize=(15, 5.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(groups)
    legend = []
    for g, name in enumerate(groups):
        color = f"C{g}"
        legend.append(Patch(color=color, label=name))
        mine = [b for b in bars if b.group == name]
        xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(mine))]
        measured = [(x, b) for x, b in zip(xs, mine, strict=True) if b.value is not None]
        drawn = ax.bar(
            [x for x, _ in measured],
            [ZERO_MARK if b.zero else b.value for _, b in measured],
            width,
            color=color,
        )
        for (x, bar), patch in zip(measured, drawn.patches, strict=True):
            if bar.zero:
                patch.set(edgecolor="black", linewidth=1.0)
                ax.text(x, ZERO_MARK + 0.005, "0", ha="center", va="bottom", fontsize=7)
                ax.texts[-1].set(fontweight="bold", gid=f"zero {name} {bar.metric}")
        for x, bar in zip(xs, mine, strict=True):
            if bar.value is None:
                ax.text(x, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
                ax.texts[-1].set(color="0.45", gid=f"n/a {name} {bar.metric}")
    ax.set_xticks(range(len(CHART_METRICS)))
    ax.set_xticklabels(
        [f"{m} (lower is better)" if m in LOWER_IS_BETTER else m for m in CHART_METRICS],
        rotation=30,
        ha="right",
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    cfg = report["config"]
    title = f"rag-assistant eval · {cfg['mode']} · judge {cfg['judge']}"
    if report.get("partial"):
        title += " · PARTIAL"
    ax.set_title(title + '\n"0": measured 0.0 · "n/a": does not apply to that group')
    ax.legend(handles=legend, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def render_chart(report: dict, path: Path) -> None:
    """``report.png``: :func:`chart_figure`."""
    chart_figure(report).savefig(path, format="png")


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
    """Every metric of ``new`` against ``old``, for all questions, then for each kind and
    each category (scope ``category:<name>``) either report has."""
    out = [
        Delta("all", m, old["totals"]["metrics"].get(m), new["totals"]["metrics"].get(m))
        for m in METRICS
    ]
    kinds = [k for k in KINDS if k in new.get("by_kind", {}) or k in old.get("by_kind", {})]
    categories = list(
        dict.fromkeys([*(new.get("by_category") or {}), *(old.get("by_category") or {})])
    )
    scopes = [("by_kind", k, k) for k in kinds]
    scopes += [("by_category", c, f"category:{c}") for c in categories]
    for groups, name, scope in scopes:
        a = (old.get(groups) or {}).get(name, {}).get("metrics", {})
        b = (new.get(groups) or {}).get(name, {}).get("metrics", {})
        out += [Delta(scope, m, a.get(m), b.get(m)) for m in METRICS]
    return out


def render_deltas(deltas: Sequence[Delta], *, changed_only: bool = False) -> str:
    width = max([13, *(len(d.scope) for d in deltas)])
    lines = [f"{'scope':<{width}} {'metric':<20} {'before':>8} {'after':>8} {'delta':>8}"]
    for d in deltas:
        if changed_only and d.scope != "all" and d.better is None:
            continue
        sign = {True: "  better", False: "  worse", None: ""}[d.better]
        change = "–" if d.delta is None else f"{d.delta:+.3f}"
        lines.append(
            f"{d.scope:<{width}} {d.metric:<20} {fmt(d.old):>8} {fmt(d.new):>8} {change:>8}{sign}"
        )
    return "\n".join(lines)
