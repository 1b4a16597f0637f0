"""ASE's effective-medium theory as an oracle: the embedded, instant default."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.calculators.emt import EMT, parameters

from mlip_autopipec.config.schemas.oracle import EMTOracleConfig
from mlip_autopipec.oracle.base import LabelFailed, LabelResult, Oracle, fully_periodic, results_from_calculator

#: elements ASE's EMT has parameters for
EMT_ELEMENTS = frozenset(parameters)


class EMTOracle(Oracle):
    """Labels with ``ase.calculators.emt.EMT``; stress only for cells periodic along all three axes."""

    kind = "emt"
    config: EMTOracleConfig

    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        missing = sorted(set(atoms.get_chemical_symbols()) - EMT_ELEMENTS)
        if missing:
            raise LabelFailed(
                f"EMT has no parameters for {', '.join(missing)}; it covers only {', '.join(sorted(EMT_ELEMENTS))} "
                "(use the espresso, gpaw or ase oracle for other elements)"
            )
        atoms.calc = EMT()
        energy, forces, stress = results_from_calculator(atoms, fully_periodic(atoms))
        return LabelResult(energy=energy, forces=forces, stress=stress, command="ase.calculators.emt.EMT()")
