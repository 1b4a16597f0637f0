"""Which pacemaker programs to run, in which environment, and how (like ASE's calculator profiles).

A :class:`PacemakerProfile` names the four programs of python-ace (``pacemaker``,
``pace_yaml2yace``, ``pace_activeset``, ``pace_select``) and extra environment variables (for example
``CUDA_VISIBLE_DEVICES`` or ``OMP_NUM_THREADS``).  A bare program name is looked up
first next to the running Python (the virtual environment's ``bin``, which is often
not on ``PATH``), then on ``PATH``; a name containing a path separator is used as it is.
:meth:`PacemakerProfile.run` starts one of them through :func:`mlip_autopipec.launch.run_program`,
the one launcher of the package (no orphans, signals described in a sentence);
:meth:`~PacemakerProfile.run_fit` and :meth:`~PacemakerProfile.run_yaml2yace` are the two launches of a
fit (what they read and write is the template's, :mod:`mlip_autopipec.trainer.template`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from mlip_autopipec import launch
from mlip_autopipec.config.schemas.base import StrictModel
from mlip_autopipec.exceptions import TrainerError

Program = Literal["pacemaker", "pace_yaml2yace", "pace_activeset", "pace_select"]

INSTALL_HINT = (
    "install python-ace (pacemaker) with `pip install python-ace==0.4.0rc1` (plus tensorpotential for the fast "
    "TensorFlow backend), or run `bash scripts/setup.sh` to build the project's .venv; or point the trainer's "
    "profile at the program's full path"
)
#: variables pacemaker's fit gets unless the process's environment or the profile sets them
FIT_ENVIRONMENT = {
    "PYTHONUNBUFFERED": "1",  # keep pacemaker's print()s in order with its log lines, and live
    "MPLBACKEND": "Agg",  # pacemaker draws PNGs; never look for a display
}


class PacemakerProfile(StrictModel):
    """Where pacemaker's programs are and what environment they run in."""

    pacemaker: str = Field(
        "pacemaker",
        description="The fitting program: a name looked up next to the running Python, then on PATH, or a full path.",
    )
    pace_yaml2yace: str = Field(
        "pace_yaml2yace", description="Converter of a .yaml potential to .yace: a name or a full path."
    )
    pace_activeset: str = Field(
        "pace_activeset",
        description="Builder of the active set (.asi) for the extrapolation grade: a name or a full path.",
    )
    pace_select: str = Field(
        "pace_select",
        description="D-optimal selection of new structures (active learning, batched runs): a name or a full path.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables for the programs, e.g. {CUDA_VISIBLE_DEVICES: '0'} or "
        "{OMP_NUM_THREADS: '4'}.",
    )

    def find(self, program: Program) -> str | None:
        """Full path of ``program``, or None when it cannot be found."""
        name = getattr(self, program)
        if os.sep in name or (os.altsep and os.altsep in name):
            path = Path(name).expanduser().absolute()  # absolute: programs run with cwd= the run directory
            return str(path) if path.is_file() and os.access(path, os.X_OK) else None
        beside_python = Path(sys.executable).parent / name
        if beside_python.is_file() and os.access(beside_python, os.X_OK):
            return str(beside_python)
        search_path = self.env.get("PATH")
        return shutil.which(name, path=search_path) if search_path else shutil.which(name)

    def executable(self, program: Program) -> str:
        """Full path of ``program``; :class:`TrainerError` that says how to install it when it is missing."""
        found = self.find(program)
        if found is None:
            name = getattr(self, program)
            raise TrainerError(
                f"{program} not found (looked for {name!r} in {Path(sys.executable).parent} and on PATH): "
                f"{INSTALL_HINT}"
            )
        return found

    def command(self, program: Program, *args: str) -> list[str]:
        """Argument list ``[<full path of program>, *args]``."""
        return [self.executable(program), *args]

    def environment(self) -> dict[str, str]:
        """The environment for the programs: this process's (:func:`~mlip_autopipec.launch.program_environment`),
        updated with ``env``."""
        environ = launch.program_environment()  # without what a local Dask cluster put into os.environ
        environ.update(self.env)
        return environ

    def run(
        self,
        program: Program,
        args: Sequence[str],
        *,
        cwd: str | Path,
        log_path: str | Path | None = None,
        append: bool = False,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> launch.ProgramRun:
        """Run ``program args...`` in ``cwd`` with :meth:`environment` (plus ``env``).

        See :func:`~mlip_autopipec.launch.run_program`.

        Output (stdout and stderr) goes to ``log_path``; ``timeout_s`` in seconds.  Returns how
        the run ended (``.ok``, ``.failure()``); :class:`TrainerError` when the program is not
        installed or cannot be started.
        """
        argv = self.command(program, *args)
        environ = self.environment()
        environ.update(env or {})
        try:
            return launch.run_program(
                argv,
                cwd=cwd,
                env=environ,
                timeout_s=timeout_s,
                log_path=log_path,
                append=append,
                name=program,
                pass_fds=pass_fds,
            )
        except OSError as err:  # e.g. the executable vanished or lost its x bit after the lookup
            raise TrainerError(f"cannot start {argv[0]} in {cwd}: {err}") from err

    def run_fit(
        self,
        directory: Path,
        input_name: str,
        log_path: Path,
        *,
        timeout_s: float | None = None,
        pass_fds: Sequence[int] = (),
    ) -> launch.ProgramRun:
        """Run ``pacemaker <input_name>`` in ``directory``, its output appended to ``log_path``.

        :data:`FIT_ENVIRONMENT` fills in what :meth:`environment` does not set; ``pass_fds`` stay
        open in pacemaker (e.g. the fit folder's lock).
        """
        environ = self.environment()
        defaults = {k: v for k, v in FIT_ENVIRONMENT.items() if k not in environ}
        return self.run(
            "pacemaker",
            [input_name],
            cwd=directory,
            log_path=log_path,
            append=True,
            timeout_s=timeout_s,
            env=defaults,
            pass_fds=pass_fds,
        )

    def run_yaml2yace(self, directory: Path, yaml_name: str, yace_name: str, log_path: Path) -> launch.ProgramRun:
        """Run ``pace_yaml2yace <yaml_name> -o <yace_name>`` in ``directory``; the command line and its output are
        appended to ``log_path``."""
        args = [yaml_name, "-o", yace_name]
        with open(log_path, "a") as log_file:
            log_file.write(f"\n$ pace_yaml2yace {' '.join(args)}\n")
        return self.run("pace_yaml2yace", args, cwd=directory, log_path=log_path, append=True)

    def is_local(self, program: Program) -> bool:
        """Whether ``program`` is the running Python environment's own (beside ``sys.executable``, same environment).

        Then the trainer may call the Python library behind it (pyace) directly instead.
        """
        found = self.find(program)
        if found is None or "PATH" in self.env or "PYTHONPATH" in self.env:
            return False
        return Path(found).parent == Path(sys.executable).parent and importlib.util.find_spec("pyace") is not None

    def has_tensorpotential(self) -> bool:
        """Whether pacemaker's TensorFlow backend (tensorpotential) is installed.

        Checked without importing TensorFlow (which takes seconds).  It describes the
        running Python's environment, which is pacemaker's when pacemaker is the one
        beside ``sys.executable`` (the default).
        """
        return importlib.util.find_spec("tensorpotential") is not None


__all__ = ["FIT_ENVIRONMENT", "INSTALL_HINT", "PacemakerProfile"]
