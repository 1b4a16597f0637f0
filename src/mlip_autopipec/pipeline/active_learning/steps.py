"""The steps of one active-learning generation g, each recording what it did in the generation's
:class:`~mlip_autopipec.records.GenerationRecord`.

Each step starts with its own skip check (already done? then it returns) and
sets its own step marker (``GenerationRecord.step``) when it is done; the loop
(:mod:`.loop`) runs them in order and saves ``state.json`` after each.

:func:`make_active_set`
    ``pace_activeset`` on the current training data and the current fit's
    B-basis ``.yaml``; the ``.asi`` lies beside the potential in its fit folder.
:func:`explore_generation`
    Molecular dynamics with γ on Dask (:func:`~.md_runs.run_md`).
    The candidates are saved to ``al/gen_<g>/candidates.xyz`` and every
    trajectory's outcome to ``al/gen_<g>/trajectories.json``, so a resumed run
    never explores again (unless the candidates are gone before the selection).
:func:`select_structures`
    D-optimal selection (:func:`~mlip_autopipec.explore.select.select_candidates`)
    against the active set, skipping candidates already in the database, at most
    :func:`~.policy.selection_size`; the selection is added to the database as
    pending, in one transaction (:func:`~mlip_autopipec.explore.plan.candidate_metadata`).
    A selection already in the database (structures with ``generation=g``) is not made again.
:func:`label_selection`
    The cold start's labelling and split, on active learning's Dask client.
:func:`refit_generation`
    :func:`refit` with :func:`~.policy.refit_epochs` iterations (tag ``gen<g>``, from
    the previous potential when ``continue_from_previous``); a generation that
    selected nothing carries the fit it started from on instead.

:func:`refit` (export, fit or reuse, validation errors) also makes the closing
fit (:func:`closing_fit`); :func:`validation_of` is the one place a fit's
errors on the validation split are measured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from mlip_autopipec.compute.clients import StepClients
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.explore.activeset import build_active_set
from mlip_autopipec.explore.convergence import Verdict, convergence_verdict
from mlip_autopipec.explore.md import SOURCE_HALT
from mlip_autopipec.explore.plan import candidate_metadata
from mlip_autopipec.explore.select import select_candidates
from mlip_autopipec.pipeline import cold_start
from mlip_autopipec.pipeline.active_learning import policy
from mlip_autopipec.pipeline.active_learning.md_runs import (
    CANDIDATES_XYZ,
    TRAJECTORIES_FILE,
    generation_dir,
    read_candidates,
    run_md,
    write_candidates,
)
from mlip_autopipec.pipeline.context import RunContext, timed
from mlip_autopipec.pipeline.fits import fit_or_reuse, load_fit
from mlip_autopipec.records import (
    ActiveLearningRecord,
    FinalFit,
    GenerationRecord,
    TrajectoryRecords,
    ValidationErrors,
    dump_record,
)
from mlip_autopipec.report.validate import validation_errors
from mlip_autopipec.trainer.pace import TrainingResult

log = logging.getLogger("mlip_autopipec")


@dataclass
class GenerationRun:
    """One generation on its way through the steps: its record and what the steps hand each other."""

    settings: ActiveLearningConfig
    record: ActiveLearningRecord
    gen: GenerationRecord
    fit: TrainingResult  # the potential the generation explores with; after its refit, the new one
    asi: Path  # the active set of ``fit``
    clients: StepClients
    training_key: str  # fingerprint of the training settings (state.json's ``training``)
    verdict: Verdict | None = None  # the convergence verdict of a quiet generation


# --------------------------------------------------------------------------- measurements
def oracle_calls_used(db: DatabaseManager) -> int:
    """Structures added by active learning (generation ≥ 1): each costs one oracle call."""
    return db.count() - db.count(generation=0)


def validation_of(ctx: RunContext, fit: TrainingResult) -> ValidationErrors:
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


def verdict_of(
    ctx: RunContext, settings: ActiveLearningConfig, record: ActiveLearningRecord, generation: int, fit: TrainingResult
) -> Verdict:
    """The convergence verdict after ``generation`` with ``fit`` (its training and validation errors)."""
    errors = policy.fit_errors(fit.metrics, validation_of(ctx, fit))
    return convergence_verdict(policy.halts_through(record, generation), errors, settings)


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


def finished_fit(ctx: RunContext, gen: GenerationRecord) -> TrainingResult | None:
    """The fit of a generation recorded as fitted (None: not fitted yet, or its fit's files are gone)."""
    return load_fit(ctx.workdir, gen.fit_dir) if gen.done("fitted") else None


# --------------------------------------------------------------------------- the steps
def make_active_set(ctx: RunContext, run: GenerationRun) -> None:
    """Build the active set of the generation's fit on the training data (unless selected, or its file is there)."""
    gen = run.gen
    if gen.done("selected") or (gen.done("active_set") and run.asi.is_file()):
        return
    with timed(f"generation {gen.generation}: active set", gen.add_seconds("active_set_s")):
        run.asi = build_active_set(run.fit.potential_yaml, ctx.workdir / "data" / "train.pckl.gzip")
    gen.active_set = run.asi
    if not gen.done("active_set"):
        gen.step = "active_set"


def explore_generation(ctx: RunContext, run: GenerationRun) -> None:
    """Run the generation's trajectories; save the candidates and trajectory records; record the counts.

    Skipped once explored, unless the candidates are gone before the selection: then it explores again.
    """
    gen, g = run.gen, run.gen.generation
    gen_dir = generation_dir(ctx.workdir, g)
    if gen.done("explored"):
        if gen.done("selected") or (gen_dir / CANDIDATES_XYZ).is_file():
            return
        log.warning("active learning: %s is missing: exploring generation %d again", gen_dir / CANDIDATES_XYZ, g)
    gen_dir.mkdir(parents=True, exist_ok=True)
    with run.clients.step("explore") as client:
        with timed(f"generation {g}: explore", gen.add_seconds("explore_s")):
            candidates, records = run_md(ctx, client(), run.fit, run.asi, g)
        write_candidates(gen_dir / CANDIDATES_XYZ, candidates)
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


def select_structures(ctx: RunContext, run: GenerationRun) -> None:
    """Select the generation's new structures and add them to the database as pending (unless already there)."""
    gen, g = run.gen, run.gen.generation
    if gen.done("selected"):
        return
    ids = ctx.db.ids(generation=g)
    if not ids:
        with timed(f"generation {g}: select", gen.add_seconds("select_s")):
            ids = _select_and_store(ctx, run)
    elif gen.excluded is None:  # killed after the selection was stored, before its record: count what it excluded
        gen.excluded = _excluded_before(ctx, g, set(ids))
    gen.selected = len(set(ids))
    gen.selected_md_halt = ctx.db.count(generation=g, source=SOURCE_HALT)
    gen.step = "selected"


def _select_and_store(ctx: RunContext, run: GenerationRun) -> list[int]:
    gen, settings = run.gen, run.settings
    gen_dir = generation_dir(ctx.workdir, gen.generation)
    candidates = read_candidates(gen_dir / CANDIDATES_XYZ)
    max_new = policy.selection_size(settings, oracle_calls_used(ctx.db))
    if not candidates or max_new < 1:
        gen.excluded = 0
        return []
    result = select_candidates(
        candidates,
        run.fit.potential_yaml,
        run.asi,
        max_new,
        memory_limit=settings.selection_memory_limit,
        exclude=stored_already(ctx.db),
        workdir=gen_dir / "select",
    )
    gen.excluded = result.n_excluded
    if not result.selected:
        return []
    for atoms, index in zip(result.selected, result.indices, strict=True):
        atoms.info["al_candidate_index"] = int(index)
    metas = [candidate_metadata(atoms, gen.generation) for atoms in result.selected]
    return ctx.db.add_structures(result.selected, metas)


def _excluded_before(ctx: RunContext, generation: int, selection: set[int]) -> int:
    """The candidates of ``generation`` the selection excluded as already stored: those the database holds
    outside the selection (``selection``: its ids), or would refuse (as :func:`stored_already`)."""
    excluded = 0
    for atoms in read_candidates(generation_dir(ctx.workdir, generation) / CANDIDATES_XYZ):
        try:
            stored = ctx.db.find_duplicate(atoms)
        except StructureError:
            excluded += 1
            continue
        excluded += stored is not None and stored not in selection
    return excluded


def label_selection(ctx: RunContext, run: GenerationRun) -> None:
    """Label the pending structures and split them (the cold start's steps, on this step's client); record the
    outcome.  Skipped once labelled, and when nothing was selected."""
    gen, g = run.gen, run.gen.generation
    if gen.done("labelled") or policy.carries_fit(gen):
        return
    with run.clients.step("label") as client, timed(f"generation {g}: label", gen.add_seconds("label_s")):
        cold_start.step_label(ctx, client)
        cold_start.step_split(ctx)
    gen.labelled = ctx.db.count(generation=g, status="labelled")
    gen.failed = ctx.db.count(generation=g, status="failed")
    gen.oracle_calls_total = oracle_calls_used(ctx.db)
    gen.step = "labelled"


def refit_generation(ctx: RunContext, run: GenerationRun) -> None:
    """Refit on the data now (:func:`refit`) and record the new fit; a generation that selected nothing carries
    the fit it started from on instead.  Skipped when fitted and its fit is on disk (a fit whose files are
    gone is made again)."""
    gen, g = run.gen, run.gen.generation
    done = finished_fit(ctx, gen)
    if done is not None:
        run.fit = done
        return
    if gen.done("fitted"):
        log.warning("active learning: the fit of generation %d (%s) is gone: fitting again", g, gen.fit_dir)
    if policy.carries_fit(gen):  # quiet and adequate, nothing new: explore again with new seeds, same potential
        gen.fit_dir = run.fit.output_dir
        gen.training = run.training_key
    else:
        _record_refit(ctx, run)
    gen.step = "fitted"


def _record_refit(ctx: RunContext, run: GenerationRun) -> None:
    gen, g, settings = run.gen, run.gen.generation, run.settings
    epochs = policy.refit_epochs(settings, ctx.config.training, g, oracle_calls_used(ctx.db))
    made = refit(ctx, epochs, run.fit if settings.continue_from_previous else None, f"gen{g}")
    run.fit = made.fit
    gen.fit_s += made.seconds
    gen.fit_dir = made.fit.output_dir
    gen.fit_max_epochs = epochs
    gen.n_labelled_total = made.n_labelled_total
    gen.training = run.training_key
    for key, value in made.validation:
        setattr(gen, key, value)
    rmse = gen.validation_force_rmse_mev_per_angstrom
    log.info(
        "active learning generation %d: %d selected, %d labelled, %d failed; refit %s; validation force RMSE %s",
        g,
        gen.selected,
        gen.labelled,
        gen.failed,
        made.fit.output_dir.name,
        "n/a" if rmse is None else f"{rmse:.1f} meV/Å",
    )


# --------------------------------------------------------------------------- one refit for both
@dataclass(frozen=True)
class Refit:
    """A fit made (or reused) on the data now: the fit, its validation errors, how long, on how much data."""

    fit: TrainingResult
    validation: ValidationErrors
    seconds: float  # exporting and fitting
    n_labelled_total: int  # labelled structures in the database at the fit


def refit(ctx: RunContext, epochs: int, previous: TrainingResult | None, tag: str) -> Refit:
    """Export the labelled data, fit with ``epochs`` minimiser iterations (from ``previous``'s potential when
    given; reused when the same fit exists, :func:`~mlip_autopipec.pipeline.fits.fit_or_reuse`, tag ``tag``),
    and measure the new fit's validation errors."""
    seconds: list[float] = []
    with timed(f"active learning: fit {tag}", seconds.append):
        train, validation = cold_start.step_export(ctx)
        training = policy.training_with(ctx.config.training, epochs)
        fit = fit_or_reuse(ctx, train, validation, training=training, previous=previous, tag=tag)
    return Refit(fit, validation_of(ctx, fit), seconds[0], ctx.db.count(status="labelled"))


def closing_fit(
    ctx: RunContext, settings: ActiveLearningConfig, record: ActiveLearningRecord, fit: TrainingResult
) -> TrainingResult:
    """The potential active learning hands on: ``fit``, or, when a final fit is due (:func:`~.policy.final_fit_due`),
    one more fit continued from it on the same data with :func:`~.policy.final_epochs` iterations (tag ``final``,
    reused on a rerun), recorded as ``record.final``."""
    training = ctx.config.training
    if not policy.final_fit_due(settings, training, record, fit.output_dir):
        record.final = None
        return fit
    epochs = policy.final_epochs(settings, training)
    ran = policy.refit_iterations(record, fit.output_dir)
    log.info("active learning: the last refit ran %s iterations; continuing it for %d (final_max_epochs)", ran, epochs)
    made = refit(ctx, epochs, fit, "final")
    record.final = FinalFit(
        fit_s=made.seconds,
        fit_dir=made.fit.output_dir,
        start_dir=fit.output_dir,
        max_epochs=epochs,
        n_labelled_total=made.n_labelled_total,
        **dict(made.validation),
    )
    rmse = record.final.validation_force_rmse_mev_per_angstrom
    log.info(
        "active learning: final fit %s; validation force RMSE %s",
        made.fit.output_dir.name,
        "n/a" if rmse is None else f"{rmse:.1f} meV/Å",
    )
    return made.fit
