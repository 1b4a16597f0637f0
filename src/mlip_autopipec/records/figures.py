"""The report's figures as typed models: database counts, validation errors, equations of state, the properties
of each bulk seed against the oracle, formation energies and the quality bar (computed by
:mod:`mlip_autopipec.report`, recorded in ``report/summary.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    """Base of the figure models: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PropertyPair(_Model):
    """One property with the oracle and with the potential; error = potential − oracle."""

    oracle: float | None = Field(None, description="The oracle's value.")
    potential: float | None = Field(None, description="The potential's value.")
    error: float | None = Field(None, description="potential − oracle (same unit).")
    error_percent: float | None = Field(None, description="100 · error / |oracle| (%).")


class ElasticFigures(_Model):
    """Elastic constants (GPa) by finite strains."""

    C11: PropertyPair | None = Field(None, description="C11 (GPa).")
    C12: PropertyPair | None = Field(None, description="C12 (GPa).")
    C44: PropertyPair | None = Field(None, description="C44 (GPa).")
    bulk_modulus_voigt: PropertyPair | None = Field(None, description="Voigt bulk modulus (GPa).")
    matrix: dict[str, list[list[float]]] | None = Field(
        None, description="Full 6×6 matrix (GPa) per side, below cubic symmetry."
    )


class PhononFigures(_Model):
    """phonopy finite-displacement phonons of oracle and potential."""

    frequency_rmse_thz: float | None = Field(None, description="Frequency RMSE over the q-mesh (THz).")
    max_frequency_thz: PropertyPair | None = Field(None, description="Highest frequency on the mesh (THz).")
    mesh: list[int] = Field(default_factory=list, description="The Γ-centred q-mesh.")


class MDStabilityFigures(_Model):
    """The NVT stability run with the potential."""

    completed: bool = Field(description="The run went all its steps.")
    steps: int = Field(description="Steps run.")
    n_steps: int = Field(description="Steps asked for.")
    reason: str = Field(description="How it ended, in words.")
    temperature_k: float = Field(description="Temperature (K).")
    time_ps: float = Field(description="Length asked for (ps).")
    max_gamma: float | None = Field(None, description="Largest extrapolation grade γ seen (null: no active set).")


class PropertiesFigures(_Model):
    """Properties of one bulk seed, computed the same way with the oracle and the potential."""

    seed: str = Field(description="The seed's name.")
    formula: str = Field("", description="Chemical formula of the relaxed (oracle) cell.")
    elastic_gpa: ElasticFigures | None = Field(None, description="Elastic constants (GPa); null: off.")
    vacancy_formation_ev: PropertyPair | None = Field(
        None, description="Relaxed vacancy formation energy (eV); null: off."
    )
    surface_energy_j_per_m2: dict[str, PropertyPair] = Field(
        default_factory=dict, description="Relaxed surface energy (J/m²) per facet."
    )
    phonons: PhononFigures | None = Field(None, description="Phonons; null: off.")
    md_stability: MDStabilityFigures | None = Field(None, description="NVT stability run of the potential; null: off.")
    failures: dict[str, str] = Field(
        default_factory=dict, description="Properties that could not be computed, with why."
    )
    skipped: list[str] = Field(
        default_factory=list,
        description="Properties skipped because report.properties.max_oracle_calls was reached (a rerun with a larger "
        "bound computes them).",
    )
    oracle_calls: int = Field(0, description="Oracle calls this report made for the seed (0 on a rerun: cached).")
    oracle_cached: int = Field(0, description="Oracle results found in the database instead.")
    seconds: float = Field(0.0, description="Wall time of the seed's properties (s).")

    @classmethod
    def of(cls, seed: str, formula: str, summary: dict[str, Any], **extra: Any) -> PropertiesFigures:
        return cls.model_validate({"seed": seed, "formula": formula, **summary, **extra})


class FormationPoint(_Model):
    """One structure's formation energy with the oracle and with the potential."""

    composition: float = Field(description="Fraction of the second element (dimensionless).")
    oracle_ev_per_atom: float = Field(description="Formation energy with the oracle (eV/atom).")
    potential_ev_per_atom: float = Field(description="Formation energy with the potential (eV/atom).")
    group: str = Field(description="The structure's seed (or source).")


class FormationFigures(_Model):
    """Formation (mixing) energies per atom against the pure elements, for a binary system."""

    elements: list[str] = Field(description="The two elements; composition is the fraction of the second.")
    references: dict[str, float] = Field(
        description="Per-atom oracle energy of each pure element's lowest structure (eV/atom)."
    )
    n_structures: int = Field(description="Labelled structures compared.")
    rmse_mev_per_atom: float = Field(description="RMSE of the formation energy, potential vs oracle (meV/atom).")
    points: list[FormationPoint] = Field(default_factory=list, description="One point per structure.")


class DatabaseCounts(_Model):
    """Structures by status, by source (and generation), and labelled ones by split."""

    total: int = Field(description="Structures in the database.")
    by_status: dict[str, int] = Field(description="Structures per status (statuses with none left out).")
    by_source: dict[str, int] = Field(description="Structures per 'source (generation g)'.")
    labelled_by_split: dict[str, int] = Field(description="Labelled structures in the train and validation splits.")
    by_seed: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Structures per seed, then per 'source (generation g)' (property structures under their seed too).",
    )


class ValidationFigures(_Model):
    """Errors of the potential on the labelled validation split (energy per atom, force components)."""

    n_structures: int = Field(description="Validation structures evaluated (0: none).")
    energy_rmse_mev_per_atom: float | None = Field(None, description="Energy RMSE (meV/atom).")
    energy_mae_mev_per_atom: float | None = Field(None, description="Energy MAE (meV/atom).")
    force_rmse_mev_per_angstrom: float | None = Field(None, description="Force RMSE (meV/Å).")
    force_mae_mev_per_angstrom: float | None = Field(None, description="Force MAE (meV/Å).")
    note: str | None = Field(None, description="Why there are no figures.")


class EOSFit(_Model):
    """A Birch–Murnaghan fit of E(V)."""

    volume_per_atom: float = Field(description="Equilibrium volume (Å³/atom).")
    energy_per_atom: float = Field(description="Equilibrium energy (eV/atom).")
    bulk_modulus_gpa: float = Field(description="Bulk modulus (GPa).")
    lattice_constant: float = Field(description="Lattice constant at the equilibrium volume (Å).")


class EOSFigures(_Model):
    """The oracle's and the potential's equations of state on the same cells."""

    n_points: int | None = Field(None, description="Volumes compared.")
    oracle: EOSFit | None = Field(None, description="The oracle's fit.")
    potential: EOSFit | None = Field(None, description="The potential's fit (null: no minimum in range).")
    lattice_constant_error_percent: float | None = Field(None, description="Potential vs oracle (%).")
    bulk_modulus_error_percent: float | None = Field(None, description="Potential vs oracle (%).")
    potential_failure: str | None = Field(None, description="Why the potential's fit failed.")
    note: str | None = Field(None, description="Why there is no comparison.")


class QualityCheck(_Model):
    """One target of the config's report section against the measured figure."""

    figure: str = Field(description="What is checked.")
    value: float | None = Field(description="The measured figure (null: not measured).")
    target: float = Field(description="The largest acceptable |value|.")
    unit: str = Field(description="Unit of value and target.")
    passed: bool = Field(description="|value| <= target.")


class QualityBar(_Model):
    """Every target of the config's report section, met or not."""

    passed: bool = Field(description="Every check passed.")
    checks: list[QualityCheck] = Field(description="One entry per target set in the config's report section.")


class ReportFigures(_Model):
    """What the report measures of a fitted potential."""

    counts: DatabaseCounts = Field(description="The database's structures.")
    validation: ValidationFigures = Field(description="Errors on the validation split.")
    eos: EOSFigures | None = Field(None, description="Equation of state of the first bulk seed (null: report.eos off).")
    eos_by_seed: dict[str, EOSFigures] = Field(default_factory=dict, description="Equation of state of each bulk seed.")
    properties: PropertiesFigures | None = Field(
        None,
        description="Properties of the first bulk seed, oracle against potential "
        "(null: none switched on, or no bulk seed).",
    )
    properties_by_seed: dict[str, PropertiesFigures] = Field(
        default_factory=dict, description="Properties of each bulk seed."
    )
    formation: FormationFigures | None = Field(
        None, description="Formation energies per composition (binary systems only)."
    )
    quality_bar: QualityBar = Field(description="The config's targets, met or not.")
    report_seconds: dict[str, float] = Field(default_factory=dict, description="Wall time of the report's parts (s).")
