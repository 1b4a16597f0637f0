"""The size guard: a structure larger than ``generator.max_atoms`` is refused before anything is drawn.

The refusal states the structure's size and an *estimate* of the memory the
pool would take while it is drawn and stored.  The estimate is
:data:`POOL_BYTES_PER_ATOM` times the atoms of the whole pool: the peak
resident memory of ``build_pool`` plus storing the pool in an SQLite database,
measured for Cu fcc pools of 30 structures of 864 to 32,000 atoms each, came to
410-560 bytes per atom drawn (working arrays included).  The oracle and the fit
need far more per atom than that; the guard's first purpose is to catch a
``repeat`` or a cell that is larger than meant.
"""

from __future__ import annotations

from mlip_autopipec.exceptions import ConfigurationError

#: measured peak memory per atom of the pool while drawing and storing it (bytes; see the module doc)
POOL_BYTES_PER_ATOM = 500


def pool_memory_estimate(atoms_in_pool: int) -> str:
    """The estimated memory of drawing and storing a pool of ``atoms_in_pool`` atoms, as text ("1.2 GB")."""
    size = float(atoms_in_pool * POOL_BYTES_PER_ATOM)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def check_size(n_atoms: int, max_atoms: int, atoms_in_pool: int, where: str) -> None:
    """Refuse a structure of ``n_atoms`` above ``max_atoms``; ``atoms_in_pool`` sizes the memory estimate."""
    if n_atoms <= max_atoms:
        return
    raise ConfigurationError(
        f"{where} has {n_atoms} atoms, more than generator.max_atoms ({max_atoms}): the pool would take roughly "
        f"{pool_memory_estimate(atoms_in_pool)} of memory to draw and store (an estimate: about "
        f"{POOL_BYTES_PER_ATOM} bytes per atom, {atoms_in_pool} atoms), and every structure costs an oracle call "
        "and its share of the fit. Use a smaller cell or `repeat`, or raise generator.max_atoms if you mean it"
    )
