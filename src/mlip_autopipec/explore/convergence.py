"""When active learning may stop as converged: a pure decision on numbers, no files.

Converged means both:

* the fit is adequate: its training and validation force RMSE (meV/Å) and
  energy RMSE (meV/atom) are at or below the targets of
  :class:`~mlip_autopipec.config.schemas.active_learning.ActiveLearningConfig`
  (a missing figure, e.g. no validation split, is said and not held against it);
* the exploration is quiet: the last ``quiet_generations`` generations in a row
  ran every trajectory to its end without a γ halt or a blow-up.

The verdict's ``reason`` says which held and which did not, with the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig


@dataclass(frozen=True)
class FitErrors:
    """A fit's errors: training (pacemaker's own) and on the validation split (None: not known)."""

    train_force_rmse_mev_per_angstrom: float | None = None
    train_energy_rmse_mev_per_atom: float | None = None
    validation_force_rmse_mev_per_angstrom: float | None = None
    validation_energy_rmse_mev_per_atom: float | None = None


@dataclass(frozen=True)
class Verdict:
    converged: bool
    fit_adequate: bool
    quiet: bool
    reason: str


def quiet_streak(halts_per_generation: list[int | None]) -> int:
    """How many generations in a row, ending with the last, had no halt (γ or blow-up); None counts as not quiet."""
    n = 0
    for halts in reversed(halts_per_generation):
        if halts is None or halts > 0:
            break
        n += 1
    return n


def fit_shortfalls(errors: FitErrors, settings: ActiveLearningConfig) -> tuple[list[str], list[str]]:
    """(what misses its target, what met it), each as 'training force RMSE 31.2 > 25 meV/Å'-like phrases."""
    missed: list[str] = []
    met: list[str] = []
    checks = [
        (
            "training force RMSE",
            errors.train_force_rmse_mev_per_angstrom,
            settings.target_force_rmse_mev_per_angstrom,
            "meV/Å",
        ),
        (
            "validation force RMSE",
            errors.validation_force_rmse_mev_per_angstrom,
            settings.target_force_rmse_mev_per_angstrom,
            "meV/Å",
        ),
        (
            "training energy RMSE",
            errors.train_energy_rmse_mev_per_atom,
            settings.target_energy_rmse_mev_per_atom,
            "meV/atom",
        ),
        (
            "validation energy RMSE",
            errors.validation_energy_rmse_mev_per_atom,
            settings.target_energy_rmse_mev_per_atom,
            "meV/atom",
        ),
    ]
    for name, value, target, unit in checks:
        if target is None:
            continue
        if value is None:
            met.append(f"{name} unknown (not checked)")
        elif value <= target:
            met.append(f"{name} {value:.1f} ≤ {target:g} {unit}")
        else:
            missed.append(f"{name} {value:.1f} > {target:g} {unit}")
    return missed, met


def convergence_verdict(
    halts_per_generation: list[int | None], errors: FitErrors, settings: ActiveLearningConfig
) -> Verdict:
    """Converged only when the fit meets its targets AND the last ``quiet_generations`` generations were quiet."""
    streak = quiet_streak(halts_per_generation)
    quiet = streak >= settings.quiet_generations
    missed, met = fit_shortfalls(errors, settings)
    fit_ok = not missed
    explore_text = f"exploration quiet for {streak} generation(s) in a row (needs {settings.quiet_generations})"
    fit_text = "fit adequate (" + "; ".join(met) + ")" if fit_ok else "fit not adequate (" + "; ".join(missed) + ")"
    if not met and fit_ok:
        fit_text = "fit targets not set"
    head = "converged" if quiet and fit_ok else "not converged"
    return Verdict(
        converged=quiet and fit_ok, fit_adequate=fit_ok, quiet=quiet, reason=f"{head}: {fit_text}; {explore_text}"
    )
