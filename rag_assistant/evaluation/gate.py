"""The gate: thresholds on an evaluation's totals, set from a measured baseline, raised by
hand when the assistant improves and never lowered; the Q&A file they were set on is pinned
by its SHA-256, so editing the file cannot silently move the gate."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import InputError
from .metrics import LOWER_IS_BETTER, METRICS
from .reports import fmt


def thresholds_for(qa_path: str | Path) -> Path | None:
    """The thresholds file of a Q&A file: ``<name>.thresholds.json`` beside it, when it
    exists (``eval/qa.jsonl`` → ``eval/qa.thresholds.json``)."""
    path = Path(qa_path)
    candidate = path.with_name(path.name.removesuffix(".jsonl") + ".thresholds.json")
    return candidate if candidate.is_file() else None


def load_thresholds(path: str | Path) -> dict:
    """``{"min": {metric: value}, "max": {metric: value}, "qa_sha256": ...}`` from a JSON
    file; ``qa_sha256`` (the digest of the Q&A file they were measured on) may be absent;
    other keys, such as a comment, are ignored."""
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
    digest = data.get("qa_sha256")
    if digest is not None and not isinstance(digest, str):
        raise InputError(f"{path}: 'qa_sha256' must be a string")
    return {**out, "qa_sha256": digest}


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
    """Write :func:`baseline_thresholds` to ``path``, which must not exist yet; a partial
    report (a subset, failed questions, an interrupted run) sets no baseline."""
    path = Path(path)
    if report.get("partial"):
        raise InputError(
            "a partial report cannot set thresholds (" + "; ".join(report["partial"]) + "): "
            "measure a baseline on every question of the file"
        )
    if path.exists():
        raise InputError(
            f"{path} exists; thresholds are raised by editing it, never rewritten from a run"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_thresholds(report), indent=2) + "\n", "utf-8")
    return path


def check_thresholds(report: dict, thresholds: dict) -> list[str]:
    """One line per metric of the totals that falls below its minimum or above its maximum
    (or was not measured), one when the report's Q&A file is not the one the thresholds
    were measured on, and one per reason the report is partial (failed questions, a subset,
    an interrupted run): its totals are not those the thresholds were set on. Empty when the
    report passes."""
    metrics = report["totals"]["metrics"]
    failures = [f"the report is partial: {reason}" for reason in report.get("partial") or []]
    pinned = thresholds.get("qa_sha256")
    if pinned and report.get("qa_sha256") != pinned:
        failures.append(
            f"{report.get('qa_file')} is not the Q&A file these thresholds were measured on "
            f"(sha256 {str(report.get('qa_sha256'))[:12]}…, thresholds set on {pinned[:12]}…): "
            "measure a new baseline on it and set the thresholds from it"
        )
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
