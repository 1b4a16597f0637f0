"""The active-learning loop: generation after generation, the steps in order, one save after each, the stop rules.

Generation g runs the steps of :data:`STEPS` (:mod:`.steps`: active set →
explore → select → label → refit), each once; ``state.json`` is written after
every step (:class:`~mlip_autopipec.records.ActiveLearningRecord`), so
a killed run, started again, skips every finished step.  The decisions are
:mod:`.policy`'s:

* before generation g: ``max_generations`` done, or the oracle budget
  ``max_oracle_calls`` spent (:func:`~.policy.stop_before`);
* after exploring: "converged" (:func:`~mlip_autopipec.explore.convergence.convergence_verdict`):
  the current fit meets the training and validation error targets AND the last
  ``quiet_generations`` generations ran every trajectory their full length
  without a γ halt or a blow-up (its potential is final, nothing more is labelled);
* after selecting: a generation that found nothing new to label stops the run,
  unless it was quiet with an adequate fit: then it carries the fit on and the
  next generation explores with new seeds.

The reason is logged and recorded as ``stop_reason``; it says which of the fit
and the exploration held.  When the run stopped after a refit shorter than
``final_max_epochs`` (``refit_max_epochs``), one closing fit continues it on the
same data (:func:`~.steps.closing_fit`).

Resume: exploration is read back from its files, a selection already in the
database is not made again, labelling only touches pending structures, and fits
are reused by their content key.  The record of the initial fit is kept, so
later generations continue from the same potentials; a fit recorded under other
training settings or another train/validation split (:func:`training_key`) is
not taken up: the run refits on the data as it is split now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mlip_autopipec.compute.clients import StepClients
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.explore.activeset import asi_path_for
from mlip_autopipec.pipeline.active_learning import policy, steps
from mlip_autopipec.pipeline.active_learning.md_runs import TRAJECTORIES_FILE, generation_dir
from mlip_autopipec.pipeline.active_learning.steps import GenerationRun
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.fits import load_fit, mark_latest
from mlip_autopipec.pipeline.state import fingerprint, read_state, section_fingerprints, write_state
from mlip_autopipec.records import ActiveLearningRecord, InitialFit
from mlip_autopipec.trainer.pace import TrainingResult

log = logging.getLogger("mlip_autopipec")

Step = Callable[[RunContext, GenerationRun], None]
Rule = Callable[[RunContext, GenerationRun], str | None]


def _after_exploring(ctx: RunContext, run: GenerationRun) -> str | None:
    """No trajectory could start: an error.  A quiet generation: its verdict, and the stop when converged."""
    gen = run.gen
    if policy.none_started(gen):
        raise TrainerError(
            f"active learning generation {gen.generation}: none of the {gen.trajectories} exploration trajectories "
            f"could start (see the log and {generation_dir(ctx.workdir, gen.generation) / TRAJECTORIES_FILE})"
        )
    if gen.halts:
        return None
    run.verdict = steps.verdict_of(ctx, run.settings, run.record, gen.generation, run.fit)
    reason = policy.stop_when_converged(run.settings, gen, run.verdict)
    if reason is None:
        log.info("active learning generation %d: quiet, %s", gen.generation, run.verdict.reason)
    return reason


def _after_selecting(ctx: RunContext, run: GenerationRun) -> str | None:
    """Nothing new selected: stop, or carry the fit on (:func:`~.policy.stop_when_nothing_new`)."""
    return policy.stop_when_nothing_new(run.settings, run.gen, run.verdict, steps.oracle_calls_used(ctx.db))


#: one generation: each step, then the stop rule that may end the run after it
STEPS: tuple[tuple[Step, Rule | None], ...] = (
    (steps.make_active_set, None),
    (steps.explore_generation, _after_exploring),
    (steps.select_structures, _after_selecting),
    (steps.label_selection, None),
    (steps.refit_generation, None),
)


def training_key(config: PipelineConfig) -> str:
    """Fingerprint of what the run's fits are made with (``training`` in the records): the training settings and
    the train/validation split (``validation_fraction``, ``split_seed``).  A new split re-splits the labelled rows
    in place (no oracle call), so a fit recorded under the old split is not taken up again: the run refits."""
    split = [config.database.validation_fraction, config.database.split_seed]
    return fingerprint({"training": section_fingerprints(config)["training"], "split": split})


def _save(ctx: RunContext, record: ActiveLearningRecord) -> None:
    write_state(ctx.workdir, ctx.config, active_learning=record)


def _stop(ctx: RunContext, record: ActiveLearningRecord, reason: str) -> None:
    record.stop_reason = reason
    _save(ctx, record)
    log.info("active learning stopped: %s", reason)


def resumed_initial_fit(ctx: RunContext) -> TrainingResult | None:
    """The fit active learning started from, when a previous run of this work directory recorded one.

    On a resumed run the pipeline's first fit would otherwise be made again on
    every labelled structure, those of active learning included; the pipeline
    can take this one instead (None: no record, or the training settings or the split changed).
    """
    state = read_state(ctx.workdir)
    initial = state.active_learning.initial if state and state.active_learning else None
    if initial is None or initial.training != training_key(ctx.config):
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
    record = (state.active_learning if state else None) or ActiveLearningRecord()
    ctx.active_learning = record
    recorded = resumed_initial_fit(ctx)
    if recorded is not None:
        fit = recorded
    else:
        record.initial = InitialFit(
            fit_dir=fit.output_dir,
            training=training_key(ctx.config),
            n_labelled_total=ctx.db.count(status="labelled"),
            **dict(steps.validation_of(ctx, fit)),
        )
        _save(ctx, record)
    clients = StepClients(ctx.config.compute_for)
    try:
        fit = _generations(ctx, settings, record, fit, clients)
    finally:
        clients.close()
    fit = steps.closing_fit(ctx, settings, record, fit)
    mark_latest(ctx.workdir, fit)
    _save(ctx, record)
    return fit


def _generations(
    ctx: RunContext,
    settings: ActiveLearningConfig,
    record: ActiveLearningRecord,
    fit: TrainingResult,
    clients: StepClients,
) -> TrainingResult:
    """Generations 1, 2, ... until a stop rule holds; return the fit the last one ended with."""
    key = training_key(ctx.config)
    g = 0
    while True:
        g += 1
        gen = record.generation(g)
        done = None if gen is None else steps.finished_fit(ctx, gen)
        if gen is not None and done is not None:  # fitted, its fit on disk
            if gen.training == key:
                fit = done
            else:
                log.warning(
                    "active learning: the training settings or the train/validation split changed since "
                    "generation %d; continuing from the current fit",
                    g,
                )
            continue
        if gen is None or not gen.done("explored"):
            limit = policy.stop_before(settings, g, steps.oracle_calls_used(ctx.db))
            if limit is not None:
                verdict = steps.verdict_of(ctx, settings, record, g - 1, fit)
                _stop(ctx, record, policy.stopped_at_limit(limit, verdict))
                return fit
        gen = record.start_generation(g, key)
        record.stop_reason = None
        run = GenerationRun(settings, record, gen, fit, asi_path_for(fit.potential_yaml), clients, key)
        reason = _generation(ctx, record, run)
        fit = run.fit
        if reason is not None:
            _stop(ctx, record, reason)
            return fit


def _generation(ctx: RunContext, record: ActiveLearningRecord, run: GenerationRun) -> str | None:
    """Run the steps of one generation in order, saving after each; return why active learning stops here (None:
    it goes on)."""
    for step, rule in STEPS:
        step(ctx, run)
        _save(ctx, record)
        reason = None if rule is None else rule(ctx, run)
        if reason is not None:
            return reason
    return None
