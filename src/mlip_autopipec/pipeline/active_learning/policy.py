"""Active learning's decisions, as pure functions of the settings, the record and the oracle calls used.

No context, no files, no database: the steps (:mod:`.steps`) measure, these
functions decide, the loop (:mod:`.loop`) applies.  They answer

* how many oracle calls are left (:func:`calls_left`; one budget for every seed of
  the campaign) and how many structures a selection may add (:func:`selection_size`);
* how many minimiser iterations a generation's refit runs (:func:`refit_epochs`),
  the potential handed on (:func:`final_epochs`), and whether the run ends with
  a closing fit (:func:`final_fit_due`);
* whether generation g may start (:func:`stop_before`), whether a quiet
  generation converged (:func:`stop_when_converged`), and what a generation that
  found nothing new does (:func:`stop_when_nothing_new`: carry the fit on to the
  next generation, or stop).

Oracle calls of active learning = structures it added to the database (labelled,
failed or pending).
"""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.explore.convergence import FitErrors, Verdict
from mlip_autopipec.records import ActiveLearningRecord, GenerationRecord, ValidationErrors
from mlip_autopipec.trainer.parsing import TrainingMetrics


# --------------------------------------------------------------------------- the oracle budget
def calls_left(settings: ActiveLearningConfig, calls_used: int) -> int | None:
    """Oracle calls active learning may still make (``max_oracle_calls`` minus those used, never below 0;
    None: no budget)."""
    if settings.max_oracle_calls is None:
        return None
    return max(0, settings.max_oracle_calls - calls_used)


def selection_size(settings: ActiveLearningConfig, calls_used: int) -> int:
    """Most structures one selection may add: ``max_new_per_generation``, and no more than the calls left."""
    left = calls_left(settings, calls_used)
    return settings.max_new_per_generation if left is None else min(settings.max_new_per_generation, left)


# --------------------------------------------------------------------------- epochs and refits
def training_with(training: TrainingConfig, epochs: int) -> TrainingConfig:
    """``training`` with ``epochs`` minimiser iterations (the same object when it has them already)."""
    return training if epochs == training.max_num_epochs else training.model_copy(update={"max_num_epochs": epochs})


def final_epochs(settings: ActiveLearningConfig, training: TrainingConfig) -> int:
    """Minimiser iterations of the potential active learning hands on: ``final_max_epochs``, else the training's."""
    return settings.final_max_epochs or training.max_num_epochs


def refit_epochs(settings: ActiveLearningConfig, training: TrainingConfig, generation: int, calls_used: int) -> int:
    """Minimiser iterations of ``generation``'s refit: :func:`final_epochs` when it is certainly the last one
    (``generation`` is ``max_generations``, or the oracle budget is spent), else ``refit_max_epochs``
    (both default to ``training.max_num_epochs``)."""
    if generation >= settings.max_generations or calls_left(settings, calls_used) == 0:
        return final_epochs(settings, training)
    return settings.refit_max_epochs or training.max_num_epochs


def refit_iterations(record: ActiveLearningRecord, fit_dir: Path) -> int | None:
    """Minimiser iterations of the generation refit that made ``fit_dir`` (None: no refit made it, e.g. the
    initial fit, or a record from before the iterations were recorded).  A quiet generation that carried the
    fit on (nothing to label) names the same folder but made nothing, so it is passed over."""
    here = Path(fit_dir).resolve()
    for row in reversed(record.generations):
        if row.fit_max_epochs is not None and row.fit_dir is not None and Path(row.fit_dir).resolve() == here:
            return row.fit_max_epochs
    return None


def final_fit_due(
    settings: ActiveLearningConfig, training: TrainingConfig, record: ActiveLearningRecord, fit_dir: Path
) -> bool:
    """True when the potential in ``fit_dir`` is a generation's refit with fewer iterations than
    :func:`final_epochs`: the run ends with one more fit, continued from it on the same data."""
    ran = refit_iterations(record, fit_dir)
    return ran is not None and ran < final_epochs(settings, training)


def carries_fit(gen: GenerationRecord) -> bool:
    """True when ``gen`` selected nothing: it labels nothing and hands on the fit it started from."""
    return not gen.selected


# --------------------------------------------------------------------------- the fit's errors
def fit_errors(metrics: TrainingMetrics, validation: ValidationErrors) -> FitErrors:
    """A fit's errors for the convergence rule: pacemaker's training errors and the validation errors."""
    return FitErrors(
        train_force_rmse_mev_per_angstrom=metrics.train_force_rmse_mev_per_a,
        train_energy_rmse_mev_per_atom=metrics.train_energy_rmse_mev_per_atom,
        validation_force_rmse_mev_per_angstrom=validation.validation_force_rmse_mev_per_angstrom,
        validation_energy_rmse_mev_per_atom=validation.validation_energy_rmse_mev_per_atom,
    )


def halts_through(record: ActiveLearningRecord, generation: int) -> list[int | None]:
    """Halts (γ or blow-up) of generations 1..``generation``, in order (the quiet streak is counted on them)."""
    return [row.halts for row in record.generations if row.generation <= generation]


# --------------------------------------------------------------------------- stop rules
def none_started(gen: GenerationRecord) -> bool:
    """True when ``gen`` planned trajectories and none of them could start (an error, not a stop rule)."""
    n = gen.trajectories or 0
    return bool(n) and (gen.not_started or 0) == n


def stop_before(settings: ActiveLearningConfig, generation: int, calls_used: int) -> str | None:
    """Why ``generation`` may not start (None: it may): ``max_generations`` done, or the oracle budget spent."""
    if generation > settings.max_generations:
        return f"max_generations ({settings.max_generations}) reached"
    if calls_left(settings, calls_used) == 0:
        return f"max_oracle_calls ({settings.max_oracle_calls}) spent: {calls_used} oracle calls by active learning"
    return None


def stopped_at_limit(limit: str, verdict: Verdict) -> str:
    """The stop reason when a limit (:func:`stop_before`) ends the run: the limit, then the convergence verdict."""
    return f"{limit}; {verdict.reason}"


def stop_when_converged(settings: ActiveLearningConfig, gen: GenerationRecord, verdict: Verdict | None) -> str | None:
    """After exploring ``gen``: the stop reason when it was quiet and the run converged (None: go on)."""
    if verdict is None or not verdict.converged:
        return None
    n, skipped = gen.trajectories or 0, gen.not_started or 0
    ran = f"all {n - skipped} trajectories of generation {gen.generation} ran their full {settings.n_steps} steps"
    return f"{verdict.reason}; {ran}" + (f" ({skipped} could not start)" if skipped else "")


def stop_when_nothing_new(
    settings: ActiveLearningConfig, gen: GenerationRecord, verdict: Verdict | None, calls_used: int
) -> str | None:
    """After selecting in ``gen``: the stop reason when it found nothing new to label, unless the generation was
    quiet with an adequate fit and the next one may start (then it carries the fit on, :func:`carries_fit`,
    and the next generation explores with new seeds).  None: go on."""
    if gen.selected:
        return None
    if verdict is not None and verdict.fit_adequate and stop_before(settings, gen.generation + 1, calls_used) is None:
        return None
    nothing = (
        f"nothing new to label in generation {gen.generation}: {gen.candidates or 0} candidates, "
        f"{gen.excluded or 0} already in the database"
    )
    return nothing + (f"; {verdict.reason}" if verdict is not None else "")
