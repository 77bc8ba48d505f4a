"""The experiment config: design.md's YAML loads; every bad config names the key in one message per problem."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from searchkit_core import ExperimentConfig, SearchSpace, _wire, load_config
from searchkit_core._config import Resources, validate_config
from searchkit_core.errors import ConfigError

DESIGN_YAML = """\
name: mnist-asha
entrypoint: model_def:train        # module:function inside the model directory
searcher:
  name: asha
  metric: validation_loss
  smaller_is_better: true
  max_length: {batches: 1000}
  max_trials: 16
  num_rungs: 3
  divisor: 4
  max_concurrent_trials: 16
hyperparameters:
  global_batch_size: 64
  learning_rate: {type: log, base: 10, minval: -4.0, maxval: 0.0}
  n_filters1: {type: int, minval: 8, maxval: 64}
  dropout1: {type: double, minval: 0.2, maxval: 0.8}
  activation: {type: categorical, vals: [relu, tanh]}
resources: {slots_per_trial: 0}
max_restarts: 3
"""


def _write(tmp_path: pathlib.Path, text: str, name: str = "config.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _minimal(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "exp",
        "entrypoint": "model_def:train",
        "searcher": {"name": "asha", "metric": "loss", "max_length": {"batches": 100}},
        "hyperparameters": {"lr": {"type": "double", "minval": 0.0, "maxval": 1.0}},
    }
    raw.update(changes)
    return raw


def test_the_design_example_loads(tmp_path: pathlib.Path) -> None:
    config = load_config(_write(tmp_path, DESIGN_YAML))
    assert config.name == "mnist-asha"
    assert config.entrypoint == "model_def:train"
    assert config.searcher["max_trials"] == 16
    assert config.metric == "validation_loss"
    assert config.smaller_is_better is True
    assert (config.unit, config.max_length) == ("batches", 1000)
    assert config.resources == Resources(slots_per_trial=0, cpus_per_trial=1.0)
    assert config.max_restarts == 3
    assert isinstance(config.hyperparameters, SearchSpace)
    assert list(config.hyperparameters) == [
        "global_batch_size",
        "learning_rate",
        "n_filters1",
        "dropout1",
        "activation",
    ]
    assert config.data == {}
    assert config.trial_timeout is None
    assert 0 <= config.seed < 2**32


def test_defaults() -> None:
    config = validate_config(_minimal(searcher={"name": "custom", "metric": "loss"}))
    assert config.max_restarts == 5  # Determined's default
    assert config.searcher["smaller_is_better"] is True
    assert (config.unit, config.max_length) == ("batches", None)
    assert config.resources == Resources()
    assert config.description is None


def test_a_chosen_seed_is_recorded_and_survives_the_wire(tmp_path: pathlib.Path) -> None:
    config = load_config(_write(tmp_path, DESIGN_YAML))
    back = _wire.from_json(_wire.to_json(config), ExperimentConfig)
    assert back == config
    assert back.seed == config.seed
    seeds = {load_config(_write(tmp_path, DESIGN_YAML)).seed for _ in range(5)}
    assert len(seeds) > 1  # chosen afresh for each new experiment


def test_seed_and_determineds_experiment_seed() -> None:
    assert validate_config(_minimal(seed=42)).seed == 42
    assert validate_config(_minimal(reproducibility={"experiment_seed": 7})).seed == 7
    with pytest.raises(ConfigError, match=r"seed: 1 disagrees with reproducibility\.experiment_seed 2"):
        validate_config(_minimal(seed=1, reproducibility={"experiment_seed": 2}))


def test_overrides_set_dotted_keys_and_skip_none(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, DESIGN_YAML)
    config = load_config(
        path,
        {
            "searcher.max_trials": 4,
            "seed": 11,
            "searcher.name": "random",
            "max_restarts": None,
            "data.root": "/d",
        },
    )
    assert config.searcher["max_trials"] == 4
    assert config.searcher["name"] == "random"
    assert config.seed == 11
    assert config.max_restarts == 3
    assert config.data == {"root": "/d"}
    with pytest.raises(ConfigError, match="max_restarts: must be an integer >= 0"):
        load_config(path, {"max_restarts": -2})
    with pytest.raises(ConfigError, match="cannot override inside name, which is not a mapping"):
        load_config(path, {"name.first": "x"})


def test_the_method_plugin_validates_its_own_keys() -> None:
    seen: list[Mapping[str, Any]] = []

    def validate(searcher: Mapping[str, Any]) -> list[str]:
        seen.append(searcher)
        return ["searcher.num_rungs: must be >= 1, got 0", "divisor: must be >= 2"]

    with pytest.raises(ConfigError) as caught:
        validate_config(_minimal(name=""), method_validate=validate)
    assert caught.value.problems == [
        "name: must be a non-empty string, got '' (str)",
        "searcher.num_rungs: must be >= 1, got 0",
        "searcher.divisor: must be >= 2",
    ]
    assert seen[0]["name"] == "asha" and seen[0]["smaller_is_better"] is True


def test_a_method_validate_that_raises_is_reported_not_fatal() -> None:
    def broken(searcher: Mapping[str, Any]) -> list[str]:
        raise KeyError("max_trials")

    with pytest.raises(ConfigError, match="searcher: the method's validate raised KeyError"):
        validate_config(_minimal(), method_validate=broken)


# At least ten distinct bad configs, each refused with a message naming its key.
BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("no name", {"name": None}, "name: required key missing"),
    ("name with a slash", {"name": "a/b"}, "name: 'a/b' cannot be a directory name"),
    ("name not a string", {"name": 5}, "name: must be a non-empty string, got 5 (int)"),
    ("no entrypoint", {"entrypoint": None}, "entrypoint: required key missing"),
    ("shell entrypoint", {"entrypoint": "python3 train.py"}, "entrypoint: must be 'module:function'"),
    ("no searcher", {"searcher": None}, "searcher: required key missing"),
    ("searcher not a mapping", {"searcher": "asha"}, "searcher: must be a mapping, got 'asha' (str)"),
    ("no searcher name", {"searcher": {"metric": "loss"}}, "searcher.name: required key missing"),
    ("no metric", {"searcher": {"name": "asha"}}, "searcher.metric: required key missing"),
    (
        "metric not a string",
        {"searcher": {"name": "asha", "metric": 3}},
        "searcher.metric: must be a non-empty string",
    ),
    (
        "smaller_is_better not a bool",
        {"searcher": {"name": "a", "metric": "m", "smaller_is_better": "yes"}},
        "searcher.smaller_is_better: must be true or false, got 'yes' (str)",
    ),
    (
        "max_length unknown unit",
        {"searcher": {"name": "a", "metric": "m", "max_length": {"steps": 5}}},
        "searcher.max_length: unknown unit 'steps'",
    ),
    (
        "max_length zero",
        {"searcher": {"name": "a", "metric": "m", "max_length": {"epochs": 0}}},
        "searcher.max_length.epochs: must be a positive integer, got 0 (int)",
    ),
    (
        "max_length two units",
        {"searcher": {"name": "a", "metric": "m", "max_length": {"epochs": 1, "batches": 2}}},
        "searcher.max_length: must be a mapping with one of batches, records, epochs",
    ),
    (
        "max_length a number",
        {"searcher": {"name": "a", "metric": "m", "max_length": 1000}},
        "searcher.max_length: must be a mapping",
    ),
    (
        "bad hyperparameter",
        {"hyperparameters": {"optimizer": {"lr": {"type": "double", "minval": 1.0, "maxval": 0.5}}}},
        "hyperparameters.optimizer.lr: minval 1.0 > maxval 0.5",
    ),
    ("hyperparameters a list", {"hyperparameters": ["lr"]}, "hyperparameters: must be a mapping"),
    (
        "negative slots",
        {"resources": {"slots_per_trial": -1}},
        "resources.slots_per_trial: must be an integer >= 0",
    ),
    ("cpus zero", {"resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial: must be a number > 0"),
    (
        "unknown resources key",
        {"resources": {"slots": 1}},
        "resources.slots: unknown key (did you mean 'slots_per_trial'?)",
    ),
    ("resources a number", {"resources": 2}, "resources: must be a mapping"),
    ("negative max_restarts", {"max_restarts": -1}, "max_restarts: must be an integer >= 0, got -1 (int)"),
    ("max_restarts a string", {"max_restarts": "3"}, "max_restarts: must be an integer >= 0, got '3' (str)"),
    ("data not a mapping", {"data": [1, 2]}, "data: must be a mapping"),
    ("data holds a NaN", {"data": {"scale": float("nan")}}, "data.scale: nan is not a finite number"),
    ("seed negative", {"seed": -1}, "seed: must be an integer in [0, 2**32), got -1 (int)"),
    ("seed too big", {"seed": 2**40}, "seed: must be an integer in [0, 2**32)"),
    ("seed a float", {"seed": 1.5}, "seed: must be an integer"),
    ("trial_timeout zero", {"trial_timeout": 0}, "trial_timeout: must be a number of seconds > 0"),
    ("description a list", {"description": ["x"]}, "description: must be a string"),
    (
        "typo in a top-level key",
        {"max_restart": 3},
        "max_restart: unknown key (did you mean 'max_restarts'?)",
    ),
    (
        "a Determined-only key",
        {"checkpoint_storage": {"type": "shared_fs"}},
        "checkpoint_storage: unknown key (a Determined setting searchkit does not use: checkpoints live in the experiment",
    ),
    ("unknown key", {"colour": "blue"}, "colour: unknown key; known keys: name, description, entrypoint"),
    ("reproducibility unknown key", {"reproducibility": {"seed": 1}}, "reproducibility.seed: unknown key"),
]


@pytest.mark.parametrize(("case", "changes", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_naming_the_key(case: str, changes: dict[str, Any], expected: str) -> None:
    raw = _minimal(**changes)
    for key in [k for k, v in changes.items() if v is None]:
        del raw[key]
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert caught.value.problems[0].startswith(expected), caught.value.problems


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path,
        """\
        name: a/b
        entrypoint: python train.py
        searcher:
          name: asha
          max_length: {steps: 10}
        hyperparameters:
          lr: {type: log, base: 10, minval: 1, maxval: 0}
          when: 2020-01-01
        resources: {slots_per_trial: -1, max_slots: 3}
        max_restart: 3
        seed: -1
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    keys = [p.split(":")[0] for p in caught.value.problems]
    assert keys == [
        "max_restart",
        "name",
        "entrypoint",
        "searcher.metric",
        "searcher.max_length",
        "hyperparameters.lr",
        "hyperparameters.when",
        "resources.max_slots",
        "resources.slots_per_trial",
        "seed",
    ]
    # One line for the CLI: every problem, separated by "; ".
    assert str(caught.value) == "; ".join(caught.value.problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the config is empty"),
        ("- a\n- b\n", r"the config must be a mapping of keys to values, got \['a', 'b'\] \(list\)"),
        ("name: [unclosed\n", r"not valid YAML at line 2, column 1"),
        ("name: a\nname: b\n", r"duplicate key 'name' at line 2, column 1 \(each key may appear once\)"),
        ("searcher:\n  metric: a\n  metric: b\n", "duplicate key 'metric' at line 3"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "could not determine a constructor"),
        ("name: !!python/name:os.system\n", "could not determine a constructor"),
        ("name: a: b\n", "not valid YAML at line 1, column 8: mapping values are not allowed here"),
    ],
)
def test_unreadable_yaml_is_a_clear_config_error(tmp_path: pathlib.Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


def test_a_missing_or_unreadable_file_is_a_clear_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"config file '.*nope\.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(binary)


def test_data_and_extra_searcher_keys_travel_with_the_config() -> None:
    config = validate_config(
        _minimal(
            data={"root": "/data", "subset": 8000, "augment": [1, 2]},
            searcher={"name": "asha", "metric": "loss", "max_trials": 8, "mode": "standard"},
            trial_timeout=30,
            description="hello",
            resources={"slots_per_trial": 1, "cpus_per_trial": 0.5},
        )
    )
    assert config.trial_timeout == 30.0
    assert config.resources == Resources(1, 0.5)
    back = _wire.from_json(_wire.to_json(config), ExperimentConfig)
    assert back == config
    assert back.searcher["mode"] == "standard"
    assert back.data["augment"] == [1, 2]


def test_validation_does_not_change_the_callers_mapping() -> None:
    raw = _minimal()
    before = repr(raw)
    validate_config(raw, overrides={"searcher.max_trials": 3})
    assert repr(raw) == before


def test_a_problem_core_and_the_method_both_see_is_reported_once() -> None:
    def method_validate(searcher: Mapping[str, Any]) -> list[str]:
        return ["searcher.max_length: must be a mapping like {batches: N}", "searcher.divisor: must be >= 2"]

    raw = _minimal()
    raw["searcher"] = {**raw["searcher"], "max_length": 5, "divisor": 1}
    with pytest.raises(ConfigError) as info:
        validate_config(raw, method_validate)
    keys = [problem.split(":", 1)[0] for problem in info.value.problems]
    assert keys.count("searcher.max_length") == 1
    assert "searcher.divisor" in keys
