"""The report's equation of state adds back the reference energies pacemaker subtracted: with pw.x (-107 eV/atom for
Si) the potential's curve lay ~106 eV/atom above the oracle's in eos.png and summary.json (issue 20)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.report.validate import compare_eos, energy_shift

OFFSET = -100.0  # eV/atom: what a DFT code's total energy adds to EMT's


def _oracle_cells():
    cells = []
    for ratio in np.linspace(0.94, 1.06, 6):
        cell = bulk("Cu", "fcc", a=3.6 * ratio ** (1 / 3), cubic=True)
        probe = cell.copy()
        probe.calc = EMT()
        cell.calc = SinglePointCalculator(cell, energy=probe.get_potential_energy() + OFFSET * len(cell))
        cells.append(cell)
    return cells


def test_the_potential_side_gets_the_subtracted_reference_energies_back():
    cells = _oracle_cells()
    v, a = cells[0].get_volume() / len(cells[0]), 3.6
    shift = energy_shift({"Cu": OFFSET})  # pacemaker's record: per-element energies it subtracted
    shifted = compare_eos(cells, EMT(), v, a, shift)
    assert np.allclose(shifted.potential_energy_per_atom, shifted.oracle_energy_per_atom)
    assert abs(shifted.lattice_constant_error_percent) < 1e-6 and abs(shifted.bulk_modulus_error_percent) < 1e-6
    assert abs(shifted.potential.energy_per_atom - shifted.oracle.energy_per_atom) < 1e-9
    unshifted = compare_eos(cells, EMT(), v, a)  # as before: the curves 100 eV/atom apart
    assert np.allclose(unshifted.oracle_energy_per_atom - unshifted.potential_energy_per_atom, OFFSET)
