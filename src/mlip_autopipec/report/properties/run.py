"""All switched-on properties of one bulk seed with one calculator, and the oracle-vs-potential table.

Typical use (the lead's report step)::

    oracle_calc = CachedCalculator(OracleCalculator(oracle, workdir / "properties"), store)
    oracle = compute_properties(seed, oracle_calc, cfg.report.properties)
    potential = compute_properties(seed, pace_calc, cfg.report.properties)
    md = md_stability(potential.bulk, pace_calc, T, ...)          # the potential only
    summary["properties"] = properties_summary(oracle, potential, md)
    rows = property_table(summary["properties"])                   # for the HTML table
    phonon_plot(oracle.phonons, potential.phonons, out / "phonons.png")

A property that cannot be computed (a relaxation that does not converge, a
compound for the vacancy) is recorded in ``failures`` and the others go on; past
``report.properties.max_oracle_calls`` the remaining ones are recorded in ``skipped``
(the plan and the bound: :mod:`.plan`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig
from mlip_autopipec.exceptions import MlipAutopipecError, OracleBudgetExhausted
from mlip_autopipec.report.properties.bulk import relax_bulk
from mlip_autopipec.report.properties.defects import (
    SurfaceResult,
    VacancyResult,
    surface_energy,
    vacancy_formation_energy,
)
from mlip_autopipec.report.properties.elastic import ElasticConstants, elastic_constants
from mlip_autopipec.report.properties.md_stability import MDStabilityResult
from mlip_autopipec.report.properties.phonons import PhononResult, phonon_frequency_rmse, phonons

log = logging.getLogger(__name__)


@dataclass
class PropertyResults:
    """What one calculator predicts for one bulk seed (None / absent: switched off, failed (see ``failures``) or
    skipped (``skipped``: past ``report.properties.max_oracle_calls``))."""

    bulk: Atoms
    elastic: ElasticConstants | None = None
    vacancy: VacancyResult | None = None
    surfaces: dict[str, SurfaceResult] = field(default_factory=dict)
    phonons: PhononResult | None = None
    failures: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def lattice_constants(self) -> list[float]:
        return [float(x) for x in self.bulk.cell.lengths()]


def property_names(cfg: ReportPropertiesConfig) -> list[str]:
    """The switched-on properties of the oracle, in the order they are computed: 'elastic', 'vacancy',
    'surface <facet>' per facet, 'phonons' (each one's stage is its name with '_' for ' ')."""
    return [
        *(["elastic"] if cfg.elastic else []),
        *(["vacancy"] if cfg.vacancy else []),
        *(f"surface {facet}" for facet in cfg.surfaces),
        *(["phonons"] if cfg.phonons else []),
    ]


def _compute(name: str, bulk: Atoms, calculator: Calculator, cfg: ReportPropertiesConfig) -> Any:
    """The property ``name`` (of :func:`property_names`) of the relaxed ``bulk``."""
    fmax, steps = cfg.relax_fmax_ev_per_angstrom, cfg.relax_max_steps
    if name == "elastic":
        return elastic_constants(bulk, calculator, cfg.elastic_strain, fmax, steps)
    if name == "vacancy":
        return vacancy_formation_energy(bulk, calculator, cfg.vacancy_min_atoms, fmax, steps)
    if name == "phonons":
        return phonons(
            bulk,
            calculator,
            None,
            cfg.phonon_supercell_min_length_angstrom,
            cfg.phonon_displacement_angstrom,
            cfg.phonon_mesh,
        )
    facet = name.removeprefix("surface ")
    return surface_energy(bulk, calculator, facet, cfg.slab_min_thickness_angstrom, cfg.vacuum_angstrom, fmax, steps)


def _store(out: PropertyResults, name: str, value: Any) -> None:
    if name.startswith("surface "):
        out.surfaces[name.removeprefix("surface ")] = value
    else:
        setattr(out, name, value)


def compute_properties(
    atoms: Atoms,
    calculator: Calculator,
    config: ReportPropertiesConfig | None = None,
    stage: Callable[[str], None] | None = None,
    skip: Collection[str] = (),
) -> PropertyResults:
    """Relax the bulk ``atoms`` with ``calculator`` once, then compute every property ``config`` switches on.

    ``stage(name)`` is called before each part ('relax', 'elastic', 'vacancy', 'surface_111', 'phonons'),
    e.g. :meth:`~.store.DatabaseStore.stage` to file the oracle's results under their property.  Once the
    calculator raises :class:`~mlip_autopipec.exceptions.OracleBudgetExhausted` (``max_oracle_calls``
    reached), that property and every one after it are ``skipped``, with one log line; ``skip``: properties
    (by name: 'elastic', 'vacancy', 'surface 111', 'phonons') skipped from the start (e.g. the potential's side
    of those the oracle's skipped).
    """
    cfg = config or ReportPropertiesConfig()
    mark = stage or (lambda _name: None)
    mark("relax")
    try:
        out = PropertyResults(relax_bulk(atoms, calculator, cfg.relax_fmax_ev_per_angstrom, cfg.relax_max_steps))
    except OracleBudgetExhausted as err:
        out = PropertyResults(atoms.copy(), skipped=["relax"])
        budget_note = str(err)
    else:
        budget_note = ""
    for name in property_names(cfg):
        if budget_note or name in skip:
            out.skipped.append(name)
            continue
        mark(name.replace(" ", "_"))
        try:
            _store(out, name, _compute(name, out.bulk, calculator, cfg))
        except OracleBudgetExhausted as err:
            out.skipped.append(name)
            budget_note = str(err)
        except MlipAutopipecError as err:
            log.warning("property %s of %s not computed: %s", name, out.bulk.get_chemical_formula(), err)
            out.failures[name] = str(err)
    if budget_note:
        log.warning(
            "report: %s: skipped %s of %s (the oracle's results so far are kept in the database: a rerun with a "
            "larger bound goes on from there)",
            budget_note,
            ", ".join(out.skipped),
            out.bulk.get_chemical_formula(),
        )
    mark("done")
    return out


def _pair(oracle: float | None, potential: float | None, relative: bool = True) -> dict[str, float | None]:
    error = None if oracle is None or potential is None else potential - oracle
    out: dict[str, float | None] = {"oracle": oracle, "potential": potential, "error": error}
    if relative:
        out["error_percent"] = None if error is None or not oracle else 100.0 * error / abs(oracle)
    return out


def properties_summary(
    oracle: PropertyResults | None, potential: PropertyResults | None, md: MDStabilityResult | None = None
) -> dict[str, Any]:
    """The ``properties.*`` keys of summary.json: each value
    {oracle, potential, error (potential − oracle), error_percent}.

    ``elastic_gpa.{C11,C12,C44}``, ``vacancy_formation_ev``, ``surface_energy_j_per_m2.{facet}``,
    ``phonons.frequency_rmse_thz``, ``md_stability.{completed,steps,reason}``; a property
    missing on either side has None there; ``skipped``: the properties past ``max_oracle_calls``.
    """
    o = oracle or PropertyResults(Atoms())
    p = potential or PropertyResults(Atoms())
    out: dict[str, Any] = {}
    if o.elastic is not None or p.elastic is not None:
        out["elastic_gpa"] = {
            name: _pair(getattr(o.elastic, attr, None), getattr(p.elastic, attr, None))
            for name, attr in (("C11", "c11"), ("C12", "c12"), ("C44", "c44"))
        }
        out["elastic_gpa"]["bulk_modulus_voigt"] = _pair(
            getattr(o.elastic, "bulk_modulus_voigt_gpa", None), getattr(p.elastic, "bulk_modulus_voigt_gpa", None)
        )
        for side, res in (("oracle", o.elastic), ("potential", p.elastic)):
            if res is not None and res.crystal_system != "cubic":
                out["elastic_gpa"].setdefault("matrix", {})[side] = res.matrix_gpa.tolist()
    if o.vacancy is not None or p.vacancy is not None:
        out["vacancy_formation_ev"] = _pair(
            getattr(o.vacancy, "formation_energy_ev", None), getattr(p.vacancy, "formation_energy_ev", None)
        )
    facets = list(dict.fromkeys([*o.surfaces, *p.surfaces]))
    if facets:
        out["surface_energy_j_per_m2"] = {
            f: _pair(
                getattr(o.surfaces.get(f), "energy_j_per_m2", None), getattr(p.surfaces.get(f), "energy_j_per_m2", None)
            )
            for f in facets
        }
    if o.phonons is not None or p.phonons is not None:
        rmse = phonon_frequency_rmse(o.phonons, p.phonons) if o.phonons is not None and p.phonons is not None else None
        out["phonons"] = {
            "frequency_rmse_thz": rmse,
            "max_frequency_thz": _pair(
                float(o.phonons.mesh_frequencies().max()) if o.phonons else None,
                float(p.phonons.mesh_frequencies().max()) if p.phonons else None,
            ),
            "mesh": list((o.phonons or p.phonons).mesh),  # type: ignore[union-attr]
        }
    if md is not None:
        out["md_stability"] = {
            "completed": md.completed,
            "steps": md.steps,
            "n_steps": md.n_steps,
            "reason": md.reason,
            "temperature_k": md.temperature_k,
            "time_ps": md.time_ps,
            "max_gamma": md.max_gamma,
        }
    failures = {f"oracle.{k}": v for k, v in o.failures.items()} | {f"potential.{k}": v for k, v in p.failures.items()}
    if failures:
        out["failures"] = failures
    skipped = list(dict.fromkeys([*o.skipped, *p.skipped]))
    if skipped:
        out["skipped"] = skipped
    return out


def property_table(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat rows {name: {oracle, potential, error}} of a :func:`properties_summary` (for the report's table).

    Names: ``C11 (GPa)``, ``vacancy formation (eV)``, ``surface 111 (J/m²)``, ``phonon frequency RMSE (THz)``,
    ``MD stability``; error is potential − oracle (the RMSE and MD rows carry it alone).
    """
    rows: dict[str, dict[str, Any]] = {}
    for name in ("C11", "C12", "C44", "bulk_modulus_voigt"):
        if (summary.get("elastic_gpa") or {}).get(name) is not None:
            label = "B Voigt (GPa)" if name == "bulk_modulus_voigt" else f"{name} (GPa)"
            rows[label] = dict(summary["elastic_gpa"][name])
    if summary.get("vacancy_formation_ev") is not None:
        rows["vacancy formation (eV)"] = dict(summary["vacancy_formation_ev"])
    for facet, pair in (summary.get("surface_energy_j_per_m2") or {}).items():
        rows[f"surface {facet} (J/m²)"] = dict(pair)
    if summary.get("phonons") is not None:
        rows["phonon frequency RMSE (THz)"] = {
            "oracle": None,
            "potential": None,
            "error": summary["phonons"].get("frequency_rmse_thz"),
        }
    if summary.get("md_stability") is not None:
        md = summary["md_stability"]
        text = "completed" if md["completed"] else md["reason"]
        rows["MD stability"] = {"oracle": None, "potential": f"{md['steps']}/{md['n_steps']} steps", "error": text}
    return rows


__all__ = ["PropertyResults", "compute_properties", "properties_summary", "property_names", "property_table"]
