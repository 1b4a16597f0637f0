"""Real pw.x on ferromagnetic fcc nickel: magnetic_moments turns on spin polarisation, the moments come back."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase.build import bulk

from conftest import require_executable
from mlip_autopipec.config import OracleConfig, validate_config
from mlip_autopipec.config.schemas.oracle import DEFAULT_PSEUDO_DIR
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.oracle import make_oracle

pytestmark = [pytest.mark.slow, pytest.mark.qe]

NI_PSEUDO = "Ni.pbe-nd-rrkjus.UPF"  # Debian's quantum-espresso-data; 10 valence electrons


def test_fcc_nickel_is_spin_polarised_with_about_0_6_bohr_magnetons(tmp_path):
    require_executable("pw.x")
    if not (DEFAULT_PSEUDO_DIR / NI_PSEUDO).is_file():
        pytest.fail(f"{DEFAULT_PSEUDO_DIR / NI_PSEUDO} is missing: Debian's quantum-espresso-data ships it")
    cfg = validate_config(
        OracleConfig,
        {
            "type": "espresso",
            "pseudopotentials": {"Ni": NI_PSEUDO},
            "ecutwfc": 25,  # Ry: small, enough for the moment
            "ecutrho": 200,  # ultrasoft: 8 × ecutwfc
            "kspacing": 0.55,  # 6×6×6 for the one-atom cell
            "degauss": 0.02,
            "conv_thr": 1e-6,
            "magnetic_moments": {"Ni": 0.6},
        },
    )
    ni = bulk("Ni", "fcc", a=3.52)
    result = make_oracle(cfg).label(ni, tmp_path / "ni")

    # ASE's writer got the moment as pw.x's fraction of the 10 valence electrons: 0.6 / 10
    pwi = (tmp_path / "ni" / "attempt_1" / "espresso.pwi").read_text()
    assert re.search(r"nspin\s*=\s*2", pwi)
    assert float(re.search(r"starting_magnetization\(1\)\s*=\s*(\S+)", pwi).group(1)) == pytest.approx(0.06)

    # PBE nickel: about 0.6 μB per atom (experiment 0.6), per site (on its atomic sphere) and for the cell
    assert 0.5 < result.magmom < 0.75, result.magmom
    assert result.magmoms is not None and result.magmoms.shape == (1,) and 0.5 < result.magmoms[0] < 0.85

    # stored with the labels, given back by row.toatoms()
    db = DatabaseManager(tmp_path / "ni.db")
    (sid,) = db.add_structures([ni], StructureMetadata(source="test_ni"))
    db.set_labels(sid, result.energy, result.forces, result.stress, magmoms=result.magmoms, magmom=result.magmom)
    atoms = db.record(sid).atoms
    assert atoms.get_magnetic_moment() == pytest.approx(result.magmom)
    assert np.allclose(atoms.get_magnetic_moments(), result.magmoms)
