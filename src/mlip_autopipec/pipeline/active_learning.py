"""Active learning: explore with the fitted potential, catch extrapolation with γ, label what is new, refit.

Generations g = 1, 2, ... each run the steps of
:mod:`mlip_autopipec.pipeline.generation` (active set → explore → select →
label → refit); each finished step is written at once to ``state.json``
(:class:`~mlip_autopipec.pipeline.records.ActiveLearningRecord`).

Stop rules, checked in this order: "converged" (:func:`~mlip_autopipec.explore.convergence.convergence_verdict`):
the current fit meets the training and validation error targets AND the last
``quiet_generations`` generations ran every trajectory their full length without
a γ halt or a blow-up (its potential is final, nothing more is labelled);
``max_generations`` generations done; the oracle budget ``max_oracle_calls``
spent (oracle calls = structures added by active learning, labelled, failed or
pending; one budget for every seed of the campaign); a generation that found
nothing new to label (a quiet one with an adequate fit goes on exploring with
new seeds instead; a quiet one with an inadequate fit stops and says so).
The reason is logged and recorded as ``stop_reason``; it says which of the
fit and the exploration held.  When the run stopped after a refit shorter than
``final_max_epochs`` (``refit_max_epochs``), :func:`final_fit` continues it on
the same data.

Resume: a killed run, started again, skips every finished step: exploration is
read back from its files, a selection already in the database is not made
again, labelling only touches pending structures, and fits are reused by their
content key.  The record of the initial fit is kept, so later generations
continue from the same potentials.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.explore.activeset import asi_path_for
from mlip_autopipec.explore.convergence import FitErrors, Verdict, convergence_verdict
from mlip_autopipec.pipeline import steps
from mlip_autopipec.pipeline.context import RunContext, timed
from mlip_autopipec.pipeline.exploration import CANDIDATES_FILE, TRAJECTORIES_FILE, StepClients, generation_dir
from mlip_autopipec.pipeline.fits import fit_or_reuse, load_fit, mark_latest
from mlip_autopipec.pipeline.generation import (
    final_epochs,
    fit_validation,
    oracle_calls_used,
    step_active_set,
    step_explore,
    step_label,
    step_refit,
    step_select,
    training_with,
)
from mlip_autopipec.pipeline.records import ActiveLearningRecord, FinalFit, GenerationRecord, InitialFit
from mlip_autopipec.pipeline.state import read_state, section_fingerprints, write_state
from mlip_autopipec.trainer.pace import TrainingResult

log = logging.getLogger("mlip_autopipec")


def _training(ctx: RunContext) -> str:
    return section_fingerprints(ctx.config)["training"]


def _save(ctx: RunContext) -> None:
    write_state(ctx.workdir, ctx.config, active_learning=ctx.active_learning)


def _stop(ctx: RunContext, reason: str) -> None:
    ctx.active_learning.stop_reason = reason
    _save(ctx)
    log.info("active learning stopped: %s", reason)


def resumed_initial_fit(ctx: RunContext) -> TrainingResult | None:
    """The fit active learning started from, when a previous run of this work directory recorded one.

    On a resumed run the pipeline's first fit would otherwise be made again on
    every labelled structure, those of active learning included; the pipeline
    can take this one instead (None: no record, or the training settings changed).
    """
    state = read_state(ctx.workdir)
    initial = state.active_learning.initial if state and state.active_learning else None
    if initial is None or initial.training != _training(ctx):
        return None
    return load_fit(ctx.workdir, initial.fit_dir)


def run_active_learning(ctx: RunContext, fit: TrainingResult) -> TrainingResult:
    """Run (or continue) active learning from ``fit``; return the final potential's fit.

    Progress is written to ``state.json`` after every step and kept in ``ctx.active_learning`` for the report.
    """
    settings = ctx.config.active_learning
    if settings is None:
        return fit
    state = read_state(ctx.workdir)
    ctx.active_learning = (state.active_learning if state else None) or ActiveLearningRecord()
    recorded = resumed_initial_fit(ctx)
    if recorded is not None:
        fit = recorded
    else:
        ctx.active_learning.initial = InitialFit(
            fit_dir=fit.output_dir,
            training=_training(ctx),
            n_labelled_total=ctx.db.count(status="labelled"),
            **dict(fit_validation(ctx, fit)),
        )
        _save(ctx)
    clients = StepClients(ctx.config)
    try:
        fit = _generations(ctx, settings, fit, clients)
    finally:
        clients.close()
    fit = final_fit(ctx, fit)
    mark_latest(ctx.workdir, fit)
    _save(ctx)
    return fit


def _budget_stop(ctx: RunContext, settings: ActiveLearningConfig, g: int) -> str | None:
    """Why generation ``g`` may not start (None: it may)."""
    if g > settings.max_generations:
        return f"max_generations ({settings.max_generations}) reached"
    used = oracle_calls_used(ctx.db)
    if settings.max_oracle_calls is not None and used >= settings.max_oracle_calls:
        return f"max_oracle_calls ({settings.max_oracle_calls}) spent: {used} oracle calls by active learning"
    return None


def _finished_fit(ctx: RunContext, gen: GenerationRecord | None, training: str) -> tuple[bool, TrainingResult | None]:
    """For a generation recorded as fitted: (skip it, its fit to continue from). Its fit gone: fit it again."""
    if gen is None or not gen.done("fitted"):
        return False, None
    done_fit = load_fit(ctx.workdir, gen.fit_dir)
    if done_fit is None:
        gen.step = "labelled"  # the fit's files are gone: fit again
        return False, None
    if gen.training != training:
        log.warning(
            "active learning: the training settings changed since generation %d; continuing from the current fit",
            gen.generation,
        )
        return True, None
    return True, done_fit


def _generations(
    ctx: RunContext, settings: ActiveLearningConfig, fit: TrainingResult, clients: StepClients
) -> TrainingResult:
    record = ctx.active_learning
    training = _training(ctx)
    g = 0
    while True:
        g += 1
        gen = record.generation(g)
        skip, done_fit = _finished_fit(ctx, gen, training)
        if skip:
            fit = done_fit or fit
            continue
        if gen is None or not gen.done("explored"):
            reason = _budget_stop(ctx, settings, g)
            if reason:
                verdict = convergence_verdict(_halts(ctx, g - 1), fit_errors(ctx, fit), settings)
                _stop(ctx, f"{reason}; {verdict.reason}")
                return fit
        gen = record.start_generation(g, training)
        record.stop_reason = None
        fit, reason = _generation(ctx, settings, gen, fit, clients, training)
        if reason is not None:
            _stop(ctx, reason)
            return fit


def _generation(
    ctx: RunContext,
    settings: ActiveLearningConfig,
    gen: GenerationRecord,
    fit: TrainingResult,
    clients: StepClients,
    training: str,
) -> tuple[TrainingResult, str | None]:
    """Run the unfinished steps of one generation; return its fit and, when active learning stops here, why."""
    g = gen.generation
    gen_dir = generation_dir(ctx.workdir, g)
    gen_dir.mkdir(parents=True, exist_ok=True)
    asi = asi_path_for(fit.potential_yaml)
    if gen.done("explored") and not gen.done("selected") and not (gen_dir / CANDIDATES_FILE).is_file():
        log.warning("active learning: %s is missing: exploring generation %d again", gen_dir / CANDIDATES_FILE, g)
        gen.step = "active_set"

    if not gen.done("selected") and (not gen.done("active_set") or not asi.is_file()):
        asi = step_active_set(ctx, gen, fit)
        _save(ctx)
    if not gen.done("explored"):
        with clients.step("explore") as client:
            step_explore(ctx, gen, fit, asi, client)
        _save(ctx)
    n, skipped = gen.trajectories or 0, gen.not_started or 0
    if n and skipped == n:
        raise TrainerError(
            f"active learning generation {g}: none of the {n} exploration trajectories could start "
            f"(see the log and {gen_dir / TRAJECTORIES_FILE})"
        )
    verdict: Verdict | None = None
    if not gen.halts:
        verdict = convergence_verdict(_halts(ctx, g), fit_errors(ctx, fit), settings)
        if verdict.converged:
            return fit, (
                f"{verdict.reason}; all {n - skipped} trajectories of generation {g} ran their full {settings.n_steps} steps"
                + (f" ({skipped} could not start)" if skipped else "")
            )
        log.info("active learning generation %d: quiet, %s", g, verdict.reason)
    if not gen.done("selected"):
        step_select(ctx, gen, fit, asi)
        _save(ctx)
    if not gen.selected:
        nothing = f"nothing new to label in generation {g}: {gen.candidates or 0} candidates, {gen.excluded or 0} already in the database"
        if verdict is not None and verdict.fit_adequate and _budget_stop(ctx, settings, g + 1) is None:
            _carry_fit(gen, fit, training)  # quiet and adequate: explore again with new seeds, same potential
            return fit, None
        return fit, nothing + (f"; {verdict.reason}" if verdict is not None else "")
    if not gen.done("labelled"):
        with clients.step("label") as client:
            step_label(ctx, gen, client)
        _save(ctx)
    fit = step_refit(ctx, gen, fit, training)
    _save(ctx)
    return fit, None


def refit_iterations(record: ActiveLearningRecord, fit_dir: Path) -> int | None:
    """Minimiser iterations of the generation refit that made ``fit_dir`` (None: no refit made it, e.g. the
    initial fit, or a record from before the iterations were recorded).  A quiet generation that carried the
    fit on (nothing to label) names the same folder but made nothing, so it is passed over."""
    here = Path(fit_dir).resolve()
    for row in reversed(record.generations):
        if row.fit_max_epochs is not None and row.fit_dir is not None and Path(row.fit_dir).resolve() == here:
            return row.fit_max_epochs
    return None


def final_fit(ctx: RunContext, fit: TrainingResult) -> TrainingResult:
    """The potential active learning hands on: ``fit``, or, when ``fit`` is a refit with fewer iterations than
    :func:`~mlip_autopipec.pipeline.generation.final_epochs`, one more fit continued from it on the same data
    with that many (tag ``final``, reused on a rerun)."""
    record = ctx.active_learning
    epochs = final_epochs(ctx)
    ran = refit_iterations(record, fit.output_dir)
    if ran is None or ran >= epochs:
        record.final = None
        return fit
    log.info("active learning: the last refit ran %d iterations; continuing it for %d (final_max_epochs)", ran, epochs)
    seconds: list[float] = []
    with timed("active learning: final fit", seconds.append):
        train, validation = steps.step_export(ctx)
        final = fit_or_reuse(ctx, train, validation, training=training_with(ctx, epochs), previous=fit, tag="final")
    record.final = FinalFit(
        fit_s=seconds[0],
        fit_dir=final.output_dir,
        start_dir=fit.output_dir,
        max_epochs=epochs,
        n_labelled_total=ctx.db.count(status="labelled"),
        **dict(fit_validation(ctx, final)),
    )
    rmse = record.final.validation_force_rmse_mev_per_angstrom
    log.info(
        "active learning: final fit %s; validation force RMSE %s",
        final.output_dir.name,
        "n/a" if rmse is None else f"{rmse:.1f} meV/Å",
    )
    return final


def _halts(ctx: RunContext, g: int) -> list[int | None]:
    """Halts (γ or blow-up) of generations 1..g, in order."""
    return [row.halts for row in ctx.active_learning.generations if row.generation <= g]


def fit_errors(ctx: RunContext, fit: TrainingResult) -> FitErrors:
    """The training errors pacemaker reported for ``fit`` and its validation errors on the split now."""
    v = fit_validation(ctx, fit)
    return FitErrors(
        train_force_rmse_mev_per_angstrom=fit.metrics.train_force_rmse_mev_per_a,
        train_energy_rmse_mev_per_atom=fit.metrics.train_energy_rmse_mev_per_atom,
        validation_force_rmse_mev_per_angstrom=v.validation_force_rmse_mev_per_angstrom,
        validation_energy_rmse_mev_per_atom=v.validation_energy_rmse_mev_per_atom,
    )


def _carry_fit(gen: GenerationRecord, fit: TrainingResult, training: str) -> None:
    """Record a generation that labelled nothing as done with the fit it started from."""
    gen.fit_dir = fit.output_dir
    gen.training = training
    gen.step = "fitted"
