"""Teacher rows with the real CHGNet 0.3.0 on tiny Cu cells: stored apart, screened, counted, and never in a
training export, also when the oracle computes the same geometry."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.explore.teacher import label_structures, teacher_model
from mlip_autopipec.pipeline.guided_start import store_teacher_labels

pytestmark = pytest.mark.slow


def cells() -> list:
    out = []
    for i in range(5):
        atoms = bulk("Cu", "fcc", a=3.58 + 0.02 * i).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=i)
        atoms.info["seed"] = "Cu"
        out.append(atoms)
    squeezed = bulk("Cu", "fcc", a=2.4).repeat((2, 1, 1))  # 1.7 Å apart: screened out
    squeezed.info["seed"] = "Cu"
    return [*out, squeezed]


def test_chgnet_teacher_rows_never_enter_a_training_export(tmp_path):
    fm = FoundationModelConfig(name="chgnet", explore=True)
    labels = label_structures(cells(), teacher_model(fm), "gen:0")
    assert len(labels) == 6 and all(lab.wall_time_s > 0 for lab in labels)
    db = DatabaseManager(tmp_path / "run.db")
    assert store_teacher_labels(db, labels, fm, {"Cu": 0.75 * 2.55}) == 5
    screens = [rec.metadata.provenance["teacher_screen"] for rec in db.select(status="teacher")]
    assert screens[:5] == ["kept"] * 5 and screens[5].startswith("atoms 1.70 Å apart")
    teacher_energy = {}
    for rec in db.select(status="teacher"):
        prov = rec.metadata.provenance
        assert (prov["teacher_model"], prov["teacher_model_version"], prov["candidate"]) == (
            "chgnet",
            "0.3.0",
            "generator",
        )
        assert prov["teacher_package"].startswith("chgnet ") and rec.label_info["teacher_wall_time_s"] > 0
        teacher_energy[round(rec.atoms.get_volume(), 6)] = rec.atoms.get_potential_energy()
        if prov["teacher_screen"] == "kept":
            assert abs(rec.atoms.get_potential_energy() / 2 + 4.1) < 0.5  # CHGNet's PBE-like Cu, not EMT's ~0
    # the oracle (EMT) computes the same geometries: rows of their own
    oracle_rows = []
    for lab in labels[:5]:
        atoms = lab.atoms.copy()
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        oracle_rows.append(atoms)
    ids = db.add_structures(oracle_rows, StructureMetadata(source="fm_selected"))
    assert len(set(ids)) == 5 and not set(ids) & set(db.ids(status="teacher"))
    db.assign_split(0.4, seed=0)
    n_train = db.save_dataset(tmp_path / "train.pckl.gzip", label="train")
    n_val = db.save_dataset(tmp_path / "validation.pckl.gzip", label="validation")
    assert n_train + n_val == 5 and n_val >= 1
    import pandas as pd

    exported = pd.concat(
        [pd.read_pickle(tmp_path / f"{s}.pckl.gzip", compression="gzip") for s in ("train", "validation")]
    )
    assert sorted(exported["name"].str.split("/").str[0]) == ["fm_selected"] * 5
    for _, row in exported.iterrows():
        assert abs(row["energy"]) < 0.5  # EMT's energies, never the teacher's -8 eV
        assert abs(row["energy"] - teacher_energy[round(row["ase_atoms"].get_volume(), 6)]) > 5
    calls = db.teacher_calls()
    assert (calls.calls, calls.name, calls.version) == (6, "chgnet", "0.3.0")
    assert calls.wall_time_s == pytest.approx(sum(round(lab.wall_time_s, 4) for lab in labels), rel=1e-6)
    assert np.isfinite(calls.wall_time_s)
