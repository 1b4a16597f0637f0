"""Per-step compute (labelling, fit, exploration): config, defaults, job names, the fit's one-job cluster, resubmits."""

from __future__ import annotations

import pytest

from mlip_autopipec.compute.cluster import make_cluster
from mlip_autopipec.compute.models import LocalComputeConfig, SlurmComputeConfig, step_compute_config
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError

CU = {"element": "Cu", "lattice": "fcc", "a": 3.61}
SLURM = {
    "type": "slurm",
    "jobs": 4,
    "cores": 8,
    "processes": 4,
    "memory": "16GiB",
    "queue": "cpu",
    "walltime": "02:00:00",
}


def test_an_old_config_runs_every_step_on_its_one_compute():
    cfg = PipelineConfig.model_validate({"structure": CU, "compute": {"type": "local", "n_workers": 2}})
    for step in ("label", "fit", "explore"):
        assert cfg.compute_for(step) == LocalComputeConfig(n_workers=2)
    cfg = PipelineConfig.model_validate({"structure": CU, "compute": SLURM})
    assert cfg.compute_for("label").model_dump() == {
        **SlurmComputeConfig(**SLURM).model_dump(),
        "job_name": "mlip-label",
    }
    assert cfg.compute_for("explore").job_name == "mlip-explore" and cfg.compute_for("explore").jobs == 4
    fit = cfg.compute_for("fit")  # the fit on the default compute: one job, one worker owning the cores, no early leave
    assert (fit.job_name, fit.jobs, fit.processes, fit.cores, fit.queue, fit.worker_lifetime_s()) == (
        "mlip-fit",
        1,
        1,
        8,
        "cpu",
        None,
    )
    assert cfg.compute.job_name is None  # the config itself is left as written


def test_each_step_may_have_its_own_compute_with_its_own_resources():
    gpu = {
        "type": "slurm",
        "cores": 16,
        "memory": "64GiB",
        "queue": "gpu",
        "walltime": "12:00:00",
        "job_extra_directives": ["--gres=gpu:1"],
    }
    cfg = PipelineConfig.model_validate(
        {
            "structure": CU,
            "compute": SLURM,
            "compute_fit": gpu,
            "compute_explore": {"type": "dask", "address": "tcp://h:8786"},
            "compute_label": {**SLURM, "job_name": "qe"},
        }
    )
    assert cfg.compute_for("label").job_name == "qe"  # a name given is kept
    assert cfg.compute_for("explore").address == "tcp://h:8786"
    fit = cfg.compute_for("fit")
    script = make_cluster(fit)
    try:
        text = script.job_script()
    finally:
        script.close()
    for line in (
        "#SBATCH -J mlip-fit",
        "#SBATCH -p gpu",
        "#SBATCH --gres=gpu:1",
        "#SBATCH -t 12:00:00",
        "#SBATCH --cpus-per-task=16",
    ):
        assert line in text, text
    assert "--nworkers" not in text and "--nthreads 16" in text and "--lifetime" not in text


def test_a_misspelt_step_compute_is_an_error_naming_the_field(tmp_path):
    from mlip_autopipec.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(
        "structure: {element: Cu, lattice: fcc, a: 3.61}\n"
        "compute_fit: {type: slurm, cores: 2, memory: 4GiB, gres: gpu}\n"
    )
    with pytest.raises(ConfigurationError, match="compute_fit"):
        load_config(path)
    path.write_text("structure: {element: Cu, lattice: fcc, a: 3.61}\ncompute_train: {type: local}\n")
    with pytest.raises(ConfigurationError, match="compute_train"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown step"):
        step_compute_config(LocalComputeConfig(), "report")


def test_max_resubmits_becomes_the_schedulers_allowed_failures():
    cluster = make_cluster(SlurmComputeConfig(**{**SLURM, "max_resubmits": 7}))
    try:
        assert cluster.scheduler.allowed_failures == 7
    finally:
        cluster.close()
    import dask

    assert dask.config.get("distributed.scheduler.allowed-failures") != 7  # not left set for others


def test_the_slurm_example_loads_and_validates_without_a_cluster():
    from pathlib import Path

    from mlip_autopipec.config import load_config
    from mlip_autopipec.examples import EXAMPLES, example_text

    path = Path(__file__).parents[2] / "examples" / "si_qe_slurm.yaml"
    assert path.is_symlink() and path.read_text() == example_text("si-qe-slurm")  # one copy, shipped in the package
    assert EXAMPLES["si-qe-slurm"] == "si_qe_slurm.yaml"
    cfg = load_config(path)
    label, fit, explore = (cfg.compute_for(s) for s in ("label", "fit", "explore"))
    assert label.type == fit.type == "slurm" and label.queue != fit.queue
    assert any("gres=gpu" in d for d in fit.job_extra_directives)
    assert cfg.oracle.type == "espresso" and cfg.oracle.command.split()[0] in ("srun", "mpirun")
    # every field line of the example carries a comment
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith("- ") and not stripped.endswith(":"):
            assert "#" in line, f"uncommented line in the example: {line!r}"


def test_the_driver_draws_a_remote_fits_progress_from_its_log_also_when_the_fit_starts_again(tmp_path, monkeypatch):
    """follow_fit_log reads pacemaker's log as it grows; a log that shrinks (a fit run again in a new job)
    is read afresh."""
    from mlip_autopipec.pipeline import fits

    log_path = tmp_path / "pacemaker.log"
    line = (
        "2026-01-01 - pyace.metrics_aggregator - INFO - Iteration   #{i}   (10 evals):     Loss: 1.0e-03 | "
        "RMSE Energy(low): 1.00 (1.00) meV/at | Forces(low): 2.00 (2.00) meV/A | Time/eval: 1.00 mcs/at\n"
    )
    writes = [line.format(i=1), line.format(i=2), None, line.format(i=1)]  # None: the log starts again
    seen: list[int] = []

    class Finished:  # threading.Event's wait(), writing the log between the driver's looks at it
        calls = 0

        def wait(self, timeout: float) -> bool:
            if self.calls < len(writes):
                text = writes[self.calls]
                if text is None:
                    log_path.write_text("")
                else:
                    with open(log_path, "a") as f:
                        f.write(text)
            self.calls += 1
            return self.calls > len(writes) + 1

    import contextlib

    @contextlib.contextmanager
    def bar(description, total=None, enabled=True):
        yield lambda done, total_=None, extra="": seen.append(done)

    monkeypatch.setattr("mlip_autopipec.progress.progress_bar", bar)
    fits.follow_fit_log(Finished(), log_path, epochs=10, progress=True, poll_s=0.0)
    assert seen == [1, 2, 1], seen


def test_a_fit_on_a_dask_scheduler_brings_pacemakers_error_back_as_a_trainer_error(tmp_path):
    from distributed import LocalCluster

    from mlip_autopipec.compute.models import DaskComputeConfig
    from mlip_autopipec.config import TrainingConfig
    from mlip_autopipec.exceptions import TrainerError
    from mlip_autopipec.pipeline.fits import train_on_cluster
    from mlip_autopipec.trainer import PacemakerRunner

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        compute = DaskComputeConfig(type="dask", address=cluster.scheduler_address)
        with pytest.raises(TrainerError, match="training dataset not found: .*missing.pckl.gzip"):
            train_on_cluster(
                PacemakerRunner(TrainingConfig(), show_progress=False),
                compute,
                tmp_path / "missing.pckl.gzip",
                tmp_path / "fit",
                None,
                progress=False,
                poll_s=0.1,
            )
