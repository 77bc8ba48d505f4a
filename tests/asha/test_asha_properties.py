"""Property tests: ASHA's invariants under random completion orders, ties, failures and save/load.

Each example draws a config and a script of events (which outstanding trial
reports next, its metric from a small set full of ties, NaN and infinities,
errors, cancellations, invalid hyperparameters, late acknowledgements, stale
events, save/load points); :class:`asha_harness.Harness` checks invariants
1-8, 11, 12 and 13 after every event. Invariants 9 and 10 replay the recorded
script on a second method and compare every operation.
"""

from __future__ import annotations

import math
from typing import Any

from asha_harness import Harness
from hypothesis import given
from hypothesis import strategies as st

METRICS = [0, 1, 1, 2, 2, 3, -1, 0.5, 2.5, 1.25, math.nan, math.inf, -math.inf]

ACTIONS = [
    "complete",
    "complete",
    "complete",
    "complete",
    "complete",
    "ack",
    "ack",
    "ack",
    "error",
    "cancel",
    "invalid",
    "cancel_paused",
    "invalid_paused",
    "exit_closing",
    "stale_validation",
    "stale_created",
    "save",
]


@st.composite
def configs(draw: Any, *, stop_once: bool | None = None, mode: str | None = None) -> dict[str, Any]:
    num_rungs = draw(st.integers(1, 4))
    divisor = draw(st.integers(2, 4))
    if draw(st.booleans()):
        max_length = divisor ** (num_rungs - 1) * draw(st.integers(1, 3))
    else:
        max_length = draw(st.integers(1, 12))  # often too small: fewer rungs
    config: dict[str, Any] = {
        "name": "asha",
        "metric": "loss",
        "smaller_is_better": draw(st.booleans()),
        "max_length": {draw(st.sampled_from(["batches", "records", "epochs"])): max_length},
        "max_trials": draw(st.integers(1, 24)),
        "num_rungs": num_rungs,
        "divisor": divisor,
        "max_concurrent_trials": draw(st.integers(0, 6)),
        "mode": mode
        if mode is not None
        else draw(st.sampled_from(["aggressive", "standard", "conservative"])),
        "stop_once": stop_once if stop_once is not None else draw(st.booleans()),
    }
    replacements = draw(st.one_of(st.none(), st.integers(0, 3)))
    if replacements is not None:
        config["max_invalid_replacements"] = replacements
    return config


def drive(data: Any, config: dict[str, Any], seed: int, *, steps: int = 120) -> Harness:
    """Run a drawn script on a checked harness, then finish the search."""
    harness = Harness(config, seed)
    harness.start()
    for _ in range(data.draw(st.integers(0, steps), label="steps")):
        if harness.shutdowns:
            break
        action = data.draw(st.sampled_from(ACTIONS))
        index = data.draw(st.integers(0, 50))
        metric = data.draw(st.sampled_from(METRICS))
        harness.act(action, index, metric)
    harness.finish()
    return harness


@given(data=st.data(), config=configs(), seed=st.integers(0, 2**32))
def test_invariants_hold_after_every_event(data: Any, config: dict[str, Any], seed: int) -> None:
    """Invariants 1-8, 11, 12, 13 (checked inside the harness)."""
    drive(data, config, seed)


@given(data=st.data(), config=configs(stop_once=True, mode="aggressive"), seed=st.integers(0, 2**16))
def test_stop_based_closes_exactly_outside_the_top(data: Any, config: dict[str, Any], seed: int) -> None:
    """Invariant 12, with the stop-based variant every time."""
    drive(data, config, seed)


@given(data=st.data(), config=configs(mode="conservative"), seed=st.integers(0, 2**16))
def test_adaptive_brackets_each_obey_the_invariants(data: Any, config: dict[str, Any], seed: int) -> None:
    """Invariant 13: every bracket obeys 1-8 on its own and the brackets share trials and slots."""
    harness = drive(data, config, seed)
    assert sum(p.max_trials for p in harness.plans) == config["max_trials"]


def _replay(config: dict[str, Any], seed: int, script: list[Any], **kwargs: Any) -> Harness:
    metric_fn = kwargs.pop("metric_fn", lambda m: m)
    harness = Harness(config, seed, metric_fn=metric_fn)
    harness.replay(script, **kwargs)
    harness.finish()
    return harness


def _cube_plus(m: Any) -> Any:
    return m**3 + m  # strictly increasing; exact on the METRICS values; keeps NaN and infinities


@given(data=st.data(), config=configs(), seed=st.integers(0, 2**16))
def test_strictly_increasing_transform_gives_same_operations(
    data: Any, config: dict[str, Any], seed: int
) -> None:
    """Invariant 9 (first half)."""
    original = drive(data, config, seed)
    transformed = _replay(config, seed, original.script, metric_fn=_cube_plus)
    assert transformed.ops_log == original.ops_log


@given(data=st.data(), config=configs(), seed=st.integers(0, 2**16))
def test_larger_is_better_with_negated_metric_gives_same_operations(
    data: Any, config: dict[str, Any], seed: int
) -> None:
    """Invariant 9 (second half): smaller_is_better false with m equals true with -m."""
    config = {**config, "smaller_is_better": True}
    original = drive(data, config, seed)
    flipped = _replay({**config, "smaller_is_better": False}, seed, original.script, metric_fn=lambda m: -m)
    assert flipped.ops_log == original.ops_log


@given(data=st.data(), config=configs(), seed=st.integers(0, 2**16))
def test_save_load_and_same_seed_give_same_operations(data: Any, config: dict[str, Any], seed: int) -> None:
    """Invariant 10: the same seed and events give the same operations, with or without save/load."""
    original = drive(data, config, seed)
    again = _replay(config, seed, original.script)
    assert again.ops_log == original.ops_log
    without_saves = _replay(config, seed, original.script, skip_saves=True)
    assert without_saves.ops_log == original.ops_log
