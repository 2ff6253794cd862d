"""Failpoints for crash tests: ``RAG_ASSISTANT_FAILPOINT=<name>`` makes the process kill
itself with SIGKILL when it reaches the point of that name (one environment lookup when
unset). The crash-safety tests use them to stop an ingest, a rebuild or a repair at exact
places (the ingest points also fire in the ingest a rebuild or repair runs); nothing else
should set the variable.
"""

from __future__ import annotations

import os
import signal

ENV = "RAG_ASSISTANT_FAILPOINT"

INGEST_POINTS = (
    "ingest:after-chunking",  # first batch chunked and analyzed, nothing committed
    "ingest:after-catalog",  # first batch committed to the catalog, no vectors yet
    "ingest:during-embedding",  # first vectors written to Chroma, not yet marked
    "ingest:after-chroma",  # Chroma in line with the catalog, lexical index not rebuilt
    "ingest:after-lexical",  # lexical index written, manifest not switched
    "ingest:during-manifest",  # new manifest written to its temp file, not renamed
)
REBUILD_POINTS = (
    "rebuild:copying",  # a batch of papers copied into the new catalog (rebuild/)
    "rebuild:before-switch",  # the new index complete and verified, the switch not begun
    "rebuild:during-switch",  # the new catalog in place, the old manifest still current
)
REPAIR_POINTS = (
    "repair:before-sync",  # damaged parts removed, nothing rebuilt yet
)
POINTS = INGEST_POINTS + REBUILD_POINTS + REPAIR_POINTS


def failpoint(name: str) -> None:
    """SIGKILL this process if the failpoint ``name`` is armed."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
