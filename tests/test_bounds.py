"""Bounded input (issue 14, findings 13-14): a compressed file is measured by what it
expands to and a file by its lines, before anything of it is read or the write lock taken; a
line is never held whole past its limit; url, date and authors have limits of their own.

The gzip bombs are multi-member gzip files (one compressed block repeated), so they are made
in milliseconds.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from rag_assistant import Assistant
from rag_assistant.corpus import ReadLimits, ReadLog, check_file, read_file
from rag_assistant.errors import MalformedRecordError, UploadTooLargeError
from rag_assistant.settings import Settings

MiB = 1 << 20


def repeated_gzip(path: Path, head: bytes, block: bytes, times: int, tail: bytes) -> Path:
    """``head + block * times + tail``, gzip-compressed: a few KB on disk."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = compressor.compress(block) + compressor.flush()
    with open(path, "wb") as handle:
        handle.write(gzip.compress(head))
        for _ in range(times):
            handle.write(member)
        handle.write(gzip.compress(tail))
    return path


def one_line_bomb(path: Path, mib: int) -> Path:
    """One JSON record whose abstract is ``mib`` MiB of one letter."""
    return repeated_gzip(
        path, b'{"title": "Bomb", "abstract": "', b"a" * (16 * MiB), mib // 16, b'"}\n'
    )


def with_memory_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def ingest_under_memory_limit(home: Path, path: Path, limit: int, **env: str):
    environment = dict(os.environ, RAG_ASSISTANT_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "rag_assistant.cli", "ingest", str(path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        preexec_fn=with_memory_limit(limit),
    )


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_within_a_memory_limit_before_anything_is_written(tmp_path):
    """1.2 GB in one line from a 1.2 MB file: refused by what it expands to, in a process
    limited to 1 GiB of address space (the first version read the line whole, grew to
    12 GB and died with a MemoryError)."""
    bomb = one_line_bomb(tmp_path / "bomb.jsonl.gz", 1200)
    assert bomb.stat().st_size < 2 * MiB
    home = tmp_path / "home"
    done = ingest_under_memory_limit(home, bomb, 1 << 30)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "holds more than 512 MiB (uncompressed)" in done.stderr
    assert "RAG_ASSISTANT_LIMITS__MAX_FILE_BYTES" in done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert not (home / "catalog.sqlite3").exists()  # refused before anything was written


@pytest.mark.slow
def test_a_bomb_within_the_byte_limit_is_refused_by_its_line_length(tmp_path):
    """With the byte limit raised past it, the same bomb is refused at its first line,
    which is skipped without being held."""
    bomb = one_line_bomb(tmp_path / "bomb.jsonl.gz", 1200)
    done = ingest_under_memory_limit(
        tmp_path / "home", bomb, 1 << 30, RAG_ASSISTANT_LIMITS__MAX_FILE_BYTES=str(2 << 30)
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "bomb.jsonl.gz:1: a line of 1,258,291,2" in done.stderr  # 1200 MiB + 2 lines
    assert "longer than the limit of 16,000,000" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bomb_of_short_lines_is_refused_before_the_lock(tmp_path):
    """A small file of millions of short records: refused by its line count before the
    write lock is taken (the first version held the lock for minutes)."""
    line = json.dumps({"title": "Short", "abstract": "A short line."}).encode() + b"\n"
    bomb = repeated_gzip(tmp_path / "lines.jsonl.gz", b"", line * 100_000, 25, b"")
    assert bomb.stat().st_size < MiB
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    with pytest.raises(UploadTooLargeError, match=r"more than 2,000,000 lines"):
        assistant.ingest([bomb])
    assert not (tmp_path / "home" / "catalog.sqlite3").exists()


def test_the_limits_measure_the_uncompressed_bytes_and_lines(tmp_path):
    text = "".join(json.dumps({"title": f"P{n}", "abstract": "x " * 50}) + "\n" for n in range(99))
    plain = tmp_path / "papers.jsonl"
    plain.write_text(text)
    packed = tmp_path / "papers.jsonl.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    size = len(text.encode())
    for path in (plain, packed):
        check_file(path, ReadLimits(max_file_bytes=size, max_file_lines=99))
        with pytest.raises(UploadTooLargeError, match="holds more than"):
            check_file(path, ReadLimits(max_file_bytes=size - 1))
        with pytest.raises(UploadTooLargeError, match="more than 98 lines"):
            check_file(path, ReadLimits(max_file_lines=98))
        # reading is bounded too, for a file that grew after the check
        with pytest.raises(UploadTooLargeError, match="holds more than"):
            list(read_file(path, log=ReadLog(), limits=ReadLimits(max_file_bytes=size // 2)))


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_an_over_long_record_is_refused_or_skipped_and_the_rest_is_read(kind, tmp_path):
    limits = ReadLimits(max_line_chars=1_000)
    rows = [("Short One", "The first abstract."), ("Long", "word " * 400), ("Short Two", "Two.")]
    path = tmp_path / f"papers.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in rows))
        line = 2
    else:
        path.write_text("title,abstract\n" + "".join(f"{t},{a}\n" for t, a in rows))
        line = 3
    with pytest.raises(UploadTooLargeError, match=rf":{line}: a line of 2,0\d\d characters"):
        list(read_file(path, log=ReadLog(), limits=limits))
    log = ReadLog()
    papers = list(read_file(path, log=log, strict=False, limits=limits))
    assert [p.title for p in papers] == ["Short One", "Short Two"]
    (skipped,) = log.skipped
    assert skipped.line == line and "longer than the limit of 1,000" in skipped.reason


def test_an_over_long_listing_line_is_read_as_its_start(tmp_path):
    """In a listing a long line is abstract text: its start is read (and the abstract cut
    as any long one), the rest passed over without being held."""
    path = tmp_path / "listing.txt"
    second = "The second abstract, longer than its title."
    path.write_text(f"Short One\nThe first abstract.\nLong\n{'word ' * 400}\nShort Two\n{second}\n")
    log = ReadLog()
    papers = list(read_file(path, log=log, limits=ReadLimits(max_line_chars=1_000)))
    assert [p.title for p in papers] == ["Short One", "Long", "Short Two"]
    assert papers[1].abstract == ("word " * 200).strip()
    assert any(":4: a line of 2,001 characters" in w and "first 1,000" in w for w in log.warnings)


def test_a_minified_json_array_on_one_long_line_is_still_read(tmp_path):
    records = [{"title": f"Paper {n}", "abstract": "An abstract. " * 20} for n in range(50)]
    path = tmp_path / "array.json"
    path.write_text(json.dumps(records))
    assert len(path.read_text()) > 5_000
    papers = list(read_file(path, log=ReadLog(), limits=ReadLimits(max_line_chars=1_000)))
    assert len(papers) == 50


def test_url_date_and_authors_are_bounded_with_a_warning(tmp_path):
    record = {
        "title": "Quokka Routing",
        "abstract": "Quokkas route packets by scent.",
        "url": "https://example.org/" + "a" * 100_000,
        "date": "2024-01-01" + "9" * 1_000,
        "authors": [f"Author Number {n}" for n in range(5_000)],
    }
    path = tmp_path / "paper.jsonl"
    path.write_text(json.dumps(record) + "\n")
    log = ReadLog()
    (paper,) = read_file(path, log=log)
    assert paper.url is None and paper.date is None
    assert 0 < len(paper.authors) < 5_000 and sum(map(len, paper.authors)) <= 20_000
    assert paper.authors[0] == "Author Number 0"
    warnings = " | ".join(log.warnings)
    assert "url of 100,020 characters dropped (limit 2,000)" in warnings
    assert "date of 1,010 characters dropped (limit 64)" in warnings
    assert "cut to the first" in warnings and "of 5,000 authors (limit 20,000)" in warnings


def test_a_twenty_megabyte_url_never_reaches_the_answers(tmp_path):
    """The first version ingested it and printed 42 MB for every `ask --json`."""
    record = {"title": "Quokka Routing", "abstract": "Quokkas route packets by scent."}
    path = tmp_path / "paper.jsonl"
    path.write_text(json.dumps({**record, "url": "https://example.org/" + "a" * 20_000_000}))
    assistant = Assistant(Settings(home=tmp_path / "home", auto_ingest_bundled=False))
    with pytest.raises(UploadTooLargeError, match=r"a line of 20,000,\d{3} characters"):
        assistant.ingest([path])
    path.write_text(json.dumps({**record, "url": "https://example.org/" + "a" * 200_000}))
    report = assistant.ingest([path])
    assert report.added == 1 and any(
        "url of 200,020 characters dropped" in w for w in report.warnings
    )
    answer = assistant.ask("How do quokkas route packets?")
    assert len(json.dumps(answer.to_dict())) < 20_000


def test_a_malformed_record_is_still_a_malformed_record(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "T", "abstract": \n')
    with pytest.raises(MalformedRecordError, match=r"bad\.jsonl:1: not valid JSON"):
        list(read_file(path, log=ReadLog()))
