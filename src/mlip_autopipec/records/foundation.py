"""The oracle calls a run spent and what a foundation model alone would have given (``oracle_calls`` and
``foundation_model`` of ``report/summary.json``).

:class:`OracleCalls` counts the oracle's work from the database: structures labelled for training and
validation, and the report's property structures.  :class:`FoundationModelSummary` names the foundation model
(CHGNet, SevenNet) of the run and its role: the *oracle* itself (a distillation: every figure of the report is
measured against it), or a *teacher* beside the oracle, whose errors against the oracle on the validation split,
equation of state and elastic constants the report puts beside the ACE's.  Computed by
:mod:`mlip_autopipec.report.foundation`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.records.figures import QualityBar, ValidationFigures


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OracleCalls(_Model):
    """Oracle calls the run spent, counted in the database: one per structure the oracle labelled or failed on."""

    training: int = Field(
        description="Structures of the train and validation splits the oracle labelled or failed on (teacher rows "
        "and property rows have no split and are not counted)."
    )
    properties: int = Field(
        description="Oracle results of the report's property structures (equation-of-state cells, relaxations, "
        "strains, defects, phonons), kept in the database: a rerun of the report adds only what was missing."
    )
    total: int = Field(description="training + properties.")


def _percent(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return 100.0 * (value - reference) / abs(reference)


class ThreeWay(_Model):
    """One figure with the oracle, the fitted ACE and the foundation model alone; errors against the oracle."""

    oracle: float | None = Field(None, description="The oracle's value.")
    ace: float | None = Field(None, description="The fitted ACE potential's value.")
    foundation_model: float | None = Field(None, description="The foundation model's value.")
    ace_error_percent: float | None = Field(None, description="100 · (ACE − oracle) / |oracle| (%).")
    foundation_model_error_percent: float | None = Field(
        None, description="100 · (foundation model − oracle) / |oracle| (%)."
    )

    @classmethod
    def of(cls, oracle: float | None, ace: float | None, foundation_model: float | None) -> ThreeWay:
        return cls(
            oracle=oracle,
            ace=ace,
            foundation_model=foundation_model,
            ace_error_percent=_percent(ace, oracle),
            foundation_model_error_percent=_percent(foundation_model, oracle),
        )


class FoundationModelSeed(_Model):
    """A bulk seed's equation of state and elastic constants: oracle, ACE and foundation model (null: not
    computed, see ``failures``)."""

    seed: str = Field(description="The seed's name.")
    lattice_constant_angstrom: ThreeWay | None = Field(None, description="Equilibrium lattice constant (Å), EOS fit.")
    bulk_modulus_gpa: ThreeWay | None = Field(None, description="Bulk modulus of the Birch–Murnaghan fit (GPa).")
    c11_gpa: ThreeWay | None = Field(None, description="C11 (GPa), finite strains of the relaxed cell.")
    c12_gpa: ThreeWay | None = Field(None, description="C12 (GPa).")
    c44_gpa: ThreeWay | None = Field(None, description="C44 (GPa).")
    failures: dict[str, str] = Field(
        default_factory=dict, description="Figures of the foundation model that could not be computed, with why."
    )

    def rows(self) -> list[tuple[str, ThreeWay]]:
        """The figures present, as (label with unit, values), in the report's order."""
        named = (
            ("a (Å)", self.lattice_constant_angstrom),
            ("B (GPa)", self.bulk_modulus_gpa),
            ("C11 (GPa)", self.c11_gpa),
            ("C12 (GPa)", self.c12_gpa),
            ("C44 (GPa)", self.c44_gpa),
        )
        return [(label, value) for label, value in named if value is not None]


class FoundationModelSummary(_Model):
    """The run's foundation model: which one, its role, its calls and, beside the oracle, how it alone compares."""

    name: str = Field(description="The model: chgnet or sevenn.")
    version: str = Field(description="The model version, e.g. '0.3.0' (CHGNet) or '7net-0' (SevenNet-0).")
    package: str = Field(description="The package that ships it, with its version, e.g. 'chgnet 0.4.2'.")
    role: Literal["oracle", "teacher"] = Field(
        description="'oracle': the foundation model is the run's oracle, the reference of every figure (a "
        "distillation, no DFT); 'teacher': it works beside the oracle and is compared with it here."
    )
    calls: int = Field(
        0,
        description="Its calls outside the report: as a teacher, the labels of the guided cold start; as the "
        "oracle, its labels of training and validation structures (oracle_calls.training).",
    )
    wall_time_s: float = Field(0.0, description="Wall time of those calls, summed over the workers (s).")
    teacher_ace_frames: int = Field(
        0,
        description="Of the teacher labels, frames the teacher ACE's MD flagged by γ before any oracle call "
        "(foundation_model.explore_with_teacher_ace); its fit and MD time is in wall_time_s.",
    )
    validation: ValidationFigures | None = Field(
        None,
        description="The foundation model alone against the oracle on the labelled validation split; null as the "
        "oracle (it is the reference).",
    )
    energy_shift_ev_per_atom: dict[str, float] = Field(
        default_factory=dict,
        description="Per-element energies (eV/atom) added to the foundation model's energies before the energy "
        "errors: a least-squares fit on the validation structures, since its zero of energy is not the oracle's.",
    )
    quality_bar: QualityBar | None = Field(
        None, description="The config's report targets applied to the foundation model alone (null as the oracle)."
    )
    seeds: dict[str, FoundationModelSeed] = Field(
        default_factory=dict, description="Per bulk seed: EOS and elastic constants of oracle, ACE and the model."
    )
    report_calls: int = Field(0, description="Foundation-model evaluations this report made (0 on a rerun: cached).")
    report_cached: int = Field(0, description="Evaluations found in the report's cache instead.")
    report_seconds: float = Field(0.0, description="Wall time of the foundation model's part of the report (s).")
    note: str | None = Field(None, description="What the figures mean, or why some are missing.")


__all__ = ["FoundationModelSeed", "FoundationModelSummary", "OracleCalls", "ThreeWay"]
