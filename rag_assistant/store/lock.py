"""The write lock: one process writes to an index at a time (``write.lock``, an advisory
``flock`` that the kernel releases when the holder dies, so a killed ingest leaves no stale
lock behind). The thread that holds it may take it again (a caller that must keep the
index still across several steps, such as the UI placing an upload and ingesting it); any
other thread or process gets :class:`IndexBusyError`."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexBusyError

LOCK = "write.lock"
_held = threading.local()  # the homes (resolved) whose lock this thread holds


@contextlib.contextmanager
def writing(home: Path) -> Iterator[None]:
    """Hold the write lock of the index in ``home``, or raise :class:`IndexBusyError` at
    once naming the process that holds it. Reentrant for the thread that holds it."""
    home.mkdir(parents=True, exist_ok=True)
    key = str(home.resolve())
    held: set[str] = _held.__dict__.setdefault("homes", set())
    if key in held:
        yield
        return
    handle = open(home / LOCK, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexBusyError(
                f"the index in {home} is busy: {holder} is writing to it; try again when it "
                "has finished"
            ) from None
        held.add(key)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:  # only the holder clears its pid (a refused writer leaves it for the next)
            held.discard(key)
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
    finally:
        handle.close()  # releases the lock


def holder(home: Path) -> str | None:
    """Who holds the write lock of the index in ``home`` ("pid N"), or None when nobody
    writes. Takes and releases the lock to find out; never blocks."""
    path = home / LOCK
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None
