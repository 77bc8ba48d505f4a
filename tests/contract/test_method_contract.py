"""The contract every search method registered through the ``searchkit`` entry points must keep.

Each installed search method (ASHA, and any other plugin in the environment) is
found through the plugin registry, built from the common searcher keys every
searchkit method accepts (``metric``, ``smaller_is_better``, ``max_length``,
``max_trials``, ``max_concurrent_trials``), and driven to its end by
:mod:`searchkit_core.testing` with the engine's own operation checks:

- its registration is well formed and its ``validate`` accepts the common keys;
- every search ends with ``Shutdown`` whatever order trials report in, also
  when some trials error; ``progress()`` is always a number in [0, 1];
- a method that says it is ``replayable`` gives the same operations for the same
  seed and events, also when it is saved and loaded between events;
- what ``save_method_state`` writes is not a pickle.
"""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

import pytest

from searchkit_core import ExitedReason, SearchMethod
from searchkit_core._plugins import Registry
from searchkit_core._space import SearchSpace
from searchkit_core.hookspecs import MethodContext, SearchMethodPlugin
from searchkit_core.testing import MethodDriver, Order, run_search

REGISTRY = Registry(autoload=True)
METHODS = sorted(REGISTRY.names("search_method"))

SPACE = SearchSpace.from_config(
    {
        "lr": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0},
        "layers": {"type": "int", "minval": 1, "maxval": 4},
        "act": {"type": "categorical", "vals": ["relu", "tanh"]},
        "batch": 32,
    }
)


def common_searcher(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "metric": "validation_loss",
        "smaller_is_better": True,
        "max_length": {"batches": 256},
        "max_trials": 6,
        "max_concurrent_trials": 2,
    }


def plugin(name: str) -> SearchMethodPlugin:
    return REGISTRY.search_method(name)


def make(name: str, seed: int = 0) -> SearchMethod:
    return plugin(name).factory(MethodContext(searcher=common_searcher(name), space=SPACE, seed=seed))


REPLAYABLE = [name for name in METHODS if type(make(name)).replayable]


def metric(hparams: dict[str, Any], length: int) -> float:
    return float(hparams["lr"]) * hparams["layers"] / length


def test_asha_is_among_the_discovered_methods() -> None:
    assert "asha" in METHODS
    assert not REGISTRY.failures, [f.error for f in REGISTRY.failures]


@pytest.mark.parametrize("name", METHODS)
def test_registration_is_well_formed(name: str) -> None:
    record = plugin(name)
    assert record.name == name and name.strip() == name and " " not in name
    assert record.summary.strip() and "\n" not in record.summary
    problems = record.validate(common_searcher(name))
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    assert problems == [], f"{name} must accept the common searcher keys: {problems}"
    assert isinstance(make(name), SearchMethod)


@pytest.mark.parametrize("order", ["fifo", "lifo", "random"])
@pytest.mark.parametrize("name", METHODS)
def test_every_search_ends_in_any_completion_order(name: str, order: Order) -> None:
    result = run_search(
        lambda: make(name, 1), metric, order=order, seed=5, max_events=10_000, method_name=name
    )
    assert result.is_shut_down
    assert result.trials, f"{name} created no trials"
    assert all(0.0 <= p <= 1.0 for p in result.progress)


@pytest.mark.parametrize("name", METHODS)
def test_a_search_with_errored_trials_still_ends(name: str) -> None:
    calls = iter(range(10**6))

    def exit_fn(hparams: dict[str, Any], length: int) -> ExitedReason | None:
        return ExitedReason.ERRORED if next(calls) % 3 == 1 else None

    result = run_search(lambda: make(name, 2), metric, order="random", exit_fn=exit_fn, max_events=10_000)
    assert result.is_shut_down


def test_asha_is_among_the_replayable_methods() -> None:
    # So that the next test cannot pass by having nothing to check.
    assert "asha" in REPLAYABLE


# A method that is not replayable is snapshotted after every event instead; nothing to repeat.
@pytest.mark.parametrize("name", REPLAYABLE)
def test_replayable_methods_repeat_their_operations(name: str) -> None:
    first = run_search(lambda: make(name, 3), metric, order="random", seed=9).operations
    again = run_search(lambda: make(name, 3), metric, order="random", seed=9).operations
    saved = run_search(lambda: make(name, 3), metric, order="random", seed=9, save_every=2).operations
    assert again == first
    assert saved == first


@pytest.mark.parametrize("name", METHODS)
def test_saved_state_loads_back_and_is_not_a_pickle(name: str) -> None:
    driver = MethodDriver(make(name, 4), method_name=name)
    driver.start()
    for rid in list(driver.outstanding)[:1]:
        driver.complete(rid, 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp)
        driver.method.save_method_state(path)
        for file in path.rglob("*"):
            if file.is_file():
                assert not file.read_bytes().startswith(b"\x80"), f"{name} pickled {file.name}"
        fresh = make(name, 4)
        fresh.load_method_state(path)
    driver.method = fresh
    while driver.outstanding and not driver.is_shut_down:
        driver.complete(next(iter(driver.outstanding)), 0.25)
    assert driver.is_shut_down
