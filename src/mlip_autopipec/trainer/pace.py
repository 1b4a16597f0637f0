"""Fit an ACE potential with pacemaker: write ``input.yaml``, run ``pacemaker input.yaml``, convert to ``.yace``.

The runner follows ASE's file-IO calculators: a profile says which program and
environment (:class:`~mlip_autopipec.trainer.profile.PacemakerProfile`), the runner
writes the input, starts the program as an argument list with ``cwd=`` the output
directory, and pure functions (:mod:`mlip_autopipec.trainer.parsing`) read its output.

pacemaker writes straight into ``<output_dir>/pacemaker.log`` (stdout and stderr
together); a reader thread follows that file and turns its lines into progress
reports, so the fit runs at full speed whether or not anybody watches.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.loader import require_config
from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.progress import progress_bar
from mlip_autopipec.trainer.dataset import dataset_elements
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

log = logging.getLogger(__name__)

ProgressCallback = Callable[[FitProgress], None]

INPUT_NAME = "input.yaml"
LOG_NAME = "pacemaker.log"
POTENTIAL_YAML = "output_potential.yaml"
POTENTIAL_YACE = "output_potential.yace"
INITIAL_POTENTIAL_COPY = "initial_potential.yaml"
TEST_PREDICTIONS = "test_pred.pckl.gzip"
# Files read after the run; removed first, so a stale one from an earlier run is never taken for this run's.
_STALE = (POTENTIAL_YAML, POTENTIAL_YACE, LOG_NAME, "log.txt", "cycle_metrics.txt", "test_cycle_metrics.txt", TEST_PREDICTIONS)
_TAIL_LINES = 30
_KILL_GRACE_S = 10.0


class TrainingResult(BaseModel):
    """What a finished fit produced (all paths absolute)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    potential_yace: Path = Field(description="The potential for PyACECalculator / LAMMPS pair_style pace (.yace).")
    potential_yaml: Path = Field(description="The potential in pacemaker's B-basis format (.yaml), for continuing fits and the active set.")
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
        self.profile = require_config(profile, PacemakerProfile, "PacemakerRunner's profile") if profile is not None else PacemakerProfile()
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
        pacemaker = self.profile.executable("pacemaker")
        yaml2yace = self.profile.executable("pace_yaml2yace")
        config = self._effective_config()
        es = config.early_stopping
        if es is not None and es.min_relative_test_loss_per_iter is not None and config.test_size == 0 and test_dataset_path is None:
            log.warning("early_stopping.min_relative_test_loss_per_iter has no effect: there is no test set (test_size 0, no test dataset)")
        if elements is None:
            elements = dataset_elements(dataset_path)

        output_dir.mkdir(parents=True, exist_ok=True)
        for name in _STALE:
            (output_dir / name).unlink(missing_ok=True)
        config = self._stage_initial_potential(config, output_dir)
        input_yaml = output_dir / INPUT_NAME
        input_yaml.write_text(config.to_input_yaml(dataset_path, elements, test_dataset_path))
        log_path = output_dir / LOG_NAME
        env = self._environment()

        log.info("pacemaker: fitting %s (%s) in %s", dataset_path.name, ", ".join(sorted(set(elements))), output_dir)
        returncode, timed_out = self._run_pacemaker([pacemaker, INPUT_NAME], output_dir, env, log_path, config)
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if timed_out:
            raise TrainerError(
                f"pacemaker ran past the {config.timeout_s:g} s limit (timeout_s) in {output_dir} and was stopped; "
                f"last {_TAIL_LINES} lines of {log_path}:\n{tail(log_text, _TAIL_LINES)}"
            )
        if returncode != 0:
            message = parse_error(log_text) or "no error message found"
            raise TrainerError(
                f"pacemaker failed (exit code {returncode}) in {output_dir}: {message}\n"
                f"last {_TAIL_LINES} lines of {log_path}:\n{tail(log_text, _TAIL_LINES)}"
            )
        potential_yaml = output_dir / POTENTIAL_YAML
        if not potential_yaml.is_file():
            raise TrainerError(
                f"pacemaker finished in {output_dir} but wrote no {POTENTIAL_YAML}; "
                f"last {_TAIL_LINES} lines of {log_path}:\n{tail(log_text, _TAIL_LINES)}"
            )
        potential_yace = self._convert_to_yace(yaml2yace, output_dir, env, log_path)
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

    def _environment(self) -> dict[str, str]:
        env = self.profile.environment()
        env.setdefault("PYTHONUNBUFFERED", "1")  # keep pacemaker's print()s in order with its log lines, and live
        env.setdefault("MPLBACKEND", "Agg")  # pacemaker draws PNGs; never look for a display
        return env

    def _run_pacemaker(
        self, cmd: list[str], output_dir: Path, env: dict[str, str], log_path: Path, config: TrainingConfig
    ) -> tuple[int, bool]:
        """Run pacemaker with its output in ``log_path`` while a thread reports progress; (exit code, timed out)."""
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

            with open(log_path, "wb") as log_file:
                follower = _LogFollower(log_path, on_line)
                follower.start()
                proc = None
                try:
                    proc = subprocess.Popen(
                        cmd,
                        cwd=output_dir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, so a timeout stops all of it
                    )
                    try:
                        return proc.wait(timeout=config.timeout_s), False
                    except subprocess.TimeoutExpired:
                        _stop_process_group(proc)
                        return (proc.returncode if proc.returncode is not None else -signal.SIGKILL), True
                except OSError as err:  # e.g. the executable vanished or lost its x bit after the lookup
                    raise TrainerError(f"cannot start {cmd[0]} in {output_dir}: {err}") from err
                finally:
                    if proc is not None and proc.poll() is None:  # interrupted (Ctrl-C, exception in a callback)
                        _stop_process_group(proc)
                    follower.stop()

    def _convert_to_yace(self, yaml2yace: str, output_dir: Path, env: dict[str, str], log_path: Path) -> Path:
        """output_potential.yaml -> output_potential.yace.

        When the profile's pace_yaml2yace is the one of this Python environment, do in-process
        what that script does (pyace's ACEBBasisSet -> C-tilde basis, byte-identical output),
        which saves starting a Python and importing pyace for each fit; otherwise run the
        profile's program.
        """
        potential_yaml, potential_yace = output_dir / POTENTIAL_YAML, output_dir / POTENTIAL_YACE
        if self.profile.is_local("pace_yaml2yace"):
            try:
                ACEBBasisSet = _import_acebbasisset()
                ACEBBasisSet(str(potential_yaml)).to_ACECTildeBasisSet().save_yaml(str(potential_yace))
            except Exception as err:  # pyace raises RuntimeError/ValueError from C++ on a bad basis
                raise TrainerError(f"could not convert {potential_yaml} to .yace with pyace: {type(err).__name__}: {err}") from err
            with open(log_path, "a") as log_file:
                log_file.write(f"\n[mlip-autopipec] {POTENTIAL_YAML} converted to {POTENTIAL_YACE} with pyace (what pace_yaml2yace does)\n")
            return potential_yace
        cmd = [yaml2yace, POTENTIAL_YAML, "-o", POTENTIAL_YACE]
        with open(log_path, "ab") as log_file:
            log_file.write(f"\n$ {' '.join(cmd)}\n".encode())
            log_file.flush()
            proc = subprocess.run(
                cmd, cwd=output_dir, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, check=False
            )
        if proc.returncode != 0 or not potential_yace.is_file():
            text = log_path.read_text(errors="replace")
            raise TrainerError(
                f"pace_yaml2yace could not convert {potential_yaml} (exit code {proc.returncode}): "
                f"{parse_error(text) or 'no error message found'}\nlast lines of {log_path}:\n{tail(text, _TAIL_LINES)}"
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
                metrics = metrics_from_tables(train_table.read_text(), test_table.read_text() if test_table.is_file() else None)
            except (ValueError, KeyError) as err:
                log.warning("cannot read %s (%s); taking the metrics from %s", train_table, err, log_path)
        if metrics is None:
            metrics = parse_final_metrics(log_text)
        if metrics is None:
            raise TrainerError(f"pacemaker finished in {output_dir} but reported no final errors in {train_table.name} or {log_path}")
        test_predictions = output_dir / TEST_PREDICTIONS
        if metrics.test_energy_rmse_mev_per_atom is None and test_predictions.is_file():
            import pandas as pd

            try:
                e_rmse, f_rmse = prediction_errors(pd.read_pickle(test_predictions, compression="gzip"))
            except Exception as err:  # a damaged file only costs the test numbers
                log.warning("cannot read the test predictions %s: %s", test_predictions, err)
            else:
                metrics = metrics.model_copy(update={"test_energy_rmse_mev_per_atom": e_rmse, "test_force_rmse_mev_per_a": f_rmse})
        return metrics


PaceRunner = PacemakerRunner
"""The spec's other name for :class:`PacemakerRunner`."""


def _import_acebbasisset() -> Any:
    """``pyace.ACEBBasisSet``, without the ``logging.basicConfig(level=INFO)`` that ``import pyace`` does to the caller."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from pyace import ACEBBasisSet
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    return ACEBBasisSet


def _describe(report: FitProgress) -> str:
    parts = [f"loss {report.loss:.3e}"]
    if report.energy_rmse_mev_per_atom is not None:
        parts.append(f"E {report.energy_rmse_mev_per_atom:.2f} meV/atom")
    if report.force_rmse_mev_per_a is not None:
        parts.append(f"F {report.force_rmse_mev_per_a:.1f} meV/Å")
    return ", ".join(parts)


def _stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


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
