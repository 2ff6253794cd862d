"""Which answering-prompt layout a small local model follows best, and what it costs.

Each layout is a prompts folder (``prompts`` is the shipped one; ``bench/prompt_layouts/<name>``
others). The same questions of a Q&A file (a follow-up with its earlier turn) are asked
through an OpenAI-compatible server (``OPENAI_BASE_URL``) with every layout, the layouts
taking turns question by question so that machine load falls on them alike (list layouts
that share their sources block apart from each other: llama.cpp reuses the prompt prefix of
the request before, which would make the second one faster). Per layout it
prints, over the answers the model wrote (not refused before the model was called):

- cited: the model's sentences (claims) that carry an ``[n]`` citation, and their share;
- supported: the model's claims its cited abstracts support (lexical judge), and their share
  (the mean of per-answer shares, as ALCE, and over all claims);
- fell back: answers replaced by the offline answer (``answer.fallback``), by reason;
- seconds per answer (median and mean, wall time of ``Assistant.ask``), with the machine load.

    OPENAI_BASE_URL=http://127.0.0.1:8791/v1 .venv/bin/python bench/llm_prompts.py \
        --home DIR --layouts before prompts --n 20

Writes bench/results/llm_prompts.json (every answer, for reading what the model wrote), and
each answer as it comes to llm_prompts.jsonl beside it: an interrupted run resumes from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from rag_assistant import Assistant
from rag_assistant.answer.prompts import default_dir
from rag_assistant.evaluation.dataset import load_qa
from rag_assistant.settings import build_settings
from rag_assistant.types import Answer, Turn

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def layout_dir(name: str) -> Path:
    return default_dir() if name == "prompts" else HERE / "prompt_layouts" / name


def model_claims(answer: Answer):
    return answer.fallback.model_claims if answer.fallback else answer.claims


def row(item, answer: Answer, seconds: float) -> dict:
    claims = model_claims(answer)
    called = not any("without calling the model" in n for n in answer.notices)
    return {
        "id": item.id,
        "question": item.question,
        "seconds": round(seconds, 2),
        "called": called,
        "refused": answer.refused and answer.fallback is None,
        "fallback": answer.fallback.reason if answer.fallback else None,
        "claims": len(claims),
        "cited": sum(bool(c.citations) for c in claims),
        "supported": sum(c.supported for c in claims),
        "model_text": answer.fallback.text if answer.fallback else answer.text,
        "shown": answer.text,
        "usage": answer.usage.to_dict() if answer.usage else None,
    }


def summary(rows: list[dict]) -> dict:
    written = [r for r in rows if r["called"] and not r["refused"]]
    claims = sum(r["claims"] for r in written)
    shares = [r["supported"] / r["claims"] for r in written if r["claims"]]
    reasons: dict[str, int] = {}
    for r in written:
        if r["fallback"]:
            reasons[r["fallback"]] = reasons.get(r["fallback"], 0) + 1
    times = [r["seconds"] for r in rows if r["called"]]
    return {
        "questions": len(rows),
        "model_called": sum(r["called"] for r in rows),
        "model_refused": sum(r["called"] and r["refused"] for r in rows),
        "answers": len(written),
        "claims": claims,
        "cited_claims": sum(r["cited"] for r in written),
        "cited_share": round(sum(r["cited"] for r in written) / claims, 3) if claims else None,
        "supported_claims": sum(r["supported"] for r in written),
        "supported_share_of_claims": (
            round(sum(r["supported"] for r in written) / claims, 3) if claims else None
        ),
        "supported_share_mean": round(statistics.mean(shares), 3) if shares else None,
        "fell_back": sum(reasons.values()),
        "fallback_reasons": reasons,
        "seconds_median": round(statistics.median(times), 1) if times else None,
        "seconds_mean": round(statistics.mean(times), 1) if times else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="an index of the bundled corpus")
    parser.add_argument("--qa", default="eval/dev.jsonl")
    parser.add_argument("--n", type=int, default=20, help="the first N questions")
    parser.add_argument("--layouts", nargs="+", default=["before", "prompts"])
    parser.add_argument("--out", default=str(RESULTS / "llm_prompts.json"))
    args = parser.parse_args()
    if not os.environ.get("OPENAI_BASE_URL"):
        parser.error("set OPENAI_BASE_URL to the server to measure")

    items = load_qa(args.qa)[: args.n]
    log = Path(args.out).with_suffix(".jsonl")  # one line per answer, so a run can resume
    log.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in log.open()] if log.exists() else []
    assistants = {
        name: Assistant(build_settings(home=args.home, prompts_dir=str(layout_dir(name))))
        for name in args.layouts
    }
    rows: dict[str, list[dict]] = {name: [] for name in args.layouts}
    for r in done:
        if r["layout"] in rows:
            rows[r["layout"]].append(r)
    turns: dict[str, dict[str, list[Turn]]] = {name: {} for name in args.layouts}
    loads = [r["load"] for r in done]
    started = time.time()
    for i, item in enumerate(items):
        order = args.layouts if i % 2 == 0 else list(reversed(args.layouts))
        for name in order:
            if any(r["id"] == item.id for r in rows[name]):
                continue  # answered by an earlier, interrupted run
            if item.follows and item.follows not in turns[name]:  # resumed: ask it again
                parent = next(p for p in items if p.id == item.follows)
                first = assistants[name].ask(parent.question)
                turns[name][parent.id] = [Turn(parent.question, parent.question, first)]
            history = turns[name].get(item.follows, []) if item.follows else []
            loads.append(os.getloadavg()[0])
            t0 = time.perf_counter()
            answer = assistants[name].chat(history, item.question)
            seconds = time.perf_counter() - t0
            turns[name][item.id] = [
                *history,
                Turn(item.question, answer.standalone_question or item.question, answer),
            ]
            rows[name].append({"layout": name, "load": loads[-1], **row(item, answer, seconds)})
            r = rows[name][-1]
            with log.open("a") as fh:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            print(
                f"{item.id} {name:>8}: {r['seconds']:6.1f} s, claims {r['claims']}, cited "
                f"{r['cited']}, supported {r['supported']}, fallback {r['fallback']}",
                flush=True,
            )
    summaries = {name: summary(rows[name]) for name in args.layouts}
    result = {
        "qa": args.qa,
        "n": len(items),
        "base_url": os.environ["OPENAI_BASE_URL"],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_during": {
            "min": round(min(loads), 2),
            "median": round(statistics.median(loads), 2),
            "max": round(max(loads), 2),
        },
        "wall_seconds": round(time.time() - started, 1),
        "summaries": summaries,
        "answers": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k != "answers"}, indent=2))


if __name__ == "__main__":
    main()
