"""Fit an ACE potential with pacemaker: write ``input.yaml``, run ``pacemaker input.yaml``, convert to ``.yace``.

The runner follows ASE's file-IO calculators: a profile says which program and
environment (:class:`~mlip_autopipec.trainer.profile.PacemakerProfile`), the runner
writes the input, starts the program as an argument list with ``cwd=`` the output
directory, and pure functions (:mod:`mlip_autopipec.trainer.parsing`) read its output.

pacemaker writes straight into ``<output_dir>/pacemaker.log`` (stdout and stderr
together); a reader thread follows that file and turns its lines into progress
reports, so the fit runs at full speed whether or not anybody watches.  The
programs start through the profile's ``run()`` (:mod:`mlip_autopipec.launch`: no
orphans, a killed program described in a sentence), and the output directory is
locked for the whole fit (:mod:`mlip_autopipec.trainer.lock`): a second fit into
the same folder is refused with a :class:`TrainerError` naming the holder.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import shutil
import threading
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
from mlip_autopipec.trainer.dataset import dataset_elements
from mlip_autopipec.trainer.lock import FitFolderLock
from mlip_autopipec.trainer.parsing import (
    FitProgress,
    ProgressParser,
    TrainingMetrics,
    metrics_from_tables,
    parse_error,
    parse_final_metrics,
    parse_reference_energy,
    prediction_errors,
    split_complete_lines,
    tail,
)
from mlip_autopipec.trainer.profile import PacemakerProfile
from mlip_autopipec.trainer.pyace_import import import_acebbasisset

log = logging.getLogger(__name__)

ProgressCallback = Callable[[FitProgress], None]

INPUT_NAME = "input.yaml"
LOG_NAME = "pacemaker.log"
POTENTIAL_YAML = "output_potential.yaml"
POTENTIAL_YACE = "output_potential.yace"
INITIAL_POTENTIAL_COPY = "initial_potential.yaml"
TEST_PREDICTIONS = "test_pred.pckl.gzip"
# Files read after the run; removed first, so a stale one from an earlier run is never taken for this run's.
_STALE = (
    POTENTIAL_YAML,
    POTENTIAL_YACE,
    LOG_NAME,
    "log.txt",
    "cycle_metrics.txt",
    "test_cycle_metrics.txt",
    TEST_PREDICTIONS,
)
_TAIL_LINES = 30


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
        description="Single-atom reference energies (eV) pacemaker subtracted (potential metadata); the potential predicts "
        "the total energy minus these, so add them back to compare with the reference method. None: none subtracted.",
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
        dataset_path = Path(dataset_path).absolute()
        output_dir = Path(output_dir).absolute()
        if not dataset_path.is_file():
            raise TrainerError(f"training dataset not found: {dataset_path}")
        if test_dataset_path is not None:
            test_dataset_path = Path(test_dataset_path).absolute()
            if not test_dataset_path.is_file():
                raise TrainerError(f"test dataset not found: {test_dataset_path}")
        self.profile.executable("pacemaker")  # both programs present, or say how to install them before any work
        self.profile.executable("pace_yaml2yace")
        config = self._effective_config()
        es = config.early_stopping
        if (
            es is not None
            and es.min_relative_test_loss_per_iter is not None
            and config.test_size == 0
            and test_dataset_path is None
        ):
            log.warning(
                "early_stopping.min_relative_test_loss_per_iter has no effect: there is no test set (test_size 0, no test dataset)"
            )
        if elements is None:
            elements = dataset_elements(dataset_path)

        with FitFolderLock(output_dir) as lock:  # one fit per folder, for the whole fit
            return self._train_locked(config, dataset_path, output_dir, test_dataset_path, elements, lock, t0)

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
        for name in _STALE:
            (output_dir / name).unlink(missing_ok=True)
        config = self._stage_initial_potential(config, output_dir)
        input_yaml = output_dir / INPUT_NAME
        input_yaml.write_text(config.to_input_yaml(dataset_path, elements, test_dataset_path))
        log_path = output_dir / LOG_NAME

        log.info("pacemaker: fitting %s (%s) in %s", dataset_path.name, ", ".join(sorted(set(elements))), output_dir)
        run = self._run_pacemaker(output_dir, log_path, config, lock)
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if not run.ok:
            failure = run.failure()
            if run.returncode > 0 and not run.timed_out:  # pacemaker's own error message up front
                failure += f": {parse_error(log_text) or 'no error message found'}"
            raise _failed(failure, log_path, log_text)
        potential_yaml = output_dir / POTENTIAL_YAML
        if not potential_yaml.is_file():
            raise _failed(
                f"pacemaker finished in {output_dir} but wrote no {POTENTIAL_YAML} (log {log_path})", log_path, log_text
            )
        potential_yace = self._convert_to_yace(output_dir, log_path)
        metrics = self._read_metrics(output_dir, log_text, log_path)
        result = TrainingResult(
            potential_yace=potential_yace,
            potential_yaml=potential_yaml,
            metrics=metrics,
            log_path=log_path,
            input_yaml=input_yaml,
            output_dir=output_dir,
            evaluator=config.evaluator,
            reference_energy=parse_reference_energy(potential_yaml.read_text()),
            wall_time_s=time.monotonic() - t0,
        )
        m = result.metrics
        log.info(
            "pacemaker: done in %.1f s; train RMSE %.2f meV/atom, %.1f meV/Å%s",
            result.wall_time_s,
            m.train_energy_rmse_mev_per_atom,
            m.train_force_rmse_mev_per_a,
            ""
            if m.test_energy_rmse_mev_per_atom is None
            else f"; test RMSE {m.test_energy_rmse_mev_per_atom:.2f} meV/atom, {m.test_force_rmse_mev_per_a:.1f} meV/Å",
        )
        return result

    # ---------------------------------------------------------------------------------------------
    def _effective_config(self) -> TrainingConfig:
        config = self.config
        if config.evaluator == "tensorpot" and not self.profile.has_tensorpotential():
            log.warning(
                "pacemaker's TensorFlow backend (tensorpotential) is not installed: fitting with the 'pyace' "
                "evaluator (C++, no TensorFlow) instead (install tensorpotential, or set training.evaluator: pyace to silence this)"
            )
            config = config.model_copy(update={"evaluator": "pyace"})
        return config

    def _stage_initial_potential(self, config: TrainingConfig, output_dir: Path) -> TrainingConfig:
        """Copy the initial potential into the run directory (provenance; safe to continue in the same directory)."""
        if config.initial_potential is None:
            return config
        source = Path(config.initial_potential).absolute()
        if not source.is_file():
            raise TrainerError(f"initial_potential not found: {source}")
        target = output_dir / INITIAL_POTENTIAL_COPY
        if source != target:
            shutil.copyfile(source, target)
        return config.model_copy(update={"initial_potential": target})

    def _extra_environment(self) -> dict[str, str]:
        """Variables pacemaker needs unless the environment or the profile sets them otherwise."""
        defaults = {
            "PYTHONUNBUFFERED": "1",  # keep pacemaker's print()s in order with its log lines, and live
            "MPLBACKEND": "Agg",  # pacemaker draws PNGs; never look for a display
        }
        environ = self.profile.environment()
        return {k: v for k, v in defaults.items() if k not in environ}

    def _run_pacemaker(
        self, output_dir: Path, log_path: Path, config: TrainingConfig, lock: FitFolderLock
    ) -> ProgramRun:
        """Run ``pacemaker input.yaml`` with its output in ``log_path`` while a thread reports progress."""
        t_start = time.monotonic()
        parser = ProgressParser()
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
            follower = _LogFollower(log_path, on_line)
            follower.start()
            try:
                return self.profile.run(
                    "pacemaker",
                    [INPUT_NAME],
                    cwd=output_dir,
                    log_path=log_path,
                    append=True,
                    timeout_s=config.timeout_s,
                    env=self._extra_environment(),
                    pass_fds=(lock.fd,) if lock.fd is not None else (),  # the folder stays locked while pacemaker lives
                )
            finally:
                follower.stop()

    def _convert_to_yace(self, output_dir: Path, log_path: Path) -> Path:
        """output_potential.yaml -> output_potential.yace.

        When the profile's pace_yaml2yace is the one of this Python environment, do in-process
        what that script does (pyace's ACEBBasisSet -> C-tilde basis, byte-identical output),
        which saves starting a Python and importing pyace for each fit; otherwise run the
        profile's program.
        """
        potential_yaml, potential_yace = output_dir / POTENTIAL_YAML, output_dir / POTENTIAL_YACE
        if self.profile.is_local("pace_yaml2yace"):
            try:
                ACEBBasisSet = import_acebbasisset()
                ACEBBasisSet(str(potential_yaml)).to_ACECTildeBasisSet().save_yaml(str(potential_yace))
            except Exception as err:  # pyace raises RuntimeError/ValueError from C++ on a bad basis
                raise TrainerError(
                    f"could not convert {potential_yaml} to .yace with pyace: {type(err).__name__}: {err}"
                ) from err
            with open(log_path, "a") as log_file:
                log_file.write(
                    f"\n[mlip-autopipec] {POTENTIAL_YAML} converted to {POTENTIAL_YACE} with pyace (what pace_yaml2yace does)\n"
                )
            return potential_yace
        args = [POTENTIAL_YAML, "-o", POTENTIAL_YACE]
        with open(log_path, "a") as log_file:
            log_file.write(f"\n$ pace_yaml2yace {' '.join(args)}\n")
        run = self.profile.run("pace_yaml2yace", args, cwd=output_dir, log_path=log_path, append=True)
        if not run.ok or not potential_yace.is_file():
            text = log_path.read_text(errors="replace")
            why = (
                run.failure()
                or f"pace_yaml2yace finished in {output_dir} but wrote no {POTENTIAL_YACE} (log {log_path})"
            )
            raise _failed(
                f"pace_yaml2yace could not convert {potential_yaml}: {why}: {parse_error(text) or 'no error message found'}",
                log_path,
                text,
            )
        return potential_yace

    @staticmethod
    def _read_metrics(output_dir: Path, log_text: str, log_path: Path) -> TrainingMetrics:
        """The cycle tables first (full precision), else the log; test errors from test_pred.pckl.gzip if neither has them."""
        train_table = output_dir / "cycle_metrics.txt"
        test_table = output_dir / "test_cycle_metrics.txt"
        metrics = None
        if train_table.is_file():
            try:
                metrics = metrics_from_tables(
                    train_table.read_text(), test_table.read_text() if test_table.is_file() else None
                )
            except (ValueError, KeyError) as err:
                log.warning("cannot read %s (%s); taking the metrics from %s", train_table, err, log_path)
        if metrics is None:
            metrics = parse_final_metrics(log_text)
        if metrics is None:
            raise TrainerError(
                f"pacemaker finished in {output_dir} but reported no final errors in {train_table.name} or {log_path}"
            )
        test_predictions = output_dir / TEST_PREDICTIONS
        if metrics.test_energy_rmse_mev_per_atom is None and test_predictions.is_file():
            import pandas as pd

            try:
                e_rmse, f_rmse = prediction_errors(pd.read_pickle(test_predictions, compression="gzip"))
            except Exception as err:  # a damaged file only costs the test numbers
                log.warning("cannot read the test predictions %s: %s", test_predictions, err)
            else:
                metrics = metrics.model_copy(
                    update={"test_energy_rmse_mev_per_atom": e_rmse, "test_force_rmse_mev_per_a": f_rmse}
                )
        return metrics


PaceRunner = PacemakerRunner
"""The spec's other name for :class:`PacemakerRunner`."""


def _failed(sentence: str, log_path: Path, log_text: str) -> TrainerError:
    """The error for a failed fit: the log's tail goes to the log once, here; the message stays one sentence.

    Callers print or log the message (the driver's "run stopped", the CLI's "error:"), so a
    tail inside it would be shown once per caller.
    """
    last = tail(log_text, _TAIL_LINES)
    if last.strip():
        log.error("pacemaker: last %d lines of %s:\n%s", _TAIL_LINES, log_path, last)
    else:
        log.error("pacemaker: %s is empty (the program wrote nothing)", log_path)
    return TrainerError(sentence)


def _describe(report: FitProgress) -> str:
    parts = [f"loss {report.loss:.3e}"]
    if report.energy_rmse_mev_per_atom is not None:
        parts.append(f"E {report.energy_rmse_mev_per_atom:.2f} meV/atom")
    if report.force_rmse_mev_per_a is not None:
        parts.append(f"F {report.force_rmse_mev_per_a:.1f} meV/Å")
    return ", ".join(parts)


class _LogFollower:
    """Follows a growing file in a thread and hands each complete line to ``on_line``."""

    def __init__(self, path: Path, on_line: Callable[[str], None], poll_s: float = 0.1) -> None:
        self.path = path
        self.on_line = on_line
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow {path.name}", daemon=True)
        self._callback_failed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Read what is left, then end the thread."""
        self._stop.set()
        self._thread.join()

    def _emit(self, line: str) -> None:
        if self._callback_failed:
            return
        try:
            self.on_line(line)
        except Exception:  # a broken progress callback must not break the fit
            self._callback_failed = True
            log.exception("progress callback failed; no more progress reports for this fit")

    def _run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rest = ""
        with open(self.path, "rb") as f:
            while True:
                stopping = self._stop.is_set()  # checked before reading, so the last read sees everything
                chunk = f.read(1 << 16)
                if chunk:
                    lines, rest = split_complete_lines(rest + decoder.decode(chunk))
                    for line in lines:
                        self._emit(line)
                    continue
                if stopping:
                    break
                self._stop.wait(self.poll_s)
        rest += decoder.decode(b"", final=True)
        if rest.strip():
            self._emit(rest.rstrip("\r"))


__all__ = ["PaceRunner", "PacemakerRunner", "ProgressCallback", "TrainingResult"]
