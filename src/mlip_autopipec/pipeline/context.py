"""What every step of a run is given: the config, the work directory, the database, and what the steps measured."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.location import campaign_of, resolve_location
from mlip_autopipec.records import ActiveLearningRecord

log = logging.getLogger("mlip_autopipec")


@contextmanager
def timed(name: str, add: Callable[[float], None]) -> Iterator[None]:
    """Log the start and the duration of ``name`` and pass the elapsed seconds to ``add`` (also on an error)."""
    log.info("step %s: start", name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        add(dt)
        log.info("step %s: %.1f s", name, dt)


@dataclass
class RunContext:
    """The run's typed inputs and what the steps measured."""

    config: PipelineConfig
    workdir: Path
    db: DatabaseManager
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pipeline step
    pacemaker_s: float = 0.0  # seconds pacemaker ran in this run (0 when every fit was reused)
    active_learning: ActiveLearningRecord | None = None  # the campaign's record, as in state.json
    total_before_report_s: float | None = None  # the run's wall time up to the report

    def step(self, name: str):
        """Time one pipeline step into ``timings[name]``."""

        def add(dt: float) -> None:
            self.timings[name] = self.timings.get(name, 0.0) + dt

        return timed(name, add)


def database_location(cfg: PipelineConfig, workdir: Path) -> str:
    """The database's file path (relative to the work directory) or URL."""
    return resolve_location(cfg.database.path, workdir)


def open_database(cfg: PipelineConfig, workdir: Path) -> DatabaseManager:
    """The run's database; on a database server, its campaign (the configured one, else the work directory's name)."""
    db = DatabaseManager(database_location(cfg, workdir), campaign=campaign_of(cfg.database.campaign, workdir))
    if cfg.database.campaign is None:
        try:
            db.bind_to_workdir(workdir)  # another folder of the same name is refused
        except BaseException:
            db.close()
            raise
    return db
