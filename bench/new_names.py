"""Are papers added after the dense model's fit as findable by their own names as the papers it
was fitted on? (issue 13, item 3)

Fits the index on the bundled corpus (530 papers), then ingests synthetic papers from
``bench/synth.py`` — each with a method name of its own, words the fitted LSA model has never
seen — fewer than the fitted papers, so no refit happens and they are embedded with the old
model. Each named paper is then asked for by name, three ways ("Name", "What is Name?", "How
does Name work?"), and the rank of its paper is read. The same is done, as the control, for
the bundled papers whose title starts with a name ("HyperAttention: ...").

    .venv/bin/python bench/new_names.py            # 200 new papers
    .venv/bin/python bench/new_names.py --n 400    # more than the fitted 530 would refit

Prints a table: per group and form, the papers asked for, hit@1, hit@5 and the ranks missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import Generator, _bundled, _name_of

from rag_assistant import Assistant

FORMS = ("{name}", "What is {name}?", "How does {name} work?")


def rank_of(assistant: Assistant, question: str, paper_id: str) -> int | None:
    """The rank (from 1) of the paper ``paper_id`` among the top 10, else None."""
    for source in assistant.retrieve(question, k=10):
        if source.paper_id == paper_id:
            return source.rank
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="synthetic papers added after the fit")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        assistant = Assistant(home=Path(root) / "home")
        assistant.ingest_bundled()  # the dense model is fitted on these 530 papers
        records = list(Generator(seed=args.seed).records(args.n))
        path = Path(root) / "later.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        started = time.perf_counter()
        assistant.ingest([path])
        seconds = time.perf_counter() - started
        status = assistant.status()
        later = [
            (name, f"arxiv:{r['id']}")
            for r in records
            if (name := _name_of(" ".join(r["title"].split())))
        ]
        fitted = [(name, p.paper_id) for p in _bundled() if (name := _name_of(p.title))]

        print(
            f"index: {status.papers} papers; {args.n} added after the fit in {seconds:.1f} s "
            f"(no refit: the model was fitted on the bundled 530)"
        )
        print()
        print("| papers asked for by name | form | n | hit@1 | hit@5 | missed (rank or >10) |")
        print("|---|---|---:|---:|---:|---|")
        for group, items in (("fitted on (bundled)", fitted), ("added after the fit", later)):
            for form in FORMS:
                ranks = [rank_of(assistant, form.format(name=n), t) for n, t in items]
                hit1 = sum(r == 1 for r in ranks) / len(ranks)
                hit5 = sum(r is not None and r <= 5 for r in ranks) / len(ranks)
                missed = [
                    f"{n} ({r or '>10'})" for (n, _), r in zip(items, ranks, strict=True) if r != 1
                ]
                shown = ", ".join(missed[:4]) + (" …" if len(missed) > 4 else "")
                print(
                    f"| {group} | `{form}` | {len(ranks)} | {hit1:.3f} | {hit5:.3f} | "
                    f"{shown or '–'} |"
                )


if __name__ == "__main__":
    main()
