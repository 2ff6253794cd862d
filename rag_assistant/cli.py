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

    k = _whole_number(value)
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_K}, not {k}")
    return k


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}") from None


def _positive_int(value: str) -> int:
    number = _whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _non_negative_int(value: str) -> int:
    number = _whole_number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


def _id_list(value: str) -> list[str]:
    """``--ids a,b``: question ids, separated by commas."""
    ids = [part.strip() for part in value.split(",")]
    if not all(ids):
        raise argparse.ArgumentTypeError(f"expected ID[,ID...] with no empty id, not {value!r}")
    return ids


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
        "index, dense model and manifest, naming each damaged or missing part and the "
        "command that fixes it (--repair brings them back in line with the catalog). "
        "rebuild: re-chunk and re-embed everything with the current settings, into a new "
        "index that replaces the old one only when it is complete and verified (from the "
        "source files the manifest lists when the catalog is lost or damaged).",
    )
    p.add_argument("action", choices=["status", "check", "rebuild"])
    p.add_argument("--repair", action="store_true", help="with check: fix what it finds")
    p.add_argument(
        "--allow-shrink",
        action="store_true",
        help="with rebuild: go ahead even when the rebuilt index would hold fewer papers "
        "(source files missing); without it such a rebuild stops and names them",
    )
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="score answers against a Q&A file",
        description="Run every question of a Q&A file (JSON lines) through the assistant and "
        "score retrieval (hit@1, hit@5, MRR@10, recall@10), citation validity, faithfulness "
        "(ALCE citation recall and precision), correctness (key-fact recall, token F1) and "
        "refusals, overall, by kind and by category. By default on a fresh temporary index "
        "of the bundled corpus (--index current: the index in --home). A question that fails "
        "(the model timed out, say) is recorded with its error and the run goes on; Ctrl+C "
        "stops it and writes the report so far. Writes report.json, report.md and "
        "report.png into --out. Exit status 1 when a metric falls below (or above) its "
        "threshold or a question failed; 2 when errors stopped the run; 130 when "
        "interrupted (the report so far is written in both cases).",
    )
    p.add_argument(
        "--qa", default="eval/qa.jsonl", metavar="FILE", help="the Q&A file (default %(default)s)"
    )
    p.add_argument(
        "--index",
        choices=["fresh", "current"],
        default="fresh",
        help="'fresh' (default): a new temporary index of the bundled corpus, built with the "
        "current settings in an embedded Chroma, so runs compare; 'current': the index in "
        "--home (or the Chroma server) as it is",
    )
    subset = p.add_mutually_exclusive_group()
    subset.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="ask only the first N questions of the file (a partial report)",
    )
    subset.add_argument(
        "--ids",
        type=_id_list,
        metavar="ID[,ID...]",
        help="ask only these questions, with the earlier turns a follow-up needs (a partial "
        "report)",
    )
    p.add_argument(
        "--max-failures",
        type=_non_negative_int,
        default=5,
        metavar="N",
        help="stop after N questions in a row failed (the endpoint is likely down; default "
        "%(default)s, 0: never); the report so far is written",
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
        "file, when it exists, and not for --limit/--ids); exit 1 and name the metrics "
        "that miss them",
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
        "--auth-file",
        metavar="FILE",
        help="require a login from FILE (one user:password per line); use it, or env "
        "RAG_ASSISTANT_UI__AUTH, when --host exposes the UI beyond this machine",
    )
    p.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help="require this login (visible to other local users in `ps`: prefer --auth-file "
        "or env RAG_ASSISTANT_UI__AUTH)",
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
def _progress(
    lines: Sequence[str] = (), *, every: int = 10, seconds: float = 30.0
) -> Iterator[Callable[[str, int, int | None], None]]:
    """A progress callback drawing one rich bar per stage on stderr on a terminal (ingest
    stages, or the questions of an evaluation). Off a terminal (a CI log, a pipe), the
    stages in ``lines`` get a line on stderr instead: every ``every`` steps, after
    ``seconds`` without one, and at the end."""
    import time

    with contextlib.ExitStack() as stack:
        bars = None  # rich is imported at the first step: a command with nothing to report
        terminal = False  # (`ask` on an index no ingest left unfinished) does not load it
        tasks: dict[str, object] = {}
        started: dict[str, float] = {}
        last_line: dict[str, float] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            nonlocal bars, terminal
            if bars is None:
                bars, terminal = stack.enter_context(_bars())
            if stage not in tasks:
                tasks[stage] = bars.add_task(STAGES.get(stage, stage), total=total)
                started[stage] = last_line[stage] = time.monotonic()
            bars.update(tasks[stage], completed=done, total=total)
            if terminal or stage not in lines or done == 0:
                return
            now = time.monotonic()
            if done % every and now - last_line[stage] < seconds and done != total:
                return
            last_line[stage] = now
            of = f"/{total}" if total is not None else ""
            elapsed = now - started[stage]
            print(f"{STAGES.get(stage, stage)}: {done}{of} ({elapsed:.0f} s)", file=sys.stderr)

        yield progress


@contextlib.contextmanager
def _bars() -> Iterator[tuple[object, bool]]:
    """rich's progress bars on stderr (drawn only on a terminal), and whether it is one."""
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
        yield bars, console.is_terminal


def _resume(assistant) -> None:
    """Complete what an interrupted ingest (or rebuild) left, before a command reads the
    index, and say so on stderr."""
    from .errors import RagAssistantError

    try:
        with _progress() as progress:
            recovery = assistant.resume_interrupted(progress=progress)
    except RagAssistantError as exc:  # the command itself names a damaged part
        print(f"warning: an interrupted ingest could not be completed: {exc}", file=sys.stderr)
        return
    if recovery.state != "none":
        print(f"note: {recovery.message}", file=sys.stderr)


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
    _resume(assistant)
    if args.json:
        answer = assistant.ask(args.question, k=args.k)
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    if args.no_stream:
        print(assistant.ask(args.question, k=args.k).render())
        return 0
    for event in assistant.stream(args.question, k=args.k):
        if isinstance(event, Status) and event.kind == "notice":
            print(f"Note: {event.message}\n")
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

    assistant = Assistant(_settings(args))
    _resume(assistant)
    sources = assistant.retrieve(args.question, k=args.k)
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
        report = assistant.rebuild(progress=progress, allow_shrink=args.allow_shrink)
    for warning in report.warnings[:20]:
        print(f"warning: {warning}", file=sys.stderr)
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
    import time
    from pathlib import Path

    from .assistant import Assistant
    from .errors import InputError
    from .evaluation import gate, reports
    from .evaluation.dataset import load_qa, select
    from .evaluation.metrics import METRICS
    from .evaluation.runner import fresh_index, make_judge, run_eval

    settings = _settings(args)
    items, subset = select(
        load_qa(args.qa), limit=args.limit, ids=args.ids, name=Path(args.qa).name
    )
    threshold_file = args.threshold or (gate.thresholds_for(args.qa) if subset is None else None)
    thresholds = gate.load_thresholds(threshold_file) if threshold_file else None
    previous = reports.load_report(args.compare) if args.compare else None
    if args.save_thresholds and Path(args.save_thresholds).exists():
        raise InputError(f"{args.save_thresholds} exists; it is never overwritten")
    judge = make_judge(settings, args.judge)  # an LLM judge caches in the real --home
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(_progress(lines=["questions"]))
        if args.index == "fresh":
            print("building a fresh index of the bundled corpus...", file=sys.stderr)
            t0 = time.perf_counter()
            assistant = stack.enter_context(fresh_index(settings, judge=judge, progress=progress))
            status = assistant.status()
            print(
                f"fresh index: {status.papers} papers, {status.chunks} chunks "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
        else:
            assistant = Assistant(settings, judge=judge)
            _resume(assistant)
        report = run_eval(
            assistant,
            items,
            judge=judge,
            qa_path=args.qa,
            progress=progress,
            subset=subset,
            index_kind=args.index,
            max_failures=args.max_failures,
        )
    out = Path(args.out) if args.out else reports.default_out_dir()
    paths = reports.write_report(report, out)
    totals = report["totals"]
    counts = totals["counts"]
    print(
        f"{counts['questions']} questions in {report['seconds']} s "
        f"({report['config']['mode']}, judge {report['config']['judge']}, "
        f"{args.index} index), {counts['failed']} failed"
    )
    for reason in report["partial"]:
        print(f"PARTIAL: {reason}")
    for metric in METRICS:
        print(f"  {metric:<20} {reports.fmt(totals['metrics'][metric])}")
    print("report: " + ", ".join(str(p) for p in paths))
    if report["interrupted"]:
        print("interrupted: the report holds the questions asked so far", file=sys.stderr)
        return 130
    if report["stopped"]:
        print(f"error: {report['stopped']}", file=sys.stderr)
        return 2
    if args.save_thresholds:
        print(f"thresholds: {gate.save_thresholds(report, args.save_thresholds)}")
    if previous is not None:
        print(f"\nchange since {args.compare}:")
        print(reports.render_deltas(reports.compare_reports(report, previous), changed_only=True))
    status = 1 if counts["failed"] else 0
    if thresholds is not None:
        failures = gate.check_thresholds(report, thresholds)
        if failures:
            print(f"\nthresholds missed ({threshold_file}):", file=sys.stderr)
            for failure in failures:
                print(f"  {failure}", file=sys.stderr)
            return 1
        print(f"all thresholds in {threshold_file} are met")
    elif subset is not None and gate.thresholds_for(args.qa):
        print(f"thresholds in {gate.thresholds_for(args.qa)} not checked: a subset was asked")
    return status


def _cmd_ui(args: argparse.Namespace) -> int:
    from .assistant import Assistant

    assistant = Assistant(_settings(args))
    _resume(assistant)
    if assistant.index.is_empty() and assistant.settings.auto_ingest_bundled:
        print("The index is empty: ingesting the bundled sample corpus...", file=sys.stderr)
        with _progress() as progress:
            report = assistant.ingest_bundled(progress=progress)
        print(report.summary(), file=sys.stderr)
    from .errors import PortInUseError
    from .ui import serve

    try:
        serve(
            assistant,
            host=args.host,
            port=args.port,
            auth=args.auth,
            auth_file=args.auth_file,
            open_browser=not args.no_browser,
            announce=lambda url: print(
                f"The chat UI is at {url} (answers: "
                f"{'LLM' if assistant.mode == 'llm' else 'offline extractive'}); Ctrl+C stops "
                "it.",
                file=sys.stderr,
            ),
        )
    except PortInUseError as exc:
        print(f"error: {exc}; pass --port", file=sys.stderr)
        return 1
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
