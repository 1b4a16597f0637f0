"""The steps of one active-learning generation g, each recording what it did in the generation's
:class:`~mlip_autopipec.pipeline.records.GenerationRecord`:

``step_active_set``
    ``pace_activeset`` on the current training data and the current fit's
    B-basis ``.yaml``; the ``.asi`` lies beside the potential in its fit folder.
``step_explore``
    Molecular dynamics with γ on Dask (:func:`~mlip_autopipec.pipeline.exploration.explore`).
    The candidates are saved to ``al/gen_<g>/candidates.xyz`` and every
    trajectory's outcome to ``al/gen_<g>/trajectories.json``, so a resumed run
    never explores again.
``step_select``
    D-optimal selection (:func:`~mlip_autopipec.explore.select.select_candidates`)
    against the active set, skipping candidates already in the database, at most
    ``max_new_per_generation`` and no more than the oracle budget left; the
    selection is added to the database as pending, in one transaction
    (:func:`~mlip_autopipec.explore.plan.candidate_metadata`).  A selection
    already in the database (structures with ``generation=g``) is not made again.
``step_label``
    The cold start's labelling and split, on active learning's Dask client.
``step_refit``
    Export, refit (from the previous potential when ``continue_from_previous``)
    with :func:`~mlip_autopipec.pipeline.fits.fit_or_reuse` (tag ``gen<g>``;
    ``refit_max_epochs`` iterations, ``final_max_epochs`` for the last, :func:`refit_epochs`),
    and the validation RMSE of the new potential.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ase import Atoms

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.explore.activeset import build_active_set
from mlip_autopipec.explore.md import SOURCE_HALT
from mlip_autopipec.explore.plan import candidate_metadata
from mlip_autopipec.explore.select import select_candidates
from mlip_autopipec.pipeline import steps
from mlip_autopipec.pipeline.context import RunContext, timed
from mlip_autopipec.pipeline.exploration import (
    CANDIDATES_FILE,
    TRAJECTORIES_FILE,
    LazyClient,
    explore,
    generation_dir,
    read_candidates,
    write_candidates,
)
from mlip_autopipec.pipeline.fits import fit_or_reuse
from mlip_autopipec.pipeline.records import GenerationRecord, TrajectoryRecords, ValidationErrors, dump_record
from mlip_autopipec.report.validate import validation_errors
from mlip_autopipec.trainer.pace import TrainingResult

log = logging.getLogger("mlip_autopipec")


def fit_validation(ctx: RunContext, fit: TrainingResult) -> ValidationErrors:
    """The validation RMSE of ``fit`` on the labelled validation split now (all null: no split)."""
    validated = validation_errors(ctx.db, fit.potential_yace, fit.reference_energy)
    if validated is None:
        return ValidationErrors()
    m = validated.metrics
    return ValidationErrors(
        n_validation=m.n_structures,
        validation_energy_rmse_mev_per_atom=m.energy_rmse_mev_per_atom,
        validation_force_rmse_mev_per_angstrom=m.force_rmse_mev_per_angstrom,
    )


def oracle_calls_used(db: DatabaseManager) -> int:
    """Structures added by active learning (generation ≥ 1): each costs one oracle call."""
    return db.count() - db.count(generation=0)


def stored_already(db: DatabaseManager) -> Callable[[Atoms], bool]:
    """``known(atoms)``: True when the database already holds ``atoms`` (within its duplicate tolerance).

    A structure the database would refuse (non-finite positions, ...) also
    counts as known, so it is never selected.
    """

    def known(atoms: Atoms) -> bool:
        try:
            return db.find_duplicate(atoms) is not None
        except StructureError as err:
            log.warning("active learning: candidate skipped: %s", err)
            return True

    return known


# --------------------------------------------------------------------------- the steps
def step_active_set(ctx: RunContext, gen: GenerationRecord, fit: TrainingResult) -> Path:
    """Build the active set of ``fit`` on the training data; record it."""
    with timed(f"generation {gen.generation}: active set", gen.add_seconds("active_set_s")):
        asi = build_active_set(fit.potential_yaml, ctx.workdir / "data" / "train.pckl.gzip")
    gen.active_set = asi
    if not gen.done("active_set"):
        gen.step = "active_set"
    return asi


def step_explore(ctx: RunContext, gen: GenerationRecord, fit: TrainingResult, asi: Path, client: LazyClient) -> None:
    """Run the generation's trajectories; save candidates and trajectory records; record the counts."""
    g = gen.generation
    gen_dir = generation_dir(ctx.workdir, g)
    with timed(f"generation {g}: explore", gen.add_seconds("explore_s")):
        candidates, records = explore(ctx, client(), fit, asi, g)
    write_candidates(gen_dir / CANDIDATES_FILE, candidates)
    dump_record(gen_dir / TRAJECTORIES_FILE, TrajectoryRecords(generation=g, trajectories=records), ctx.workdir)
    stops = [r.stop for r in records]
    gen.trajectories = len(records)
    gen.completed = stops.count("completed")
    gen.not_started = stops.count("error")
    gen.candidates = len(candidates)
    gen.gamma_halts = stops.count("gamma")
    gen.blowups = stops.count("blowup")
    gen.halts = gen.gamma_halts + gen.blowups
    gen.max_gamma = max((r.max_gamma or 0.0 for r in records), default=0.0)
    gen.step = "explored"
    log.info(
        "active learning generation %d: %d trajectories, %d halted by γ, %d blew up, %d candidates, largest γ %.3g",
        g,
        len(records),
        gen.gamma_halts,
        gen.blowups,
        len(candidates),
        gen.max_gamma,
    )


def step_select(ctx: RunContext, gen: GenerationRecord, fit: TrainingResult, asi: Path) -> None:
    """Select the generation's new structures and add them to the database as pending (unless already there)."""
    g = gen.generation
    ids = ctx.db.ids(generation=g)
    if not ids:  # else killed after the selection was stored: it is in the database
        with timed(f"generation {g}: select", gen.add_seconds("select_s")):
            ids = _select_and_store(ctx, gen, fit, asi)
    gen.selected = len(set(ids))
    gen.selected_md_halt = ctx.db.count(generation=g, source=SOURCE_HALT)
    gen.step = "selected"


def _select_and_store(ctx: RunContext, gen: GenerationRecord, fit: TrainingResult, asi: Path) -> list[int]:
    settings: ActiveLearningConfig = ctx.config.active_learning
    gen_dir = generation_dir(ctx.workdir, gen.generation)
    candidates = read_candidates(gen_dir / CANDIDATES_FILE)
    max_new = settings.max_new_per_generation
    if settings.max_oracle_calls is not None:
        max_new = min(max_new, settings.max_oracle_calls - oracle_calls_used(ctx.db))
    if not candidates or max_new < 1:
        gen.excluded = 0
        return []
    result = select_candidates(
        candidates,
        fit.potential_yaml,
        asi,
        max_new,
        memory_limit=settings.selection_memory_limit,
        exclude=stored_already(ctx.db),
        workdir=gen_dir / "select",
    )
    gen.excluded = result.n_excluded
    if not result.selected:
        return []
    for atoms, index in zip(result.selected, result.indices):
        atoms.info["al_candidate_index"] = int(index)
    metas = [candidate_metadata(atoms, gen.generation) for atoms in result.selected]
    return ctx.db.add_structures(result.selected, metas)


def step_label(ctx: RunContext, gen: GenerationRecord, client: LazyClient) -> None:
    """Label the pending structures and split them (the cold start's steps, on this client); record the outcome."""
    g = gen.generation
    with timed(f"generation {g}: label", gen.add_seconds("label_s")):
        steps.step_label(ctx, client)
        steps.step_split(ctx)
    gen.labelled = ctx.db.count(generation=g, status="labelled")
    gen.failed = ctx.db.count(generation=g, status="failed")
    gen.oracle_calls_total = oracle_calls_used(ctx.db)
    gen.step = "labelled"


def training_with(ctx: RunContext, epochs: int) -> TrainingConfig:
    """The run's training settings with ``epochs`` minimiser iterations."""
    training = ctx.config.training
    return training if epochs == training.max_num_epochs else training.model_copy(update={"max_num_epochs": epochs})


def final_epochs(ctx: RunContext) -> int:
    """Minimiser iterations of the potential active learning hands on (``final_max_epochs``)."""
    return ctx.config.active_learning.final_max_epochs or ctx.config.training.max_num_epochs


def refit_epochs(ctx: RunContext, g: int) -> int:
    """Minimiser iterations of generation ``g``'s refit: :func:`final_epochs` when it is certainly the last one
    (``g`` is ``max_generations``, or the oracle budget is spent), else ``refit_max_epochs``
    (both default to ``training.max_num_epochs``)."""
    settings: ActiveLearningConfig = ctx.config.active_learning
    budget_spent = settings.max_oracle_calls is not None and oracle_calls_used(ctx.db) >= settings.max_oracle_calls
    if g >= settings.max_generations or budget_spent:
        return final_epochs(ctx)
    return settings.refit_max_epochs or ctx.config.training.max_num_epochs


def step_refit(ctx: RunContext, gen: GenerationRecord, fit: TrainingResult, training: str) -> TrainingResult:
    """Export the data, refit (from ``fit`` when ``continue_from_previous``), validate; record the new fit."""
    settings: ActiveLearningConfig = ctx.config.active_learning
    g = gen.generation
    epochs = refit_epochs(ctx, g)
    with timed(f"generation {g}: refit", gen.add_seconds("fit_s")):
        train, validation = steps.step_export(ctx)
        previous = fit if settings.continue_from_previous else None
        fit = fit_or_reuse(
            ctx, train, validation, training=training_with(ctx, epochs), previous=previous, tag=f"gen{g}"
        )
    gen.fit_dir = fit.output_dir
    gen.fit_max_epochs = epochs
    gen.n_labelled_total = ctx.db.count(status="labelled")
    gen.training = training
    for key, value in fit_validation(ctx, fit):
        setattr(gen, key, value)
    gen.step = "fitted"
    rmse = gen.validation_force_rmse_mev_per_angstrom
    log.info(
        "active learning generation %d: %d selected, %d labelled, %d failed; refit %s; validation force RMSE %s",
        g,
        gen.selected,
        gen.labelled,
        gen.failed,
        fit.output_dir.name,
        "n/a" if rmse is None else f"{rmse:.1f} meV/Å",
    )
    return fit
