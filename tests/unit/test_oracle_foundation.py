"""The foundation_model oracle with the real CHGNet 0.3.0 and SevenNet-0 shipped in their wheels, on tiny Cu cells.

Reference: the Materials Project's PBE energy of fcc Cu (mp-30), which CHGNet and SevenNet-0 were trained on
(MPtrj), is about -4.1 eV/atom at its PBE lattice constant, 3.63 Å.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import FoundationModelOracleConfig, OracleConfig, validate_config
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.oracle import make_oracle
from mlip_autopipec.oracle.foundation import FoundationModelOracle, model_loads

MP_CU_EV_PER_ATOM = -4.1
A_PBE = 3.63


def cu2(a: float = A_PBE) -> Atoms:
    return bulk("Cu", "fcc", a=a).repeat((2, 1, 1))


def refusal(data: dict) -> str:
    """The one reason line of the configuration error for ``data``."""
    with pytest.raises(ConfigurationError) as err:
        validate_config(OracleConfig, data, "my.yaml: oracle")
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[0] == "invalid configuration in my.yaml: oracle:", lines
    return lines[1]


def test_the_config_defaults_to_the_shipped_versions_and_refuses_what_is_not_shipped():
    chg = validate_config(OracleConfig, {"type": "foundation_model", "name": "chgnet"}, "x")
    assert isinstance(chg, FoundationModelOracleConfig) and (chg.model_version, chg.threads) == ("0.3.0", 1)
    assert FoundationModelOracleConfig(name="sevenn").model_version == "7net-0"
    assert FoundationModelOracleConfig(name="chgnet", model_version="r2scan", threads=2).model_version == "r2scan"
    # a SevenNet that sevenn would download at run time: refused in one sentence naming it
    line = refusal({"type": "foundation_model", "name": "sevenn", "model_version": "7net-omat"})
    assert "sevenn 0.13.0 does not ship the weights of '7net-omat'" in line and "download" in line
    assert "shipped versions: 7net-0, 7net-0_22may2024, 7net-l3i5" in line
    line = refusal({"type": "foundation_model", "name": "chgnet", "model_version": "0.4.0"})
    assert "chgnet 0.4.2 has no model version '0.4.0'; shipped versions: 0.2.0, 0.3.0, r2scan" in line
    assert "'chgnet' or 'sevenn'" in refusal({"type": "foundation_model", "name": "mace"})
    assert "threads" in refusal({"type": "foundation_model", "name": "chgnet", "threads": 0})


def test_chgnet_labels_cu_cells_with_sensible_values_and_its_provenance():
    oracle = make_oracle(FoundationModelOracleConfig(name="chgnet"))
    assert isinstance(oracle, FoundationModelOracle)
    perfect = oracle.label(cu2())
    assert abs(perfect.energy / 2 - MP_CU_EV_PER_ATOM) < 0.3, perfect.energy
    assert perfect.forces.shape == (2, 3) and np.abs(perfect.forces).max() < 1e-3
    assert perfect.stress is not None and perfect.stress.shape == (6,)
    info = perfect.info()
    assert (info["oracle_model"], info["oracle_model_version"], info["oracle_model_package"]) == (
        "chgnet",
        "0.3.0",
        "chgnet 0.4.2",
    )
    rattled = cu2()
    rattled.rattle(0.1, seed=3)
    assert np.abs(oracle.label(rattled).forces).max() > 0.05
    # the stress is ASE's (eV/Å³, positive in tension): the volume derivative of the energy, by central differences
    eps, vol = 1e-3, cu2(3.55).get_volume()
    e_plus, e_minus = (oracle.label(cu2(3.55 * (1 + s) ** (1 / 3))).energy for s in (eps, -eps))
    compressed = oracle.label(cu2(3.55)).stress
    assert compressed is not None and compressed[0] < 0
    assert abs(compressed[:3].mean() - (e_plus - e_minus) / (2 * eps) / vol) < 1e-3  # volume strain eps: dE/dV
    # a cell that is not periodic along every axis gets no stress
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]], cell=[10, 10, 10], pbc=False)
    assert oracle.label(dimer).stress is None


def test_the_model_is_loaded_once_per_process_and_never_pickled():
    config = FoundationModelOracleConfig(name="chgnet")
    oracle = make_oracle(config)
    copy = pickle.loads(pickle.dumps(oracle))  # as Dask ships it to a worker
    assert len(pickle.dumps(oracle)) < 5000  # only the configuration travels, not 400k parameters
    for i, each in enumerate([oracle, copy, make_oracle(config)]):
        atoms = cu2()
        atoms.rattle(0.05, seed=i)
        each.label(atoms)
    assert model_loads()["chgnet 0.3.0 threads=1"] == 1


def test_sevennet_0_labels_a_cu_cell():
    oracle = make_oracle(FoundationModelOracleConfig(name="sevenn"))
    result = oracle.label(cu2())
    assert abs(result.energy / 2 - MP_CU_EV_PER_ATOM) < 0.3, result.energy
    assert np.abs(result.forces).max() < 1e-3 and result.stress is not None
    assert result.info()["oracle_model_version"] == "7net-0"
    assert model_loads()["sevenn 7net-0 threads=1"] == 1
