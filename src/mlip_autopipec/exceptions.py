"""One exception hierarchy for the whole package.

Every error raised on purpose by mlip-autopipec derives from
:class:`MlipAutopipecError`, so a caller (the CLI, a workflow engine) can catch
the package's failures in one place and let genuine bugs through.  Messages
name what failed and where: the config file and field, the structure id, the
run directory.
"""

from __future__ import annotations


class MlipAutopipecError(Exception):
    """Base class of every error raised on purpose by mlip-autopipec."""


class ConfigurationError(MlipAutopipecError, ValueError):
    """A configuration file or object is invalid (names the file, field and what was expected)."""


class StructureError(MlipAutopipecError, ValueError):
    """A structure is invalid or cannot be generated (non-finite positions, degenerate cell, ...)."""


class DatabaseError(MlipAutopipecError):
    """The structure database rejected an operation or is unusable."""


class StorageError(DatabaseError):
    """The database's storage failed under a write or a read: a full disk, a read-only file or file system, an
    input/output error, a lost database server.  Not the fault of what was being stored: a structure whose result
    could not be written stays pending, and the run stops (the same command continues once the storage is back)."""


class OracleError(MlipAutopipecError):
    """A reference calculation (EMT, pw.x, GPAW, ...) failed or cannot be set up."""


class TrainerError(MlipAutopipecError):
    """Fitting the potential with pacemaker failed (names the run directory and shows the log tail)."""


class WorkdirError(MlipAutopipecError):
    """The work directory cannot be used: another run holds it, or it cannot be created or written."""


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal (SIGTERM, SIGHUP): unwinds like Ctrl-C, so finished work is kept."""

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")


class PropertyError(MlipAutopipecError):
    """A materials property (elastic constants, vacancy, surface, phonons, MD stability) could not be computed
    (a relaxation that does not converge, a crystal the property does not apply to)."""


class OracleBudgetExhausted(PropertyError):
    """The property step reached ``report.properties.max_oracle_calls``: the property it was computing, and the
    ones after it, are skipped."""


__all__ = [
    "MlipAutopipecError",
    "ConfigurationError",
    "StructureError",
    "DatabaseError",
    "StorageError",
    "OracleError",
    "TrainerError",
    "PropertyError",
    "OracleBudgetExhausted",
    "WorkdirError",
    "Interrupted",
]
