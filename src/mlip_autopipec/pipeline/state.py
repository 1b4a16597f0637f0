"""What a work directory was made with, and whether a new config may continue it.

``workdir/state.json`` (:class:`~mlip_autopipec.pipeline.records.RunState`) keeps a fingerprint of every config section whose change
would invalidate finished work (the seed, the pool, the labels, the split, the
fit).  Settings that change how, not what, is computed (commands, worker
counts, timeouts, the report's targets) are left out, so they can change freely
between runs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.pipeline import migrate
from mlip_autopipec.pipeline.migrate import read_record
from mlip_autopipec.pipeline.records import ActiveLearningRecord, RunState, dump_record

STATE_FILE = "state.json"

#: sections whose change invalidates finished work, with the fields that do not matter
#: (``structure:`` folds into ``seeds``, so the seeds stand for both; a state written before ``seeds``
#: existed has a ``structure`` fingerprint only and is compared by the seeds of its recorded config)
INVALIDATING: dict[str, set[str]] = {
    "seeds": set(),
    "generator": set(),
    "oracle": {"command", "env", "timeout_s", "keep_scratch", "max_failure_fraction", "max_attempts"},
    "database": set(),
    "training": {"timeout_s", "display_step"},
}
#: sections whose data lives in the database: a change there means a new database
DATA_SECTIONS = ("seeds", "generator", "oracle", "database")


def fingerprint(data: Any) -> str:
    """Stable SHA-256 of JSON-able data."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def section_fingerprints(cfg: PipelineConfig) -> dict[str, str]:
    dumped = cfg.model_dump(mode="json")
    out = {}
    for section, ignored in INVALIDATING.items():
        value = dumped.get(section)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in ignored}
        out[section] = fingerprint(value)
    return out


def read_state(workdir: Path) -> RunState | None:
    """``workdir/state.json`` (None: a new work directory); the layout of version 0 is migrated."""
    workdir = Path(workdir)
    return read_record(workdir / STATE_FILE, RunState, workdir, lambda data: migrate.state_v0(data, workdir))


def write_state(workdir: Path, cfg: PipelineConfig, active_learning: ActiveLearningRecord | None = None) -> RunState:
    """Record ``cfg`` (and active learning's progress, when given; else the recorded one is kept) in ``state.json``."""
    old = read_state(workdir)
    state = RunState(
        fingerprints=section_fingerprints(cfg),
        config=cfg.model_copy(update={"workdir": Path(".")}),
        updated=_dt.datetime.now().isoformat(timespec="seconds"),
        active_learning=active_learning if active_learning is not None else (old.active_learning if old else None),
    )
    dump_record(workdir / STATE_FILE, state, workdir)
    return state


def changed_sections(workdir: Path, cfg: PipelineConfig) -> list[str]:
    """Sections that differ from the ones the work directory was made with ([] for a new directory)."""
    state = read_state(workdir)
    if state is None:
        return []
    old = dict(state.fingerprints)
    if "seeds" not in old:  # a state from before `seeds`: its recorded config's seeds (its structure, folded)
        old["seeds"] = section_fingerprints(state.config)["seeds"]
    new = section_fingerprints(cfg)
    return [s for s in INVALIDATING if s in old and old[s] != new[s]]


def check_or_accept_changes(workdir: Path, cfg: PipelineConfig, database_file: Path | None, force: bool) -> list[str]:
    """Refuse a config that would invalidate finished work, unless ``force``.

    With ``force``, a database made with other data sections is moved aside
    (renamed, never deleted) so the run starts its data afresh; a changed
    training section simply leads to a new fit beside the old ones.
    Returns the changed sections.
    """
    changed = changed_sections(workdir, cfg)
    if not changed:
        return []
    if not force:
        raise ConfigurationError(
            f"the work directory {workdir} was made with a different configuration: section(s) "
            f"{', '.join(changed)} changed, which would invalidate finished work "
            "(structures, labels, splits or the fit). Run with --force to start those steps again "
            "(the old database is kept beside the new one), or give a new --workdir."
        )
    if database_file is not None and database_file.exists() and any(s in DATA_SECTIONS for s in changed):
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = database_file.with_name(f"{database_file.name}.replaced-{stamp}")
        shutil.move(database_file, aside)
    return changed
