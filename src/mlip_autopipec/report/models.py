"""Typed figures of the report's per-seed parts: properties against the oracle, formation energies, counts per seed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
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
    oracle_calls: int = Field(0, description="Oracle calls this report made for the seed (0 on a rerun: cached).")
    oracle_cached: int = Field(0, description="Oracle results found in the database instead.")
    seconds: float = Field(0.0, description="Wall time of the seed's properties (s).")

    @classmethod
    def of(cls, seed: str, formula: str, summary: dict[str, Any], **extra: Any) -> PropertiesFigures:
        return cls.model_validate({"seed": seed, "formula": formula, **summary, **extra})


class FormationPoint(_Model):
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


__all__ = [
    "ElasticFigures",
    "FormationFigures",
    "FormationPoint",
    "MDStabilityFigures",
    "PhononFigures",
    "PropertiesFigures",
    "PropertyPair",
]
