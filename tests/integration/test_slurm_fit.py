"""A pacemaker fit as a SLURM batch job (pipeline.fits.train_on_cluster): the driver survives the job's end.

A job cancelled in the middle of the fit is replaced and the fit runs again to
the end there; with ``max_resubmits: 0`` the same cancel ends the fit with a
TrainerError that says what happened, and no job is left behind.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from test_slurm_labelling import slurm_jobs

from conftest import pacemaker_profile, require_slurm, write_dataset
from mlip_autopipec.compute.models import SlurmComputeConfig, step_compute_config
from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.pipeline.fits import train_on_cluster
from mlip_autopipec.trainer import PacemakerRunner
from mlip_autopipec.trainer.template import LOG_NAME

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = dict(
    cutoff=5.0,
    number_of_functions_per_element=8,
    nradmax_by_orders=[5, 2, 1],
    lmax_by_orders=[0, 1, 1],
    max_num_epochs=12,  # ~0.8 s each here: time enough to cancel the job mid-fit, and a short fit in its replacement
    display_step=5,
    test_size=0,
    evaluator="pyace",
)


@pytest.fixture
def job_name():
    require_slurm()
    name = f"mlip-fit-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=30)
    slurm_jobs(name)  # wait until they have ended: a job still completing holds the node's cores from the next test


def cancel_when_fitting(name: str, log_path: Path, signal: str | None = None) -> threading.Thread:
    """A thread that cancels the running job called ``name`` once pacemaker's log shows the fit iterating."""

    def run() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if log_path.is_file() and "Iteration" in log_path.read_text(errors="replace"):
                running = subprocess.run(
                    ["squeue", "-h", "-n", name, "-t", "R", "-o", "%i"], capture_output=True, text=True
                ).stdout.split()
                if running:
                    subprocess.run(
                        ["scancel", *([f"--signal={signal}", "--full"] if signal else []), running[0]],
                        check=True,
                        timeout=30,
                    )
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def compute(name: str, tmp_path: Path, **over) -> SlurmComputeConfig:
    cfg = SlurmComputeConfig(
        type="slurm",
        cores=1,
        memory="2GiB",
        walltime="00:10:00",
        job_name=name,
        log_directory=str(tmp_path / "joblogs"),
        **over,
    )
    return step_compute_config(cfg, "fit")


def test_a_fit_whose_job_is_cancelled_runs_again_in_a_new_job_and_finishes(job_name, tmp_path, cu_structures):
    pacemaker_profile()
    data = write_dataset(tmp_path / "cu.pckl.gzip", cu_structures)
    fit_dir = tmp_path / "fit"
    canceller = cancel_when_fitting(job_name, fit_dir / LOG_NAME)
    result = train_on_cluster(
        PacemakerRunner(TrainingConfig(**SMALL), show_progress=False),
        compute(job_name, tmp_path, max_resubmits=1),
        data,
        fit_dir,
        None,
        progress=False,
    )
    canceller.join(timeout=5)
    assert result.potential_yace.is_file() and result.output_dir == fit_dir.absolute()
    jobs = slurm_jobs(job_name)
    states = [j["JobState"] for j in jobs]
    assert len(jobs) == 2 and states[0] == "CANCELLED", (
        states
    )  # cancelled mid-fit, one replacement that finished the fit
    assert "Iteration" in (fit_dir / LOG_NAME).read_text()


def test_a_fit_past_its_resubmits_is_a_trainer_error_and_leaves_no_job(job_name, tmp_path, cu_structures):
    pacemaker_profile()
    data = write_dataset(tmp_path / "cu.pckl.gzip", cu_structures)
    fit_dir = tmp_path / "fit"
    canceller = cancel_when_fitting(job_name, fit_dir / LOG_NAME, signal="KILL")
    with pytest.raises(TrainerError, match=r"given up after 1 attempt \(max_resubmits=0\).*batch job ended") as err:
        train_on_cluster(
            PacemakerRunner(TrainingConfig(**SMALL), show_progress=False),
            compute(job_name, tmp_path, max_resubmits=0),
            data,
            fit_dir,
            None,
            progress=False,
        )
    canceller.join(timeout=5)
    assert str(fit_dir / LOG_NAME) in str(err.value)
    jobs = slurm_jobs(job_name)
    assert jobs and all(j["JobState"] not in ("RUNNING", "PENDING") for j in jobs), [
        (j["JobId"], j["JobState"]) for j in jobs
    ]
