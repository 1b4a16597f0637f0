"""A whole campaign end to end, with real EMT, real pacemaker (default Cu-Au basis blocks), real γ and Dask:
three seeds (bulk fcc Cu, the L1_2 Cu3Au phase read from the example's CIF file, a Cu(111) slab), the pool drawn
from all of them, one active-learning generation exploring from every seed (the slab under NVT only),
selection across both elements, labelling and a refit.  This is also the CIF seed's end-to-end test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import require_executable
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.pipeline.active_learning.md_runs import read_trajectories
from mlip_autopipec.pipeline.run import run_pipeline
from mlip_autopipec.pipeline.state import read_state
from mlip_autopipec.trainer.profile import PacemakerProfile

pytestmark = pytest.mark.slow

CIF = Path(__file__).resolve().parents[2] / "examples" / "cuau" / "Cu3Au_L12.cif"


def config(workdir: Path) -> dict:
    return {
        "workdir": str(workdir),
        "seeds": [
            {"name": "Cu_fcc", "element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True},
            {"name": "Cu3Au_L12", "file": str(CIF), "repeat": [2, 2, 2]},
            {
                "name": "Cu_111",
                "element": "Cu",
                "lattice": "fcc",
                "a": 3.61,
                "cubic": True,
                "repeat": [2, 2, 1],
                "surface": {"miller": [1, 1, 1], "layers": 3, "vacuum": 6.0},
            },
        ],
        "generator": {
            "pool_size": 18,
            "seed": 5,
            "rattle_stdev": 0.05,
            "volume_range": [0.96, 1.04],
            "eos_fraction": 0.0,
            "n_defect_structures": 0,
        },
        "oracle": {"type": "emt"},
        "compute": {"type": "local", "n_workers": 2},
        "database": {"validation_fraction": 0.2, "split_seed": 0},
        "training": {
            "cutoff": 5.0,
            "number_of_functions_per_element": 12,
            "max_num_epochs": 20,
            "test_size": 0.0,
            "evaluator": "tensorpot",
            "display_step": 50,
        },
        "report": {
            "eos": False,
            "properties": {"elastic": False, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None},
        },  # the report's properties are not this test's subject
        "active_learning": {
            "gamma_select": 1.0,
            "gamma_halt": 1.2,  # far below what 900 K reaches with a 20-epoch potential: halts
            "temperatures": [900.0],
            "ensembles": ["nvt", "npt"],
            "trajectories_per_condition": 1,
            "n_steps": 20,
            "sample_interval": 5,
            "md_min_atoms": 16,
            "n_rattled_copies": 1,
            "max_new_per_generation": 6,
            "max_generations": 1,
        },
    }


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    for program in ("pacemaker", "pace_yaml2yace", "pace_activeset"):
        if PacemakerProfile().find(program) is None:
            require_executable(program)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    workdir = tmp_path_factory.mktemp("campaign") / "run"
    cfg = PipelineConfig.model_validate(config(workdir))
    summary = run_pipeline(cfg, progress=False)
    return workdir, cfg, summary


def test_the_pool_comes_from_every_seed_with_its_provenance(campaign):
    workdir, _cfg, _summary = campaign
    with DatabaseManager(workdir / "structures.db") as db:
        pool = list(db.select(generation=0))
    by_seed: dict[str, list] = {}
    for rec in pool:
        by_seed.setdefault(rec.metadata.provenance["seed"], []).append(rec.atoms)
    assert set(by_seed) == {"Cu_fcc", "Cu3Au_L12", "Cu_111"}
    assert all(sorted(set(a.get_chemical_symbols())) == ["Au", "Cu"] for a in by_seed["Cu3Au_L12"])
    assert all(a.pbc.all() and a.cell.lengths()[2] > 15.0 for a in by_seed["Cu_111"])  # slab: vacuum gap kept
    assert len(pool) == 18


def test_exploration_started_from_every_seed_and_the_slab_ran_nvt_only(campaign):
    workdir, _cfg, _summary = campaign
    records = read_trajectories(workdir, 1).trajectories
    runs = {(r.start, r.condition.split("_")[0], r.ensemble_used) for r in records if r.start.startswith("seed:")}
    assert runs == {
        ("seed:Cu_fcc", "nvt", "nvt"),
        ("seed:Cu_fcc", "npt", "npt"),
        ("seed:Cu3Au_L12", "nvt", "nvt"),
        ("seed:Cu3Au_L12", "npt", "npt"),
        ("seed:Cu_111", "nvt", "nvt"),
    }


def test_selection_across_both_elements_was_labelled_and_refitted(campaign):
    workdir, _cfg, summary = campaign
    al = read_state(workdir).active_learning
    gen = al.generations[0]
    assert gen.step == "fitted" and gen.selected and gen.selected <= 6
    assert al.stop_reason.startswith("max_generations (1) reached")
    with DatabaseManager(workdir / "structures.db") as db:
        new = list(db.select(generation=1))
    assert {r.status for r in new} == {"labelled"}
    assert {"Au", "Cu"} <= {s for r in new for s in r.atoms.get_chemical_symbols()}  # selection across elements
    assert {r.metadata.provenance.get("md_start", "").split(":")[0] for r in new} >= {"seed"}
    assert (workdir / summary.potential.yace).is_file()


def test_the_binary_fits_used_the_default_basis_blocks_and_learnt_the_energies(campaign):
    """The Cu-Au fits ran with the default basis (no shape set): pacemaker's UNARY and BINARY template blocks.
    Before issue 12 the UNARY shape was applied to every element combination and pacemaker stopped with its
    white-list error on any alloy."""
    workdir, cfg, summary = campaign
    assert cfg.training.nradmax_by_orders is None and cfg.training.basis_blocks is None
    (first,) = (workdir / "fits").glob("fit-*/")
    blocks = yaml.safe_load((first / "input.yaml").read_text())["potential"]["functions"]
    assert {"UNARY", "BINARY"} <= set(blocks), blocks
    # generation 1's refit continues from that potential (its blocks come with it): its input names a copy of it
    (refit,) = (workdir / "fits").glob("gen1-*/")
    start = yaml.safe_load((refit / "input.yaml").read_text())["potential"]
    assert start == {"filename": str((refit / "initial_potential.yaml").absolute())}, start
    assert (refit / "initial_potential.yaml").read_text() == (first / "output_potential.yaml").read_text()
    # it learnt the energies: training RMSE well below the spread of the training energies per atom
    with DatabaseManager(workdir / "structures.db") as db:
        per_atom = [r.atoms.get_potential_energy() / len(r.atoms) for r in db.select(status="labelled")]
    spread_mev = 1e3 * float(np.std(per_atom))
    assert summary.fit.train_energy_rmse_mev_per_atom < 0.5 * spread_mev, (summary.fit, spread_mev)
