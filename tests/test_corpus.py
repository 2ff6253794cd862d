"""Corpus parsing: listing pages, JSON lines, CSV, folders, merging, ids, and the errors bad
input gets. Every expected parse below is written out by hand from the fixture text."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from rag_assistant import Assistant, corpus
from rag_assistant.corpus import ReadLimits
from rag_assistant.errors import (
    EmptySourceError,
    EncodingError,
    MalformedRecordError,
    MissingPathError,
    NoEntriesError,
    UnsupportedFileError,
    UploadTooLargeError,
)

# Abstracts are longer than a title line (and than 300 characters where the layout needs it,
# as real abstracts are), so the title/abstract pairing is unambiguous.
ALPHA_ABSTRACT = (
    "We propose Alpha, a sparse attention method for long inputs. Alpha keeps the top "
    "scoring blocks of the attention matrix and skips the rest, which reduces the cost of "
    "attention by a factor of four on inputs of 32k tokens while keeping accuracy on "
    "retrieval benchmarks within one point of dense attention."
)
BETA_ABSTRACT = (
    "Beta drafts tokens with a small model and verifies them with the large model in a "
    "single forward pass. On chat workloads Beta decodes twice as fast as standard "
    "autoregressive decoding, and its outputs are identical to those of the large model "
    "because every drafted token is verified before it is accepted."
)
DELTA_ABSTRACT_1 = (
    "Delta compresses the key-value cache of a transformer by merging the states of "
    "adjacent tokens whose keys are nearly parallel, so that long conversations fit in the "
    "memory of one accelerator. Merged states are weighted by how many tokens they stand "
    "for, which keeps the attention distribution close to the original one."
)
DELTA_ABSTRACT_2 = (
    "In experiments on four long-context benchmarks Delta stores the cache in a third of "
    "the memory and loses less than one point of accuracy, and it needs no training at "
    "all, so it can be applied to any pretrained model at inference time with a few "
    "lines of code and no change to the weights of the model."
)

LISTING = f"""new

Get trending papers in your email inbox!

Subscribe

byAK and the research community

Daily Papers

Mar 18

Alpha Sparse Attention for Long Inputs

{ALPHA_ABSTRACT}

12

SubscribeBeta Decoding: Fast Drafts with Small Models

{BETA_ABSTRACT}

Mar 19

Gamma: A Title Without Its Abstract

Delta Caching of Key-Value States

{DELTA_ABSTRACT_1}
{DELTA_ABSTRACT_2}
"""


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def parse(*paths, **options) -> corpus.ParseResult:
    return corpus.parse_paths(list(paths), **options)


# --- listing pages ----------------------------------------------------------------------


def test_listing_page_parse_written_out_by_hand(tmp_path):
    path = write(tmp_path / "page.txt", LISTING)
    result = parse(path)
    papers = list(result.papers.values())

    assert [(p.title, p.date) for p in papers] == [
        ("Alpha Sparse Attention for Long Inputs", "Mar 18"),
        # chrome glued to the title ("SubscribeBeta ...") is cut off
        ("Beta Decoding: Fast Drafts with Small Models", "Mar 18"),
        # a long line right after an abstract continues that abstract
        ("Delta Caching of Key-Value States", "Mar 19"),
    ]
    assert papers[0].abstract == ALPHA_ABSTRACT
    assert papers[1].abstract == BETA_ABSTRACT
    assert papers[2].abstract == DELTA_ABSTRACT_1 + " " + DELTA_ABSTRACT_2
    for p in papers:
        assert p.sources == [str(path.resolve())]
        assert p.url is None and p.authors == []
    # the title with no abstract after it is reported with its line number, not invented
    assert [(s.line, s.reason) for s in result.log.skipped] == [
        (25, "title without abstract: 'Gamma: A Title Without Its Abstract'")
    ]
    assert result.log.entries == 3
    assert any("cut page chrome glued to 'Beta Decoding" in w for w in result.log.warnings)


@pytest.mark.parametrize(
    "chrome",
    [
        "new",
        "Subscribe",
        "Daily Papers",
        "byAK and the research community",
        "Get trending papers in your email inbox!",
        "Get trending papers in your email inbox once a day!",
        "Mar 18",
        "Aug 20",
        "Published on Sep 3, 2024",
        "42",
        "·",
    ],
)
def test_page_chrome_lines_never_become_papers(tmp_path, chrome):
    text = (
        f"{chrome}\nAlpha Sparse Attention for Long Inputs\n{chrome}\n{ALPHA_ABSTRACT}\n{chrome}\n"
    )
    papers = list(parse(write(tmp_path / "p.txt", text)).papers.values())
    assert [(p.title, p.abstract) for p in papers] == [
        ("Alpha Sparse Attention for Long Inputs", ALPHA_ABSTRACT)
    ]


def test_listing_md_and_gzip_are_read_like_txt(tmp_path):
    md = write(tmp_path / "page.md", LISTING)
    gz = tmp_path / "page.txt.gz"
    gz.write_bytes(gzip.compress(LISTING.encode()))
    for path in (md, gz):
        titles = [p.title for p in parse(path).papers.values()]
        assert titles == [
            "Alpha Sparse Attention for Long Inputs",
            "Beta Decoding: Fast Drafts with Small Models",
            "Delta Caching of Key-Value States",
        ]


def test_bundled_corpus_holds_572_entries_and_530_papers():
    result = parse(corpus.bundled_corpus_dir())
    assert result.log.entries == 572
    assert len(result.papers) == 530
    assert result.log.skipped == []
    assert result.log.sources == [
        "bundled:000_ec93643d3fa06c7b.txt",
        "bundled:001_73ae1aee93daa696.txt",
        "bundled:002_5cbc21105e64d11d.txt",
        "bundled:003_ba0ccbb7d12615d2.txt",
        "bundled:004_c563af4bc4f668b1.txt",
    ]
    titles = {p.title for p in result.papers.values()}
    # the one title glued to page chrome in the bundled pages is recovered
    assert (
        "Speculative Prefill: Turbocharging TTFT with Lightweight and Training-Free Token "
        "Importance Estimation" in titles
    )
    assert not any(t.startswith(("Subscribe", "new", "Get trending")) for t in titles)
    # 572 - 530 = 42 repeated entries, all merged into papers with several sources
    repeats = sum(len(p.sources) - 1 for p in result.papers.values())
    assert repeats == 42
    hyper = result.papers["hyperattention-long-context-attention-in-near-808dc9b20f"]
    assert hyper.title == "HyperAttention: Long-context Attention in Near-Linear Time"
    assert hyper.sources == ["bundled:003_ba0ccbb7d12615d2.txt"]
    assert hyper.date == "Mar 14"


# --- ids ------------------------------------------------------------------------------------


def test_paper_id_is_a_slug_plus_hash_of_the_normalized_title():
    title = "HyperAttention: Long-context Attention in Near-Linear Time"
    norm = "hyperattention long context attention in near linear time"
    assert corpus.normalize_title(title) == norm
    expected = (
        "hyperattention-long-context-attention-in-near-"
        + hashlib.sha1(norm.encode()).hexdigest()[:10]
    )
    assert corpus.paper_id_for_title(title) == expected
    assert expected == "hyperattention-long-context-attention-in-near-808dc9b20f"  # as README


@pytest.mark.parametrize(
    "variant",
    [
        "hyperattention: long-context attention in near-linear time",
        "HyperAttention -- Long context Attention in Near Linear Time",
        "  HyperAttention:  Long-context   Attention in Near-Linear Time.",
        "HYPERATTENTION LONG-CONTEXT ATTENTION IN NEAR-LINEAR TIME",
    ],
)
def test_paper_id_ignores_case_punctuation_and_spacing(variant):
    assert (
        corpus.paper_id_for_title(variant)
        == "hyperattention-long-context-attention-in-near-808dc9b20f"
    )


def test_paper_id_ignores_accents_but_not_words():
    assert corpus.paper_id_for_title("Café Models") == corpus.paper_id_for_title("Cafe models")
    assert corpus.paper_id_for_title("Cafe Models") != corpus.paper_id_for_title("Cafe Model")


def test_long_titles_keep_the_slug_short():
    pid = corpus.paper_id_for_title(
        "Supercalifragilisticexpialidocious Hippopotomonstrosesquippedaliophobia Study"
    )
    # the first word fits (34 characters); adding the second would pass 48
    assert pid.startswith("supercalifragilisticexpialidocious-")
    assert len(pid) == len("supercalifragilisticexpialidocious") + 1 + 10


# --- records: JSON lines, JSON arrays, CSV ----------------------------------------------------


def test_jsonl_records_with_optional_fields(tmp_path):
    lines = [
        {
            "title": "Alpha Sparse Attention for Long Inputs",
            "abstract": "Alpha keeps the top blocks.  It is  fast.",
            "url": "https://example.org/alpha",
            "authors": ["Ada Lovelace", "Alan Turing"],
            "date": "2024-03-18",
        },
        {
            "title": "Beta Decoding",
            "abstract": "Beta drafts tokens.",
            "authors": "A. One, B. Two and C. Three",
        },
    ]
    path = write(tmp_path / "papers.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    alpha, beta = parse(path).papers.values()
    assert alpha.paper_id == corpus.paper_id_for_title("Alpha Sparse Attention for Long Inputs")
    assert alpha.abstract == "Alpha keeps the top blocks. It is fast."  # white space collapsed
    assert alpha.url == "https://example.org/alpha"
    assert alpha.authors == ["Ada Lovelace", "Alan Turing"]
    assert alpha.date == "2024-03-18"
    assert alpha.sources == [str(path.resolve())]
    assert beta.authors == ["A. One", "B. Two", "C. Three"]
    assert (beta.url, beta.date) == (None, None)


def test_json_array_and_ndjson_and_gzip(tmp_path):
    records = [
        {"title": "Alpha", "abstract": "About alpha."},
        {"title": "Beta", "abstract": "About beta."},
    ]
    array = write(tmp_path / "a.json", json.dumps(records, indent=2))
    nd = write(tmp_path / "b.ndjson", "\n".join(json.dumps(r) for r in records))
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in records).encode()))
    for path in (array, nd, gz):
        assert [(p.title, p.abstract) for p in parse(path).papers.values()] == [
            ("Alpha", "About alpha."),
            ("Beta", "About beta."),
        ]


def test_csv_and_tsv_columns(tmp_path):
    csv_text = (
        "Title,Abstract,URL,Authors,Date\n"
        'Alpha,"Alpha keeps blocks, and skips the rest.\nIt is fast.",https://x.org/a,'
        '"Ada Lovelace; Alan Turing",2024-03-18\n'
        "Beta,Beta drafts tokens.,,,\n"
    )
    path = write(tmp_path / "papers.csv", csv_text)
    alpha, beta = parse(path).papers.values()
    assert alpha.title == "Alpha"
    assert alpha.abstract == "Alpha keeps blocks, and skips the rest. It is fast."
    assert alpha.url == "https://x.org/a"
    assert alpha.authors == ["Ada Lovelace", "Alan Turing"]
    assert alpha.date == "2024-03-18"
    assert (beta.abstract, beta.url, beta.authors, beta.date) == (
        "Beta drafts tokens.",
        None,
        [],
        None,
    )

    tsv = write(tmp_path / "papers.tsv", "title\tabstract\nGamma\tGamma, with a comma.\n")
    assert [(p.title, p.abstract) for p in parse(tsv).papers.values()] == [
        ("Gamma", "Gamma, with a comma.")
    ]


# --- folders and merging ----------------------------------------------------------------------


def test_folders_are_searched_recursively_skipping_hidden_and_other_files(tmp_path):
    root = tmp_path / "papers"
    write(root / "a.jsonl", json.dumps({"title": "Alpha", "abstract": "About alpha."}))
    write(root / "deeper" / "b.csv", "title,abstract\nBeta,About beta.\n")
    write(root / ".cache" / "c.jsonl", json.dumps({"title": "Hidden", "abstract": "No."}))
    write(root / "notes.pdf", "not a paper file")
    files = corpus.discover([root])
    assert [f.relative_to(root).as_posix() for f in files] == ["a.jsonl", "deeper/b.csv"]
    assert sorted(p.title for p in parse(root).papers.values()) == ["Alpha", "Beta"]


def test_same_paper_in_several_files_is_one_paper_with_every_source(tmp_path):
    listing = write(tmp_path / "page.txt", LISTING)
    records = write(
        tmp_path / "more.jsonl",
        json.dumps(
            {
                "title": "alpha sparse attention for long inputs.",  # other case/punctuation
                "abstract": ALPHA_ABSTRACT,
                "url": "https://example.org/alpha",
            }
        ),
    )
    result = parse(listing, records)
    assert result.log.entries == 4
    assert len(result.papers) == 3
    alpha = result.papers[corpus.paper_id_for_title("Alpha Sparse Attention for Long Inputs")]
    assert alpha.title == "Alpha Sparse Attention for Long Inputs"  # the first entry's title
    assert alpha.sources == [str(listing.resolve()), str(records.resolve())]
    assert alpha.url == "https://example.org/alpha"  # filled in from the second entry
    assert alpha.date == "Mar 18"  # kept from the first
    assert not result.log.warnings[1:]  # only the glued-chrome warning: same abstract


def test_a_different_abstract_for_the_same_paper_keeps_the_first_and_says_so(tmp_path):
    a = write(tmp_path / "a.jsonl", json.dumps({"title": "Alpha", "abstract": "First text."}))
    b = write(tmp_path / "b.jsonl", json.dumps({"title": "ALPHA", "abstract": "Second text."}))
    result = parse(a, b)
    (paper,) = result.papers.values()
    assert paper.abstract == "First text."
    assert len(result.log.warnings) == 1 and "different abstracts" in result.log.warnings[0]


def test_the_same_file_named_twice_is_read_once(tmp_path):
    path = write(tmp_path / "a.jsonl", json.dumps({"title": "Alpha", "abstract": "About."}))
    assert corpus.discover([path, tmp_path, str(path)]) == [path]


# --- bad input: clear, specific errors ----------------------------------------------------


def test_malformed_jsonl_line_is_named_by_its_line_number(tmp_path):
    path = write(
        tmp_path / "bad.jsonl",
        '{"title": "Alpha", "abstract": "About alpha."}\n'
        "\n"
        '{"title": "Beta", "abstract": "About beta."}\n'
        '{"title": "Gamma", "abstract": \n'
        '{"title": "Delta", "abstract": "About delta."}\n',
    )
    with pytest.raises(MalformedRecordError) as err:
        parse(path)
    message = str(err.value)
    # line 4 is cut off after its 31 characters: the value is missing at column 32
    assert message == (
        f"{path}:4: not valid JSON (Expecting value at column 32) (fix the record, or "
        "ingest with --skip-invalid)"
    )


def test_skip_invalid_reports_broken_records_and_reads_the_rest(tmp_path):
    path = write(
        tmp_path / "bad.jsonl",
        '{"title": "Alpha", "abstract": "About alpha."}\n'
        '{"title": "Gamma", "abstract": \n'
        '{"title": "No abstract"}\n'
        '["a list"]\n'
        '{"title": "Delta", "abstract": "About delta."}\n',
    )
    result = parse(path, strict=False)
    assert [p.title for p in result.papers.values()] == ["Alpha", "Delta"]
    assert [(s.line, s.reason.split(" (")[0]) for s in result.log.skipped] == [
        (2, "not valid JSON"),
        (3, "missing 'abstract'"),
        (4, "not an object with 'title' and 'abstract'"),
    ]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"abstract": "x"}, "missing 'title'"),
        ({"title": "x"}, "missing 'abstract'"),
        ({"title": "  ", "abstract": "x"}, "empty 'title'"),
        ({"title": "x", "abstract": "   "}, "empty 'abstract'"),
        ({"title": 3, "abstract": "x"}, "'title' must be a string"),
        ({"title": "x", "abstract": "y", "url": 5}, "'url' must be a string"),
        ({"title": "x", "abstract": "y", "authors": 5}, "'authors' must be a string or a list"),
    ],
)
def test_unusable_records_say_why(tmp_path, record, reason):
    path = write(tmp_path / "r.jsonl", json.dumps(record) + "\n")
    with pytest.raises(MalformedRecordError, match=rf"r\.jsonl:1: {reason}"):
        parse(path)


def test_csv_without_an_abstract_column(tmp_path):
    path = write(tmp_path / "p.csv", "title,summary\nAlpha,About alpha.\n")
    with pytest.raises(MalformedRecordError, match="no 'abstract' column"):
        parse(path)


def test_missing_path(tmp_path):
    with pytest.raises(MissingPathError, match=r"no such file or folder: .*nowhere\.jsonl"):
        corpus.discover([tmp_path / "nowhere.jsonl"])


def test_unsupported_file_type_names_the_supported_ones(tmp_path):
    path = write(tmp_path / "paper.pdf", "%PDF-1.4")
    with pytest.raises(
        UnsupportedFileError, match=r"paper\.pdf: unsupported file type; use .*\.jsonl"
    ):
        corpus.discover([path])


def test_empty_file_and_empty_folder(tmp_path):
    with pytest.raises(EmptySourceError, match="the file is empty"):
        parse(write(tmp_path / "empty.jsonl", ""))
    (tmp_path / "nothing").mkdir()
    write(tmp_path / "nothing" / "readme.pdf", "x")
    with pytest.raises(EmptySourceError, match="holds no paper files"):
        parse(tmp_path / "nothing")


def test_listing_without_entries(tmp_path):
    path = write(tmp_path / "chrome.txt", "new\nSubscribe\nDaily Papers\nMar 18\n")
    with pytest.raises(NoEntriesError, match="no title/abstract entries found"):
        parse(path)


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("latin.txt", "Title {i}\nThe abstract of paper {i}, longer than its title."),
        ("latin.jsonl", '{{"title": "T{i}", "abstract": "A{i}"}}'),
        ("latin.csv", "T{i},A{i}"),
    ],
)
def test_latin1_file_is_an_encoding_error_that_names_the_line(tmp_path, name, line):
    # the bad byte sits far past the first block the text reader decodes ahead
    header = ["title,abstract"] if name.endswith(".csv") else []
    lines = header + "\n".join(line.format(i=i) for i in range(1, 400)).split("\n")
    lines[599 if name.endswith(".txt") else 299] += " caf\xe9"
    path = tmp_path / name
    path.write_bytes("\n".join(lines).encode("latin-1"))
    bad = 600 if name.endswith(".txt") else 300
    with pytest.raises(EncodingError, match=rf"not UTF-8 text \(byte 0xe9 on line {bad}\)"):
        parse(path)


def test_gzip_latin1_file_names_the_line_too(tmp_path):
    path = tmp_path / "latin.txt.gz"
    path.write_bytes(gzip.compress(b"Alpha\n" + ALPHA_ABSTRACT.encode() + b"\nCaf\xe9 Models\n"))
    with pytest.raises(EncodingError, match=r"byte 0xe9 on line 3\)"):
        parse(path)


def test_json_that_does_not_hold_records(tmp_path):
    path = write(tmp_path / "one.json", '[{"title": "Alpha", "abstract": "About alpha."}')
    with pytest.raises(MalformedRecordError, match=r"one\.json:1: not valid JSON"):
        parse(path)
    path = write(tmp_path / "object.json", '{"papers": []}\n')
    with pytest.raises(MalformedRecordError, match=r"object\.json:1: missing 'title'"):
        parse(path)  # a wrapper object is read as one record, without a title
    path = write(tmp_path / "string.json", '"a paper"\n')
    with pytest.raises(MalformedRecordError, match=r"string\.json:1: not an object with"):
        parse(path)


def test_a_csv_row_with_more_cells_than_the_header(tmp_path):
    path = write(tmp_path / "p.csv", "title,abstract\nAlpha,About alpha.\nBeta,About beta.,extra\n")
    with pytest.raises(MalformedRecordError, match=r"p\.csv:3: row has more cells than the header"):
        parse(path)
    assert [p.title for p in parse(path, strict=False).papers.values()] == ["Alpha"]


def test_a_truncated_gzip_file_cannot_be_read(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(
        "".join(
            json.dumps({"title": f"T{i}", "abstract": "A" * 50}) + "\n" for i in range(200)
        ).encode()
    )
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EncodingError, match=r"cut\.jsonl\.gz: cannot be read \("):
        parse(path)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = write(tmp_path / "big.jsonl", json.dumps({"title": "A", "abstract": "B" * 3000}))
    with pytest.raises(UploadTooLargeError, match=r"big\.jsonl: holds more than 2,048 bytes"):
        parse(path, limits=ReadLimits(max_file_bytes=2048))
    assert len(parse(path, limits=ReadLimits(max_file_bytes=4096)).papers) == 1


def test_an_abstract_over_the_length_limit_is_cut_and_reported(tmp_path):
    words = " ".join(f"w{i:03d}" for i in range(100))  # 100 words of 4 characters
    path = write(tmp_path / "long.jsonl", json.dumps({"title": "Long", "abstract": words}))
    result = parse(path, limits=ReadLimits(max_abstract_chars=102))
    (paper,) = result.papers.values()
    # 102 characters end inside the 21st word; the cut goes back to the last whole word
    assert paper.abstract == " ".join(f"w{i:03d}" for i in range(20))
    assert result.log.warnings == [f"{path}:1: abstract of 499 characters cut to 102"]


def test_the_title_length_limit_is_a_setting(tmp_path):
    """A listing line longer than ``limits.max_title_chars`` is abstract text; the setting
    moves that line (a long title is read as one when the limit allows it)."""
    title = "A Study of " + "Very " * 64 + "Long Titles"  # 342 characters
    abstract = "We study long titles. " * 20
    path = tmp_path / "page.txt"
    path.write_text(f"{title}\n{abstract}\n")
    assert 300 < len(title) < 400
    with pytest.raises(NoEntriesError):
        parse(path)  # the default limit, 300: no title line
    papers = parse(path, limits=ReadLimits(max_title_chars=400)).papers
    assert [p.title for p in papers.values()] == [title]

    assistant = Assistant(home=tmp_path / "home", limits={"max_title_chars": 400})
    report = assistant.ingest([path])
    assert report.added == 1
