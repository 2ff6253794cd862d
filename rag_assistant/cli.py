"""The ``rag-assistant`` command: a thin layer over :class:`rag_assistant.Assistant`.

Imports are lazy so that ``rag-assistant --help`` stays fast. Errors meant for the user
(:class:`~rag_assistant.errors.RagAssistantError`) become one line on stderr and exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence

EXAMPLE_QUESTION = "What is HyperAttention and how fast is it?"


def _common(*, top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command name. Only the top-level
    parser sets their defaults: a subcommand's default would overwrite the value given
    before the command (``rag-assistant --home DIR ask ...``)."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("index and logging")
    group.add_argument(
        "--home",
        metavar="DIR",
        default=default(None),
        help="index directory (env RAG_ASSISTANT_HOME; default ~/.local/share/rag-assistant)",
    )
    group.add_argument(
        "--chroma-url",
        metavar="URL",
        default=default(None),
        help="use a `chroma run` server instead of the embedded store (env RAG_CHROMA_URL)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log progress (-v) or everything (-vv) to stderr",
    )
    return common


def _positive_k(value: str) -> int:
    """``--k``: a whole number from 1 to the most papers a question may retrieve."""
    from .settings import MAX_K

    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_K}, not {k}")
    return k


def build_parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    parser = argparse.ArgumentParser(
        prog="rag-assistant",
        description="Answer questions about research-paper abstracts with citations checked "
        "by code. Works offline (extractive answers); set OPENAI_API_KEY or OPENAI_BASE_URL "
        "for generated answers.",
        parents=[_common(top=True)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="add papers to the index (incremental)",
        description="Add or update papers from listing pages (.txt), JSON lines (.jsonl, "
        ".json, arXiv snapshot), CSV (.csv/.tsv), optionally .gz, or folders of them. "
        "Re-ingesting unchanged files changes nothing. With no PATH, ingests the bundled "
        "sample corpus.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders")
    p.add_argument(
        "--prune", action="store_true", help="remove papers whose source files no longer hold them"
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="report broken records and go on, instead of stopping at the first",
    )
    p.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="CAT",
        help="arXiv snapshot: keep only papers in this category (e.g. cs.CL, or "
        "cs for all of cs.*); repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser(
        "ask",
        parents=[common],
        help="answer a question with cited papers",
        description="Answer QUESTION from the indexed abstracts. Each claim is followed by "
        "[n]; the numbered sources are listed below the answer. An empty index is filled "
        "with the bundled sample corpus first.",
    )
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("--k", type=_positive_k, metavar="N", help="papers to retrieve (default 5)")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"text", "citations", "refused", "mode", "claims", ...}',
    )
    p.add_argument(
        "--llm",
        choices=["offline", "openai"],
        help="force the offline extractive answerer or the OpenAI-compatible "
        "endpoint (default: the endpoint when a key or base URL is set)",
    )
    p.add_argument("--no-stream", action="store_true", help="print the answer when complete")

    p = sub.add_parser(
        "retrieve",
        parents=[common],
        help="show the papers retrieval finds",
        description="List the papers hybrid retrieval (BM25 + dense, fused) finds for QUERY.",
    )
    p.add_argument("question", metavar="QUERY")
    p.add_argument("--k", type=_positive_k, metavar="N", help="papers to return (default 5)")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser(
        "index",
        parents=[common],
        help="inspect, check, repair or rebuild the index",
        description="status: what the index holds. check: compare catalog, Chroma, lexical "
        "index and manifest (--repair brings them back in line). rebuild: re-chunk and "
        "re-embed everything with the current settings.",
    )
    p.add_argument("action", choices=["status", "check", "rebuild"])
    p.add_argument("--repair", action="store_true", help="with check: fix what it finds")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="score answers against a Q&A file",
        description="Run every question of a Q&A file (JSON lines) through the assistant and "
        "score retrieval (hit@1, hit@5, MRR@10, recall@10), citation validity, faithfulness "
        "(ALCE citation recall and precision), correctness (key-fact recall, token F1) and "
        "refusals. Writes report.json, report.md and report.png into --out. Exit status 1 "
        "when a metric falls below (or above) its threshold.",
    )
    p.add_argument(
        "--qa", default="eval/qa.jsonl", metavar="FILE", help="the Q&A file (default %(default)s)"
    )
    p.add_argument(
        "--judge",
        choices=["lexical", "openai"],
        default="lexical",
        help="who decides whether abstracts support a sentence: 'lexical' (deterministic, "
        "default) or 'openai' (an LLM at temperature 0, cached; needs OPENAI_API_KEY)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="folder for the report (default eval/runs/<timestamp>/)"
    )
    p.add_argument(
        "--compare",
        metavar="REPORT",
        help="an earlier report.json (or its folder): print the change of every metric",
    )
    p.add_argument(
        "--threshold",
        metavar="FILE",
        help="minimum/maximum scores (default: <qa name>.thresholds.json beside the Q&A "
        "file, when it exists); exit 1 and name the metrics that miss them",
    )
    p.add_argument(
        "--save-thresholds",
        metavar="FILE",
        help="write this run's scores as the thresholds of a new FILE (a baseline; an "
        "existing file is never overwritten)",
    )
    p.add_argument(
        "--llm",
        choices=["offline", "openai"],
        help="answer with the offline extractive answerer or the OpenAI-compatible endpoint "
        "(default: the endpoint when a key or base URL is set)",
    )

    p = sub.add_parser(
        "ui",
        parents=[common],
        help="start the chat UI in the browser",
        description="Start the Gradio chat UI: streamed answers with citations, the evidence "
        "behind each claim, settings, and uploads of more papers. An empty index is filled "
        "with the bundled sample corpus first. Binds to 127.0.0.1 unless --host says "
        "otherwise; never opens a public share link.",
    )
    p.add_argument("--host", metavar="HOST", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, metavar="PORT", help="port (default 7860)")
    p.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help="require this login (env RAG_ASSISTANT_UI__AUTH); use it when --host exposes "
        "the UI beyond this machine",
    )
    p.add_argument(
        "--llm",
        choices=["offline", "openai"],
        help="the answer mode selected at start (default: the endpoint when a key or base "
        "URL is set)",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open the UI in a browser tab")

    return parser


def _settings(args: argparse.Namespace):
    from .settings import build_settings

    overrides: dict = {}
    if args.home:
        overrides["home"] = args.home
    if args.chroma_url:
        overrides["chroma_url"] = args.chroma_url
    if getattr(args, "llm", None):
        overrides["answer"] = {"llm": args.llm}
    return build_settings(**overrides)


STAGES = {
    "reading": "reading papers",
    "embedding": "embedding chunks",
    "lexical": "BM25 index",
    "questions": "questions",
}


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int | None], None]]:
    """A progress callback drawing one rich bar per stage on stderr, only on a terminal
    (ingest stages, or the questions of an evaluation)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bars:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(STAGES.get(stage, stage), total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield progress


def _cmd_ingest(args: argparse.Namespace) -> int:
    from .assistant import Assistant
    from .corpus import bundled_corpus_dir

    assistant = Assistant(_settings(args))
    paths = args.paths or [bundled_corpus_dir()]
    with _progress() as progress:
        report = assistant.ingest(
            paths,
            prune=args.prune,
            skip_invalid=args.skip_invalid,
            categories=args.category,
            progress=progress,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(report.summary())
    for skipped in report.skipped[:20]:
        print(f"skipped {skipped}", file=sys.stderr)
    if len(report.skipped) > 20:
        print(f"... and {len(report.skipped) - 20} more skipped", file=sys.stderr)
    for warning in report.warnings[:20]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from .assistant import Assistant
    from .types import Final, Status, TextDelta

    assistant = Assistant(_settings(args))
    if args.json:
        answer = assistant.ask(args.question, k=args.k)
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    if args.no_stream:
        print(assistant.ask(args.question, k=args.k).render())
        return 0
    for event in assistant.stream(args.question, k=args.k):
        if isinstance(event, Status) and event.kind == "notice":
            print(f"({event.message})")
        elif isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Final):
            if event.answer.fallback is not None:  # the streamed text is replaced
                sys.stdout.write(f"\n\n{event.answer.text}")
            print(event.answer.render_tail())
    return 0


def _cmd_retrieve(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    sources = Assistant(_settings(args)).retrieve(args.question, k=args.k)
    if args.json:
        print(json.dumps([s.to_dict() for s in sources], indent=2, ensure_ascii=False))
        return 0
    for s in sources:
        print(f"{s.rank}. {s.title}  (score {s.score:.3f})")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .assistant import Assistant

    assistant = Assistant(_settings(args))
    if args.action == "status":
        status = assistant.status()
        if args.json:
            print(json.dumps(asdict(status), indent=2))
        else:
            for key, value in asdict(status).items():
                print(f"{key}: {value}")
        return 0
    if args.action == "check":
        return _check(assistant, repair=args.repair, as_json=args.json)
    with _progress() as progress:
        report = assistant.rebuild(progress=progress)
    print(f"rebuilt: {report.papers} papers in {report.chunks} chunks ({report.seconds:.1f} s)")
    return 0


def _check(assistant, *, repair: bool, as_json: bool) -> int:
    """``index check [--repair]``: what was found, and with ``--repair`` what remains after;
    with ``--json`` one document ``{"problems", "repaired", "remaining"}``."""
    from dataclasses import asdict

    if repair:
        with _progress() as progress:
            problems = assistant.repair(progress=progress)
        remaining = assistant.check() if problems else []
    else:
        problems, remaining = assistant.check(), None
    if as_json:
        document: dict = {"problems": [asdict(p) for p in problems]}
        if repair:
            document["repaired"] = bool(problems) and not remaining
            document["remaining"] = [asdict(p) for p in remaining or []]
        print(json.dumps(document, indent=2))
    else:
        if not problems:
            print("the index is consistent")
        for p in problems:
            print(f"{p.part}: {p.message}")
        if remaining:
            print(
                "not repaired: " + "; ".join(f"{p.part}: {p.message}" for p in remaining),
                file=sys.stderr,
            )
        elif repair and problems:
            print("repaired")
    if repair:
        return 1 if remaining else 0
    return 1 if problems else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .assistant import Assistant
    from .errors import InputError
    from .evaluation import gate, reports
    from .evaluation.dataset import load_qa
    from .evaluation.metrics import METRICS
    from .evaluation.runner import make_judge, run_eval

    settings = _settings(args)
    items = load_qa(args.qa)
    threshold_file = args.threshold or gate.thresholds_for(args.qa)
    thresholds = gate.load_thresholds(threshold_file) if threshold_file else None
    previous = reports.load_report(args.compare) if args.compare else None
    if args.save_thresholds and Path(args.save_thresholds).exists():
        raise InputError(f"{args.save_thresholds} exists; it is never overwritten")
    judge = make_judge(settings, args.judge)
    assistant = Assistant(settings, judge=judge)
    with _progress() as progress:
        report = run_eval(assistant, items, judge=judge, qa_path=args.qa, progress=progress)
    out = Path(args.out) if args.out else reports.default_out_dir()
    paths = reports.write_report(report, out)
    totals = report["totals"]
    print(
        f"{totals['counts']['questions']} questions in {report['seconds']} s "
        f"({report['config']['mode']}, judge {report['config']['judge']})"
    )
    for metric in METRICS:
        print(f"  {metric:<20} {reports.fmt(totals['metrics'][metric])}")
    print("report: " + ", ".join(str(p) for p in paths))
    if args.save_thresholds:
        print(f"thresholds: {gate.save_thresholds(report, args.save_thresholds)}")
    if previous is not None:
        print(f"\nchange since {args.compare}:")
        print(reports.render_deltas(reports.compare_reports(report, previous), changed_only=True))
    if thresholds is not None:
        failures = gate.check_thresholds(report, thresholds)
        if failures:
            print(f"\nthresholds missed ({threshold_file}):", file=sys.stderr)
            for failure in failures:
                print(f"  {failure}", file=sys.stderr)
            return 1
        print(f"all thresholds in {threshold_file} are met")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    assistant = Assistant(_settings(args))
    if assistant.index.is_empty() and assistant.settings.auto_ingest_bundled:
        print("The index is empty: ingesting the bundled sample corpus...", file=sys.stderr)
        with _progress() as progress:
            report = assistant.ingest_bundled(progress=progress)
        print(report.summary(), file=sys.stderr)
    from .ui import serve

    serve(
        assistant,
        host=args.host,
        port=args.port,
        auth=args.auth,
        open_browser=not args.no_browser,
        announce=lambda url: print(
            f"The chat UI is at {url} (answers: "
            f"{'LLM' if assistant.mode == 'llm' else 'offline extractive'}); Ctrl+C stops it.",
            file=sys.stderr,
        ),
    )
    return 0


COMMANDS = {
    "ingest": _cmd_ingest,
    "ask": _cmd_ask,
    "retrieve": _cmd_retrieve,
    "index": _cmd_index,
    "eval": _cmd_eval,
    "ui": _cmd_ui,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        for noisy in ("chromadb", "httpx", "bm25s", "urllib3", "openai"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    from .errors import RagAssistantError

    try:
        return COMMANDS[args.command](args)
    except RagAssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
