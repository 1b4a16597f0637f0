"""load_config: YAML to validated models, errors that name the file, the field path and what was expected."""

from __future__ import annotations

import pytest

from mlip_autopipec.config import GeneratorConfig, load_config
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError, MlipAutopipecError


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_loads_a_valid_file(tmp_path):
    path = write(tmp_path, "structure: {element: Cu, cubic: true}\ngenerator: {seed: 3, volume_range: [0.95, 1.05]}\n")
    cfg = load_config(path)
    assert isinstance(cfg, PipelineConfig)
    assert cfg.generator.volume_range == (0.95, 1.05) and cfg.generator.seed == 3


def test_typo_names_file_and_field_path(tmp_path):
    path = write(tmp_path, "structure: {element: Cu}\ngenerator: {rattle_stdv: 0.1}\n")
    with pytest.raises(ConfigurationError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text and "generator.rattle_stdv" in text and "unknown field" in text


def test_wrong_value_says_what_was_expected(tmp_path):
    path = write(tmp_path, "structure: {element: Cu}\ngenerator: {volume_range: [1.2, 0.8]}\n")
    with pytest.raises(ConfigurationError, match=r"generator\.volume_range: .*inverted"):
        load_config(path)
    path = write(tmp_path, "structure: {element: Cu}\ngenerator: {rattle_stdev: -1}\n")
    with pytest.raises(ConfigurationError, match=r"generator\.rattle_stdev: .*greater than or equal to 0"):
        load_config(path)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(write(tmp_path, "structure: [unclosed\n"))
    with pytest.raises(ConfigurationError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_section_model_can_be_loaded_alone(tmp_path):
    cfg = load_config(write(tmp_path, "seed: 5\nrattle_stdev: 0.02\n"), GeneratorConfig)
    assert cfg.seed == 5


def test_structure_file_is_relative_to_the_config(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "cfg.yaml"
    path.write_text("structure: {file: seed.cif}\n")
    assert load_config(path).structure.file == (tmp_path / "sub" / "seed.cif").resolve()


def test_errors_share_one_base():
    assert issubclass(ConfigurationError, MlipAutopipecError)
    every_field_described = all(f.description for f in GeneratorConfig.model_fields.values())
    assert every_field_described
