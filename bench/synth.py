"""Synthetic arXiv-snapshot corpora and realistic questions, for the benchmark.

Nothing is shipped: the text is generated from the bundled sample corpus (530 real
abstracts) by a word-trigram chain, so word frequencies and phrasing are those of real
abstracts. Each paper also gets what real collections add as they grow: a method name of its
own (new vocabulary, as arXiv abstracts name their methods), authors, categories, an arXiv id
and an update date. Records have the shape of the arXiv metadata snapshot (JSON lines: ``id``,
``submitter``, ``authors``, ``title``, ``comments``, ``categories``, ``abstract``,
``versions``, ``update_date``, ``authors_parsed``), with its line breaks and the occasional
LaTeX in titles. Everything is seeded: the same seed and size give the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag_assistant import corpus

MIN_WORDS, MODE_WORDS, MAX_WORDS = (
    90,
    200,
    300,
)  # the bundled abstracts: 87 to 295 words, median 204

CATEGORIES = [  # primary category, weight (roughly arXiv's share among these)
    ("cs.LG", 20),
    ("cs.CV", 18),
    ("cs.CL", 16),
    ("cs.AI", 8),
    ("cs.IR", 4),
    ("stat.ML", 5),
    ("cs.RO", 4),
    ("cs.CR", 3),
    ("cs.SE", 3),
    ("eess.AS", 2),
    ("cs.DC", 2),
    ("cs.HC", 2),
    ("eess.IV", 2),
    ("math.OC", 2),
    ("q-bio.QM", 1),
]
FIRST = (
    "Wei Yuki Anna Lukas Priya Omar Sofia Jun Elena Mateo Chen Amara Noah Hana Ivan Leila "
    "Diego Mei Tomas Aisha Felix Nora Ravi Ines Kenji Olga Samuel Zara Hugo Lina"
).split()
LAST = (
    "Zhang Tanaka Müller Kumar Haddad Rossi Kim Petrova García Li Okafor Wang Schmidt Sato "
    "Novak Silva Chen Nguyen Cohen Fischer Park Ivanova Singh Moreau Liu Costa Yamamoto "
    "Andersen Kowalski Dubois"
).split()
SYLLABLES = (
    "spec gra lo ra kv hyper fla sna tra mo de flex tok ret rie mem ca che vi sion dif fu "
    "sa ga la ma qu ant pro mpt ada lo gen ne ro pi co re al ign dra ft ze ta ve"
).split()
TITLE_LATEX = [
    "$O(n \\log n)$",
    "$k$-NN",
    "$\\ell_1$",
    "\\emph{in the Wild}",
    "$\\epsilon$-Optimal",
    "$\\mathcal{O}(1)$",
]
OFF_TOPIC = [
    "What is the best recipe for sourdough bread?",
    "Who won the football world cup in 1998?",
    "How do I repot an orchid?",
    "What are the opening hours of the Louvre?",
    "Which wine goes with grilled salmon?",
    "How tall is Mount Kilimanjaro?",
    "What is the plot of Moby-Dick?",
    "How do I change a bicycle tyre?",
    "Who painted the Sistine Chapel ceiling?",
    "What is a good stretching routine for runners?",
]
SYNONYMS = {
    "efficient": "fast",
    "large": "big",
    "language": "text",
    "models": "networks",
    "model": "network",
    "learning": "training",
    "generation": "synthesis",
    "retrieval": "search",
    "image": "picture",
    "images": "pictures",
    "improving": "enhancing",
    "towards": "toward",
    "via": "using",
    "robust": "reliable",
    "scalable": "large-scale",
    "benchmark": "evaluation suite",
    "reasoning": "inference",
    "adaptation": "adjustment",
    "attention": "self-attention",
    "compression": "reduction",
}
STOP = set("a an the of for and in on with to via from by at as is are its our their".split())


@dataclass
class Question:
    text: str
    paper_id: str | None  # the paper it was derived from (None: off-topic)
    kind: str


class Chain:
    """A word chain over texts (the next word drawn given the previous ``order`` words);
    :meth:`sentence` walks it from a sentence start."""

    def __init__(self, texts: list[str], order: int = 2) -> None:
        self.order = order
        self.next: dict[tuple[str, ...], list[str]] = {}
        self.starts: list[tuple[str, ...]] = []
        for text in texts:
            words = text.split()
            for i in range(len(words) - order):
                state = tuple(words[i : i + order])
                self.next.setdefault(state, []).append(words[i + order])
                if i == 0 or words[i - 1].endswith("."):
                    self.starts.append(state)

    def sentence(self, rng: random.Random, max_words: int = 60) -> list[str]:
        state = rng.choice(self.starts)
        out = list(state)
        while not out[-1].endswith(".") and len(out) < max_words:
            options = self.next.get(state)
            if not options:
                break
            out.append(rng.choice(options))
            state = tuple(out[-self.order :])
        if not out[-1].endswith("."):
            out[-1] = out[-1].rstrip(",;:") + "."
        return out


def _bundled() -> list[corpus.Paper]:
    result = corpus.parse_paths([corpus.bundled_corpus_dir()])
    return sorted(result.papers.values(), key=lambda p: p.paper_id)


def _title_phrase(title: str) -> str:
    """The descriptive part of a title (after a 'Name:' prefix)."""
    head, sep, tail = title.partition(":")
    return tail.strip() if sep and len(head.split()) <= 3 and tail.strip() else title


def _name_of(title: str) -> str | None:
    head, sep, tail = title.partition(":")
    return head.strip() if sep and len(head.split()) <= 2 and tail.strip() else None


def _wrap(text: str, width: int, indent: str) -> str:
    """Line breaks the way the arXiv snapshot has them."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return ("\n" + indent).join(lines)


class Generator:
    """Synthetic papers in the arXiv snapshot format, deterministic for a seed."""

    def __init__(self, seed: int = 0) -> None:
        papers = _bundled()
        self.abstracts = Chain([p.abstract for p in papers])
        self.titles = Chain([_title_phrase(p.title) + "." for p in papers], order=1)
        self.seed = seed
        self._names: set[str] = set()

    def _name(self, rng: random.Random) -> str:
        while True:
            parts = [rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))]
            name = "".join(
                p.capitalize() if i == 0 or rng.random() < 0.5 else p for i, p in enumerate(parts)
            )
            if rng.random() < 0.3:
                name = name[:2].upper() + name[2:]
            if rng.random() < 0.15:
                name += f"-{rng.randint(2, 9)}"
            if name not in self._names:
                self._names.add(name)
                return name

    def _phrase(self, rng: random.Random) -> str:
        for _ in range(20):
            words = self.titles.sentence(rng, max_words=14)
            if 3 <= len(words) <= 12:
                break
        words[-1] = words[-1].rstrip(".")
        return " ".join(
            w if w.isupper() or w[:1].isupper() else w.capitalize() if w.lower() not in STOP else w
            for w in words
        )

    def _abstract(self, rng: random.Random, name: str | None, phrase: str) -> str:
        target = int(rng.triangular(MIN_WORDS, MAX_WORDS, MODE_WORDS))
        sentences: list[str] = []
        count = 0
        intro_at = rng.randint(1, 2)
        while count < target:
            if name and len(sentences) == intro_at:
                words = f"We propose {name} for {phrase[:1].lower() + phrase[1:]}.".split()
            else:
                words = self.abstracts.sentence(rng)
            if count + len(words) > MAX_WORDS and count >= MIN_WORDS:
                break
            sentences.append(" ".join(words))
            count += len(words)
        if name and rng.random() < 0.4:
            sentences.append(
                f"Code is available at https://github.com/{rng.choice(LAST).lower()}-lab/{name}."
            )
        return " ".join(sentences)

    def records(self, n: int, *, start: int = 0) -> Iterator[dict]:
        """``n`` snapshot records from number ``start`` on; record i is the same for every n
        (when generated in order from 0: method names are kept unique)."""
        for i in range(start, start + n):
            rng = random.Random(f"{self.seed}:{i}")
            named = rng.random() < 0.55
            name = self._name(rng) if named else None
            phrase = self._phrase(rng)
            title = f"{name}: {phrase}" if name else phrase
            if rng.random() < 0.05:
                words = title.split()
                words.insert(rng.randint(1, len(words)), rng.choice(TITLE_LATEX))
                title = " ".join(words)
            abstract = self._abstract(rng, name, phrase)
            authors = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 8))]
            primary = rng.choices([c for c, _ in CATEGORIES], [w for _, w in CATEGORIES])[0]
            others = [c for c, _ in CATEGORIES if c != primary]
            cats = [primary, *rng.sample(others, rng.choice([0, 0, 1, 2]))]
            month = 1 + (i // 20_000) % 12
            year = 23 + (i // 240_000)
            day = 1 + rng.randrange(28)
            yield {
                "id": f"{year:02d}{month:02d}.{i % 100_000:05d}",
                "submitter": authors[0],
                "authors": ", ".join(authors[:-1])
                + (" and " if len(authors) > 1 else "")
                + authors[-1],
                "title": _wrap(title, 70, "  "),
                "comments": f"{rng.randint(6, 40)} pages, {rng.randint(1, 12)} figures",
                "journal-ref": None,
                "doi": None,
                "report-no": None,
                "categories": " ".join(cats),
                "license": "http://creativecommons.org/licenses/by/4.0/",
                "abstract": "  " + _wrap(abstract, 80, "") + "\n",
                "versions": [{"version": "v1", "created": f"Mon, {day} Jan 20{year} 10:00:00 GMT"}],
                "update_date": f"20{year}-{month:02d}-{day:02d}",
                "authors_parsed": [[a.split()[1], a.split()[0], ""] for a in authors],
            }

    def write(self, path: Path, n: int, *, start: int = 0) -> Path:
        """Write ``n`` records as JSON lines (the snapshot's ``.json`` naming)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in self.records(n, start=start):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        tmp.replace(path)
        return path


def questions_for(papers: list[tuple[str, str, str]], n: int, *, seed: int = 0) -> list[Question]:
    """``n`` realistic questions about ``papers`` ((paper_id, title, abstract)), one per
    paper in turn: method-name questions, topic questions from titles, paraphrases, phrases
    from abstracts, and one in ten off-topic (what the offline answerer should refuse)."""
    rng = random.Random(f"questions:{seed}")
    order = list(papers)
    rng.shuffle(order)
    out: list[Question] = []
    off = 0
    while len(out) < n:
        if len(out) % 10 == 9 or not order:
            out.append(Question(OFF_TOPIC[off % len(OFF_TOPIC)], None, "off-topic"))
            off += 1
            continue
        pid, title, abstract = order[len(out) % len(order)]
        title = corpus.clean_text(title)
        name = _name_of(title)
        phrase = _title_phrase(title).rstrip(".")
        low = phrase[:1].lower() + phrase[1:]
        kinds = ["topic", "topic", "paraphrase", "phrase"] + (["name", "name"] if name else [])
        kind = rng.choice(kinds)
        if kind == "name":
            text = rng.choice(
                [
                    f"What is {name}?",
                    f"What is {name} and how does it work?",
                    f"How does {name} compare to prior work?",
                ]
            )
        elif kind == "topic":
            text = rng.choice(
                [
                    f"Which papers study {low}?",
                    phrase,
                    f"How do methods for {low} work?",
                    f"What is new in {low}?",
                ]
            )
        elif kind == "paraphrase":
            words = [SYNONYMS.get(w.lower(), w.lower()) for w in phrase.split()]
            text = f"Are there approaches to {' '.join(words)}?"
        else:
            text = f"What is known about {_key_phrase(rng, abstract)}?"
        out.append(Question(text, pid, kind))
    return out


def _key_phrase(rng: random.Random, abstract: str) -> str:
    """3-6 consecutive words of one sentence, starting and ending on a content word."""
    words = [w.strip(".,;:()") for w in corpus.clean_text(abstract).split()]
    for _ in range(50):
        start = rng.randrange(len(words))
        span = words[start : start + rng.randint(3, 6)]
        ends = (span[0].lower(), span[-1].lower()) if span else ("", "")
        if len(span) >= 3 and all(span) and not STOP.intersection(ends):
            return " ".join(span)
    return " ".join(words[:4])


def sample_for_questions(
    path: Path, n_papers: int, n_questions: int, *, seed: int = 0
) -> list[tuple[str, str, str]]:
    """(paper_id, title, abstract) of the papers questions are drawn from, read back from
    the written file (streamed: only the chosen lines are kept)."""
    rng = random.Random(f"pick:{seed}")
    wanted = set(rng.sample(range(n_papers), min(n_papers, max(n_questions, 1))))
    picked = []
    with open(path, encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i in wanted:
                r = json.loads(line)
                picked.append(("arxiv:" + r["id"], corpus.latex_to_text(r["title"]), r["abstract"]))
    return picked
