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
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from .errors import (
    EmptySourceError,
    EncodingError,
    MalformedRecordError,
    MissingPathError,
    NoEntriesError,
    UnreadableSourceError,
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
    """Bounds on what is read (ingest takes them from ``settings.limits``, whose fields
    describe them): a title's length, an abstract's (cut and reported), a url's and a
    date's (dropped and reported) and an author list's (cut and reported); a line's (a
    longer record is refused); a file's bytes — what a compressed file expands to — and
    lines (a larger file is refused before anything is read)."""

    max_title_chars: int = TITLE_MAX_CHARS
    max_abstract_chars: int = DEFAULT_MAX_ABSTRACT_CHARS
    max_url_chars: int = 2_000
    max_date_chars: int = 64
    max_authors_chars: int = 20_000
    max_line_chars: int = 16_000_000
    max_file_bytes: int = 2**40
    max_file_lines: int = 2**40


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


class _BoundedReader(io.RawIOBase):
    """The bytes of a file (a gzip file's decompressed bytes), refused past ``limit``: a
    small compressed file can expand to gigabytes."""

    def __init__(self, raw: BinaryIO, path: Path, limit: int) -> None:
        self._raw, self._path, self._limit, self.total = raw, path, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto1(buffer)  # what is there: a pipe is not waited on to fill it
        self.total += n
        if self.total > self._limit:
            raise _too_many_bytes(self._path, self._limit)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _too_many_bytes(path: Path, limit: int) -> UploadTooLargeError:
    compressed = " (uncompressed)" if _compressed(path) else ""
    amount = f"{limit / 2**20:,.0f} MiB" if limit >= 2**20 else f"{limit:,} bytes"
    return UploadTooLargeError(
        f"{path}: holds more than {amount}{compressed}, the limit "
        "(RAG_ASSISTANT_LIMITS__MAX_FILE_BYTES); nothing of it was ingested"
    )


def _compressed(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_binary(path: Path, limit: int = 2**62) -> BinaryIO:
    """The file's bytes, decompressed when it is a .gz, at most ``limit`` of them; a file
    that cannot be read (permissions) raises :class:`UnreadableSourceError`."""
    try:
        raw = gzip.open(path, "rb") if _compressed(path) else open(path, "rb")  # noqa: SIM115
    except PermissionError as exc:
        raise UnreadableSourceError(
            f"{path}: cannot be read ({exc.strerror}); give this user read access to it"
        ) from None
    return io.BufferedReader(_BoundedReader(raw, path, limit), 1 << 16)


def _open_text(path: Path, limit: int = 2**62) -> io.TextIOBase:
    return io.TextIOWrapper(
        _open_binary(path, limit), encoding="utf-8", errors="strict", newline=""
    )


def check_file(path: Path, limits: ReadLimits = ReadLimits()) -> None:
    """Refuse a file before anything of it is read: empty, or larger than the limits in
    bytes (a compressed file: what it expands to, read in bounded blocks) or lines. Reads
    the file once, without parsing (a few hundred MB/s)."""
    _check_size(path, limits.max_file_bytes)
    lines = 0
    try:
        with _open_binary(path, limits.max_file_bytes) as handle:
            while block := handle.read(1 << 20):
                lines += block.count(b"\n")
                if lines > limits.max_file_lines:
                    raise UploadTooLargeError(
                        f"{path}: holds more than {limits.max_file_lines:,} lines, the limit "
                        "(RAG_ASSISTANT_LIMITS__MAX_FILE_LINES); nothing of it was ingested"
                    )
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged .gz
        raise EncodingError(f"{path}: cannot be read ({exc})") from None


def _line_too_long(length: int, limits: ReadLimits) -> str:
    return (
        f"a line of {length:,} characters, longer than the limit of {limits.max_line_chars:,} "
        "(RAG_ASSISTANT_LIMITS__MAX_LINE_CHARS)"
    )


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


@dataclass(frozen=True)
class _LongLine:
    """A line longer than the limit: its first ``limit`` characters and its length (the rest
    was read past, never held)."""

    head: str
    length: int


def _bounded_lines(handle: io.TextIOBase, limit: int) -> Iterator[str | _LongLine]:
    """The lines of ``handle``; one longer than ``limit`` characters comes as a
    :class:`_LongLine`."""
    while line := handle.readline(limit + 1):
        yield _whole_line(handle, line, limit)


def _whole_line(handle: io.TextIOBase, line: str, limit: int) -> str | _LongLine:
    """``line`` (as read with ``readline(limit + 1)``) when it is whole; when it is the start
    of a longer line, the rest of that line is read past."""
    if len(line) <= limit or line.endswith(("\n", "\r")):
        return line
    length = len(line)
    while (more := handle.readline(1 << 20)) and not more.endswith(("\n", "\r")):
        length += len(more)
    return _LongLine(line[:limit], length + len(more))


def _lines(path: Path, limits: ReadLimits) -> Iterator[tuple[int, str | _LongLine]]:
    """(line number, line) pairs, decoding UTF-8 strictly with a message that says where;
    a line longer than ``limits.max_line_chars`` comes as a :class:`_LongLine`."""
    with _open_text(path, limits.max_file_bytes) as handle:
        try:
            for lineno, line in enumerate(_bounded_lines(handle, limits.max_line_chars), 1):
                if lineno == 1 and isinstance(line, str):
                    line = line.lstrip("\ufeff")
                yield lineno, line
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged .gz
            raise EncodingError(f"{path}: cannot be read ({exc})") from None


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size == 0:
        raise EmptySourceError(f"{path}: the file is empty")
    if size > max_bytes:
        raise _too_many_bytes(path, max_bytes)


def _bounded(text: str, limit: int, what: str, where: str, warnings: list[str]) -> str:
    if len(text) <= limit:
        return text
    warnings.append(f"{where}: {what} of {len(text):,} characters cut to {limit:,}")
    return text[:limit].rsplit(" ", 1)[0]


def _at_most(value: object, limit: int, what: str, where: str, warnings: list[str]) -> str | None:
    """``value`` as clean text, or None when it is empty or longer than ``limit`` (a cut
    url or date would be wrong; the drop is reported)."""
    if value is None:
        return None
    text = clean_text(str(value))
    if len(text) > limit:
        warnings.append(f"{where}: {what} of {len(text):,} characters dropped (limit {limit:,})")
        return None
    return text or None


def _some_authors(authors: list[str], limit: int, where: str, warnings: list[str]) -> list[str]:
    """The first authors whose names fit in ``limit`` characters (the cut is reported)."""
    total, kept = 0, []
    for name in authors:
        total += len(name)
        if total > limit:
            warnings.append(
                f"{where}: author list of {sum(map(len, authors)):,} characters cut to the "
                f"first {len(kept):,} of {len(authors):,} authors (limit {limit:,})"
            )
            return kept
        kept.append(name)
    return kept


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
    for lineno, raw in _lines(path, limits):
        if isinstance(raw, _LongLine):  # abstract text: its start is read, like a long abstract
            log.warnings.append(
                f"{source}:{lineno}: {_line_too_long(raw.length, limits)}; read its first "
                f"{limits.max_line_chars:,}"
            )
            raw = raw.head
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
    url = _at_most(url, limits.max_url_chars, "url", where, warnings)
    date = record.get("date") or record.get("update_date") or None
    date = _at_most(date, limits.max_date_chars, "date", where, warnings)
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
    authors = _some_authors(authors, limits.max_authors_chars, where, warnings)
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


class _TooLarge(ValueError):
    """A record longer than the line limit (refused as :class:`UploadTooLargeError`)."""


def _json_records(path: Path, limits: ReadLimits) -> Iterator[tuple[int, object | Exception]]:
    """(line, record or the JSONDecodeError) for JSON lines or a JSON array file: the first
    line that is not blank says which. JSON lines are streamed, never listed."""
    with _open_text(path, limits.max_file_bytes) as handle:
        try:
            lineno, head = 0, ""
            while not head.strip():
                head = handle.readline(limits.max_line_chars + 1)
                lineno += 1
                if not head:
                    return
                head = head.lstrip("\ufeff") if lineno == 1 else head
            if head.lstrip().startswith("["):
                yield from _json_array(head + handle.read(), lineno)
                return
            first = _whole_line(handle, head, limits.max_line_chars)
            rest = _bounded_lines(handle, limits.max_line_chars)
            for number, line in enumerate(itertools.chain([first], rest), lineno):
                if isinstance(line, _LongLine):
                    yield number, _TooLarge(_line_too_long(line.length, limits))
                elif line.strip():
                    yield number, _json_line(line)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged .gz
            raise EncodingError(f"{path}: cannot be read ({exc})") from None


def _json_line(line: str) -> object | Exception:
    try:
        # without its line break, so that an error at the end of a cut-off line is reported
        # at that line's last column, not at "column 1" of the next
        return json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return exc
    except (RecursionError, ValueError) as exc:
        return ValueError(_json_limit_reason(exc))


def _json_array(text: str, first: int) -> Iterator[tuple[int, object | Exception]]:
    """The records of a file holding one JSON array (``text``, from line ``first``; read
    whole, so at most ``max_file_bytes``)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield first + exc.lineno - 1, exc
        return
    except (RecursionError, ValueError) as exc:  # nesting, or an over-long integer
        yield first, ValueError(_json_limit_reason(exc))
        return
    del text
    if not isinstance(data, list):
        yield first, ValueError("a JSON file must hold an array of records or JSON lines")
        return
    for record in data:
        yield first, record


def _json_limit_reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    # int('9' * 5000) hits Python's limit on integer digits (sys.set_int_max_str_digits)
    return f"a JSON value is out of bounds ({exc})"


def _csv_records(path: Path, limits: ReadLimits) -> Iterator[tuple[int, object | Exception]]:
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    csv.field_size_limit(limits.max_line_chars)
    too_long: list[tuple[int, int]] = []  # (line, length) of lines skipped unread

    def lines(handle: io.TextIOBase) -> Iterator[str]:
        for line in _bounded_lines(handle, limits.max_line_chars):
            if isinstance(line, _LongLine):
                too_long.append((reader.line_num + 1, line.length))
                line = "\n"  # an empty row, which the reader skips
            yield line

    def skipped() -> Iterator[tuple[int, object | Exception]]:
        for lineno, length in too_long:
            yield lineno, _TooLarge(_line_too_long(length, limits))
        too_long.clear()

    with _open_text(path, limits.max_file_bytes) as handle:
        try:
            reader = csv.DictReader(lines(handle), delimiter=delimiter)
            fields = [f.strip().lower().lstrip("\ufeff") for f in (reader.fieldnames or [])]
            missing = [f for f in ("title", "abstract") if f not in fields]
            if missing:
                raise MalformedRecordError(
                    f"{path}:1: CSV header has no {' or '.join(repr(m) for m in missing)} "
                    f"column (found: {', '.join(fields) or 'nothing'})"
                )
            reader.fieldnames = fields
            for row in reader:
                yield from skipped()
                if None in row:  # more cells than header columns
                    yield reader.line_num, ValueError("row has more cells than the header")
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}
            yield from skipped()
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged .gz
            raise EncodingError(f"{path}: cannot be read ({exc})") from None
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
    records = _json_records(path, limits) if kind == "json" else _csv_records(path, limits)
    found = filtered = 0
    for lineno, record in records:
        where = f"{path}:{lineno}"
        try:
            if isinstance(record, _TooLarge):
                raise record
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
                error = UploadTooLargeError if isinstance(exc, _TooLarge) else MalformedRecordError
                raise error(
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
