"""What a work directory was made with, and whether a new config may continue it.

``workdir/state.json`` (:class:`~mlip_autopipec.records.run.RunState`) keeps
a fingerprint of every config section whose change would invalidate finished
work (the seeds, the pool, the labels, the fit).  Settings that change how,
not what, is computed (commands, worker counts, timeouts, the report's
targets) are left out, so they can change freely between runs; so is the split
(``validation_fraction``, ``split_seed``): the database splits its rows anew
in place, and the fit follows the data.

``--force`` accepts a changed config.  When a section whose data lives in the
database changed, the run starts its data afresh (:func:`start_afresh`): the
database file and the work directory's records of it (:data:`RECORDS`:
``state.json`` with active learning's progress, ``fits/latest.json``, ``al/``,
``report/``, ``oracle/``, ``properties/``) are moved aside, each renamed
``<name>.replaced-<time>`` in its place, never deleted.
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
from mlip_autopipec.records import ActiveLearningRecord, RunState, dump_record, migrate, read_record

STATE_FILE = "state.json"

#: sections whose change invalidates finished work, with the fields that do not matter
#: (``structure:`` folds into ``seeds``, so the seeds stand for both; a state written before ``seeds``
#: existed has a ``structure`` fingerprint only and is compared by the seeds of its recorded config)
INVALIDATING: dict[str, set[str]] = {
    "seeds": set(),
    "generator": set(),
    "oracle": {"command", "env", "timeout_s", "keep_scratch", "max_failure_fraction", "max_attempts"},
    "database": {"validation_fraction", "split_seed"},  # a new split: the rows are split again in place
    "training": {"timeout_s", "display_step"},
    "foundation_model": {"threads"},  # fingerprinted only when it explores (section_fingerprints)
}
#: sections whose data lives in the database: a change there means a new database
DATA_SECTIONS = ("seeds", "generator", "oracle", "database", "foundation_model")
#: sections that shape the database's rows: recorded in the database itself (its origin)
ORIGIN_SECTIONS = ("seeds", "generator", "oracle")
#: what a work directory records about its data, moved aside with the database by --force (paths in the workdir)
RECORDS = (STATE_FILE, "fits/latest.json", "al", "report", "oracle", "properties")


def fingerprint(data: Any) -> str:
    """Stable SHA-256 of JSON-able data."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def section_fingerprints(cfg: PipelineConfig) -> dict[str, str]:
    dumped = cfg.model_dump(mode="json")
    out = {}
    for section, ignored in INVALIDATING.items():
        value = dumped.get(section)
        if section == "foundation_model" and not (value or {}).get("explore"):
            value = None  # a model that does not explore leaves the data as it is without one
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
    """Sections that differ from the ones the work directory was made with ([] for a new directory).

    Compared through the config recorded in ``state.json``, fingerprinted by today's rules (a field that no
    longer matters, or one added since with its default, is no change).
    """
    state = read_state(workdir)
    if state is None:
        return []
    old, new = section_fingerprints(state.config), section_fingerprints(cfg)
    return [s for s in INVALIDATING if old[s] != new[s]]


def refusal(workdir: Path, changed: list[str]) -> ConfigurationError:
    """The error that refuses a config whose ``changed`` sections would invalidate finished work."""
    return ConfigurationError(
        f"the work directory {workdir} was made with a different configuration: section(s) "
        f"{', '.join(changed)} changed, which would invalidate finished work "
        "(structures, labels or the fit). Run with --force to start those steps again "
        "(the old database and records are kept beside the new ones), or give a new --workdir."
    )


def start_afresh(workdir: Path, database_file: Path | None) -> list[Path]:
    """Move the database file (when given) and the work directory's :data:`RECORDS` aside; return where to.

    Each keeps its folder and is renamed ``<name>.replaced-<time>`` (one time for all): nothing is deleted.
    """
    paths = [p for p in [database_file, *(workdir / record for record in RECORDS)] if p is not None and p.exists()]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 1
    while any(p.with_name(f"{p.name}.replaced-{stamp}").exists() for p in paths):  # twice in one second
        n += 1
        stamp = f"{stamp.split('.')[0]}.{n}"
    moved = []
    for path in paths:
        aside = path.with_name(f"{path.name}.replaced-{stamp}")
        shutil.move(path, aside)
        moved.append(aside)
    return moved


def check_or_accept_changes(workdir: Path, cfg: PipelineConfig, database_file: Path | None, force: bool) -> list[str]:
    """Refuse a config that would invalidate finished work, unless ``force``.

    With ``force``, a change of a data section starts the data afresh
    (:func:`start_afresh`); a changed training section simply leads to a new
    fit beside the old ones.  Returns the changed sections.
    """
    changed = changed_sections(workdir, cfg)
    if changed and not force:
        raise refusal(workdir, changed)
    if any(s in DATA_SECTIONS for s in changed):
        start_afresh(workdir, database_file)
    return changed
