"""Materials properties computed the same way with the oracle and with the potential.

Every function takes an ASE calculator, so one code path serves both sides: the
oracle (through :class:`OracleCalculator`, cached by :class:`CachedCalculator`)
and the potential (``pyace.PyACECalculator``).  Libraries: ASE (BFGS, FixSymmetry,
FrechetCellFilter, ``ase.build.surface``, Langevin MD, band paths), spglib
(symmetry, standard cells), phonopy (finite-displacement phonons).

==============================  =============================================================
``relax_bulk``                  conventional cell relaxed, space group kept
``elastic_constants``           C_ij (GPa) by ±ε, ±ε/2 stress-strain fits (cubic: C11, C12, C44)
``vacancy_formation_energy``    relaxed vacancy formation energy (eV)
``surface_energy``              relaxed surface energy (J/m²) of one facet
``phonons``                     phonopy force constants, DOS; ``phonon_frequency_rmse`` (THz)
``md_stability``                NVT with the potential: completed, or halted (γ, blow-up)
``compute_properties``          all switched-on properties of one calculator
``properties_summary``          summary.json ``properties.*``; ``property_table`` flat rows
``phonon_plot``                 bands + DOS of oracle and potential on one PNG
==============================  =============================================================

Caching: see :mod:`.cache`.  Structures that need no sequential loop are
listed by :func:`elastic_strain_set` and :func:`phonon_structures`, with
:func:`elastic_from_stresses` / :func:`phonons_from_forces` for the second step.
"""

from mlip_autopipec.report.properties.bulk import conventional_cell, primitive_cell, relax_bulk, symmetry
from mlip_autopipec.report.properties.cache import CachedCalculator, MemoryStore, OracleCalculator, structure_key
from mlip_autopipec.report.properties.defects import (
    SurfaceResult,
    VacancyResult,
    build_slab,
    surface_energy,
    vacancy_formation_energy,
    vacancy_structures,
)
from mlip_autopipec.report.properties.elastic import (
    ElasticConstants,
    elastic_constants,
    elastic_from_stresses,
    elastic_strain_set,
)
from mlip_autopipec.report.properties.md_stability import MDStabilityResult, md_stability
from mlip_autopipec.report.properties.phonons import (
    PhononResult,
    phonon_frequency_rmse,
    phonon_structures,
    phonons,
    phonons_from_forces,
)
from mlip_autopipec.report.properties.plots import phonon_plot
from mlip_autopipec.report.properties.run import PropertyResults, compute_properties, properties_summary, property_table

__all__ = [
    "CachedCalculator",
    "ElasticConstants",
    "MDStabilityResult",
    "MemoryStore",
    "OracleCalculator",
    "PhononResult",
    "PropertyResults",
    "SurfaceResult",
    "VacancyResult",
    "build_slab",
    "compute_properties",
    "conventional_cell",
    "elastic_constants",
    "elastic_from_stresses",
    "elastic_strain_set",
    "md_stability",
    "phonon_frequency_rmse",
    "phonon_plot",
    "phonon_structures",
    "phonons",
    "phonons_from_forces",
    "primitive_cell",
    "properties_summary",
    "property_table",
    "relax_bulk",
    "structure_key",
    "surface_energy",
    "symmetry",
    "vacancy_formation_energy",
    "vacancy_structures",
]
