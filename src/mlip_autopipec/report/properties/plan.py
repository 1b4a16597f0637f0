"""What the property step will spend, said before it spends anything, and its bound (``max_oracle_calls``).

:func:`property_plan` lists, per bulk seed, each switched-on property's oracle calls and the cells they are
made on (atoms), from the seed's own cell (the relaxed one differs only slightly).  A relaxation (ASE's BFGS;
the real count is known only after) is counted as :data:`RELAX_CALLS` calls from near its minimum,
:data:`DEFECT_RELAX_CALLS` for a vacancy or a slab, and as one call when symmetry leaves nothing to relax
(a strained cell of the elastic constants, :func:`fixed_by_symmetry`).
:func:`plan_lines` adds a time estimate from the oracle calls measured so far: the median wall time per atom of
the run's labels × the atoms of each planned call (:class:`~mlip_autopipec.records.cost.OracleCost`).  Results
already cached in the database are not called again, so a rerun spends less than planned.

:class:`OracleBudget` counts the oracle's calls of the whole step, every seed together;
:class:`BudgetedCalculator` asks it before each call and raises
:class:`~mlip_autopipec.exceptions.OracleBudgetExhausted` past the bound, which
:func:`~.run.compute_properties` turns into skipped properties.  It wraps the oracle's calculator *inside* the
cache (``CachedCalculator(BudgetedCalculator(OracleCalculator(...)))``), so cached results are free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig
from mlip_autopipec.exceptions import OracleBudgetExhausted, PropertyError
from mlip_autopipec.progress import format_duration
from mlip_autopipec.records.cost import OracleCost
from mlip_autopipec.report.properties.bulk import SYMPREC, conventional_cell, primitive_cell
from mlip_autopipec.report.properties.defects import build_slab, vacancy_structures
from mlip_autopipec.report.properties.elastic import elastic_strain_set
from mlip_autopipec.report.properties.phonons import phonon_structures
from mlip_autopipec.report.properties.run import property_names

#: oracle calls a relaxation from near its minimum is counted as (the seed's cell, a strained cell's atoms;
#: 4 measured for pw.x Si: the cell relaxation and each internal relaxation of C44)
RELAX_CALLS = 4
#: oracle calls a defect's relaxation is counted as (a vacancy's neighbours, a slab's surface layers); not
#: measured with DFT here (EMT Cu: about 6), a defect's BFGS usually needs more steps than a strained cell
DEFECT_RELAX_CALLS = 15


@dataclass(frozen=True)
class PlannedPart:
    """One property of one seed: its estimated oracle calls, as ``(calls, atoms of the cell)`` pairs."""

    seed: str
    name: str
    calls: tuple[tuple[int, int], ...]

    @property
    def n_calls(self) -> int:
        return sum(n for n, _atoms in self.calls)

    @property
    def atom_calls(self) -> int:
        """Σ calls × atoms: what the time estimate scales."""
        return sum(n * atoms for n, atoms in self.calls)


def fixed_by_symmetry(atoms: Atoms) -> bool:
    """True when the symmetry of ``atoms`` leaves no force on any atom (ASE's ``FixSymmetry`` projects a random
    force to zero): a relaxation of its positions stops after its first call."""
    from ase.constraints import FixSymmetry

    forces = np.random.default_rng(0).normal(size=(len(atoms), 3))
    FixSymmetry(atoms, symprec=SYMPREC).adjust_forces(atoms, forces)
    return bool(np.abs(forces).max() < 1e-8)


def _part_calls(name: str, conventional: Atoms, cfg: ReportPropertiesConfig) -> tuple[tuple[int, int], ...]:
    """The calls of property ``name`` of the crystal ``conventional``: ``(calls, atoms)`` per cell size."""
    if name == "elastic":
        strains = elastic_strain_set(conventional, cfg.elastic_strain)
        relaxed = [strains.relax_internal and not fixed_by_symmetry(cell) for cell in strains.structures]
        return ((sum(RELAX_CALLS if r else 1 for r in relaxed), len(strains.reference)),)
    if name == "vacancy":  # the perfect supercell once, then each inequivalent vacancy relaxed
        perfect, vacancies = vacancy_structures(conventional, cfg.vacancy_min_atoms)
        return ((1, len(perfect)), (len(vacancies) * DEFECT_RELAX_CALLS, len(perfect) - 1))
    if name == "phonons":
        setup = phonon_structures(
            conventional, None, cfg.phonon_supercell_min_length_angstrom, cfg.phonon_displacement_angstrom
        )
        return ((len(setup.structures), len(setup.structures[0])),)
    slab, _layers = build_slab(
        conventional, name.removeprefix("surface "), cfg.slab_min_thickness_angstrom, cfg.vacuum_angstrom
    )  # the bulk reference once (conventional cell), then the slab relaxed
    return ((1, len(conventional)), (DEFECT_RELAX_CALLS, len(slab)))


def property_plan(seed: str, atoms: Atoms, cfg: ReportPropertiesConfig) -> list[PlannedPart]:
    """The oracle calls of every switched-on property of the bulk ``seed`` (its cell ``atoms``): the relaxation
    of its primitive cell, then each property (one that does not apply, e.g. a vacancy of a compound, is left
    out: it fails at once, with no call)."""
    parts = [PlannedPart(seed, "relax", ((RELAX_CALLS, len(primitive_cell(atoms))),))]
    conventional = conventional_cell(atoms)
    for name in property_names(cfg):
        try:
            parts.append(PlannedPart(seed, name, _part_calls(name, conventional, cfg)))
        except PropertyError:
            continue
    return parts


def plan_lines(parts: list[PlannedPart], cost: OracleCost | None, max_oracle_calls: int | None) -> list[str]:
    """The plan as log lines: the total calls and time estimate, then one line per property of each seed."""
    total = sum(p.n_calls for p in parts)
    bound = "no bound" if max_oracle_calls is None else f"max_oracle_calls {max_oracle_calls}"
    if cost is None or cost.median_s_per_atom is None:
        estimate = "no time estimate yet (no oracle call measured)"
    else:
        seconds = sum(p.atom_calls for p in parts) * cost.median_s_per_atom
        estimate = (
            f"about {format_duration(seconds)} from the {cost.calls} {cost.oracle} calls measured so far "
            f"(median {cost.median_s_per_atom:.3g} s per atom of the cell)"
        )
    lines = [
        f"report: property plan: about {total} oracle calls ({bound}; a relaxation counted as {RELAX_CALLS} calls, "
        f"{DEFECT_RELAX_CALLS} for a defect; results cached in the database are not called again), {estimate}"
    ]
    for p in parts:
        cells = ", ".join(f"{n} on {atoms} atoms" for n, atoms in p.calls)
        lines.append(f"  {p.seed}: {p.name}: ~{cells}")
    return lines


class OracleBudget:
    """The property step's oracle calls, every seed together, and their bound (None: no bound)."""

    def __init__(self, max_calls: int | None = None) -> None:
        self.max_calls = max_calls
        self.spent = 0

    @property
    def exhausted(self) -> bool:
        return self.max_calls is not None and self.spent >= self.max_calls

    def spend(self) -> None:
        """Count one call; :class:`OracleBudgetExhausted` (nothing counted) once the bound is reached."""
        if self.exhausted:
            raise OracleBudgetExhausted(f"report.properties.max_oracle_calls={self.max_calls} reached")
        self.spent += 1


class BudgetedCalculator(Calculator):
    """``calculator`` (the oracle's), asking ``budget`` before each call it makes."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, calculator: Calculator, budget: OracleBudget) -> None:
        super().__init__()
        self.inner = calculator
        self.budget = budget

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.budget.spend()
        self.inner.calculate(self.atoms, properties, system_changes)
        self.results = dict(self.inner.results)


__all__ = [
    "DEFECT_RELAX_CALLS",
    "RELAX_CALLS",
    "BudgetedCalculator",
    "OracleBudget",
    "PlannedPart",
    "plan_lines",
    "property_plan",
]
