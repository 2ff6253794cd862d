"""Support judges: does the cited evidence support this claim?

:class:`LexicalJudge` (the default, deterministic) counts the claim's content words and
numbers in the evidence. :class:`LLMJudge` asks a chat model: temperature 0, JSON output,
prompts from ``prompts/judge_*.txt``; verdicts cached on disk by model, prompt hash, claim
and evidence, so a repeated evaluation costs nothing and gives the same result. A reply that
is not the expected JSON is a *failed* verdict, counted in ``parse_failures`` and reported by
the evaluation, never a silent 0 or NaN; so is a verdict its own reason contradicts
(``{"supported": true, "reason": "This claim is false"}``), counted in ``inconsistent``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ..text.terms import numbers, terms
from ..types import Verdict
from . import prompts

log = logging.getLogger(__name__)

MAX_EVIDENCE_CHARS = 12_000


class SupportJudge(Protocol):
    """Decides whether ``evidence`` (the cited abstracts) supports ``claim``."""

    def judge(self, claim: str, evidence: Sequence[str]) -> Verdict: ...


class LexicalJudge:
    """Deterministic support: the share of the claim's content terms found in the evidence
    (``score``), and every number the claim states must appear in the evidence."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def judge(self, claim: str, evidence: Sequence[str]) -> Verdict:
        claim_terms = set(terms(claim))
        if not evidence:
            return Verdict(False, 0.0, "no citation")
        if not claim_terms:
            return Verdict(False, 0.0, "it states nothing to check (no content words)")
        evidence_text = " ".join(evidence)
        found = claim_terms & set(terms(evidence_text))
        score = len(found) / len(claim_terms)
        missing_numbers = numbers(claim) - numbers(evidence_text)
        if missing_numbers:
            shown = ", ".join(sorted(missing_numbers))
            return Verdict(False, score, f"number(s) not in the cited abstracts: {shown}")
        if score < self.threshold:
            return Verdict(
                False, score, f"only {score:.0%} of its content words are in the cited abstracts"
            )
        return Verdict(True, score, "")


class LLMJudge:
    """Claim support decided by a chat model (anything with ``complete`` and ``model``)."""

    def __init__(self, model, *, cache_dir: Path | str | None = None, prompts_dir=None) -> None:
        self.model = model
        self.system = prompts.load("judge_system", prompts_dir)
        self.user = prompts.load("judge_user", prompts_dir)
        digest = hashlib.sha256((self.system.text + self.user.text).encode()).hexdigest()
        self.prompt_hash = digest[:16]
        self.calls = 0
        self.cache_hits = 0
        self.parse_failures = 0
        self.inconsistent = 0
        self._lock = threading.Lock()
        self._cache: dict[str, dict] = {}
        self._cache_file: Path | None = None
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            self._cache_file = Path(cache_dir) / "verdicts.jsonl"
            self._read_cache()

    def _read_cache(self) -> None:
        assert self._cache_file is not None
        if not self._cache_file.exists():
            return
        with self._cache_file.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    self._cache[row["key"]] = row["verdict"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from an interrupted run

    def _key(self, claim: str, evidence: str) -> str:
        text = "\x1f".join([getattr(self.model, "model", "?"), self.prompt_hash, claim, evidence])
        return hashlib.sha256(text.encode()).hexdigest()

    def judge(self, claim: str, evidence: Sequence[str]) -> Verdict:
        if not evidence:
            return Verdict(False, 0.0, "no citation")
        joined = "\n\n".join(e.strip() for e in evidence)[:MAX_EVIDENCE_CHARS]
        key = self._key(claim, joined)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return Verdict(
                cached["supported"], 1.0 if cached["supported"] else 0.0, cached.get("reason", "")
            )
        messages = [
            {"role": "system", "content": self.system.format()},
            {"role": "user", "content": self.user.format(evidence=joined, claim=claim)},
        ]
        self.calls += 1
        reply = self.model.complete(messages, json_output=True, temperature=0.0, max_tokens=150)
        parsed = parse_verdict(reply.text)
        if parsed is None:
            with self._lock:
                self.parse_failures += 1
            log.warning("the judge's reply was not a JSON verdict (%d so far)", self.parse_failures)
            return Verdict(False, 0.0, "the judge's reply could not be parsed", failed=True)
        supported, reason = parsed
        if not agrees(supported, reason):
            with self._lock:
                self.inconsistent += 1
            log.warning("the judge's verdict contradicts its reason: %r", reason[:120])
            return Verdict(
                False, 0.0, f"the judge's verdict contradicts its reason ({reason})", failed=True
            )
        with self._lock:
            self._cache[key] = {"supported": supported, "reason": reason}
            if self._cache_file is not None:
                with self._cache_file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"key": key, "verdict": self._cache[key]}) + "\n")
        return Verdict(supported, 1.0 if supported else 0.0, reason)


def parse_verdict(text: str) -> tuple[bool, str] | None:
    """``(supported, reason)`` from a reply like ``{"supported": true, "reason": "..."}``
    (tolerating a code fence around it), or None."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body[body.find("{") :] if "{" in body else body
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(body[start : end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("supported"), bool):
        return None
    reason = data.get("reason")
    return data["supported"], reason if isinstance(reason, str) else ""


_DENIES = re.compile(
    r"\b(?:not|no|never|nor|neither|none|cannot|false|incorrect|wrong|unsupported|"
    r"unverified|contradict\w*|absent|missing|lacks?|fails?|nothing)\b|n't\b",
    re.IGNORECASE,
)
_AFFIRMS = re.compile(
    r"\b(?:is|are|fully|directly|clearly|explicitly)\s+(?:supported|stated|confirmed|true|"
    r"correct|mentioned)\b|\bsupports the claim\b",
    re.IGNORECASE,
)


def agrees(supported: bool, reason: str) -> bool:
    """Whether a verdict and its reason say the same thing: a "supported" verdict whose
    reason denies something ("This claim is false", "not stated") does not, nor does an
    "unsupported" one whose reason only affirms ("The claim is stated in the evidence").
    An empty reason contradicts nothing."""
    denies = bool(_DENIES.search(reason))
    if supported:
        return not denies
    return denies or not _AFFIRMS.search(reason)
