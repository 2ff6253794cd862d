"""Corpus parsing: files of paper listings, JSON lines, CSV and the arXiv metadata snapshot
become :class:`Paper` records with stable ids.

Formats, chosen by file name:

* ``.txt`` (and ``.md``): a daily-paper listing page dumped as text: a title line followed by
  its abstract line, with page chrome ("new", "Subscribe", "Daily Papers", date lines such as
  "Mar 18", ...) in between. Chrome glued to a title ("SubscribeSpeculative Prefill") is cut off.
* ``.jsonl`` / ``.ndjson`` / ``.json`` (JSON lines, or one JSON array): records with ``title``
  and ``abstract`` and optional ``url``, ``authors``, ``date``. Records shaped like the arXiv
  metadata snapshot (``id``, ``categories``, ``update_date``) are read as such: streamed,
  LaTeX in titles turned into text, ids from arXiv ids, optional category filter.
* ``.csv`` / ``.tsv``: the same fields as columns.
* Any of these gzip-compressed (``.gz``), and folders of such files (searched recursively).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import hashlib
import io
import itertools
import json
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import (
    EmptySourceError,
    EncodingError,
    MalformedRecordError,
    MissingPathError,
    NoEntriesError,
    UnsupportedFileError,
    UploadTooLargeError,
)
from .text.normalize import fold, visible
from .types import Paper, Skipped

log = logging.getLogger(__name__)

LISTING_SUFFIXES = (".txt", ".md")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv", ".tsv")
SUPPORTED_SUFFIXES = LISTING_SUFFIXES + JSON_SUFFIXES + CSV_SUFFIXES
BUNDLED_PREFIX = "bundled:"

# A listing line longer than this is abstract text, never a title.
TITLE_MAX_CHARS = 300
# Abstracts longer than this are cut (and reported); keeps one broken line from taking
# the index down.
DEFAULT_MAX_ABSTRACT_CHARS = 20_000


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what is read (ingest takes them from ``settings.limits``):
    ``max_title_chars``, a listing line longer than this is abstract text, never a title, and
    a record's title may be at most three times as long; ``max_abstract_chars``, longer
    abstracts are cut and reported; ``max_file_bytes``, larger files are refused."""

    max_title_chars: int = TITLE_MAX_CHARS
    max_abstract_chars: int = DEFAULT_MAX_ABSTRACT_CHARS
    max_file_bytes: int = 2**40


_CHROME_EXACT = {
    "new",
    "subscribe",
    "daily papers",
    "byak and the research community",
    "upvote",
    "trending papers",
}
_CHROME_PREFIXES = ("get trending papers",)
# Page chrome that can be glued to the next title when the page was dumped without breaks.
_CHROME_GLUED = re.compile(
    r"^(?:Get trending papers in your email inbox(?: once a day)?!|Subscribe|Daily Papers|"
    r"byAK and the research community|new(?=[A-Z]))\s*(?=\S)"
)
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|"
    r"Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE_LINE = re.compile(rf"^(?:Published on |Submitted on )?{_MONTH}\.? \d{{1,2}}(?:, \d{{4}})?$")
_ONLY_PUNCT_OR_DIGITS = re.compile(r"^[\W\d_]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


@dataclass
class ReadLog:
    """What reading some sources met besides papers: counts, skipped entries, warnings."""

    entries: int = 0
    filtered: int = 0
    sources: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ParseResult:
    """Papers read from some sources, merged by id (the same paper in several files)."""

    papers: dict[str, Paper] = field(default_factory=dict)
    log: ReadLog = field(default_factory=ReadLog)

    def add(self, paper: Paper) -> None:
        """Add ``paper``, merging it into an earlier entry of the same id."""
        known = self.papers.get(paper.paper_id)
        if known is None:
            self.papers[paper.paper_id] = paper
        else:
            merge_into(known, paper, self.log.warnings)


def merge_into(known: Paper, paper: Paper, warnings: list[str]) -> None:
    """Merge a second entry of the same paper into ``known``: sources are united, the first
    abstract is kept (a different one is reported), missing metadata is filled in."""
    for source in paper.sources:
        if source not in known.sources:
            known.sources.append(source)
    if known.abstract != paper.abstract:
        warnings.append(
            f"{paper.title!r} appears with different abstracts in "
            f"{known.sources[0]} and {paper.sources[-1]}; keeping the first"
        )
    known.url = known.url or paper.url
    known.authors = known.authors or paper.authors
    known.date = known.date or paper.date
    known.categories = known.categories or paper.categories


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def normalize_title(title: str) -> str:
    """The identity of a paper: the title :func:`~rag_assistant.text.normalize.fold`-ed,
    accents removed, punctuation collapsed."""
    text = unicodedata.normalize("NFKD", fold(title))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.findall(r"\w+", text))


def paper_id_for_title(title: str) -> str:
    """A stable, readable id: a slug of the first words plus a hash of the normalized title."""
    norm = normalize_title(title)
    slug = ""
    for word in re.sub(r"[^a-z0-9 ]", "", norm).split()[:6]:
        if len(slug) + len(word) > 48:
            break
        slug = f"{slug}-{word}" if slug else word
    return f"{slug or 'paper'}-{_digest(norm)[:10]}"


_LATEX_ESCAPES = re.compile(r"\\([%&_#$])")
_LATEX_STYLE = re.compile(r"\\(?:textbf|textit|emph|texttt|textsc|mathrm|text)\{([^{}]*)\}")
_LATEX_GROUP_STYLE = re.compile(r"\{\\(?:em|it|bf|tt|sc)\s+([^{}]*)\}")
_LATEX_SYMBOLS = {"\\textless": "<", "\\textgreater": ">", "\\textasciitilde": "~"}


def clean_abstract(text: str) -> str:
    """White space collapsed and the LaTeX left in dumped abstracts made readable: escaped
    characters (``50\\%``), style commands (``\\textbf{X}``, ``{\\em X}``), a few symbols.
    Cheap regular expressions: this runs on every abstract."""
    text = clean_text(text)
    if "\\" not in text:
        return text
    for macro, symbol in _LATEX_SYMBOLS.items():
        text = text.replace(macro, symbol)
    text = _LATEX_STYLE.sub(r"\1", text)
    text = _LATEX_GROUP_STYLE.sub(r"\1", text)
    return _LATEX_ESCAPES.sub(r"\1", text)


def clean_text(text: str) -> str:
    """Text as stored and shown: invisible format characters (zero-width, bidi controls) and
    control characters removed, white space (line breaks included) collapsed."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", visible(text))).strip()


def bundled_corpus_dir() -> Path:
    """The sample corpus shipped inside the package."""
    return Path(str(resources.files("rag_assistant") / "data" / "corpus"))


def source_key(path: Path) -> str:
    """How a file is named in the index: ``bundled:<name>`` for the sample corpus, else its
    absolute path (so the same file ingested from another directory is the same source)."""
    resolved = path.resolve()
    try:
        resolved.relative_to(bundled_corpus_dir().resolve())
    except ValueError:
        return str(resolved)
    return BUNDLED_PREFIX + resolved.name


def source_exists(key: str) -> bool:
    """Whether the file a source key names is still there."""
    if key.startswith(BUNDLED_PREFIX):
        return (bundled_corpus_dir() / key[len(BUNDLED_PREFIX) :]).is_file()
    return Path(key).is_file()


# --- finding files ---------------------------------------------------------------------


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffixes, kind in (
        (LISTING_SUFFIXES, "listing"),
        (JSON_SUFFIXES, "json"),
        (CSV_SUFFIXES, "csv"),
    ):
        if name.endswith(suffixes):
            return kind
    return None


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """The supported files named by ``paths`` (files, or folders searched recursively).

    Raises :class:`MissingPathError`, :class:`UnsupportedFileError` or
    :class:`EmptySourceError` before anything is read.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise MissingPathError(f"no such file or folder: {raw}")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and _format_of(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise EmptySourceError(
                    f"folder {raw} holds no paper files "
                    f"(looked for {', '.join(SUPPORTED_SUFFIXES)}, optionally .gz)"
                )
            files.extend(found)
        elif _format_of(path) is None:
            raise UnsupportedFileError(
                f"{raw}: unsupported file type; use {', '.join(SUPPORTED_SUFFIXES)} (or .gz)"
            )
        else:
            files.append(path)
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


# --- reading ---------------------------------------------------------------------------


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> EncodingError:
    """The error for a file that is not UTF-8, naming the line of the first bad byte.

    The text reader decodes ahead in blocks, so the line it had reached says little; the
    file is scanned again line by line (only on this error path). A line break never falls
    inside a multi-byte UTF-8 sequence, so decoding each line alone finds the same byte.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with contextlib.suppress(OSError, EOFError), opener(path, "rb") as raw:
        for lineno, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return EncodingError(
                    f"{path}: not UTF-8 text (byte 0x{bad.object[bad.start]:02x} on line "
                    f"{lineno}); convert it, e.g. `iconv -f latin1 -t utf-8`"
                )
    return EncodingError(
        f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); convert it, "
        "e.g. `iconv -f latin1 -t utf-8`"
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs, decoding UTF-8 strictly with a message that says where."""
    with _open_text(path) as handle:
        try:
            for lineno, line in enumerate(handle, start=1):
                yield lineno, line.lstrip("\ufeff") if lineno == 1 else line
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        except (OSError, EOFError) as exc:  # a truncated or damaged .gz
            raise EncodingError(f"{path}: cannot be read ({exc})") from None


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size == 0:
        raise EmptySourceError(f"{path}: the file is empty")
    if size > max_bytes:
        raise UploadTooLargeError(
            f"{path}: {size / 2**20:.0f} MiB is larger than the limit of "
            f"{max_bytes / 2**20:.0f} MiB (RAG_ASSISTANT_LIMITS__MAX_FILE_BYTES)"
        )


def _bounded(text: str, limit: int, what: str, where: str, warnings: list[str]) -> str:
    if len(text) <= limit:
        return text
    warnings.append(f"{where}: {what} of {len(text):,} characters cut to {limit:,}")
    return text[:limit].rsplit(" ", 1)[0]


# --- listing pages ----------------------------------------------------------------------


def _strip_chrome(line: str) -> tuple[str, bool]:
    glued = False
    while True:
        cut = _CHROME_GLUED.sub("", line, count=1)
        if cut == line:
            return line, glued
        line, glued = cut, True


def _is_chrome(line: str) -> bool:
    low = line.casefold()
    return (
        low in _CHROME_EXACT
        or low.startswith(_CHROME_PREFIXES)
        or bool(_ONLY_PUNCT_OR_DIGITS.match(line))
    )


def read_listing(
    path: Path,
    *,
    log: ReadLog,
    source: str | None = None,
    limits: ReadLimits = ReadLimits(),
) -> Iterator[Paper]:
    """Read a listing page: title line, abstract line, page chrome dropped.

    A title followed by another title-length line is reported as skipped; a long line right
    after an abstract continues that abstract (a wrapped paragraph); a long line with no title
    before it is skipped. The page is read whole: listing pages are small.
    """
    source = source or source_key(path)
    date: str | None = None
    content: list[tuple[int, str, str | None]] = []  # (line number, text, listing date)
    for lineno, raw in _lines(path):
        line = clean_text(raw)
        if not line:
            continue
        line, glued = _strip_chrome(line)
        if glued:
            log.warnings.append(f"{source}:{lineno}: cut page chrome glued to {line[:40]!r}")
        if _DATE_LINE.match(line):
            date = line.removeprefix("Published on ").removeprefix("Submitted on ")
            continue
        if _is_chrome(line):
            continue
        content.append((lineno, line, date))

    papers: list[Paper] = []
    i, last_abstract_at = 0, -2
    while i < len(content):
        lineno, line, date = content[i]
        if len(line) > limits.max_title_chars:
            if papers and last_abstract_at == i - 1:
                papers[-1].abstract = _bounded(
                    papers[-1].abstract + " " + clean_abstract(line),
                    limits.max_abstract_chars,
                    "abstract",
                    f"{source}:{lineno}",
                    log.warnings,
                )
                last_abstract_at = i
            else:
                log.skipped.append(Skipped(source, lineno, "text without a title line"))
            i += 1
            continue
        nxt = content[i + 1][1] if i + 1 < len(content) else None
        after = content[i + 2][1] if i + 2 < len(content) else None
        is_abstract = nxt is not None and (
            len(nxt) > limits.max_title_chars
            or (len(nxt) > len(line) and (after is None or len(after) <= limits.max_title_chars))
        )
        if not is_abstract:
            log.skipped.append(Skipped(source, lineno, f"title without abstract: {line[:60]!r}"))
            i += 1
            continue
        abstract = _bounded(
            clean_abstract(nxt),
            limits.max_abstract_chars,
            "abstract",
            f"{source}:{lineno + 1}",
            log.warnings,
        )
        papers.append(
            Paper(
                paper_id=paper_id_for_title(line),
                title=line,
                abstract=abstract,
                date=date,
                sources=[source],
            )
        )
        last_abstract_at = i + 1
        i += 2
    if not papers:
        raise NoEntriesError(
            f"{path}: no title/abstract entries found (expected a title line followed by an "
            "abstract line, or use .jsonl/.csv with 'title' and 'abstract' fields)"
        )
    log.entries += len(papers)
    yield from papers


# --- records: JSON lines, JSON arrays, CSV ------------------------------------------------


def _authors(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = re.split(r",|;|\band\b", value)
        return [clean_text(p) for p in parts if clean_text(p)]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, list):  # arXiv authors_parsed: [last, first, suffix]
                item = " ".join(x for x in reversed(item[:2]) if x)
            if isinstance(item, str) and clean_text(item):
                out.append(clean_text(item))
        return out
    raise ValueError("'authors' must be a string or a list of strings")


def _is_arxiv(record: dict) -> bool:
    return "id" in record and ("categories" in record or "update_date" in record)


@functools.lru_cache(maxsize=1)
def _latex_converter():
    """One converter: building it (pylatexenc's macro tables) costs more than converting."""
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(math_mode="text", strict_latex_spaces=False)


def latex_to_text(text: str) -> str:
    """LaTeX markup in a title turned into plain text (pylatexenc), white space collapsed."""
    text = clean_text(text)
    if not any(ch in text for ch in "\\${}^_~"):
        return text
    try:
        converted = _latex_converter().latex_to_text(text)
    except (ValueError, IndexError, RecursionError):  # pylatexenc on malformed markup
        return text
    return clean_text(converted) or text


def in_categories(categories: Sequence[str], wanted: Sequence[str]) -> bool:
    """Whether a paper in ``categories`` passes a ``--category`` filter: ``cs.CL`` matches
    that category, ``cs`` (or ``cs.*``) every category of the ``cs`` archive — but not
    another archive that starts alike (``math`` is not ``math-ph``). Case does not matter."""
    have = [c.casefold() for c in categories]
    for want in wanted:
        want = want.strip().casefold().removesuffix("*").removesuffix(".")
        if not want:
            continue
        if "." in want:
            if want in have:
                return True
        elif any(c == want or c.startswith(want + ".") for c in have):
            return True
    return False


def _record_to_paper(
    record: object,
    source: str,
    where: str,
    *,
    categories: Sequence[str] = (),
    limits: ReadLimits,
    warnings: list[str],
) -> Paper | None:
    """A paper from one record, or None when it is filtered out by category.

    Raises ValueError with a short reason when the record is unusable.
    """
    if not isinstance(record, dict):
        raise ValueError("not an object with 'title' and 'abstract'")
    arxiv = _is_arxiv(record)
    title, abstract = record.get("title"), record.get("abstract")
    for name, value in (("title", title), ("abstract", abstract)):
        if value is None:
            raise ValueError(f"missing '{name}'")
        if not isinstance(value, str):
            raise ValueError(f"'{name}' must be a string")
    cats = record.get("categories") or []
    if isinstance(cats, str):
        cats = cats.split()
    if not isinstance(cats, list):
        raise ValueError("'categories' must be a string or a list")
    cats = [str(c) for c in cats]
    if categories and not in_categories(cats, categories):
        return None
    title = latex_to_text(title) if arxiv else clean_text(title)
    abstract = clean_abstract(abstract)
    if not title:
        raise ValueError("empty 'title'")
    if not abstract:
        raise ValueError("empty 'abstract'")
    if len(title) > limits.max_title_chars * 3:
        raise ValueError(f"'title' is {len(title):,} characters long")
    abstract = _bounded(abstract, limits.max_abstract_chars, "abstract", where, warnings)
    url = record.get("url") or None
    if url is not None and not isinstance(url, str):
        raise ValueError("'url' must be a string")
    date = record.get("date") or record.get("update_date") or None
    if date is not None:
        date = str(date)
    if arxiv:
        arxiv_id = str(record["id"]).strip()
        if not arxiv_id:
            raise ValueError("empty arXiv 'id'")
        paper_id = "arxiv:" + arxiv_id
        url = url or f"https://arxiv.org/abs/{arxiv_id}"
        authors = _authors(record.get("authors_parsed") or record.get("authors"))
    else:
        paper_id = paper_id_for_title(title)
        authors = _authors(record.get("authors"))
    return Paper(
        paper_id=paper_id,
        title=title,
        abstract=abstract,
        url=url,
        authors=authors,
        date=date,
        sources=[source],
        categories=cats,
    )


def _json_records(path: Path) -> Iterator[tuple[int, object | Exception]]:
    """(line, record or the JSONDecodeError) for JSON lines or a JSON array file."""
    lines = _lines(path)
    first = None
    for lineno, line in lines:
        if line.strip():
            first = (lineno, line)
            break
    if first is None:
        return
    if first[1].lstrip().startswith("["):
        text = first[1] + "".join(line for _, line in lines)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield first[0] + exc.lineno - 1, exc
            return
        except (RecursionError, ValueError) as exc:  # nesting, or an over-long integer
            yield first[0], ValueError(_json_limit_reason(exc))
            return
        if not isinstance(data, list):
            yield first[0], ValueError("a JSON file must hold an array of records or JSON lines")
            return
        for record in data:
            yield first[0], record
        return
    for lineno, line in itertools.chain([first], lines):  # streamed, never listed
        if not line.strip():
            continue
        try:
            # without its line break, so that an error at the end of a cut-off line is
            # reported at that line's last column, not at "column 1" of the next
            yield lineno, json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield lineno, exc
        except (RecursionError, ValueError) as exc:
            yield lineno, ValueError(_json_limit_reason(exc))


def _json_limit_reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    # int('9' * 5000) hits Python's limit on integer digits (sys.set_int_max_str_digits)
    return f"a JSON value is out of bounds ({exc})"


def _csv_records(path: Path) -> Iterator[tuple[int, object | Exception]]:
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    csv.field_size_limit(2**31 - 1)
    with _open_text(path) as handle:
        try:
            reader = csv.DictReader(handle, delimiter=delimiter)
            fields = [f.strip().lower().lstrip("\ufeff") for f in (reader.fieldnames or [])]
            missing = [f for f in ("title", "abstract") if f not in fields]
            if missing:
                raise MalformedRecordError(
                    f"{path}:1: CSV header has no {' or '.join(repr(m) for m in missing)} "
                    f"column (found: {', '.join(fields) or 'nothing'})"
                )
            reader.fieldnames = fields
            for row in reader:
                if None in row:  # more cells than header columns
                    yield reader.line_num, ValueError("row has more cells than the header")
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        except csv.Error as exc:
            raise MalformedRecordError(f"{path}: broken CSV ({exc})") from None


def read_records(
    path: Path,
    *,
    log: ReadLog,
    source: str | None = None,
    strict: bool = True,
    categories: Sequence[str] = (),
    limits: ReadLimits = ReadLimits(),
) -> Iterator[Paper]:
    """Stream a JSON-lines / JSON / CSV file of records, one paper at a time.

    With ``strict`` a broken record raises :class:`MalformedRecordError` naming file and line;
    without, it is reported in ``log.skipped`` and the rest is read.
    """
    source = source or source_key(path)
    kind = _format_of(path)
    records = _json_records(path) if kind == "json" else _csv_records(path)
    found = filtered = 0
    for lineno, record in records:
        where = f"{path}:{lineno}"
        try:
            if isinstance(record, Exception):
                raise ValueError(_json_reason(record))
            paper = _record_to_paper(
                record,
                source,
                where,
                categories=categories,
                limits=limits,
                warnings=log.warnings,
            )
        except ValueError as exc:
            if strict:
                raise MalformedRecordError(
                    f"{where}: {exc} (fix the record, or ingest with --skip-invalid)"
                ) from None
            log.skipped.append(Skipped(source, lineno, str(exc)))
            continue
        if paper is None:
            filtered += 1
            continue
        found += 1
        log.entries += 1
        yield paper
    log.filtered += filtered
    if not found and not filtered:
        raise NoEntriesError(f"{path}: no records with 'title' and 'abstract' found")


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    return str(exc)


# --- everything ------------------------------------------------------------------------


def read_file(
    path: Path,
    *,
    log: ReadLog,
    strict: bool = True,
    categories: Sequence[str] = (),
    limits: ReadLimits = ReadLimits(),
) -> Iterator[Paper]:
    """Stream the papers of one supported file."""
    _check_size(path, limits.max_file_bytes)
    source = source_key(path)
    kind = _format_of(path)
    if kind == "listing":
        yield from read_listing(path, log=log, source=source, limits=limits)
    elif kind in ("json", "csv"):
        yield from read_records(
            path, log=log, source=source, strict=strict, categories=categories, limits=limits
        )
    else:
        raise UnsupportedFileError(f"{path}: unsupported file type")
    log.sources.append(source)


def read_paths(
    paths: Sequence[str | Path],
    *,
    log: ReadLog,
    strict: bool = True,
    categories: Sequence[str] = (),
    limits: ReadLimits = ReadLimits(),
) -> Iterator[Paper]:
    """Stream the papers of every file the paths name (checked up front by :func:`discover`).

    The same paper found twice is yielded twice; merging is the reader's job.
    """
    for path in discover(paths):
        yield from read_file(
            path,
            log=log,
            strict=strict,
            categories=categories,
            limits=limits,
        )


def parse_paths(paths: Sequence[str | Path], **options) -> ParseResult:
    """Read the paths into memory, merging the same paper found in several files.

    Takes the options of :func:`read_paths`. Meant for small collections and tests; ingest
    streams instead.
    """
    result = ParseResult()
    for paper in read_paths(paths, log=result.log, **options):
        result.add(paper)
    return result
