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
