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
compound for the vacancy) is recorded in ``failures`` and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig
from mlip_autopipec.exceptions import MlipAutopipecError
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
    """What one calculator predicts for one bulk seed (None / absent: switched off or failed, see ``failures``)."""

    bulk: Atoms
    elastic: ElasticConstants | None = None
    vacancy: VacancyResult | None = None
    surfaces: dict[str, SurfaceResult] = field(default_factory=dict)
    phonons: PhononResult | None = None
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def lattice_constants(self) -> list[float]:
        return [float(x) for x in self.bulk.cell.lengths()]


def compute_properties(
    atoms: Atoms,
    calculator: Calculator,
    config: ReportPropertiesConfig | None = None,
    stage: Callable[[str], None] | None = None,
) -> PropertyResults:
    """Relax the bulk ``atoms`` with ``calculator`` once, then compute every property ``config`` switches on.

    ``stage(name)`` is called before each part ('relax', 'elastic', 'vacancy', 'surface_111', 'phonons'),
    e.g. :meth:`~.store.DatabaseStore.stage` to file the oracle's results under their property.
    """
    cfg = config or ReportPropertiesConfig()
    fmax, steps = cfg.relax_fmax_ev_per_angstrom, cfg.relax_max_steps
    mark = stage or (lambda _name: None)
    mark("relax")
    bulk = relax_bulk(atoms, calculator, fmax, steps)
    out = PropertyResults(bulk)

    def attempt(name: str, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlipAutopipecError as err:
            log.warning("property %s of %s not computed: %s", name, bulk.get_chemical_formula(), err)
            out.failures[name] = str(err)
            return None

    if cfg.elastic:
        mark("elastic")
        out.elastic = attempt("elastic", elastic_constants, bulk, calculator, cfg.elastic_strain, fmax, steps)
    if cfg.vacancy:
        mark("vacancy")
        out.vacancy = attempt("vacancy", vacancy_formation_energy, bulk, calculator, cfg.vacancy_min_atoms, fmax, steps)
    for facet in cfg.surfaces:
        mark(f"surface_{facet}")
        s = attempt(
            f"surface {facet}",
            surface_energy,
            bulk,
            calculator,
            facet,
            cfg.slab_min_thickness_angstrom,
            cfg.vacuum_angstrom,
            fmax,
            steps,
        )
        if s is not None:
            out.surfaces[facet] = s
    if cfg.phonons:
        mark("phonons")
        out.phonons = attempt(
            "phonons",
            phonons,
            bulk,
            calculator,
            None,
            cfg.phonon_supercell_min_length_angstrom,
            cfg.phonon_displacement_angstrom,
            cfg.phonon_mesh,
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
    missing on either side has None there.
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


__all__ = ["PropertyResults", "compute_properties", "properties_summary", "property_table"]
