"""Atomic writes: a file is written beside its target, flushed to disk, then renamed over it,
so a reader (or a process killed half-way) sees the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: Path, *, before_replace=None) -> Iterator[BinaryIO]:
    """Yield a binary handle on ``<path>.tmp``; on a clean exit it is fsynced and renamed to
    ``path`` (``before_replace``, if given, is called between the two: a failpoint)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str, *, before_replace=None) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_writer(path, before_replace=before_replace) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def replace_dir(tmp: Path, target: Path) -> None:
    """Make the fully written folder ``tmp`` the folder ``target``: its files are fsynced,
    the old ``target`` removed, ``tmp`` renamed (readers go through a manifest that names
    the folder, so they never see it half-way)."""
    for f in tmp.iterdir():
        if f.is_file():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
