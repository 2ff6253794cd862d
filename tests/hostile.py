"""A question the bundled corpus answers, and a paper whose title and abstract try to run
script in the page: shared by the UI handler tests and the browser tests."""

from __future__ import annotations

import json
from pathlib import Path

HYPER = "HyperAttention: Long-context Attention in Near-Linear Time"
QUESTION = "What is HyperAttention and how fast is it?"
EVIL_TITLE = "Quokka Sorting <script>window.__xss=1</script> for Marsupials"
EVIL_ABSTRACT = (
    "Quokka sorting arranges marsupials by height in linear time. "
    '<img src=x onerror="window.__xss=2"> Quokka sorting is [stable](javascript:window.__xss=3) '
    "and needs no extra memory. <script>window.__xss=4</script> Quokka sorting beats bubble "
    "sort on every marsupial benchmark."
)


def write_evil_paper(folder: Path) -> Path:
    """The hostile paper as a JSON-lines file in ``folder``."""
    path = folder / "evil.jsonl"
    record = {"title": EVIL_TITLE, "abstract": EVIL_ABSTRACT, "url": "javascript:window.__xss=5"}
    path.write_text(json.dumps(record) + "\n")
    return path
