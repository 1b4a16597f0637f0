"""Structure generation: the initial explorer (strain, rattle), point defects and the seed crystal."""

from mlip_autopipec.generator.defects import antisites, defect_supercell, interstitials, vacancies
from mlip_autopipec.generator.explorer import InitialExplorer
from mlip_autopipec.generator.seed import build_seed

__all__ = ["InitialExplorer", "antisites", "build_seed", "defect_supercell", "interstitials", "vacancies"]
