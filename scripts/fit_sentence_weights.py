"""Fit the offline answerer's sentence weights on a Q&A file (eval/dev.jsonl), by logistic
regression: which features make a candidate sentence hold a key fact of its question.

    .venv/bin/python scripts/fit_sentence_weights.py [--qa eval/dev.jsonl] [--home DIR]

For each answerable question (not a follow-up) the policy answers, every candidate sentence
of its relevant papers (:meth:`ExtractiveAnswerer.candidates`) is an example, labelled 1 when
it holds one of the question's key facts (as the key-fact metric finds them); questions none
of whose candidates holds one are left out. Each question weighs the same in the fit (its
examples share a weight of 1), with an L2 penalty (``--l2``). It prints the weights as a
Python dict and, per question, the key facts the five best-scored sentences hold under the
hand weights and the fitted ones. A held-out file is refused: it is reported, never fitted.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from rag_assistant import Assistant
from rag_assistant.answer.extractive import HAND_WEIGHTS, ExtractiveAnswerer
from rag_assistant.evaluation.dataset import load_qa
from rag_assistant.evaluation.metrics import normalize_fact


def holds(sentence: str, fact: str) -> bool:
    return f" {normalize_fact(fact)} " in f" {normalize_fact(sentence)} "


def examples(assistant: Assistant, qa_file: str):
    """(features, labels, facts held) per question."""
    answerer = assistant.answerer()
    if not isinstance(answerer, ExtractiveAnswerer):
        sys.exit("the offline answerer is needed: run with RAG_ASSISTANT_ANSWER__LLM=offline")
    for item in load_qa(qa_file):
        if item.follows or not item.answerable or not item.key_facts:
            continue
        sources = assistant.retrieve(item.question)
        decision = answerer.policy.decide(item.question, sources)
        if not decision.answerable:
            continue
        picked = answerer.candidates(item.question, sources, decision, every_feature=True)
        held = [{f for f in item.key_facts if holds(p.text, f)} for p in picked]
        if not any(held):
            continue
        yield item, picked, held


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    """Weighted L2 logistic regression by Newton's method; the last column of ``x`` is the
    bias (not penalized)."""
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (w * (p - y)) + penalty * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qa", default="eval/dev.jsonl", help="the Q&A file to fit on")
    parser.add_argument("--home", default=None, help="the index folder (default: settings)")
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty (default 1)")
    args = parser.parse_args()
    if "holdout" in args.qa:
        sys.exit(f"{args.qa} is a held-out set: it is reported, never fitted on")
    options = {"answer": {"llm": "offline"}}
    if args.home:
        options["home"] = args.home
    assistant = Assistant(**options)
    rows = list(examples(assistant, args.qa))
    if not rows:
        sys.exit(f"no answered question of {args.qa} quotes a key fact it lists: nothing to fit")
    names = list(rows[0][1][0].features)
    x, y, w = [], [], []
    for _, picked, held in rows:
        for p, h in zip(picked, held, strict=True):
            x.append([p.features[n] for n in names] + [1.0])
            y.append(float(bool(h)))
            w.append(1.0 / len(picked))
    beta = fit(np.array(x), np.array(y), np.array(w), args.l2)
    fitted = dict(zip([*names, "bias"], (round(float(b), 3) for b in beta), strict=True))
    print(f"{len(rows)} questions, {len(x)} sentences, {int(sum(y))} holding a key fact")
    print("fitted weights:", fitted)

    def top_facts(weights: dict[str, float]) -> float:
        share = []
        for item, picked, held in rows:
            scored = sorted(
                range(len(picked)),
                key=lambda i: -sum(weights.get(n, 0.0) * picked[i].features[n] for n in names),
            )
            got = set().union(*(held[i] for i in scored[:5]))
            share.append(len(got) / len(item.key_facts))
        return float(np.mean(share))

    print(
        f"key facts in the 5 best-scored sentences: hand {top_facts(HAND_WEIGHTS):.3f}, "
        f"fitted {top_facts(fitted):.3f}"
    )


if __name__ == "__main__":
    main()
