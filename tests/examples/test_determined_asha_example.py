"""A search method written for Determined's custom-searcher API (examples/determined_asha) on searchkit.

It uses uuid.uuid4(), the global random module and pickle in save_method_state, so
it is not replayable: searchkit must snapshot it after every event and still lose
or repeat nothing across a SIGKILL.
"""

from __future__ import annotations

import pathlib
import random
import re
import time

import pytest
from examples_helpers import (
    EXAMPLES,
    PYTHON,
    check_asha_shape,
    kill_group,
    model_modules,
    run,
    start,
    status,
    validations_so_far,
    wait_for,
)

from searchkit_core import ExitedReason
from searchkit_core.testing import run_search

ASHA_DIR = EXAMPLES / "determined_asha"
RUN_SEARCH = [PYTHON, str(ASHA_DIR / "run_search.py")]
TINY = [
    "--set", "searcher.max_length.batches=8", "--set", "searcher.max_trials=4",
    "--set", "searcher.num_rungs=2", "--set", "searcher.divisor=2", "--set", "searcher.max_concurrent_trials=2",
]  # fmt: skip


def test_the_method_differs_from_determineds_by_its_import_line_only() -> None:
    source = (ASHA_DIR / "search_method.py").read_text()
    assert re.search(r"^import searchkit_core as searcher$", source, re.MULTILINE)
    assert "uuid.uuid4()" in source and "random.uniform" in source and "pickle.dump" in source
    assert "replayable" not in source.split('"""', 2)[2]  # the default: not replayable


@pytest.fixture(scope="module")
def method_module():  # type: ignore[no-untyped-def]
    with model_modules(ASHA_DIR, "search_method") as (module,):
        yield module


@pytest.mark.parametrize("order", ["fifo", "lifo", "random"])
def test_saved_and_reloaded_after_every_event_it_completes_asha(method_module, order: str) -> None:  # type: ignore[no-untyped-def]
    assert method_module.ASHASearchMethod.replayable is False

    def make():  # type: ignore[no-untyped-def]
        return method_module.ASHASearchMethod(
            method_module.search_space, max_length=64, max_trials=16, num_rungs=3, divisor=4
        )

    for seed in range(5):
        random.seed(seed)
        result = run_search(
            make, lambda hp, length: hp["learning_rate"] / length, order=order, seed=seed, save_every=1
        )
        assert result.is_shut_down
        trained = sorted(record.trained for record in result.trials.values())
        assert len(trained) == 16 and trained.count(4) >= 8 and trained[-1] == 64
        assert all(record.closed for record in result.trials.values())


def test_it_survives_errored_and_invalid_trials(method_module) -> None:  # type: ignore[no-untyped-def]
    for seed in range(10):
        rng = random.Random(seed)
        random.seed(seed)

        def exit_fn(hp, length, rng=rng):  # type: ignore[no-untyped-def]
            draw = rng.random()
            return ExitedReason.ERRORED if draw < 0.1 else ExitedReason.INVALID_HP if draw < 0.2 else None

        result = run_search(
            lambda: method_module.ASHASearchMethod(method_module.search_space, 64, 16, 3, 4),
            lambda hp, length: hp["learning_rate"] / length,
            order="random", seed=seed, exit_fn=exit_fn, save_every=3,
        )  # fmt: skip
        assert result.is_shut_down


def test_a_whole_search_with_the_determined_style_method_survives_sigkill(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    log = tmp_path / "first.log"
    argv = [*RUN_SEARCH, "run", str(ASHA_DIR / "config.yaml"), str(EXAMPLES / "mnist"), "--workers", "2"]
    process = start([*argv, "--experiment-dir", str(experiment), *TINY], log)
    try:
        wait_for(lambda: validations_so_far(experiment) >= 2, 90, "two validations", log)
        time.sleep(0.3)  # somewhere in the middle of handling the next events
    finally:
        kill_group(process)  # SIGKILL: no chance to save anything on the way out
    killed_at = validations_so_far(experiment)
    assert status(experiment)["status"] != "completed"

    result = run([*RUN_SEARCH, "resume", str(experiment)], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    document = status(experiment)
    check_asha_shape(document, [4, 8], max_trials=4)  # no trial lost, no extra trial created
    assert sum(len(t["validations"]) for t in document["trials"]) >= killed_at
    # Hyperparameters drawn with the global random module are the method's: each trial has its own.
    assert len({tuple(sorted(t["hparams"].items())) for t in document["trials"]}) == 4


def test_a_bad_searcher_section_is_one_line_naming_the_keys(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config.yaml"
    text = (ASHA_DIR / "config.yaml").read_text()
    config.write_text(text.replace("  max_trials: 16\n", "").replace("divisor: 4", "divisor: 0"))
    result = run(
        [*RUN_SEARCH, "run", str(config), str(EXAMPLES / "mnist"), "--experiment-dir", str(tmp_path / "x")]
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "searcher.max_trials: required key missing" in result.stderr
    assert "searcher.divisor: must be a positive integer, got 0" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()
