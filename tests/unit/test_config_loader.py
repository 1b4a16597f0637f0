"""load_config: YAML to validated models, errors that name the file, the field path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.config import (
    ComputeConfig,
    DaskComputeConfig,
    EMTOracleConfig,
    GeneratorConfig,
    LocalComputeConfig,
    OracleConfig,
    PipelineConfig,
    TrainingConfig,
    load_config,
    require_config,
    validate_config,
)
from mlip_autopipec.examples import EXAMPLES, example_text
from mlip_autopipec.exceptions import ConfigurationError, MlipAutopipecError

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "mlip_autopipec"


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


def test_every_sections_relative_paths_follow_the_config(tmp_path):
    path = write(
        tmp_path,
        "structure: {file: seed.cif}\n"
        "oracle: {type: espresso, pseudopotentials: {Si: Si.UPF}, pseudo_dir: pseudo}\n"
        "training: {initial_potential: pots/gen0.yaml}\n",
    )
    cfg = load_config(path)
    assert cfg.structure.file == tmp_path / "seed.cif"
    assert cfg.oracle.pseudo_dir == tmp_path / "pseudo"
    assert cfg.training.initial_potential == tmp_path / "pots" / "gen0.yaml"
    absolute = load_config(write(tmp_path, "structure: {element: Cu}\ntraining: {initial_potential: /abs/gen0.yaml}\n"))
    assert str(absolute.training.initial_potential) == "/abs/gen0.yaml"


def test_validate_config_is_the_one_door_for_models_and_unions():
    assert validate_config(OracleConfig, {}, "oracle") == EMTOracleConfig()
    assert isinstance(validate_config(ComputeConfig, {"type": "dask", "address": "tcp://h:1"}), DaskComputeConfig)
    model = LocalComputeConfig(n_workers=2)
    assert validate_config(ComputeConfig, model) is model  # a model passes as it is
    with pytest.raises(ConfigurationError, match=r"my\.yaml: oracle: .*unknown oracle type"):
        validate_config(OracleConfig, {"type": "vasp"}, "my.yaml: oracle")
    with pytest.raises(ConfigurationError, match=r"in training:\n  training: cutoff"):
        validate_config(TrainingConfig, {"cutoff": -1}, "training")


def test_inside_the_package_mappings_are_refused_with_the_way_in():
    assert require_config(EMTOracleConfig(), OracleConfig, "make_oracle") == EMTOracleConfig()
    with pytest.raises(
        ConfigurationError,
        match=r"InitialExplorer takes a configuration model \(GeneratorConfig\), not a dict: .*validate_config",
    ):
        require_config({"seed": 1}, GeneratorConfig, "InitialExplorer")


def test_the_schemas_never_import_the_loader():
    """The loader sits above the schemas.

    It was a cycle: schemas/oracle -> loader -> schemas/pipeline -> schemas/oracle.
    """
    for module in (SRC / "config" / "schemas").glob("*.py"):
        assert "config.loader" not in module.read_text(), module.name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_exist_once(name):
    """examples/*.yaml are the package's files (symlinks), so `init --example` and run_example.sh use one text."""
    shipped = SRC / "examples" / EXAMPLES[name]
    top = ROOT / "examples" / EXAMPLES[name]
    assert top.is_symlink() and top.resolve() == shipped.resolve(), f"{top} must be a symlink to {shipped}"
    assert top.read_bytes() == shipped.read_bytes() == example_text(name).encode()
    cfg = load_config(top)
    assert cfg == load_config(shipped) and isinstance(cfg, PipelineConfig)


DUPLICATES = {
    "two training blocks": (
        "structure: {element: Cu}\ntraining:\n  cutoff: 5.0\ngenerator: {seed: 1}\ntraining:\n  cutoff: 7.0\n",
        "'training'",
        (2, 5),
    ),
    "two pool sizes": ("generator:\n  pool_size: 10\n  seed: 1\n  pool_size: 40\n", "'generator.pool_size'", (2, 4)),
    "two properties under report": (
        "report:\n  properties: {elastic: true}\n  eos: true\n  properties: {elastic: false}\n",
        "'report.properties'",
        (2, 4),
    ),
    "inside a list of seeds": (
        "seeds:\n  - name: a\n    element: Cu\n  - name: b\n    weight: 1\n    weight: 2\n",
        "'seeds[1].weight'",
        (5, 6),
    ),
}


@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_a_key_given_twice_is_refused_with_both_lines(tmp_path, case):
    text, key, (first, second) = DUPLICATES[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: the key {key} is given twice") and f"lines {first} and {second}" in message


def test_a_key_twice_on_one_line_and_merge_keys():
    with pytest.raises(ConfigurationError, match=r"the key 'a\.x' is given twice in one mapping, on line 1"):
        read_yaml_text("a: {x: 1, x: 2}\n")
    # a merge (<<) may be overridden, as YAML intends; the same anchor used twice is not a duplicate
    text = "base: &b {seed: 1, rattle_stdev: 0.1}\none: {<<: *b, seed: 2}\ntwo: *b\n"
    assert read_yaml_text(text) == {
        "base": {"seed": 1, "rattle_stdev": 0.1},
        "one": {"seed": 2, "rattle_stdev": 0.1},
        "two": {"seed": 1, "rattle_stdev": 0.1},
    }


def read_yaml_text(text: str) -> dict:
    import tempfile

    from mlip_autopipec.config import read_yaml

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cfg.yaml"
        path.write_text(text)
        return read_yaml(path)


@pytest.mark.parametrize(
    "text, where, what",
    [
        (
            "structure: [unclosed\n",
            ":2:1: ",
            "expected ',' or ']', but got '<stream end>' (while parsing a flow sequence",
        ),
        ("structure: {element: Cu}\ngenerator: seed: 1\n", ":2:16: ", "mapping values are not allowed here"),
        ("structure:\n  element: Cu\n bad: 2\n", ":3:2: ", "expected <block end>"),
        ("structure: {element: \x00}\n", ":1:22: ", "character #x0000 is not allowed"),
    ],
)
def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path, text, where, what):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}{where}not valid YAML: ") and what in message, message


def test_a_file_that_is_not_utf8_text_is_one_sentence(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"structure: {element: Cu}\n# caf\xe9 in Latin-1\n")
    with pytest.raises(ConfigurationError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path} is not a text file in UTF-8 (byte 0xe9 at offset 30): a configuration must be a YAML text file"
    )
    path.write_bytes("\ufeffstructure: {element: Cu}  # café, with a byte-order mark\n".encode())
    assert load_config(path).structure.element == "Cu"


def test_every_shipped_yaml_passes_the_strict_loader():
    """The examples (si_qe.yaml had two report.properties keys) and every YAML under examples/."""
    from mlip_autopipec.config import read_yaml

    files = sorted({*(ROOT / "examples").rglob("*.yaml"), *(SRC / "examples").rglob("*.yaml")})
    assert len(files) >= 9
    for path in files:
        assert read_yaml(path), path
