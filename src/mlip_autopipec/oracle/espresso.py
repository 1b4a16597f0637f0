"""Quantum ESPRESSO ``pw.x`` as an oracle, through ASE's Espresso calculator.

The profile (:class:`PwProfile`: the command as an argument list, the
pseudopotential folder, extra environment variables, a time limit) says how
pw.x runs; ASE's ``EspressoTemplate`` writes ``espresso.pwi`` and reads
``espresso.pwo``; :func:`~mlip_autopipec.oracle.qe_output.parse_pw_output`
says whether the SCF converged.  A non-converged SCF is retried with the next
rung of the healing ladder (:mod:`mlip_autopipec.oracle.healing`), each try in
its own folder ``<directory>/attempt_<n>``; every attempt is recorded.

Magnetism: the config's ``magnetic_moments`` (μB per element) become the atoms' initial magnetic
moments, divided by each pseudopotential's valence charge (:mod:`~mlip_autopipec.oracle.qe_magnetism`);
ASE's writer then turns on ``nspin`` 2 and writes ``starting_magnetization`` per species.  The final
moments (μB, per site and of the cell) come back with the labels.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.espresso import Espresso, EspressoProfile

from mlip_autopipec.config.schemas.oracle import EspressoOracleConfig
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.launch import ProgramRun, program_environment, run_program
from mlip_autopipec.oracle.base import (
    AttemptRecord,
    LabelFailed,
    LabelResult,
    Oracle,
    fully_periodic,
    kpoint_mesh,
    output_tail,
    results_from_calculator,
)
from mlip_autopipec.oracle.healing import ScfSettings, healing_overrides, merge_namelists
from mlip_autopipec.oracle.qe_magnetism import parse_magnetic_moments, starting_magnetization, upf_valence
from mlip_autopipec.oracle.qe_output import PwStatus, parse_pw_output, pw_output_tail

INPUT_NAME = "espresso.pwi"
OUTPUT_NAME = "espresso.pwo"
ERROR_NAME = "espresso.err"
SCRATCH_NAME = "scratch"


class PwProfile(EspressoProfile):
    """ASE's EspressoProfile plus extra environment variables and a wall-time limit.

    :meth:`run` starts pw.x through the package's one launcher
    (:func:`mlip_autopipec.launch.run_program`): an argument list without a shell, ``cwd=``
    the attempt's folder, never outliving the worker that started it.  A failed run raises
    :class:`PwRunFailed`, whose message says why (exit code, signal, time limit).
    """

    def __init__(
        self, command: str, pseudo_dir: str | Path, env: dict[str, str] | None = None, timeout_s: float | None = None
    ):
        super().__init__(command=command, pseudo_dir=pseudo_dir)
        self.env = dict(env or {})
        self.timeout_s = timeout_s

    def run(
        self,
        directory: Path,
        inputfile: str | None,
        outputfile: str,
        errorfile: str | None = None,
        append: bool = False,
    ) -> None:
        directory = Path(directory)
        run = run_program(
            self.get_command(inputfile),
            cwd=directory,
            env={**program_environment(), **self.env},
            timeout_s=self.timeout_s,
            log_path=directory / outputfile,
            stderr_path=directory / errorfile if errorfile is not None else None,
            append=append,
            name="pw.x",
        )
        if not run.ok:
            raise PwRunFailed(run)


class PwRunFailed(OracleError):
    """pw.x ended with an error, by a signal or past its time limit; ``run`` says how."""

    def __init__(self, run: ProgramRun) -> None:
        super().__init__(run.failure())
        self.run = run


def base_input_data(config: EspressoOracleConfig) -> dict[str, dict[str, Any]]:
    """The pw.x namelists of the first attempt: the config's fields, then its ``input_data``."""
    system: dict[str, Any] = {"ecutwfc": config.ecutwfc, "occupations": config.occupations}
    if config.ecutrho is not None:
        system["ecutrho"] = config.ecutrho
    if config.occupations == "smearing":
        system["smearing"] = config.smearing
        system["degauss"] = config.degauss
    fixed = {
        "control": {"calculation": "scf", "tprnfor": True, "tstress": True, "outdir": SCRATCH_NAME, "prefix": "pwscf"},
        "system": system,
        "electrons": {
            "conv_thr": config.conv_thr,
            "mixing_beta": config.mixing_beta,
            "mixing_mode": config.mixing_mode,
            "electron_maxstep": config.electron_maxstep,
            "diagonalization": config.diagonalization,
        },
    }
    return merge_namelists(fixed, config.input_data)


def scf_settings(input_data: dict[str, dict[str, Any]]) -> ScfSettings:
    """The ladder's starting point, read from the first attempt's namelists."""
    el, sy = input_data.get("electrons", {}), input_data.get("system", {})
    smearing = sy.get("occupations", "smearing") == "smearing"
    return ScfSettings(
        mixing_beta=float(el.get("mixing_beta", 0.7)),
        electron_maxstep=int(el.get("electron_maxstep", 100)),
        mixing_mode=str(el.get("mixing_mode", "plain")),
        diagonalization=str(el.get("diagonalization", "david")),
        degauss=float(sy.get("degauss", 0.0)) if smearing else None,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _failure_reason(error: BaseException | None, status: PwStatus, text: str) -> str:
    """Why an attempt that did not just miss SCF convergence failed, from its error and its output."""
    if isinstance(error, LabelFailed):
        return error.reason
    if isinstance(error, PwRunFailed) and error.run.killed_by is not None:
        return str(error)  # the signal, not what pw.x had time to write
    if isinstance(error, PwRunFailed):
        return status.describe() + f"; {error}"
    if not text.strip():
        return f"pw.x wrote no output; {type(error).__name__}: {error}"
    return status.describe() + (f"; {type(error).__name__}: {error}" if error is not None else "")


class EspressoOracle(Oracle):
    """Labels with pw.x: one SCF with forces and stress, healed on non-convergence, each attempt recorded."""

    kind = "espresso"
    config: EspressoOracleConfig

    def profile(self) -> PwProfile:
        pseudo_dir = self.config.resolved_pseudo_dir()
        if pseudo_dir is None:
            raise LabelFailed("no pseudo_dir configured and the default /usr/share/espresso/pseudo does not exist")
        return PwProfile(self.config.command, pseudo_dir, env=self.config.env, timeout_s=self.config.timeout_s)

    def calculator(self, atoms: Atoms, directory: Path, overrides: dict[str, dict[str, Any]]) -> Espresso:
        """ASE's Espresso calculator for one attempt in ``directory``."""
        input_data = merge_namelists(base_input_data(self.config), overrides)
        species = sorted(set(atoms.get_chemical_symbols()))
        return Espresso(
            profile=self.profile(),
            directory=str(directory),
            pseudopotentials={el: self.config.pseudopotentials[el] for el in species},
            kpts=kpoint_mesh(atoms, self.config.kspacing),
            input_data=input_data,
        )

    def _check_inputs(self, atoms: Atoms) -> None:
        species = sorted(set(atoms.get_chemical_symbols()))
        missing = [el for el in species if el not in self.config.pseudopotentials]
        if missing:
            raise LabelFailed(
                f"no pseudopotential configured for {', '.join(missing)} (oracle.pseudopotentials has "
                f"{sorted(self.config.pseudopotentials)})"
            )
        pseudo_dir = self.profile().pseudo_dir
        absent = [
            self.config.pseudopotentials[el]
            for el in species
            if not (Path(pseudo_dir) / self.config.pseudopotentials[el]).is_file()
        ]
        if absent:
            raise LabelFailed(f"pseudopotential file(s) {absent} not found in {pseudo_dir}")
        if atoms.cell.rank < 3:
            raise LabelFailed("pw.x needs a cell with three non-zero vectors (give non-periodic axes a vacuum box)")

    def initial_moments(self, atoms: Atoms) -> np.ndarray | None:
        """Each atom's initial moment as pw.x's fraction of its species' valence charge; None when unpolarised."""
        if not self.config.spin_polarised():
            return None
        pseudo_dir = Path(self.profile().pseudo_dir)
        fraction: dict[str, float] = {}
        for el in sorted(set(atoms.get_chemical_symbols())):
            moment = self.config.magnetic_moments.get(el, 0.0)
            valence = upf_valence(pseudo_dir / self.config.pseudopotentials[el])
            if abs(moment) > valence:
                raise LabelFailed(
                    f"magnetic_moments.{el} = {moment} μB exceeds the {valence:g} valence electrons of "
                    f"{self.config.pseudopotentials[el]}"
                )
            fraction[el] = starting_magnetization(moment, valence)
        return np.array([fraction[el] for el in atoms.get_chemical_symbols()], dtype=float)

    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        if directory is None:
            with tempfile.TemporaryDirectory(prefix="mlip_pw_") as tmp:
                return replace(self._compute(atoms, Path(tmp)), directory=None)  # the folder is gone afterwards
        self._check_inputs(atoms)
        moments = self.initial_moments(atoms)
        if moments is not None:
            atoms.set_initial_magnetic_moments(moments)
        for stale in directory.glob("attempt_*"):
            shutil.rmtree(stale, ignore_errors=True)
        base = scf_settings(base_input_data(self.config))
        attempts: list[AttemptRecord] = []
        tail = ""
        for number in range(1, self.config.max_attempts + 1):
            run_dir = directory / f"attempt_{number}"
            run_dir.mkdir(parents=True)
            overrides = healing_overrides(number, base)
            calc = self.calculator(atoms, run_dir, overrides)
            command = shlex.join(calc.profile.get_command(INPUT_NAME))
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                atoms.calc = calc
                energy, forces, stress = results_from_calculator(atoms, fully_periodic(atoms))
            except PwRunFailed as err:
                error = (
                    LabelFailed(f"pw.x ran past timeout_s={self.config.timeout_s} s and was killed")
                    if err.run.timed_out
                    else err
                )
            except Exception as err:  # the program failed or its output is unreadable: judged from the output below
                error = err
            elapsed = time.perf_counter() - start
            text = _read_text(run_dir / OUTPUT_NAME)
            status = parse_pw_output(text)
            tail = "\n".join(t for t in (pw_output_tail(text), output_tail(_read_text(run_dir / ERROR_NAME), 10)) if t)
            if not self.config.keep_scratch:
                shutil.rmtree(run_dir / SCRATCH_NAME, ignore_errors=True)
            settings = {f"{sec}.{k}": v for sec, params in overrides.items() for k, v in params.items()}
            if error is None and status.converged is not False:
                attempts.append(
                    AttemptRecord(number, settings, f"converged in {status.n_iterations} SCF iterations", elapsed)
                )
                magnetism = parse_magnetic_moments(text, len(atoms))
                return LabelResult(
                    energy=energy,
                    forces=forces,
                    stress=stress,
                    command=command,
                    attempts=attempts,
                    directory=str(run_dir),
                    magmoms=magnetism.magmoms,
                    magmom=magnetism.magmom,
                )
            if status.converged is False:
                attempts.append(
                    AttemptRecord(
                        number, settings, f"SCF not converged after {status.n_iterations} iterations", elapsed
                    )
                )
                continue
            reason = _failure_reason(error, status, text)
            attempts.append(AttemptRecord(number, settings, f"failed: {reason}", elapsed))
            raise LabelFailed(
                f"pw.x failed on attempt {number}: {reason}",
                output_tail=tail,
                attempts=attempts,
                directory=str(run_dir),
            )
        raise LabelFailed(
            f"SCF did not converge in {self.config.max_attempts} attempt(s) (healing ladder exhausted: "
            + "; ".join(f"#{a.number} {a.settings or 'configured settings'}" for a in attempts)
            + ")",
            output_tail=tail,
            attempts=attempts,
            directory=str(directory),
        )
