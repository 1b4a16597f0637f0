"""Fit an ACE potential with pacemaker: the runner ties pacemaker's profile (launches) to its template (files).

The split is ASE's for file-IO calculators: the profile
(:class:`~mlip_autopipec.trainer.profile.PacemakerProfile`) says which programs run in which
environment and starts them as argument lists with ``cwd=`` the run directory; the template
(:mod:`mlip_autopipec.trainer.template`) writes ``input.yaml`` and reads the results through the
pure parsers of :mod:`mlip_autopipec.trainer.parsing`.  :class:`PacemakerRunner` checks the
inputs, locks the run directory and runs: write the input, ``pacemaker input.yaml``, convert to
``.yace``, read the results.

pacemaker writes straight into ``<output_dir>/pacemaker.log`` (stdout and stderr
together); a reader thread (:class:`~mlip_autopipec.trainer.follow.LogFollower`) follows that
file and turns its lines into progress reports, so the fit runs at full speed whether or not
anybody watches.  The programs start through :mod:`mlip_autopipec.launch` (no orphans, a killed
program described in a sentence), and the output directory is locked for the whole fit
(:mod:`mlip_autopipec.trainer.lock`): a second fit into the same folder is refused with a
:class:`TrainerError` naming the holder.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.loader import require_config
from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.launch import ProgramRun
from mlip_autopipec.progress import progress_bar
from mlip_autopipec.trainer import template
from mlip_autopipec.trainer.dataset import dataset_elements
from mlip_autopipec.trainer.failure import program_error
from mlip_autopipec.trainer.follow import LogFollower
from mlip_autopipec.trainer.lock import FitFolderLock
from mlip_autopipec.trainer.parsing import FitProgress, ProgressParser, TrainingMetrics
from mlip_autopipec.trainer.profile import PacemakerProfile
from mlip_autopipec.trainer.pyace_import import import_acebbasisset
from mlip_autopipec.trainer.template import INPUT_NAME, LOG_NAME, POTENTIAL_YACE, POTENTIAL_YAML

log = logging.getLogger(__name__)

ProgressCallback = Callable[[FitProgress], None]


class TrainingResult(BaseModel):
    """What a finished fit produced (all paths absolute)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    potential_yace: Path = Field(description="The potential for PyACECalculator / LAMMPS pair_style pace (.yace).")
    potential_yaml: Path = Field(
        description="The potential in pacemaker's B-basis format (.yaml), for continuing fits and the active set."
    )
    metrics: TrainingMetrics = Field(description="Train (and test) RMSE pacemaker reports at the end of the fit.")
    log_path: Path = Field(description="pacemaker's whole output (stdout and stderr).")
    input_yaml: Path = Field(description="The input.yaml pacemaker ran with.")
    output_dir: Path = Field(description="The run directory.")
    evaluator: Literal["tensorpot", "pyace"] = Field(description="The pacemaker backend actually used.")
    reference_energy: dict[str, float] | None = Field(
        None,
        description="Single-atom reference energies (eV) pacemaker subtracted (potential metadata); the potential "
        "predicts the total energy minus these, so add them back to compare with the reference method. None: none "
        "subtracted.",
    )
    wall_time_s: float = Field(description="Wall-clock time of train() (s).")


class PacemakerRunner:
    """Runs pacemaker on a dataset with a :class:`TrainingConfig`.

    ``on_progress`` is called (from a reader thread) with each :class:`FitProgress`
    pacemaker reports; ``show_progress`` also draws a progress bar on a terminal, or logs
    a line every tenth of the iterations elsewhere.
    """

    def __init__(
        self,
        config: TrainingConfig,
        profile: PacemakerProfile | None = None,
        on_progress: ProgressCallback | None = None,
        show_progress: bool = True,
    ) -> None:
        self.config = require_config(config, TrainingConfig, "PacemakerRunner's config")
        self.profile = (
            require_config(profile, PacemakerProfile, "PacemakerRunner's profile")
            if profile is not None
            else PacemakerProfile()
        )
        self.on_progress = on_progress
        self.show_progress = show_progress

    # ---------------------------------------------------------------------------------------------
    def train(
        self,
        dataset_path: str | Path,
        output_dir: str | Path,
        *,
        test_dataset_path: str | Path | None = None,
        elements: Sequence[str] | None = None,
    ) -> TrainingResult:
        """Fit on ``dataset_path`` (a pacemaker ``.pckl.gzip``) in ``output_dir``; see :class:`TrainingResult`.

        ``test_dataset_path``: a second dataset pacemaker reports its test errors on (instead
        of splitting ``test_size`` off the training data).  ``elements``: the potential's
        elements; default: those found in the dataset.
        """
        t0 = time.monotonic()
        dataset = _existing(dataset_path, "training dataset")
        test_dataset = None if test_dataset_path is None else _existing(test_dataset_path, "test dataset")
        output_dir = Path(output_dir).absolute()
        self.profile.executable("pacemaker")  # both programs present, or say how to install them before any work
        self.profile.executable("pace_yaml2yace")
        config = self._effective_config()
        _warn_without_test_set(config, test_dataset)
        if elements is None:
            elements = dataset_elements(dataset)
        with FitFolderLock(output_dir) as lock:  # one fit per folder, for the whole fit
            return self._train_locked(config, dataset, output_dir, test_dataset, elements, lock, t0)

    def _train_locked(
        self,
        config: TrainingConfig,
        dataset_path: Path,
        output_dir: Path,
        test_dataset_path: Path | None,
        elements: Sequence[str],
        lock: FitFolderLock,
        t0: float,
    ) -> TrainingResult:
        """Write the input, run pacemaker, convert its potential to .yace and read the results."""
        template.remove_outputs(output_dir)
        input_yaml = template.write_input(output_dir, config, dataset_path, elements, test_dataset_path)
        log.info("pacemaker: fitting %s (%s) in %s", dataset_path.name, ", ".join(sorted(set(elements))), output_dir)
        run = self._run_pacemaker(output_dir, config, lock)
        _check_fit(run, output_dir)
        potential_yace = self._convert_to_yace(output_dir)
        outputs = template.read_results(output_dir)
        result = TrainingResult(
            potential_yace=potential_yace,
            potential_yaml=output_dir / POTENTIAL_YAML,
            metrics=outputs.metrics,
            log_path=output_dir / LOG_NAME,
            input_yaml=input_yaml,
            output_dir=output_dir,
            evaluator=config.evaluator,
            reference_energy=outputs.reference_energy,
            wall_time_s=time.monotonic() - t0,
        )
        _log_done(result)
        return result

    # ---------------------------------------------------------------------------------------------
    def _effective_config(self) -> TrainingConfig:
        config = self.config
        if config.evaluator == "tensorpot" and not self.profile.has_tensorpotential():
            log.warning(
                "pacemaker's TensorFlow backend (tensorpotential) is not installed: fitting with the 'pyace' "
                "evaluator (C++, no TensorFlow) instead (install tensorpotential, or set training.evaluator: pyace "
                "to silence this)"
            )
            config = config.model_copy(update={"evaluator": "pyace"})
        return config

    def _run_pacemaker(self, output_dir: Path, config: TrainingConfig, lock: FitFolderLock) -> ProgramRun:
        """Run ``pacemaker input.yaml`` with its output in pacemaker.log while a thread reports progress."""
        t_start = time.monotonic()
        parser = ProgressParser()
        log_path = output_dir / LOG_NAME
        with progress_bar("pacemaker fit", total=config.max_num_epochs, enabled=self.show_progress) as update:

            def on_line(line: str) -> None:
                report = parser.feed(line)
                if report is None:
                    return
                report = dataclasses.replace(report, elapsed_s=time.monotonic() - t_start)
                log.debug("pacemaker progress: %s", report)
                if report.phase == "train":
                    update(min(report.iteration, config.max_num_epochs), extra=_describe(report))
                if self.on_progress is not None:
                    self.on_progress(report)

            log_path.write_bytes(b"")  # the follower opens it before pacemaker writes
            follower = LogFollower(log_path, on_line)
            follower.start()
            try:
                return self.profile.run_fit(
                    output_dir,
                    INPUT_NAME,
                    log_path,
                    timeout_s=config.timeout_s,
                    pass_fds=(lock.fd,) if lock.fd is not None else (),  # the folder stays locked while pacemaker lives
                )
            finally:
                follower.stop()

    def _convert_to_yace(self, output_dir: Path) -> Path:
        """output_potential.yaml -> output_potential.yace.

        When the profile's pace_yaml2yace is the one of this Python environment, do in-process
        what that script does (:func:`_yaml2yace_in_process`), which saves starting a Python and
        importing pyace for each fit; otherwise run the profile's program.
        """
        potential_yaml, potential_yace = output_dir / POTENTIAL_YAML, output_dir / POTENTIAL_YACE
        log_path = output_dir / LOG_NAME
        if self.profile.is_local("pace_yaml2yace"):
            _yaml2yace_in_process(potential_yaml, potential_yace, log_path)
            return potential_yace
        run = self.profile.run_yaml2yace(output_dir, POTENTIAL_YAML, POTENTIAL_YACE, log_path)
        if not run.ok or not potential_yace.is_file():
            text = log_path.read_text(errors="replace")
            why = (
                run.failure()
                or f"pace_yaml2yace finished in {output_dir} but wrote no {POTENTIAL_YACE} (log {log_path})"
            )
            raise program_error(f"pace_yaml2yace could not convert {potential_yaml}: {why}", log_path, text)
        return potential_yace


PaceRunner = PacemakerRunner
"""The spec's other name for :class:`PacemakerRunner`."""


def _existing(path: str | Path, what: str) -> Path:
    """``path`` made absolute; :class:`TrainerError` naming ``what`` when it is not a file."""
    path = Path(path).absolute()
    if not path.is_file():
        raise TrainerError(f"{what} not found: {path}")
    return path


def _warn_without_test_set(config: TrainingConfig, test_dataset_path: Path | None) -> None:
    es = config.early_stopping
    if es is None or es.min_relative_test_loss_per_iter is None:
        return
    if config.test_size == 0 and test_dataset_path is None:
        log.warning(
            "early_stopping.min_relative_test_loss_per_iter has no effect: there is no test set "
            "(test_size 0, no test dataset)"
        )


def _check_fit(run: ProgramRun, output_dir: Path) -> None:
    """:class:`TrainerError` when pacemaker failed or wrote no potential (the log's tail goes to the run log)."""
    log_path = output_dir / LOG_NAME
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    if not run.ok:
        failure = run.failure() or "pacemaker failed"
        own_error = run.returncode > 0 and not run.timed_out  # pacemaker's own error message up front
        raise program_error(failure, log_path, log_text, own_error=own_error)
    if not (output_dir / POTENTIAL_YAML).is_file():
        raise program_error(
            f"pacemaker finished in {output_dir} but wrote no {POTENTIAL_YAML} (log {log_path})", log_path, log_text
        )


def _yaml2yace_in_process(potential_yaml: Path, potential_yace: Path, log_path: Path) -> None:
    """What pace_yaml2yace does, with this environment's pyace: ACEBBasisSet -> C-tilde basis (byte-identical)."""
    try:
        ACEBBasisSet = import_acebbasisset()
        ACEBBasisSet(str(potential_yaml)).to_ACECTildeBasisSet().save_yaml(str(potential_yace))
    except Exception as err:  # pyace raises RuntimeError/ValueError from C++ on a bad basis
        raise TrainerError(
            f"could not convert {potential_yaml} to .yace with pyace: {type(err).__name__}: {err}"
        ) from err
    with open(log_path, "a") as log_file:
        log_file.write(
            f"\n[mlip-autopipec] {potential_yaml.name} converted to {potential_yace.name} with pyace "
            "(what pace_yaml2yace does)\n"
        )


def _log_done(result: TrainingResult) -> None:
    m = result.metrics
    test = (
        ""
        if m.test_energy_rmse_mev_per_atom is None
        else f"; test RMSE {m.test_energy_rmse_mev_per_atom:.2f} meV/atom, {m.test_force_rmse_mev_per_a:.1f} meV/Å"
    )
    log.info(
        "pacemaker: done in %.1f s; train RMSE %.2f meV/atom, %.1f meV/Å%s",
        result.wall_time_s,
        m.train_energy_rmse_mev_per_atom,
        m.train_force_rmse_mev_per_a,
        test,
    )


def _describe(report: FitProgress) -> str:
    parts = [f"loss {report.loss:.3e}"]
    if report.energy_rmse_mev_per_atom is not None:
        parts.append(f"E {report.energy_rmse_mev_per_atom:.2f} meV/atom")
    if report.force_rmse_mev_per_a is not None:
        parts.append(f"F {report.force_rmse_mev_per_a:.1f} meV/Å")
    return ", ".join(parts)


__all__ = ["PaceRunner", "PacemakerRunner", "ProgressCallback", "TrainingResult"]
