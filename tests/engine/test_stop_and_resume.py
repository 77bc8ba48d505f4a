"""A search stopped cleanly (Ctrl-C) at any point and resumed ends exactly as an uninterrupted one.

Stops land at different commits, so the resumed engine's batches end at other
rows than the uninterrupted run's: the order of events must not depend on
where a batch ends. (It once did: a report's TrialCreated came after or
before the next report depending on the batch boundary.)
"""

from __future__ import annotations

import pathlib

import engine_helpers as eh
import pytest
from store_dump import dump

from searchkit_core._session import drive, open_experiment
from searchkit_runners.simulate import build_executor


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    experiment = eh.create(tmp_path_factory.mktemp("ref") / "exp", eh.asha(max_trials=3000))
    assert eh.run(experiment).status == "completed"
    return dump(experiment)


@pytest.mark.parametrize("stop_at", [3, 17, 40, 77, 150])
def test_stop_anywhere_then_resume(
    tmp_path: pathlib.Path, reference: dict[str, object], stop_at: int
) -> None:
    experiment = eh.create(tmp_path / "exp", eh.asha(max_trials=3000))
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls >= stop_at

    executor, _ = build_executor(open_experiment(experiment), {})
    stopped = drive(experiment, executor, should_stop=should_stop, poll=0.0)
    assert stopped.status == "stopped"
    assert 0 < stopped.events < len(reference["journal"])  # type: ignore[arg-type]
    assert eh.run(experiment).status == "completed"
    assert dump(experiment) == reference
