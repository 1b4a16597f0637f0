"""A whole Cu/EMT pipeline whose labelling, pacemaker fits and active-learning MD all run as SLURM batch jobs.

The driver (this process) only submits, waits and writes the database.  Each
step's jobs carry the step's default name (mlip-label, mlip-fit, mlip-explore)
and write their output to the test's own log folder, which is how the test
finds them in the scheduler's record (``scontrol show jobs``; without
accounting, ``sacct`` is empty).  Kept small: 10 structures, 4-iteration fits,
one active-learning generation of two 30-step trajectories.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from test_slurm_labelling import FINAL_STATES

from conftest import require_slurm
from mlip_autopipec.config import load_config
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.pipeline.run import run_pipeline

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(900)]


def _jobs_logging_to(folder: Path) -> list[dict[str, str]]:
    """Every job in ``scontrol show jobs`` whose output goes to ``folder`` (one dict per job)."""
    import subprocess

    out = subprocess.run(
        ["scontrol", "show", "jobs", "--oneliner"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if Path(fields.get("StdErr", "/")).parent == folder:
            jobs.append(fields)
    return jobs


def test_labelling_fit_and_exploration_all_run_as_slurm_jobs(tmp_path):
    require_slurm()
    from test_active_learning import _require_pace_tools

    _require_pace_tools()
    logs = (tmp_path / "joblogs").resolve()
    one_core = {
        "type": "slurm",
        "cores": 1,
        "processes": 1,
        "memory": "1GiB",
        "walltime": "00:10:00",
        "log_directory": str(logs),
        "start_timeout_s": 120,
    }
    config = {
        "workdir": str(tmp_path / "run"),
        "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True, "repeat": [1, 1, 1]},
        "generator": {
            "pool_size": 10,
            "seed": 3,
            "rattle_stdev": 0.05,
            "volume_range": [0.95, 1.05],
            "eos_fraction": 0.2,
        },
        "oracle": {"type": "emt"},
        "compute": one_core,  # labelling: the default of every step
        "compute_fit": {**one_core, "memory": "2GiB", "max_resubmits": 1},
        "compute_explore": {**one_core, "processes": 1},
        "database": {"validation_fraction": 0.2, "split_seed": 0},
        "training": {
            "cutoff": 4.5,
            "number_of_functions_per_element": 8,
            "nradmax_by_orders": [5, 2, 1],
            "lmax_by_orders": [0, 1, 1],
            "max_num_epochs": 4,  # a real fit in a batch job; how well it fits is not this test's subject
            "batch_size": 100,
            "test_size": 0,
            "evaluator": "pyace",
            "display_step": 50,
        },
        "report": {
            "eos": False,
            "properties": {"elastic": False, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None},
        },  # the report's properties are not this test's subject
        "active_learning": {
            "gamma_select": 1.0,
            "gamma_halt": 1.2,  # every trajectory halts: candidates to label and a refit
            "temperatures": [900.0],
            "ensembles": ["nvt"],
            "trajectories_per_condition": 2,
            "n_steps": 30,
            "sample_interval": 5,
            "md_min_atoms": 32,
            "n_rattled_copies": 1,
            "max_new_per_generation": 3,
            "max_generations": 1,
        },
    }
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    assert cfg.compute_for("fit").job_name == "mlip-fit" and cfg.compute_for("fit").jobs == 1

    summary = run_pipeline(cfg, progress=False)

    al = summary.active_learning
    assert al is not None and len(al.generations) == 1
    gen = al.generations[0]
    assert gen.selected and gen.labelled == gen.selected, gen
    db = DatabaseManager(tmp_path / "run" / "structures.db")
    assert db.count(status="pending") == 0 and db.count(status="labelled") >= 10
    # every label was computed inside a batch job
    assert all(rec.label_info.get("oracle_job", "").startswith("slurm:") for rec in db.select(status="labelled"))
    fits = sorted((tmp_path / "run" / "fits").glob("*/output_potential.yace"))
    assert len(fits) == 2, fits  # the first fit and generation 1's refit

    by_name = Counter()
    for job in _jobs_logging_to(logs):
        by_name[job["JobName"]] += 1
        assert job["JobState"] in FINAL_STATES | {"COMPLETING"}, job  # nothing left running after the run
    assert by_name["mlip-label"] >= 2 and by_name["mlip-fit"] >= 2 and by_name["mlip-explore"] >= 1, by_name
    assert set(by_name) == {"mlip-label", "mlip-fit", "mlip-explore"}, by_name
    # each job wrote its worker's log where the config says
    for job in _jobs_logging_to(logs):
        assert (logs / f"{job['JobName']}-{job['JobId']}.err").is_file()
    print(f"jobs by step: {dict(by_name)}; {summary.timings}")
