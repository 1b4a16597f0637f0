"""examples/cuau_fm.yaml: the Cu-Au example with the foundation model guiding the cold start validates, `init
--example cuau-fm` writes it with the L1_2 CIF, and it differs from cuau_emt.yaml only where the model comes in."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.cli import main
from mlip_autopipec.config import load_config
from mlip_autopipec.examples import EXAMPLES, example_text

ROOT = Path(__file__).resolve().parents[2]


def test_init_writes_the_example_and_its_cif_and_the_copy_validates(tmp_path, capsys):
    out = tmp_path / "campaign" / "cuau_fm.yaml"
    assert main(["init", "--example", "cuau-fm", "-o", str(out)]) == 0
    assert out.read_text() == example_text("cuau-fm") == (ROOT / "examples" / EXAMPLES["cuau-fm"]).read_text()
    cif = out.parent / "cuau" / "Cu3Au_L12.cif"
    assert cif.read_bytes() == (ROOT / "examples" / "cuau" / "Cu3Au_L12.cif").read_bytes()
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out


def test_the_example_is_cuau_emt_with_the_model_exploring_and_at_most_150_oracle_calls():
    fm_cfg, emt_cfg = load_config(ROOT / "examples" / "cuau_fm.yaml"), load_config(ROOT / "examples" / "cuau_emt.yaml")
    fm = fm_cfg.foundation_model
    assert fm is not None and (fm.name, fm.model_version, fm.explore) == ("chgnet", "0.3.0", True)
    assert fm.explore_with_teacher_ace  # measured: 116 oracle calls against 138 without it (bench_materials --fm)
    assert emt_cfg.foundation_model is None
    al = fm_cfg.active_learning
    assert al is not None and al.max_oracle_calls is not None
    assert fm_cfg.generator.pool_size + al.max_oracle_calls <= 150
    same = ("seeds", "oracle", "compute", "database", "training", "report")
    assert all(getattr(fm_cfg, k) == getattr(emt_cfg, k) for k in same)
    assert fm_cfg.generator.model_copy(update={"pool_size": 200}) == emt_cfg.generator
    assert al.model_copy(update={"max_oracle_calls": 200}) == emt_cfg.active_learning
