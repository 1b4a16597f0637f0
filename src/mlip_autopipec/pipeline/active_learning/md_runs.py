"""The MD runs of one generation on Dask, and their files: ``al/gen_<g>/candidates.xyz`` and ``trajectories.json``.

Molecular dynamics with ``PyACECalculator`` and γ, one Dask task per trajectory
(:func:`~mlip_autopipec.explore.md.run_trajectory`), for every condition ×
``trajectories_per_condition`` (:func:`~mlip_autopipec.explore.plan.trajectory_plan`).
The first trajectory of every condition starts from the crystal of each seed of the
campaign (:func:`start_crystals`; a slab only under NVT), the others from labelled
structures of the database (point defects and other structures alternating,
drawn afresh each generation).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ase import Atoms

from mlip_autopipec.compute.tasks import Done, Task, run_tasks
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError, StructureError, TrainerError
from mlip_autopipec.explore.md import TrajectoryResult, run_trajectory
from mlip_autopipec.explore.plan import order_starts, trajectory_plan
from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.records import TrajectoryRecord, TrajectoryRecords, migrate, read_record
from mlip_autopipec.trainer.pace import TrainingResult

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("mlip_autopipec")

#: a generation's MD candidates, extended XYZ (pace_select's input table is explore.select.PACE_SELECT_INPUT)
CANDIDATES_XYZ = "candidates.xyz"
#: the outcome of every trajectory of a generation (records.TrajectoryRecords)
TRAJECTORIES_FILE = "trajectories.json"


def generation_dir(workdir: Path, generation: int) -> Path:
    """``workdir/al/gen_<g>``: the candidates and trajectory records of one generation."""
    return Path(workdir) / "al" / f"gen_{generation}"


# --------------------------------------------------------------------------- files of a generation
def write_candidates(path: Path, candidates: list[Atoms]) -> None:
    """Save the candidates (extended XYZ with their provenance in ``info``), atomically."""
    from ase.io import write

    with atomic_path(path) as tmp:
        if candidates:
            write(tmp, candidates, format="extxyz")
        else:
            tmp.write_text("")


def read_candidates(path: Path) -> list[Atoms]:
    from ase.io import read

    if path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def read_trajectories(workdir: Path, generation: int) -> TrajectoryRecords | None:
    """``al/gen_<g>/trajectories.json`` (None: not explored yet); version 0 was a bare list."""
    path = generation_dir(workdir, generation) / TRAJECTORIES_FILE
    return read_record(path, TrajectoryRecords, workdir, lambda data: migrate.trajectories_v0(data, generation))


# --------------------------------------------------------------------------- exploration
def start_crystals(config: PipelineConfig, generation: int) -> list[tuple[str, Atoms]]:
    """One start per campaign seed, labelled ``seed:<name>``: the seed's structure, or for a seed with several
    variants (alloy compositions and occupations, slab variants) variant ``(generation - 1) mod n``, so the
    generations go through them in turn."""
    from mlip_autopipec.explore.plan import seed_label
    from mlip_autopipec.generator.campaign import seed_generator_config, seed_variants

    out = []
    for crystal in config.seeds:
        variants = seed_variants(crystal, rng_seed=seed_generator_config(crystal, config.generator).seed)
        out.append((seed_label(crystal.name), variants[(generation - 1) % len(variants)]))
    return out


def start_structures(ctx: RunContext, generation: int, rng_seed: int) -> list[tuple[str, Atoms]]:
    """The seeds' crystals (:func:`start_crystals`), then the labelled structures of the database (labels: their
    ids), in :func:`~mlip_autopipec.explore.plan.order_starts`' order (shuffled with ``rng_seed``)."""
    defects: list[tuple[str, Atoms]] = []
    others: list[tuple[str, Atoms]] = []
    for rec in ctx.db.select(status="labelled"):
        group = defects if rec.metadata.provenance.get("operation") == "defect" else others
        group.append((str(rec.id), rec.atoms))
    return order_starts(
        start_crystals(ctx.config, generation), defects, others, rng_seed=rng_seed, generation=generation
    )


def _trajectory_record(label: str, r: TrajectoryResult) -> TrajectoryRecord:
    return TrajectoryRecord(
        condition=r.condition.label,
        ensemble_used=r.ensemble_used,
        start=label,
        seed=r.seed,
        n_atoms=r.n_atoms,
        n_steps=r.n_steps,
        n_steps_done=r.n_steps_done,
        stop=r.stop,
        reason=r.reason,
        max_gamma=r.max_gamma,
        n_candidates=len(r.candidates),
        wall_time_s=r.wall_time,
    )


def run_md(
    ctx: RunContext, client: Client, fit: TrainingResult, asi: Path, generation: int
) -> tuple[list[Atoms], list[TrajectoryRecord]]:
    """Run every trajectory of ``generation`` on the Dask ``client``; return the candidates and one record each.

    Candidates come in plan order (trajectory by trajectory), so the same
    random seeds give the same candidate list however the tasks are scheduled.
    """
    from mlip_autopipec.progress import progress_bar

    settings = ctx.config.active_learning
    if settings is None:
        raise ConfigurationError("exploration needs an active_learning section in the config")
    plan = trajectory_plan(
        settings, start_structures(ctx, generation, settings.seed), generation, n_seeds=len(ctx.config.seeds)
    )
    tasks = [
        Task(
            f"md-g{generation}-{i}-{condition.label}",
            run_trajectory,
            (atoms, str(fit.potential_yaml), str(asi), condition, settings, rng_seed),
            {"label": label},
        )
        for i, (condition, label, atoms, rng_seed) in enumerate(plan)
    ]
    results: list[TrajectoryResult | None] = [None] * len(plan)
    errors: dict[int, str] = {}
    with progress_bar(f"exploring (generation {generation})", total=len(plan), enabled=ctx.progress) as update:

        def on_done(done: Done[TrajectoryResult]) -> None:
            i = done.index
            condition, label, _atoms, _rng_seed = plan[i]
            try:
                results[i] = done.result()
            except StructureError as err:  # a start structure the potential cannot evaluate: skip that trajectory
                errors[i] = str(err)
                log.warning("active learning: trajectory %d (%s from %s) not run: %s", i, condition.label, label, err)
            except Exception as err:
                raise TrainerError(
                    f"exploration trajectory {i} ({condition.label}, start {label}, generation {generation}) failed: "
                    f"{type(err).__name__}: {err}"
                ) from err
            halted = sum(1 for r in results if r is not None and r.halted)
            update(sum(1 for r in results if r is not None) + len(errors), extra=f"halted {halted}")

        run_tasks(client, tasks, on_done)  # an error or Ctrl-C: no trajectory goes on running on the cluster
    candidates: list[Atoms] = []
    records: list[TrajectoryRecord] = []
    for i, ((condition, label, _atoms, _rng_seed), r) in enumerate(zip(plan, results, strict=True)):
        if r is None:
            records.append(
                TrajectoryRecord(condition=condition.label, start=label, stop="error", reason=errors.get(i, ""))
            )
            continue
        records.append(_trajectory_record(label, r))
        candidates.extend(r.candidates)
    return candidates, records
