"""Token counting with tiktoken, offline.

tiktoken downloads its encodings on first use. llama-index-core ships ``cl100k_base`` and
``o200k_base`` in ``llama_index/core/_static/tiktoken_cache``; :func:`encoding` points
``TIKTOKEN_CACHE_DIR`` there (unless the user set it) before the first encoding is loaded.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import tiktoken

BUNDLED_ENCODINGS = ("cl100k_base", "o200k_base")


def bundled_cache_dir() -> Path | None:
    """The tiktoken cache shipped inside llama-index-core, without importing llama-index."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "_static" / "tiktoken_cache"
    return path if path.is_dir() else None


def ensure_offline_cache() -> None:
    """Set ``TIKTOKEN_CACHE_DIR`` to the bundled cache unless the user chose one."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    cache = bundled_cache_dir()
    if cache is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


@functools.lru_cache(maxsize=8)
def encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded from the offline cache."""
    ensure_offline_cache()
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(f"unknown tiktoken encoding {name!r}") from exc
    except OSError as exc:  # a download attempt on a machine without network
        raise ConfigurationError(
            f"tiktoken encoding {name!r} is not in the offline cache "
            f"({os.environ.get('TIKTOKEN_CACHE_DIR')}); use one of {', '.join(BUNDLED_ENCODINGS)}"
        ) from exc


def is_common_word(word: str) -> bool:
    """Whether ``word`` (lower case) is a common English word: one that ``cl100k_base``, whose
    vocabulary was built from frequent text, holds whole as one token after a space ("came",
    "laptop"). A misspelling ("atention", "tranformer") splits into pieces."""
    return len(encoding("cl100k_base").encode(" " + word)) == 1


def encoding_name_for_model(model: str) -> str:
    """The encoding tiktoken knows for an OpenAI ``model`` (``o200k_base`` for gpt-4o, 4.1, 5
    and the o-series); ``cl100k_base`` for a model tiktoken does not know (a local model's
    own tokenizer is not available offline, and counts come out close enough to budget)."""
    from tiktoken.model import encoding_name_for_model as tiktoken_name

    try:
        return tiktoken_name(model.rsplit("/", 1)[-1])
    except KeyError:
        return "cl100k_base"


def count(text: str, name: str = "cl100k_base") -> int:
    """Number of tokens ``text`` has in encoding ``name``."""
    return len(encoding(name).encode_ordinary(text))


def count_over(text: str, limit: int, name: str = "cl100k_base") -> int | None:
    """The number of tokens ``text`` has in encoding ``name`` when it is more than ``limit``;
    None when it is not.

    Every token of a tiktoken byte-pair encoding stands for at least one byte, so a text of
    at most ``limit`` UTF-8 bytes has at most ``limit`` tokens and is not tokenized: a
    question of ordinary length is checked without loading an encoding (which took about a
    tenth of a cold ``rag-assistant ask``)."""
    if len(text) <= limit and len(text.encode("utf-8")) <= limit:
        return None
    n = count(text, name)
    return n if n > limit else None


def truncate(text: str, max_tokens: int, name: str = "cl100k_base") -> str:
    """``text`` cut to at most ``max_tokens`` tokens (on a token boundary)."""
    enc = encoding(name)
    ids = enc.encode_ordinary(text)
    if len(ids) <= max_tokens:
        return text
    return enc.decode(ids[:max_tokens])
