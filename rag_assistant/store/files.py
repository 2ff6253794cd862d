"""Atomic writes: a file is written beside its target, flushed to disk, then renamed over it,
so a reader (or a process killed half-way) sees the old file or the new one, never a part.

And what the operating system says when the index directory cannot be used (a full disk, a
read-only file system, permissions, a home that is a file), as the typed errors of
:mod:`rag_assistant.errors`: an index that cannot be read is not damaged, and nothing is
deleted because of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import (
    DiskFullError,
    HomeNotADirectoryError,
    IndexCorruptError,
    IndexPermissionError,
    IndexUnreadableError,
    ReadOnlyIndexError,
    StorageError,
)


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


@contextlib.contextmanager
def reading_part(what: str, fix: str) -> Iterator[None]:
    """Errors met while reading a derived part of the index (the lexical index, the copy of
    the vectors), raised as :class:`IndexCorruptError` naming ``what`` and the ``fix``."""
    try:
        yield
    except FileNotFoundError as exc:
        raise IndexCorruptError(
            f"{what} is missing ({Path(exc.filename or '').name}); {fix}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise IndexCorruptError(f"{what} is damaged ({exc}); {fix}") from None


def load_array(path: Path):
    """A ``.npy`` file, memory-mapped; one that is not a NumPy array file raises
    ``ValueError`` naming it (NumPy's own message for a garbled file suggests loading it
    with pickle, which no user of a damaged index should be told)."""
    import numpy as np

    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        raise ValueError(f"{path.name} is not a NumPy array file") from None


def strictly_increasing(ids: list[str]) -> bool:
    """Whether ``ids`` are sorted and unique: the order the rows of the lexical index and of
    the copy of the vectors are in (checked with C-level sort and set, not a Python loop:
    at 100,000 chunks the loop was 50 ms of every new process's first question)."""
    return ids == sorted(ids) and len(set(ids)) == len(ids)


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


# --- when the disk says no ----------------------------------------------------------------


def storage_error(exc: OSError, path: Path | str | None = None) -> StorageError | None:
    """The typed error for an OS error met on ``path`` (default: the error's file name): a
    full disk, a read-only file system, permission denied. None for any other error, which
    is a bug or unexpected and keeps its traceback."""
    where = path or exc.filename or "the index directory"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"the disk holding {where} is full ({exc.strerror}); free some space and try "
            "again: what was already stored is kept, and the next try completes the work"
        )
    if exc.errno == errno.EROFS:
        return ReadOnlyIndexError(
            f"{where} is on a read-only file system, so nothing can be written to the index; "
            "it is not damaged and nothing was changed. Make it writable, or use another "
            "index folder (RAG_ASSISTANT_HOME)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return IndexPermissionError(
            f"permission denied on {where}; it is not damaged and nothing was changed. Give "
            "the user running rag-assistant read and write access to it, or use another "
            "index folder (RAG_ASSISTANT_HOME)"
        )
    return None


@contextlib.contextmanager
def os_errors(path: Path | None = None) -> Iterator[None]:
    """Raise OS errors of the kinds :func:`storage_error` knows as its typed errors."""
    try:
        yield
    except OSError as exc:
        typed = storage_error(exc, path)
        if typed is None:
            raise
        raise typed from exc


def check_home(home: Path) -> None:
    """Raise :class:`HomeNotADirectoryError` when the index directory is a file or lies
    under one (a few ``stat`` calls)."""
    for candidate in (home, *home.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise HomeNotADirectoryError(
                    f"the index folder {home} cannot be used: {candidate} is a file, not a "
                    "folder; point RAG_ASSISTANT_HOME (or --home) at a folder"
                )
            return


def ensure_home(home: Path) -> None:
    """Create the index directory if needed; a home that is a file (or lies under one) and
    one that cannot be created raise typed errors."""
    check_home(home)
    with os_errors(home):
        home.mkdir(parents=True, exist_ok=True)


def why_unusable(path: Path) -> StorageError | None:
    """Why the file ``path`` of the index cannot be opened for reading and writing (or a
    file created beside it, as SQLite's journals are): permission denied, a read-only file
    system, a folder where a file should be. None when nothing is found."""
    try:
        if path.is_dir():
            return IndexUnreadableError(
                f"{path} is a folder, not a file; it is not damaged and was not changed. "
                "Move it away, then try again"
            )
        if path.exists():
            os.close(os.open(path, os.O_RDWR))
        probe = path.with_name(f".probe-{os.getpid()}")
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        probe.unlink()
    except OSError as exc:
        return storage_error(exc, exc.filename if exc.filename == str(path) else path.parent)
    return None
