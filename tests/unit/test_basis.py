"""check_basis builds the ACE basis with pyace (no fit) and names the field of a shape pacemaker would refuse."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.trainer.basis import check_basis, potential_reference_energies

UNARY_SHAPE = {"nradmax_by_orders": [15, 6, 4, 3, 2, 2], "lmax_by_orders": [0, 3, 3, 2, 2, 1]}


@pytest.mark.parametrize("elements", [["Cu"], ["Cu", "Au"], ["Cu", "Ni", "Pd"], ["Al", "Cu", "Ni", "Pd"]])
def test_default_basis_builds_for_one_to_four_elements(elements):
    result = check_basis(TrainingConfig(), elements)
    assert result.elements == tuple(sorted(elements))
    # one species block per central element and combination: 1, 4, 12, 32 blocks
    assert len(result.functions) == {1: 1, 2: 4, 3: 12, 4: 32}[len(elements)]
    assert all(n > 0 for n in result.functions.values())


def test_unary_shape_for_every_combination_is_a_config_error_naming_the_field():
    cfg = TrainingConfig(**UNARY_SHAPE)
    assert check_basis(cfg, ["Cu"]).n_functions > 0  # fine for one element
    with pytest.raises(ConfigurationError, match=r"training\.nradmax_by_orders.*white-list") as err:
        check_basis(cfg, ["Ni", "Pd"])
    assert "Ni Pd" in str(err.value) or "Pd Ni" in str(err.value)


def test_a_too_big_ternary_block_names_its_block():
    cfg = TrainingConfig(
        basis_blocks={"TERNARY": {"nradmax_by_orders": [15, 6, 3, 2, 2, 1], "lmax_by_orders": [0, 3, 2, 1, 1, 0]}}
    )
    check_basis(cfg, ["Cu", "Au"])  # no ternary combination: fine
    with pytest.raises(ConfigurationError, match=r"training\.basis_blocks\.TERNARY"):
        check_basis(cfg, ["Cu", "Ni", "Pd"])


def test_continue_from_a_potential_builds_nothing(tmp_path):
    assert check_basis(TrainingConfig(initial_potential=tmp_path / "p.yaml"), ["Cu"]).functions == {}


def test_reference_energies_read_back_from_a_potential(tmp_path):
    pot = tmp_path / "p.yaml"
    pot.write_text('metadata: {reference_energy: \'{"Cu": -3.5, "Au": -2.0}\'}\nelements: [Au, Cu]\n')
    assert potential_reference_energies(pot) == {"Cu": -3.5, "Au": -2.0}
    pot.write_text("metadata: {origin: x}\n")
    assert potential_reference_energies(pot) is None
