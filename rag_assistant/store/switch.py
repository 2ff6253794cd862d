"""Switching to a rebuilt index, and the leftovers of rebuilds.

A rebuild (:mod:`.rebuild`) builds a complete index in ``rebuild/`` beside the live one and
verifies it; ``rebuild/rebuild.json`` then records the phase "switching", and the parts move
in: the new catalog replaces the live one (a damaged live catalog is kept as
``catalog.damaged.sqlite3``), the new lexical index and dense model move in, the new
manifest is written (readers switch), the parts it no longer names are removed. Each step
checks what is left to do, so a switch stopped anywhere is finished by running it again:
:func:`finish_switch` does it for the next writer (ingest, repair, rebuild, or the start of
the CLI or UI), since the live index is half switched meanwhile.

Any other leftover is never trusted: :func:`discard_leftovers` removes a ``rebuild/`` that
did not reach the switch (the live index never depended on it), and a
``catalog.rebuild.sqlite3`` of an earlier version when the live catalog is intact.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from typing import Literal

from pydantic import BaseModel, ValidationError

from ..errors import StorageError
from ..faults import failpoint
from .files import atomic_write
from .manifest import MANIFEST
from .parts import CATALOG, Store
from .sync import _cleanup

log = logging.getLogger(__name__)

STAGING = "rebuild"
STATE = "rebuild.json"
DAMAGED = "catalog.damaged.sqlite3"
LEGACY_BACKUP = "catalog.rebuild.sqlite3"  # what rebuilds of earlier versions left


class RebuildState(BaseModel):
    """``rebuild/rebuild.json``."""

    format: Literal[1] = 1
    id: str
    phase: Literal["building", "switching"]
    origin: Literal["catalog", "sources", "earlier backup"]
    papers: int  # what the index held: the rebuilt one holds as many
    keep_damaged: bool = False  # the live catalog is damaged: kept, not deleted


# --- the switch ----------------------------------------------------------------------------


def read_state(store: Store) -> RebuildState | None:
    """The state of a rebuild left in ``rebuild/``; None when there is none or it cannot
    be read (such a leftover is discarded, never trusted)."""
    try:
        return RebuildState.model_validate_json((store.home / STAGING / STATE).read_bytes())
    except (OSError, ValueError, ValidationError):
        return None


def write_state(store: Store, state: RebuildState) -> None:
    atomic_write(store.home / STAGING / STATE, state.model_dump_json(indent=2))


def finish_switch(store: Store) -> bool:
    """Finish switching to a verified rebuild that was stopped half-way (under the write
    lock); False when there is none."""
    state = read_state(store)
    if state is None or state.phase != "switching":
        return False
    log.info("finishing the switch to rebuild %s", state.id)
    switch(store)
    return True


def switch(store: Store) -> None:
    """Make the verified parts in ``rebuild/`` the index's. Every step checks what is left
    to do, so a switch stopped anywhere is finished by running it again."""
    state = read_state(store)
    assert state is not None and state.phase == "switching"
    home, staging = store.home, store.home / STAGING
    new_catalog, live = staging / CATALOG, home / CATALOG
    if new_catalog.exists():
        store.close()
        if state.keep_damaged and live.is_file() and live.stat().st_size:
            os.replace(live, home / DAMAGED)
        for suffix in ("-wal", "-shm", "-journal"):
            (home / (CATALOG + suffix)).unlink(missing_ok=True)
        os.replace(new_catalog, live)
    failpoint("rebuild:during-switch")
    for part in ("lexical", "dense", "vectors"):
        if not (staging / part).is_dir():
            continue
        (home / part).mkdir(exist_ok=True)
        for item in (staging / part).iterdir():
            target = home / part / item.name
            if item.name.endswith(".tmp"):
                continue
            if target.is_dir():  # numbered after the live ones: a leftover of a killed ingest
                shutil.rmtree(target)
            os.replace(item, target)
    staged = staging / MANIFEST
    if staged.exists():
        atomic_write(store.manifest_path, staged.read_bytes())
        staged.unlink()
    _cleanup(store)  # the old lexical index, dense model and collection
    for name in (LEGACY_BACKUP, LEGACY_BACKUP + "-journal"):
        (home / name).unlink(missing_ok=True)
    shutil.rmtree(staging)


def discard_leftovers(store: Store) -> list[str]:
    """Remove what an interrupted rebuild left that the index does not depend on (call after
    :func:`finish_switch`, under the write lock); returns what was removed."""
    notes = []
    staging = store.home / STAGING
    if staging.exists():
        _drop_staged_collections(store, read_state(store))
        shutil.rmtree(staging)
        notes.append(
            f"discarded {staging}, the unfinished work of an interrupted rebuild (the index "
            "did not depend on it)"
        )
    legacy = store.home / LEGACY_BACKUP
    if legacy.exists() and store.catalog_problem() is None:
        for name in (LEGACY_BACKUP, LEGACY_BACKUP + "-journal"):
            (store.home / name).unlink(missing_ok=True)
        notes.append(
            f"removed {legacy}, left by an interrupted rebuild of an earlier version (the "
            "catalog is intact)"
        )
    return notes


def _drop_staged_collections(store: Store, state: RebuildState | None) -> None:
    """Drop the Chroma collections of an unfinished rebuild (all staged ones when its state
    cannot be read), never the one the index uses."""
    manifest = store.read_manifest_or_none()
    index_id = manifest.index_id if manifest else None
    if store.has_catalog() and store.catalog_problem() is None:
        identity = store.catalog.identity()
        index_id = identity.index_id if identity else index_id
        dense = store.catalog.dense_state()
    else:
        dense = None
    if index_id is None:
        return
    keep = {dense.collection if dense else None, manifest.chroma.collection if manifest else None}
    stem = f"{store.settings.collection_prefix}_{index_id}_r"
    mine = re.compile(re.escape(stem) + (re.escape(state.id) + "-" if state else r"[0-9a-f]{8}-"))
    with contextlib.suppress(StorageError):  # a store that cannot be opened holds none
        for name in store.vectors.collection_names():
            if mine.match(name) and name not in keep:
                store.vectors.drop(name)
