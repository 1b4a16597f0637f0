"""state.json fingerprints the campaign's seeds; a work directory made before `seeds` existed is not seen as changed."""

from __future__ import annotations

import json

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.pipeline.state import STATE_FILE, changed_sections, section_fingerprints, write_state

CU = {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True}


def _cfg(workdir, **sections):
    return PipelineConfig.model_validate({"workdir": str(workdir), **sections})


def _as_before_seeds(workdir, structure_cfg):
    """Rewrite state.json as the driver wrote it before `seeds`: a `structure` fingerprint, none for seeds."""
    path = workdir / STATE_FILE
    data = json.loads(path.read_text())
    fps = data["fingerprints"]
    fps.pop("seeds")
    fps["structure"] = "fingerprint-of-the-old-structure-section"
    data["config"].pop("seeds", None)
    data["config"]["structure"] = structure_cfg
    path.write_text(json.dumps(data))


def test_seeds_are_a_fingerprinted_section():
    a = section_fingerprints(_cfg("w", structure=CU))
    b = section_fingerprints(_cfg("w", seeds=[CU, {**CU, "element": "Au", "a": 4.08}]))
    assert "seeds" in a and "structure" not in a and a["seeds"] != b["seeds"]
    assert a["seeds"] == section_fingerprints(_cfg("w", seeds=[CU]))["seeds"]  # structure: is one seed


def test_a_structure_only_state_is_unchanged_for_the_same_seed_and_changed_for_another(tmp_path):
    cfg = _cfg(tmp_path, structure=CU)
    write_state(tmp_path, cfg)
    _as_before_seeds(tmp_path, CU)
    assert changed_sections(tmp_path, cfg) == []
    assert changed_sections(tmp_path, _cfg(tmp_path, seeds=[CU])) == []  # the same seed as a list
    assert changed_sections(tmp_path, _cfg(tmp_path, structure={**CU, "a": 3.7})) == ["seeds"]
    two = _cfg(tmp_path, seeds=[CU, {**CU, "surface": {"miller": [1, 1, 1]}}])
    assert changed_sections(tmp_path, two) == ["seeds"]
