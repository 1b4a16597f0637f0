"""Which materials properties the report computes with the oracle and with the potential (``report.properties``).

Every property costs oracle calls (counted and cached, see :mod:`mlip_autopipec.report.properties`), so the
defaults follow the oracle's cost (:func:`report_with_cost_defaults`): with a cheap oracle (EMT, a foundation
model: :data:`CHEAP_ORACLES`) every property is on, which keeps the Cu/EMT example within a few extra minutes;
with a DFT oracle (pw.x, GPAW, any ASE calculator) only the cheap ones (the equation of state, the elastic
constants of the seed cell, the MD stability run with the potential alone): the vacancy, surfaces and phonons
(relaxed supercells and slabs of tens of atoms) run when switched on.  ``max_oracle_calls`` bounds the step.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from mlip_autopipec.config.schemas.base import StrictModel

_FACET_RE = re.compile(r"^(-?\d){3}$")


class MDStabilityConfig(StrictModel):
    """An NVT run with the potential: does it complete, or where does it halt (γ, blow-up)?"""

    temperature_k: float | None = Field(
        None,
        gt=0,
        description="Temperature (K) of the NVT run; null: the highest active-learning temperature, else 300 K.",
    )
    time_ps: float = Field(2.0, gt=0, description="Length of the run (ps).")
    timestep_fs: float = Field(2.0, gt=0, le=10, description="MD time step (fs).")
    min_atoms: int = Field(
        64,
        ge=1,
        description="The bulk cell is repeated along its shortest vectors until it has at least this many atoms.",
    )
    gamma_halt: float | None = Field(
        None,
        gt=1.0,
        description="Halt when the largest per-atom extrapolation grade γ reaches this (needs an active set); null: "
        "the active-learning gamma_halt, else not checked.",
    )
    min_distance_fraction: float = Field(
        0.5,
        gt=0,
        lt=2,
        description="Two atoms closer than this fraction of the sum of their covalent radii is a blow-up.",
    )
    max_energy_rise_ev_per_atom: float = Field(
        1.0,
        gt=0,
        description="A potential energy more than this (eV/atom) above the starting one is a blow-up (energy runaway).",
    )
    seed: int = Field(0, description="Seed of the initial velocities and the thermostat noise.")

    def temperature_for(self, exploration_temperatures: list[float] | None) -> float:
        """The run's temperature (K): ``temperature_k``, else the highest exploration temperature, else 300 K."""
        if self.temperature_k is not None:
            return float(self.temperature_k)
        return float(max(exploration_temperatures)) if exploration_temperatures else 300.0

    def gamma_halt_for(self, exploration_gamma_halt: float | None) -> float | None:
        """The γ halt: ``gamma_halt``, else active learning's, else None (γ not checked)."""
        return self.gamma_halt if self.gamma_halt is not None else exploration_gamma_halt


class ReportPropertiesConfig(StrictModel):
    """Materials properties computed the same way with the oracle and with the potential, for each bulk seed."""

    relax_fmax_ev_per_angstrom: float = Field(
        0.005,
        gt=0,
        description="Force threshold (eV/Å) of every relaxation (bulk cell, internal coordinates, vacancy, slabs).",
    )
    relax_max_steps: int = Field(
        500, ge=1, description="Most optimizer steps of one relaxation; more is an error naming the structure."
    )
    elastic: bool = Field(
        True,
        description="Elastic constants C11, C12, C44 (GPa; the full 6x6 matrix below cubic symmetry) by finite "
        "strains.",
    )
    elastic_strain: float = Field(
        0.01,
        gt=0,
        le=0.05,
        description="Largest strain (dimensionless) of the stress-strain fit (±strain and ±strain/2).",
    )
    vacancy: bool = Field(True, description="Relaxed vacancy formation energy (eV), elemental crystals only.")
    vacancy_min_atoms: int = Field(32, ge=8, description="Smallest supercell (atoms) of the vacancy calculation.")
    surfaces: list[str] = Field(
        default_factory=lambda: ["111", "100", "110"],
        description="Facets (Miller indices of the conventional cell, e.g. '111', '1-10') whose relaxed surface energy "
        "(J/m²) is computed; [] for none.",
    )
    slab_min_thickness_angstrom: float = Field(10.0, gt=0, description="Smallest slab thickness (Å).")
    vacuum_angstrom: float = Field(12.0, ge=10.0, description="Vacuum gap between periodic images of a slab (Å).")
    phonons: bool = Field(
        True, description="Phonons by finite displacements (phonopy): band structure, DOS and frequency RMSE."
    )
    phonon_supercell_min_length_angstrom: float = Field(
        10.0,
        gt=0,
        description="The phonon supercell repeats the conventional cell until each height is at least this (Å).",
    )
    phonon_displacement_angstrom: float = Field(0.01, gt=0, le=0.1, description="Finite displacement of phonopy (Å).")
    phonon_mesh: tuple[int, int, int] = Field(
        (8, 8, 8), description="Γ-centred q-mesh of the frequency RMSE and the DOS."
    )
    md_stability: MDStabilityConfig | None = Field(
        default_factory=MDStabilityConfig, description="NVT stability run with the potential; null: not run."
    )
    max_oracle_calls: int | None = Field(
        None,
        ge=0,
        description="Most oracle calls the property step makes (all bulk seeds together; results cached in the "
        "database are free). Past it the remaining properties are skipped, with a log line and a note in the "
        "report; the calls made are kept, so a rerun with a larger bound goes on from there. null: no bound.",
    )

    @field_validator("surfaces")
    @classmethod
    def _facets(cls, v: list[str]) -> list[str]:
        for facet in v:
            if not _FACET_RE.match(facet) or not any(c not in "-0" for c in facet):
                raise ValueError(f"surfaces: {facet!r} is not a facet such as '111', '100' or '1-10'")
        if len(set(v)) != len(v):
            raise ValueError(f"surfaces: a facet is listed twice in {v}")
        return v

    @field_validator("phonon_mesh")
    @classmethod
    def _mesh(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(n < 1 for n in v):
            raise ValueError(f"phonon_mesh: every entry must be at least 1, got {v}")
        return v

    @property
    def any(self) -> bool:
        """True when at least one property is switched on."""
        return self.elastic or self.vacancy or bool(self.surfaces) or self.phonons or self.md_stability is not None


#: oracle kinds whose calls cost next to nothing: every property is on by default
CHEAP_ORACLES = frozenset({"emt", "foundation_model"})

#: with any other oracle (DFT), these properties run only when the config switches them on
COSTLY_PROPERTY_DEFAULTS: dict[str, Any] = {"vacancy": False, "surfaces": [], "phonons": False}


def _oracle_type(oracle: Any) -> str:
    """The ``type`` of a raw ``oracle`` section (a mapping, a model or None; no type: EMT)."""
    if isinstance(oracle, dict):
        return str(oracle.get("type", "emt"))
    return str(getattr(oracle, "type", "emt"))


def _with_costly_defaults(props: Any) -> Any:
    """The raw ``properties`` (a mapping or a model) with :data:`COSTLY_PROPERTY_DEFAULTS` where not given."""
    defaults = {k: list(v) if isinstance(v, list) else v for k, v in COSTLY_PROPERTY_DEFAULTS.items()}
    if isinstance(props, ReportPropertiesConfig):
        unset = {k: v for k, v in defaults.items() if k not in props.model_fields_set}
        return props.model_copy(update=unset) if unset else props
    if isinstance(props, dict):
        return {**defaults, **props}
    return props  # not a section: validation names the error


def report_with_cost_defaults(report: Any, oracle: Any) -> Any:
    """The raw ``report`` section (a mapping or a model) with the property defaults of the ``oracle``'s cost:
    with a DFT oracle, :data:`COSTLY_PROPERTY_DEFAULTS` for each of those fields the config does not set; the
    same object with a cheap oracle (:data:`CHEAP_ORACLES`).  Applied before validation, so the validated (and
    recorded) config states every property explicitly."""
    if _oracle_type(oracle) in CHEAP_ORACLES:
        return report
    if isinstance(report, BaseModel):  # a validated ReportConfig
        props = report.properties  # type: ignore[attr-defined]
        filled = _with_costly_defaults(props)
        return report if filled is props else report.model_copy(update={"properties": filled})
    if isinstance(report, dict):
        return {**report, "properties": _with_costly_defaults(report.get("properties", {}))}
    return report  # not a section: validation names the error


def parse_facet(facet: str) -> tuple[int, int, int]:
    """'111' -> (1, 1, 1); '1-10' -> (1, -1, 0)."""
    digits = re.findall(r"-?\d", facet)
    if len(digits) != 3:
        raise ValueError(f"{facet!r} is not a facet such as '111' or '1-10'")
    hkl = tuple(int(d) for d in digits)
    if math.gcd(*hkl) == 0:
        raise ValueError(f"{facet!r}: Miller indices cannot all be 0")
    return hkl  # type: ignore[return-value]


__all__ = [
    "CHEAP_ORACLES",
    "COSTLY_PROPERTY_DEFAULTS",
    "MDStabilityConfig",
    "ReportPropertiesConfig",
    "parse_facet",
    "report_with_cost_defaults",
]
