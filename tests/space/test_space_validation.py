"""Invalid search spaces are refused with one message per problem, each naming the key path."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from searchkit_core import SearchSpace
from searchkit_core.errors import ConfigError

BAD_SPACES: list[tuple[str, Any, str]] = [
    (
        "min>max",
        {"optimizer": {"lr": {"type": "double", "minval": 1.0, "maxval": 0.5}}},
        "hyperparameters.optimizer.lr: minval 1.0 > maxval 0.5",
    ),
    (
        "int min>max",
        {"n": {"type": "int", "minval": 9, "maxval": 8}},
        "hyperparameters.n: minval 9 > maxval 8",
    ),
    (
        "log min>max",
        {"lr": {"type": "log", "base": 10, "minval": 0, "maxval": -4}},
        "hyperparameters.lr: minval 0 > maxval -4",
    ),
    (
        "empty vals",
        {"act": {"type": "categorical", "vals": []}},
        "hyperparameters.act.vals: must hold at least one value",
    ),
    (
        "vals not a list",
        {"act": {"type": "categorical", "vals": "relu"}},
        "hyperparameters.act.vals: must be a list",
    ),
    (
        "base zero",
        {"lr": {"type": "log", "base": 0, "minval": -4, "maxval": 0}},
        "hyperparameters.lr.base: must be a finite number > 0 and != 1, got 0",
    ),
    (
        "base negative",
        {"lr": {"type": "log", "base": -10, "minval": -4, "maxval": 0}},
        "hyperparameters.lr.base",
    ),
    ("base one", {"lr": {"type": "log", "base": 1, "minval": -4, "maxval": 0}}, "hyperparameters.lr.base"),
    (
        "log overflow",
        {"lr": {"type": "log", "base": 10, "minval": 0, "maxval": 400}},
        "hyperparameters.lr: base 10 ** 400 overflows a float",
    ),
    (
        "unknown type",
        {"lr": {"type": "float", "minval": 0, "maxval": 1}},
        "hyperparameters.lr: unknown type 'float' (known: const, int, double, log, categorical)",
    ),
    ("type not a string", {"lr": {"type": 3}}, "hyperparameters.lr: unknown type 3"),
    ("missing key", {"lr": {"type": "double", "minval": 0}}, "hyperparameters.lr: missing key 'maxval'"),
    ("missing val", {"c": {"type": "const"}}, "hyperparameters.c: missing key 'val'"),
    (
        "unknown key",
        {"lr": {"type": "double", "minval": 0, "maxval": 1, "step": 0.1}},
        "hyperparameters.lr: unknown key 'step' for type double (allowed: count, maxval, minval)",
    ),
    (
        "string bound",
        {"lr": {"type": "double", "minval": "0.1", "maxval": 1}},
        "hyperparameters.lr.minval: must be a finite number, got '0.1' (str)",
    ),
    (
        "bool bound",
        {"lr": {"type": "double", "minval": 0, "maxval": True}},
        "hyperparameters.lr.maxval: must be a finite number",
    ),
    (
        "nan bound",
        {"lr": {"type": "double", "minval": float("nan"), "maxval": 1}},
        "hyperparameters.lr.minval",
    ),
    (
        "float int bound",
        {"n": {"type": "int", "minval": 1.5, "maxval": 4}},
        "hyperparameters.n.minval: must be an integer, got 1.5 (float)",
    ),
    (
        "integral float int bound",
        {"n": {"type": "int", "minval": 1, "maxval": 4.0}},
        "hyperparameters.n.maxval: must be an integer",
    ),
    (
        "bad count",
        {"n": {"type": "int", "minval": 1, "maxval": 4, "count": 0}},
        "hyperparameters.n.count: must be a positive integer",
    ),
    (
        "date constant",
        {"day": datetime.date(2020, 1, 1)},
        "hyperparameters.day: datetime.date(2020, 1, 1) is a date",
    ),
    ("nan constant", {"x": float("nan")}, "hyperparameters.x: nan is not a finite number"),
    (
        "bad categorical value",
        {"c": {"type": "categorical", "vals": [1, {"a": float("inf")}]}},
        "hyperparameters.c.vals[1].a: inf is not a finite number",
    ),
    (
        "bad const value",
        {"c": {"type": "const", "val": {"when": datetime.date(2020, 1, 1)}}},
        "hyperparameters.c.val.when",
    ),
    ("non-string name", {1: 2}, "hyperparameters: the name 1 must be a string"),
    ("not a mapping", [1, 2], "hyperparameters: must be a mapping"),
]


@pytest.mark.parametrize(("case", "config", "expected"), BAD_SPACES, ids=[c[0] for c in BAD_SPACES])
def test_bad_space_is_refused_naming_the_key(case: str, config: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SearchSpace.from_config(config)
    assert any(expected in p for p in caught.value.problems), caught.value.problems
    assert len(caught.value.problems) == 1


def test_every_problem_is_reported_at_once() -> None:
    config = {
        "a": {"type": "int", "minval": 3, "maxval": 1},
        "b": {"nested": {"type": "categorical", "vals": []}},
        "c": {"type": "nope"},
        "ok": {"type": "double", "minval": 0, "maxval": 1},
    }
    with pytest.raises(ConfigError) as caught:
        SearchSpace.from_config(config)
    assert caught.value.problems == [
        "hyperparameters.a: minval 3 > maxval 1",
        "hyperparameters.b.nested.vals: must hold at least one value",
        "hyperparameters.c: unknown type 'nope' (known: const, int, double, log, categorical)",
    ]


def test_the_path_prefix_can_be_chosen() -> None:
    with pytest.raises(ConfigError, match=r"^space\.x: minval 2 > maxval 1$"):
        SearchSpace.from_config({"x": {"type": "int", "minval": 2, "maxval": 1}}, path="space")


@pytest.mark.parametrize(
    "config",
    [
        {},
        None,
        {"x": {"type": "double", "minval": 1.0, "maxval": 1.0}},
        {"x": {"type": "int", "minval": -3, "maxval": -3}},
        {"x": {"type": "log", "base": 0.5, "minval": -2, "maxval": 2}},
        {"x": {"type": "log", "base": 2.718281828, "minval": -2, "maxval": 2, "count": 5}},
        {"x": None, "y": [1, "a"], "z": True, "w": "text"},
        {"x": {"type": "categorical", "vals": [None, [1, 2], {"a": 1}]}},
        {"empty_nested": {}},
    ],
)
def test_valid_spaces_are_accepted(config: Any) -> None:
    SearchSpace.from_config(config)
