"""Example tests for ASHA: config errors, budgets, edge cases, failure policies, persistence, plugin."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import pathlib
import re
import uuid
import warnings
from typing import Any

import pytest
import yaml
from asha_harness import SPACE, Harness, build

import searchkit_asha
from searchkit_asha import AshaConfig, AshaSearch, RungsReducedWarning, plan_brackets, rung_budgets
from searchkit_core import (
    Close,
    Create,
    ExitedReason,
    SearcherState,
    Shutdown,
    ValidateAfter,
)
from searchkit_core._plugins import Registry
from searchkit_core.errors import ConfigError, SearchMethodError, WireFormatError
from searchkit_core.hookspecs import MethodContext
from searchkit_core.testing import MethodDriver, run_search

BASE: dict[str, Any] = {
    "name": "asha",
    "metric": "validation_loss",
    "smaller_is_better": True,
    "max_length": {"batches": 64},
    "max_trials": 16,
    "num_rungs": 3,
    "divisor": 4,
}


def cfg(**changes: Any) -> dict[str, Any]:
    config = dict(BASE)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


# -- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"divisor": 1}, "searcher.divisor: must be an integer >= 2 (the reduction factor), got 1"),
        ({"divisor": 2.5}, "searcher.divisor: must be an integer >= 2 (the reduction factor), got 2.5"),
        ({"divisor": True}, "searcher.divisor: must be an integer >= 2"),
        ({"num_rungs": 0}, "searcher.num_rungs: must be an integer >= 1"),
        ({"max_trials": 0}, "searcher.max_trials: must be an integer >= 1"),
        ({"max_trials": "many"}, "searcher.max_trials: must be an integer >= 1"),
        ({"max_length": {"batches": 0}}, "searcher.max_length.batches: must be an integer >= 1, got 0"),
        ({"max_length": {"epochs": 2.0}}, "searcher.max_length.epochs: must be an integer >= 1, got 2.0"),
        (
            {"max_length": 100},
            "searcher.max_length: must be a mapping with exactly one of batches, records, epochs",
        ),
        (
            {"max_length": {"batches": 1, "epochs": 1}},
            "searcher.max_length: must be a mapping with exactly one",
        ),
        ({"max_length": {"steps": 10}}, "searcher.max_length: must be a mapping with exactly one"),
        ({"mode": "wild"}, "searcher.mode: must be one of aggressive, standard, conservative, got 'wild'"),
        ({"max_concurrent_trials": -1}, "searcher.max_concurrent_trials: must be an integer >= 0"),
        ({"max_invalid_replacements": -2}, "searcher.max_invalid_replacements: must be an integer >= 0"),
        ({"smaller_is_better": "yes"}, "searcher.smaller_is_better: must be true or false, got 'yes'"),
        ({"stop_once": 1}, "searcher.stop_once: must be true or false, got 1"),
        ({"metric": ""}, "searcher.metric: must be a non-empty metric name"),
        ({"metric": None}, "searcher.metric: required by the asha searcher"),
        ({"max_trials": None}, "searcher.max_trials: required by the asha searcher"),
        ({"divsor": 4}, "searcher.divsor: unknown key for the asha searcher (did you mean divisor?)"),
    ],
)
def test_each_bad_value_gets_a_message_naming_its_key(changes: dict[str, Any], expected: str) -> None:
    problems = searchkit_asha.validate_searcher(cfg(**changes))
    assert any(p.startswith(expected) for p in problems), problems
    with pytest.raises(ConfigError) as info:
        AshaConfig.from_mapping(cfg(**changes))
    assert info.value.problems == problems


def test_every_problem_is_reported_at_once() -> None:
    problems = searchkit_asha.validate_searcher(cfg(divisor=1, num_rungs=0, mode="x", colour="red"))
    assert [p.split(":")[0] for p in problems] == [
        "searcher.colour",
        "searcher.num_rungs",
        "searcher.divisor",
        "searcher.mode",
    ]


def test_a_valid_config_has_no_problems_and_documented_defaults() -> None:
    assert searchkit_asha.validate_searcher(BASE) == []
    config = AshaConfig.from_mapping({"metric": "m", "max_length": {"epochs": 3}, "max_trials": 7})
    assert (config.num_rungs, config.divisor, config.mode, config.stop_once) == (5, 4, "aggressive", False)
    assert config.smaller_is_better is True
    assert config.length_unit == "epochs"
    assert config.max_concurrent_trials == 0
    assert config.invalid_replacement_bound == 7  # default: as many as max_trials


def test_float_divisor_from_yaml_is_converted_when_integral_and_rejected_otherwise() -> None:
    text = "metric: loss\nmax_length: {batches: 64}\nmax_trials: 8.0\nnum_rungs: 3\ndivisor: 4.0\n"
    config = AshaConfig.from_mapping(yaml.safe_load(text))
    assert (config.divisor, config.max_length, config.max_trials) == (4, 64, 8)
    assert type(config.divisor) is int
    problems = searchkit_asha.validate_searcher(yaml.safe_load(text.replace("divisor: 4.0", "divisor: 2.5")))
    assert problems == ["searcher.divisor: must be an integer >= 2 (the reduction factor), got 2.5"]


def test_automatic_concurrency() -> None:
    assert AshaConfig.from_mapping(cfg(max_trials=100)).total_concurrent_trials == 16  # 4^(3-1)
    assert AshaConfig.from_mapping(cfg(max_trials=5)).total_concurrent_trials == 5
    assert AshaConfig.from_mapping(cfg(max_concurrent_trials=3)).total_concurrent_trials == 3


# -- rung budgets ---------------------------------------------------------------------------


def test_rung_budgets_worked_example() -> None:
    # docs/asha.md: R = 1000 batches, 3 rungs, divisor 4 -> 62, 250, 1000
    assert rung_budgets(1000, 3, 4) == (62, 250, 1000)
    assert rung_budgets(64, 4, 2) == (8, 16, 32, 64)
    assert rung_budgets(5, 1, 3) == (5,)


def test_too_small_max_length_uses_fewer_rungs_and_warns() -> None:
    assert rung_budgets(3, 4, 2) == (1, 3)  # 0->1, 0->1, 1, 3: never repeated lengths
    with pytest.warns(
        RungsReducedWarning, match=r"searcher.num_rungs: max_length 3 is too small.*using 2 rungs"
    ):
        method = AshaSearch(cfg(max_length={"batches": 3}, num_rungs=4, divisor=2), SPACE, 0)
    assert method.brackets[0].budgets == (1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AshaSearch(cfg(), SPACE, 0)  # enough length: no warning


# -- brackets ---------------------------------------------------------------------------------


def test_adaptive_split_matches_the_documented_example() -> None:
    config = AshaConfig.from_mapping(
        cfg(max_length={"batches": 64}, max_trials=40, num_rungs=4, divisor=2, max_concurrent_trials=5)
    )
    aggressive, _ = plan_brackets(config)
    assert [(b.budgets, b.max_trials, b.max_concurrent_trials) for b in aggressive] == [
        ((8, 16, 32, 64), 40, 5)
    ]
    standard, _ = plan_brackets(AshaConfig.from_mapping({**attrs_dict(config), "mode": "standard"}))
    assert [(b.budgets, b.max_trials, b.max_concurrent_trials) for b in standard] == [
        ((8, 16, 32, 64), 24, 3),
        ((16, 32, 64), 16, 2),
    ]
    conservative, _ = plan_brackets(AshaConfig.from_mapping({**attrs_dict(config), "mode": "conservative"}))
    assert [(b.budgets, b.max_trials, b.max_concurrent_trials) for b in conservative] == [
        ((8, 16, 32, 64), 15, 2),
        ((16, 32, 64), 11, 1),
        ((32, 64), 7, 1),
        ((64,), 7, 1),
    ]


def attrs_dict(config: AshaConfig) -> dict[str, Any]:
    return {
        "metric": config.metric,
        "max_length": {config.length_unit: config.max_length},
        "max_trials": config.max_trials,
        "num_rungs": config.num_rungs,
        "divisor": config.divisor,
        "max_concurrent_trials": config.max_concurrent_trials,
    }


def test_brackets_never_outnumber_trials_or_slots() -> None:
    brackets, _ = plan_brackets(AshaConfig.from_mapping(cfg(max_trials=2, num_rungs=4, mode="conservative")))
    assert len(brackets) == 2 and sum(b.max_trials for b in brackets) == 2
    brackets, _ = plan_brackets(
        AshaConfig.from_mapping(cfg(max_trials=50, num_rungs=4, mode="conservative", max_concurrent_trials=1))
    )
    assert len(brackets) == 1 and brackets[0].max_concurrent_trials == 1 and brackets[0].max_trials == 50


# -- edge cases, driven to the end ---------------------------------------------------------


def loss(hparams: dict[str, Any], length: int) -> float:
    return float(hparams["lr"]) / length


def finish(config: dict[str, Any], seed: int = 0, **kwargs: Any) -> Harness:
    harness = Harness(config, seed, **kwargs)
    harness.start()
    harness.finish()
    return harness


def lengths_of(harness: Harness) -> list[list[int]]:
    return [harness.trials[rid].lengths for rid in harness.order]


def test_one_rung_trains_every_trial_once_to_max_length() -> None:
    harness = finish(cfg(num_rungs=1, max_trials=5, max_concurrent_trials=2))
    assert lengths_of(harness) == [[64]] * 5


def test_fewer_trials_than_the_first_rung_needs() -> None:
    # 3 trials, divisor 4: floor(3/4) = 0, so nobody is promoted; all are closed and the search ends.
    harness = finish(cfg(max_trials=3))
    assert lengths_of(harness) == [[4]] * 3
    assert harness.method.brackets[0].max_concurrent_trials == 3


def test_more_slots_than_trials() -> None:
    harness = finish(cfg(max_trials=4, max_concurrent_trials=50))
    assert harness.method.brackets[0].max_concurrent_trials == 4
    assert len(harness.ops_log[0]) == 8  # every trial created at once, no more


def test_a_single_trial() -> None:
    harness = finish(cfg(max_trials=1, num_rungs=3, divisor=2))
    assert lengths_of(harness) == [[16]]
    assert isinstance(harness.ops_log[-1][-1], Shutdown)


def test_all_metrics_equal_promote_in_arrival_order() -> None:
    config = cfg(max_trials=8, num_rungs=2, divisor=2, max_length={"batches": 2}, max_concurrent_trials=8)
    method = build(config, 0)
    driver = MethodDriver(method)
    ops = driver.start()
    first = [op.request_id for op in ops if isinstance(op, Create)]
    order = [first[i] for i in (5, 2, 7, 0, 1, 3, 4, 6)]
    promoted = []
    for rid in order:
        promoted += [op.request_id for op in driver.complete(rid, 1.0) if isinstance(op, ValidateAfter)]
    # floor(n/2) grows at the 2nd, 4th, 6th, 8th result: each time the earliest unpromoted report goes up.
    assert promoted == order[:4]


def test_integer_metrics_rank_exactly() -> None:
    config = cfg(max_trials=2, num_rungs=2, divisor=2, max_length={"batches": 2}, max_concurrent_trials=2)
    driver = MethodDriver(build(config, 0))
    a, b = (op.request_id for op in driver.start() if isinstance(op, Create))
    driver.complete(a, 2**60 + 1)
    ops = driver.complete(b, 2**60)  # differs from a only beyond float precision
    assert ValidateAfter(b, 2) in ops


def test_nan_and_infinite_metrics_rank_last() -> None:
    for bad in (math.nan, math.inf, -math.inf, "not a number"):
        config = cfg(max_trials=2, num_rungs=2, divisor=2, max_length={"batches": 2}, max_concurrent_trials=2)
        driver = MethodDriver(build(config, 0))
        a, b = (op.request_id for op in driver.start() if isinstance(op, Create))
        driver.complete(a, bad)
        assert ValidateAfter(b, 2) in driver.complete(b, 1e300)


def test_larger_is_better_promotes_the_largest() -> None:
    config = cfg(max_trials=2, num_rungs=2, divisor=2, max_length={"batches": 2}, smaller_is_better=False)
    driver = MethodDriver(build(config, 0))
    a, b = (op.request_id for op in driver.start() if isinstance(op, Create))
    driver.complete(a, 0.9)
    assert ValidateAfter(a, 2) in driver.complete(b, 0.1)


# -- failures ----------------------------------------------------------------------------------


def two_trial_driver(**changes: Any) -> tuple[MethodDriver, uuid.UUID, uuid.UUID]:
    config = cfg(max_trials=2, num_rungs=2, divisor=2, max_length={"batches": 2}, max_concurrent_trials=2)
    driver = MethodDriver(build({**config, **changes}, 0))
    a, b = (op.request_id for op in driver.start() if isinstance(op, Create))
    return driver, a, b


def test_an_errored_trial_counts_as_the_worst_result_and_frees_its_slot() -> None:
    driver, a, b = two_trial_driver()
    assert driver.exit_early(a, ExitedReason.ERRORED) == []  # no trials left to create
    # a's failure and b's NaN are both "worst"; a's came first, so it holds the top 1 of n = 2,
    # and a failed trial cannot be promoted: nothing is, and b is closed at the end.
    ops = driver.complete(b, math.nan)
    assert not any(isinstance(op, ValidateAfter) for op in ops)
    assert Close(b) in ops


def test_a_cancelled_paused_trial_adds_no_entry_and_frees_no_slot() -> None:
    driver, a, b = two_trial_driver(max_trials=3, max_concurrent_trials=2)
    driver.complete(a, 1.0)  # a paused; slot goes to a new trial c
    c = next(rid for rid in driver.outstanding if rid not in (a, b))
    assert driver.exit_early(a, ExitedReason.USER_CANCELED) == []  # no slot freed: no work
    ops = driver.complete(b, 2.0)  # n = 2, top 1 = a (cancelled): nothing to promote
    assert not any(isinstance(op, ValidateAfter) for op in ops)
    assert driver.complete(c, 0.5)[:1] == [ValidateAfter(c, 2)]  # n = 3: top 1 = c


def test_invalid_hp_trials_are_replaced_up_to_the_bound() -> None:
    for bound, expected in ((0, 4), (2, 6), (None, 8)):
        config = cfg(max_trials=4, num_rungs=1, max_concurrent_trials=1)
        if bound is not None:
            config["max_invalid_replacements"] = bound

        def make(config: dict[str, Any] = config) -> AshaSearch:
            return build(config, 0)

        def invalid(hparams: dict[str, Any], length: int) -> ExitedReason:
            return ExitedReason.INVALID_HP

        result = run_search(make, loss, exit_fn=invalid)
        assert result.is_shut_down
        assert len(result.trials) == expected


def test_an_invalid_trial_leaves_every_rung() -> None:
    driver, a, b = two_trial_driver(max_trials=3)
    driver.complete(a, 1.0)
    c = next(rid for rid in driver.outstanding if rid not in (a, b))
    ops = driver.complete(b, 2.0)  # n = 2: a promoted
    assert ValidateAfter(a, 2) in ops
    driver.exit_early(a, ExitedReason.INVALID_HP)  # a vanishes; its replacement d is created
    d = next(rid for rid in driver.outstanding if rid not in (a, b, c))
    driver.complete(c, 3.0)  # rung 0 is now b=2, c=3: b is in the top 1 and promoted
    assert driver.next_target(b) == 2
    assert driver.next_target(d) == 1


def test_stale_and_duplicate_events_change_nothing_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    driver, a, _b = two_trial_driver(max_trials=3)
    driver.complete(a, 1.0)
    before = driver.method.snapshot()  # type: ignore[attr-defined]
    state = driver.ledger.searcher_state
    with caplog.at_level(logging.WARNING, logger="searchkit_asha"):
        assert driver.method.on_validation_completed(state, a, 0.1, 1) == []  # a has no outstanding work
        assert driver.method.on_trial_closed(state, a) == []
        assert driver.method.on_trial_created(state, uuid.uuid4()) == []
        assert driver.method.on_trial_created(state, a) == []  # a second TrialCreated
        assert driver.method.on_trial_exited_early(state, uuid.uuid4(), ExitedReason.ERRORED) == []
    assert driver.method.snapshot() == before  # type: ignore[attr-defined]
    assert len([r for r in caplog.records if r.name == "searchkit_asha"]) == 5


def test_promotion_comes_from_the_highest_rung_with_a_candidate() -> None:
    # Found by a random search: two rungs hold a candidate at once (an INVALID_HP trial left both).
    config = {
        "metric": "m",
        "max_length": {"batches": 8},
        "max_trials": 13,
        "num_rungs": 4,
        "divisor": 2,
        "max_concurrent_trials": 2,
    }
    script = [("ack", 47, 5), ("complete", 19, 0), ("cancel_paused", 14, 4), ("ack", 5, 6), ("ack", 20, 5), ("error", 35, 6), ("complete", 43, 1), ("ack", 18, 3), ("complete", 40, 0), ("ack", 25, 2), ("complete", 25, 0), ("complete", 7, 4), ("ack", 13, 1), ("complete", 0, 0), ("complete", 42, 5), ("complete", 49, 5), ("ack", 34, 2), ("ack", 46, 5), ("error", 0, 3), ("ack", 24, 4), ("invalid_paused", 26, 2), ("complete", 0, 1), ("complete", 25, 3), ("complete", 47, 6), ("invalid_paused", 49, 2), ("cancel_paused", 34, 6), ("complete", 26, 6), ("ack", 12, 0), ("ack", 20, 1), ("complete", 41, 1), ("ack", 25, 5), ("complete", 49, 4), ("complete", 24, 0), ("ack", 49, 6), ("error", 35, 5), ("error", 15, 5), ("ack", 0, 6), ("complete", 37, 2), ("ack", 20, 4), ("invalid_paused", 11, 2), ("complete", 15, 2)]  # fmt: skip
    harness = Harness(config, 55)
    harness.replay(script)  # the harness checks the rung of every promotion
    harness.finish()


# -- progress --------------------------------------------------------------------------------


def test_progress_is_monotone_and_one_at_shutdown() -> None:
    result = run_search(lambda: build(cfg(max_trials=20), 1), loss, order="random", seed=3)
    progress = result.progress
    assert progress == sorted(progress)
    assert all(p < 1.0 for p in progress[:-1]) and progress[-1] == 1.0


def test_progress_never_raises() -> None:
    method = build(cfg(), 0)
    method._progress = "garbage"  # type: ignore[assignment]
    assert method.progress(SearcherState()) == 0.0


# -- persistence ---------------------------------------------------------------------------


def test_state_is_versioned_json_with_the_generator_state(tmp_path: pathlib.Path) -> None:
    method = build(cfg(), 7)
    method.initial_operations(SearcherState())
    method.save_method_state(tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["asha_state.json"]
    doc = json.loads(files[0].read_text())
    assert doc["format_version"] == 1 and doc["type"] == "AshaSnapshot"
    version, internal, gauss = doc["rng_state"]
    assert (version, len(internal), gauss) == (3, 625, None)
    assert all(isinstance(x, int) for x in internal)
    fresh = build(cfg(), 7)
    fresh.load_method_state(tmp_path)
    assert fresh.snapshot() == method.snapshot()
    assert fresh.rng.getstate() == method.rng.getstate()


def test_loading_state_of_another_config_or_a_newer_format_is_refused(tmp_path: pathlib.Path) -> None:
    method = build(cfg(), 7)
    method.initial_operations(SearcherState())
    method.save_method_state(tmp_path)
    with pytest.raises(SearchMethodError, match="another searcher config or seed"):
        build(cfg(divisor=2), 7).load_method_state(tmp_path)
    with pytest.raises(SearchMethodError, match="another searcher config or seed"):
        build(cfg(), 8).load_method_state(tmp_path)
    path = tmp_path / "asha_state.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(WireFormatError, match="newer searchkit"):
        build(cfg(), 7).load_method_state(tmp_path)
    path.write_text(json.dumps({**doc, "surprise": 1}))
    with pytest.raises(WireFormatError, match="surprise"):
        build(cfg(), 7).load_method_state(tmp_path)
    for field, value, message in [
        ("is_shut_down", "no", "field 'is_shut_down' of AshaSnapshot must be bool, got 'no'"),
        ("pending_closes", "2", "field 'pending_closes' of AshaSnapshot must be int, got '2'"),
        ("pending_closes", True, "field 'pending_closes' of AshaSnapshot must be int, got True"),
        ("progress", None, "field 'progress' of AshaSnapshot must be int or float, got None"),
        ("trial_status", {}, "field 'trial_status' of AshaSnapshot must be list"),
        ("trial_status", [0], "the per-trial columns of AshaSnapshot have different lengths"),
    ]:
        path.write_text(json.dumps({**doc, field: value}))
        with pytest.raises(WireFormatError, match=re.escape(message)):
            build(cfg(), 7).load_method_state(tmp_path)


def test_same_seed_same_operations_other_seed_other_trials() -> None:
    one = run_search(lambda: build(cfg(), 5), loss, order="random", seed=2).operations
    two = run_search(lambda: build(cfg(), 5), loss, order="random", seed=2, save_every=3).operations
    other = run_search(lambda: build(cfg(), 6), loss, order="random", seed=2).operations
    assert one == two
    assert [op for op in one if isinstance(op, Create)] != [op for op in other if isinstance(op, Create)]


# -- the plugin ---------------------------------------------------------------------------------


def test_asha_is_registered_through_the_entry_point_like_any_plugin() -> None:
    entry_points = [ep for ep in importlib.metadata.entry_points(group="searchkit") if ep.name == "asha"]
    assert [ep.value for ep in entry_points] == ["searchkit_asha"]
    assert entry_points[0].dist is not None and entry_points[0].dist.name == "searchkit-asha"
    plugin = Registry(autoload=True).search_method("asha")
    assert plugin.validate(cfg(divisor=1)) == [
        "searcher.divisor: must be an integer >= 2 (the reduction factor), got 1"
    ]
    method = plugin.factory(MethodContext(searcher=cfg(), space=SPACE, seed=3))
    assert isinstance(method, AshaSearch) and AshaSearch.replayable is True
    with pytest.raises(ConfigError, match=r"searcher\.num_rungs"):
        plugin.factory(MethodContext(searcher=cfg(num_rungs=0), space=SPACE, seed=3))


def test_a_search_through_the_plugin_ends_with_the_best_trial_at_max_length() -> None:
    plugin = Registry(autoload=True).search_method("asha")
    result = run_search(
        lambda: plugin.factory(MethodContext(searcher=cfg(max_trials=32), space=SPACE, seed=11)),
        loss,
        order="random",
        seed=4,
    )
    best = result.best()
    assert best is not None and best.trained == 64
