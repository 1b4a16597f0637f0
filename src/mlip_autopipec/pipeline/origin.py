"""Whether the database may serve this run: what made it (its origin) against the config and the work directory.

The database records what made it (:class:`~mlip_autopipec.database.ownership.Origin`):
the fingerprints of the config sections that shape its rows
(:data:`~mlip_autopipec.pipeline.state.ORIGIN_SECTIONS`: seeds, generator,
oracle) and, for a file, the work directory it belongs to.  A run is refused,
in one sentence naming the database and the work directory, when

* its config would shape other rows than the database holds (a Au config
  pointed at a Cu run's database), or
* the database file is the one another work directory still uses (by any
  name: a hard link, a copy of a work directory whose config names an
  absolute path): two work directories share a database only through a
  PostgreSQL campaign, which is held by one driver at a time.

``--force`` accepts both: a file made with another config is moved aside with
the work directory's records (:func:`~mlip_autopipec.pipeline.state.start_afresh`);
a file of another work directory, made with this config, is taken over.  A
server campaign cannot be moved aside, so a config that differs from its
origin is refused even then.  A work directory that was moved or copied
(with its database) keeps its database: the origin's work directory no longer
uses that very file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database.location import campaign_of, database_file, redact_url
from mlip_autopipec.database.manager import read_origin
from mlip_autopipec.database.ownership import Origin
from mlip_autopipec.exceptions import DatabaseError, MlipAutopipecError
from mlip_autopipec.pipeline.context import database_location
from mlip_autopipec.pipeline.state import ORIGIN_SECTIONS, read_state, section_fingerprints


@dataclass(frozen=True)
class OriginVerdict:
    """How the database's origin compares with this run (empty: it may serve the run as it is)."""

    changed: tuple[str, ...] = ()  # sections the database was made with that differ from the config's
    owner: str | None = None  # another work directory that still uses this very database file

    @property
    def agrees(self) -> bool:
        return not self.changed and self.owner is None


def origin_here(cfg: PipelineConfig, workdir: Path) -> Origin:
    """What this run records in its database: its config's fingerprints and (for a file) its work directory."""
    fingerprints = section_fingerprints(cfg)
    is_file = database_file(database_location(cfg, workdir)) is not None
    return Origin({s: fingerprints[s] for s in ORIGIN_SECTIONS}, str(workdir.resolve()) if is_file else None)


def compare(recorded: Origin | None, here: Origin, owner: str | None) -> OriginVerdict:
    """The verdict on a database made as ``recorded`` (None: nothing recorded, e.g. new) for a run made as ``here``."""
    if recorded is None:
        return OriginVerdict()
    changed = tuple(
        s for s in ORIGIN_SECTIONS if s in recorded.fingerprints and recorded.fingerprints[s] != here.fingerprints[s]
    )
    return OriginVerdict(changed, owner)


def uses_file(workdir: Path, db_file: Path) -> bool:
    """Does the work directory ``workdir`` (by its ``state.json``) name this very file as its database?

    An unreadable record counts as yes (the run is refused; ``--force`` takes the file over).
    """
    try:
        state = read_state(workdir)
    except (MlipAutopipecError, OSError, ValueError):
        return True
    if state is None:
        return False
    theirs = database_file(database_location(state.config, workdir))
    try:
        return theirs is not None and os.path.samefile(theirs, db_file)
    except OSError:
        return False


def check_origin(cfg: PipelineConfig, workdir: Path) -> OriginVerdict:
    """Read the database's origin (nothing is written) and compare it with this run."""
    location = database_location(cfg, workdir)
    db_file = database_file(location)
    recorded = read_origin(location, campaign=campaign_of(cfg.database.campaign, workdir))
    here = origin_here(cfg, workdir)
    owner = None
    if recorded is not None and recorded.workdir is not None and db_file is not None:
        other = Path(recorded.workdir)
        if other != workdir.resolve() and uses_file(other, db_file):
            owner = str(other)
    return compare(recorded, here, owner)


def origin_refusal(verdict: OriginVerdict, location: str, workdir: Path, force: bool) -> DatabaseError | None:
    """The error that refuses the run (None: it may go on, with ``force`` where needed)."""
    where = redact_url(location)
    if verdict.changed and database_file(location) is None:
        return DatabaseError(
            f"the database {where} was made with other {', '.join(verdict.changed)} settings than the config of the "
            f"work directory {workdir}: its structures and labels are not this config's, and a campaign on a server "
            "cannot be moved aside. Set database.campaign to a new name (or use the config that made it)"
        )
    if force or verdict.agrees:
        return None
    if verdict.changed:
        owner = f" (it belongs to the work directory {verdict.owner})" if verdict.owner else ""
        return DatabaseError(
            f"the database {where}{owner} was made with other {', '.join(verdict.changed)} settings than the config "
            f"of the work directory {workdir}: its structures and labels are not this config's. Point database.path "
            "to a new file (or use the config that made it), or run with --force to move the database aside and "
            "start afresh"
        )
    return DatabaseError(
        f"the database {where} belongs to the work directory {verdict.owner}, not to {workdir}: two work "
        "directories share a database only through a PostgreSQL campaign. Point database.path to a new file, or "
        f"run with --force to take it over for {workdir}"
    )


__all__ = ["OriginVerdict", "origin_here", "compare", "uses_file", "check_origin", "origin_refusal"]
