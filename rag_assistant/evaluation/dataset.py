"""The Q&A files an evaluation runs: one JSON object per line with ``id``, ``question``,
``reference_answer``, ``gold_titles`` (exact index titles; ``[]`` for an unanswerable
question), ``key_facts``, ``kind`` (one of :data:`KINDS`), ``source_files`` and, for a
follow-up, ``follows`` (the id of the previous turn of the same conversation, on an earlier
line); optionally a free ``category`` (a non-empty string, e.g. ``near-miss-quantity``) that
the report aggregates by. Any other field is kept in :attr:`QAItem.extra`, unchecked.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .metrics import title_key

KINDS = ("single", "paraphrase", "multi", "unanswerable", "follow-up")
FIELDS = (
    "id",
    "question",
    "reference_answer",
    "gold_titles",
    "key_facts",
    "kind",
    "source_files",
    "follows",
    "category",
)


@dataclass(frozen=True)
class QAItem:
    """One question of a Q&A file; ``line`` is its line number in the file."""

    id: str
    question: str
    reference_answer: str
    gold_titles: tuple[str, ...]
    key_facts: tuple[str, ...]
    kind: str
    source_files: tuple[str, ...]
    follows: str | None
    line: int
    category: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def answerable(self) -> bool:
        return bool(self.gold_titles)


def _strings(value: object, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(f"{where}: {name!r} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _text(record: dict, name: str, where: str, *, empty_ok: bool = False) -> str:
    value = record.get(name)
    if not isinstance(value, str) or (not empty_ok and not value.strip()):
        raise InputError(f"{where}: {name!r} must be a non-empty string")
    return value.strip()


def parse_item(record: object, where: str, line: int) -> QAItem:
    """One Q&A record checked field by field; ``where`` names it in errors."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, found {type(record).__name__}")
    missing = [
        name
        for name in ("id", "question", "reference_answer", "gold_titles", "key_facts", "kind")
        if name not in record
    ]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    kind = record["kind"]
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    gold = _strings(record["gold_titles"], where, "gold_titles")
    if kind == "unanswerable" and gold:
        raise InputError(f"{where}: an unanswerable question must have gold_titles []")
    if kind in ("single", "paraphrase") and not gold:
        raise InputError(f"{where}: a {kind} question needs at least one gold title")
    if kind == "multi" and len(gold) < 2:
        raise InputError(f"{where}: a multi question needs at least two gold titles")
    follows = record.get("follows")
    if kind == "follow-up" and not (isinstance(follows, str) and follows.strip()):
        raise InputError(f"{where}: a follow-up needs 'follows': the id of the previous turn")
    if kind != "follow-up" and follows is not None:
        raise InputError(f"{where}: only a follow-up may have 'follows' (kind is {kind!r})")
    category = _text(record, "category", where) if "category" in record else None
    return QAItem(
        id=_text(record, "id", where),
        question=_text(record, "question", where),
        reference_answer=_text(record, "reference_answer", where, empty_ok=True),
        gold_titles=gold,
        key_facts=_strings(record["key_facts"], where, "key_facts"),
        kind=kind,
        source_files=_strings(record.get("source_files", []), where, "source_files"),
        follows=follows.strip() if isinstance(follows, str) else None,
        line=line,
        category=category,
        extra={k: v for k, v in record.items() if k not in FIELDS},
    )


def load_qa(path: str | Path) -> list[QAItem]:
    """The items of a Q&A file (JSON lines), checked: every error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"the Q&A file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        item = parse_item(record, where, number)
        if item.id in seen:
            raise InputError(f"{where}: id {item.id!r} is already used on line {seen[item.id]}")
        if item.follows is not None and item.follows not in seen:
            raise InputError(
                f"{where}: 'follows' is {item.follows!r}, which is not the id of an earlier line"
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise InputError(f"{path} holds no questions")
    return items


def check_gold_titles(
    items: Sequence[QAItem], titles: Iterable[str], name: str = "", *, hint: str = ""
) -> None:
    """Every gold title must be a title of the index (compared by :func:`title_key`);
    ``hint`` is added to the error (what to do in the interface the user is in)."""
    known = {title_key(t): t for t in titles}
    for item in items:
        for gold in item.gold_titles:
            if title_key(gold) not in known:
                close = difflib.get_close_matches(gold, list(known.values()), n=1, cutoff=0.6)
                mean = f"; did you mean {close[0]!r}?" if close else ""
                raise InputError(
                    f"{name or 'Q&A file'} line {item.line}: gold title {gold!r} is not in the "
                    f"index{mean}{hint}"
                )


def select(
    items: Sequence[QAItem],
    *,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    name: str = "",
) -> tuple[list[QAItem], dict | None]:
    """The questions a run asks: the first ``limit``, or those with ``ids`` plus the earlier
    turns of their conversations (a follow-up is asked after the turns it follows), in file
    order. Returns them and the subset's description for the report (None: all of them)."""
    if limit is not None and ids:
        raise InputError("choose either a limit or ids, not both")
    where = name or "the Q&A file"
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"the limit must be a whole number of at least 1, not {limit!r}")
        if limit >= len(items):
            return list(items), None
        return list(items[:limit]), {
            "questions_in_file": len(items),
            "limit": limit,
            "ids": None,
            "added_as_context": [],
        }
    if not ids:
        return list(items), None
    by_id = {item.id: item for item in items}
    for wanted in ids:
        if wanted not in by_id:
            close = difflib.get_close_matches(wanted, list(by_id), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{where} has no question with id {wanted!r}{hint}")
    chosen: set[str] = set()
    for wanted in ids:
        current: str | None = wanted
        while current is not None and current not in chosen:
            chosen.add(current)
            current = by_id[current].follows
    picked = [item for item in items if item.id in chosen]
    if len(picked) == len(items):
        return picked, None
    return picked, {
        "questions_in_file": len(items),
        "limit": None,
        "ids": list(dict.fromkeys(ids)),
        "added_as_context": [item.id for item in picked if item.id not in set(ids)],
    }
