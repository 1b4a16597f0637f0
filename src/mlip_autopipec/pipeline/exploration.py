"""Exploration of one generation on Dask, and its files: ``al/gen_<g>/candidates.xyz`` and ``trajectories.json``.

Molecular dynamics with ``PyACECalculator`` and γ, one Dask task per trajectory
(:func:`~mlip_autopipec.explore.md.run_trajectory`), for every condition ×
``trajectories_per_condition`` (:func:`~mlip_autopipec.explore.plan.trajectory_plan`).
The first trajectory of every condition starts from each seed of the campaign
(:func:`seed_crystals`; a slab only under NVT), the others from labelled
structures of the database (point defects and other structures alternating,
drawn afresh each generation).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ase import Atoms

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.oracle import ComputeConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import StructureError, TrainerError
from mlip_autopipec.explore.md import TrajectoryResult, run_trajectory
from mlip_autopipec.explore.plan import order_starts, trajectory_plan
from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.migrate import read_record
from mlip_autopipec.pipeline.records import TrajectoryRecord, TrajectoryRecords
from mlip_autopipec.trainer.pace import TrainingResult

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("mlip_autopipec")

CANDIDATES_FILE = "candidates.xyz"
TRAJECTORIES_FILE = "trajectories.json"


def generation_dir(workdir: Path, generation: int) -> Path:
    """``workdir/al/gen_<g>``: the candidates and trajectory records of one generation."""
    return Path(workdir) / "al" / f"gen_{generation}"


class LazyClient:
    """A Dask client for the run's compute config, started on first call and closed at the end."""

    def __init__(self, compute: ComputeConfig):
        self.compute = compute
        self._stack = contextlib.ExitStack()
        self._client: Client | None = None

    def __call__(self) -> Client:
        if self._client is None:
            from mlip_autopipec.oracle.compute import dask_client

            self._client = self._stack.enter_context(dask_client(self.compute))
        return self._client

    def close(self) -> None:
        self._stack.close()


class StepClients:
    """The Dask clients of active learning's steps, each on the step's compute (``config.compute_for(step)``).

    ``with clients.step("explore") as client:`` gives a :class:`LazyClient` (started on first call).
    Batch jobs (SLURM, PBS) are held only for their step: the step's cluster is closed when the
    step ends, so no idle job keeps cores (or a GPU) while another step or a fit runs.  A local
    cluster or a scheduler connection is kept to the end and shared by the steps that use the same one.
    """

    def __init__(self, config: PipelineConfig):
        self.config = config
        self._kept: dict[str, LazyClient] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[LazyClient]:
        from mlip_autopipec.config.schemas.oracle import is_batch

        compute = self.config.compute_for(name)
        if is_batch(compute):
            client = LazyClient(compute)
            try:
                yield client
            finally:
                client.close()
            return
        yield self._kept.setdefault(compute.model_dump_json(), LazyClient(compute))

    def close(self) -> None:
        for client in self._kept.values():
            client.close()
        self._kept.clear()


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
    return read_record(path, TrajectoryRecords, workdir, lambda data: {"generation": generation, "trajectories": data})


# --------------------------------------------------------------------------- exploration
def seed_crystals(config, generation: int) -> list[tuple[str, Atoms]]:
    """One start per campaign seed, labelled ``seed:<name>``: the seed's structure, or for a seed with several
    variants (alloy compositions and occupations, slab variants) variant ``(generation - 1) mod n``, so the
    generations go through them in turn.  ``config`` is a :class:`PipelineConfig`."""
    from mlip_autopipec.explore.plan import seed_label
    from mlip_autopipec.generator.campaign import seed_generator_config, seed_variants

    out = []
    for seed in config.seeds:
        variants = seed_variants(seed, seed_generator_config(seed, config.generator).seed)
        out.append((seed_label(seed.name), variants[(generation - 1) % len(variants)]))
    return out


def start_structures(ctx: RunContext, generation: int, seed: int) -> list[tuple[str, Atoms]]:
    """The seed crystals (:func:`seed_crystals`), then the labelled structures of the database (labels: their
    ids), in :func:`~mlip_autopipec.explore.plan.order_starts`' order."""
    defects: list[tuple[str, Atoms]] = []
    others: list[tuple[str, Atoms]] = []
    for rec in ctx.db.select(status="labelled"):
        group = defects if rec.metadata.provenance.get("operation") == "defect" else others
        group.append((str(rec.id), rec.atoms))
    return order_starts(seed_crystals(ctx.config, generation), defects, others, seed, generation)


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


def explore(
    ctx: RunContext, client: Client, fit: TrainingResult, asi: Path, generation: int
) -> tuple[list[Atoms], list[TrajectoryRecord]]:
    """Run every trajectory of ``generation`` on the Dask ``client``; return the candidates and one record per trajectory.

    Candidates come in plan order (trajectory by trajectory), so the same
    seeds give the same candidate list however the tasks are scheduled.
    """
    from distributed import as_completed

    from mlip_autopipec.progress import progress_bar

    settings: ActiveLearningConfig = ctx.config.active_learning
    plan = trajectory_plan(
        settings, start_structures(ctx, generation, settings.seed), generation, n_seeds=len(ctx.config.seeds)
    )
    futures = {}
    for i, (condition, label, atoms, seed) in enumerate(plan):
        fut = client.submit(
            run_trajectory,
            atoms,
            str(fit.potential_yaml),
            str(asi),
            condition,
            settings,
            seed,
            label=label,
            pure=False,
            key=f"md-g{generation}-{i}-{condition.label}",
        )
        futures[fut.key] = (i, fut)
    results: list[TrajectoryResult | None] = [None] * len(plan)
    errors: dict[int, str] = {}
    done = 0
    try:
        with progress_bar(f"exploring (generation {generation})", total=len(plan), enabled=ctx.progress) as update:
            for fut in as_completed([f for _, f in futures.values()], loop=client.loop):
                i, _ = futures[fut.key]
                condition, label, _atoms, _seed = plan[i]
                try:
                    results[i] = fut.result()
                except StructureError as err:  # a start structure the potential cannot evaluate: skip that trajectory
                    errors[i] = str(err)
                    log.warning(
                        "active learning: trajectory %d (%s from %s) not run: %s", i, condition.label, label, err
                    )
                except Exception as err:
                    raise TrainerError(
                        f"exploration trajectory {i} ({condition.label}, start {label}, generation {generation}) failed: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                fut.release()
                done += 1
                halted = sum(1 for r in results if r is not None and r.halted)
                update(done, extra=f"halted {halted}")
    finally:
        unfinished = [f for _, f in futures.values() if not f.done()]
        if unfinished:  # an error or Ctrl-C: no trajectory goes on running on the cluster
            with contextlib.suppress(Exception):
                client.cancel(unfinished)
    candidates: list[Atoms] = []
    records: list[TrajectoryRecord] = []
    for i, ((condition, label, _atoms, _seed), r) in enumerate(zip(plan, results)):
        if r is None:
            records.append(
                TrajectoryRecord(condition=condition.label, start=label, stop="error", reason=errors.get(i, ""))
            )
            continue
        records.append(_trajectory_record(label, r))
        candidates.extend(r.candidates)
    return candidates, records
