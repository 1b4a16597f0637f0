"""Structure generation: seeds (files or bulk crystals), alloys, surfaces, strain, rattle, point defects,
the campaign's pool."""

from mlip_autopipec.generator.campaign import build_pool, check_seeds
from mlip_autopipec.generator.defects import antisites, defect_supercell, interstitials, vacancies
from mlip_autopipec.generator.initial_pool import InitialExplorer, write_pool
from mlip_autopipec.generator.seed import build_seed, check_seed, read_structure_file

__all__ = [
    "InitialExplorer",
    "antisites",
    "build_pool",
    "build_seed",
    "check_seed",
    "check_seeds",
    "defect_supercell",
    "interstitials",
    "read_structure_file",
    "vacancies",
    "write_pool",
]
