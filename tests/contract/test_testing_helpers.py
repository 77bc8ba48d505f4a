"""searchkit_core.testing catches what the engine would reject, and drives searches as documented."""

from __future__ import annotations

import pathlib
import uuid
from typing import Any

import pytest

from searchkit_core import (
    Close,
    Create,
    ExitedReason,
    Operation,
    SearcherState,
    SearchMethod,
    Shutdown,
    TrialClosed,
    TrialCreated,
    ValidateAfter,
)
from searchkit_core.errors import InvalidOperationError, SearchMethodError
from searchkit_core.testing import MethodDriver, run_search


class Sequential(SearchMethod):
    """Trains ``n`` trials one after another to lengths 2 then 4; knobs make it misbehave."""

    replayable = True

    def __init__(self, n: int = 3, *, bad: str = "") -> None:
        self.n, self.bad, self.made, self.done = n, bad, 0, 0

    def _new(self) -> list[Operation]:
        self.made += 1
        rid = uuid.UUID(int=self.made)
        return [Create(rid, {"i": self.made}), ValidateAfter(rid, 2)]

    def initial_operations(self, searcher_state: SearcherState) -> list[Operation]:
        return self._new()

    def on_trial_created(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return []

    def on_validation_completed(
        self, searcher_state: SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[Operation]:
        if train_length == 2:
            return [ValidateAfter(request_id, 2 if self.bad == "same_length" else 4)]
        if self.bad == "stall":
            return []
        return [Close(request_id)]

    def on_trial_closed(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        self.done += 1
        return [Shutdown()] if self.done == self.n else self._new()

    def on_trial_exited_early(
        self, searcher_state: SearcherState, request_id: uuid.UUID, exited_reason: ExitedReason
    ) -> list[Operation]:
        return self.on_trial_closed(searcher_state, request_id)

    def progress(self, searcher_state: SearcherState) -> float:
        return 2.0 if self.bad == "progress" else self.done / self.n

    def save_method_state(self, path: pathlib.Path) -> None:
        (path / "seq.txt").write_text(f"{self.made} {self.done}")

    def load_method_state(self, path: pathlib.Path) -> None:
        self.made, self.done = map(int, (path / "seq.txt").read_text().split())


def metric(hparams: dict[str, Any], length: int) -> float:
    return float(hparams["i"]) / length


def test_run_search_drives_to_shutdown_and_keeps_the_engine_ledger() -> None:
    result = run_search(lambda: Sequential(3), metric, save_every=2)
    assert result.is_shut_down
    assert [r.trained for r in result.trials.values()] == [4, 4, 4]
    assert all(r.closed for r in result.trials.values())
    assert result.progress[-1] == 1.0
    assert result.driver.saves > 0
    best = result.best()
    assert best is not None and best.hparams == {"i": 1}
    state = result.driver.ledger.searcher_state
    assert len(state.trials_created) == 3 and len(state.trials_closed) == 3


def test_driver_delivers_acknowledgements_like_the_engine() -> None:
    driver = MethodDriver(Sequential(1), auto_acknowledge=False)
    create, _ = driver.start()
    assert isinstance(create, Create)
    rid = create.request_id
    assert list(driver.pending) == [TrialCreated(rid)]
    driver.acknowledge()
    assert driver.next_target(rid) == 2
    driver.complete(rid, 0.5)
    driver.complete(rid, 0.4)
    assert list(driver.pending) == [TrialClosed(rid)]
    assert driver.acknowledge() == [Shutdown()]


def test_an_operation_the_engine_would_reject_fails_with_the_method_named() -> None:
    with pytest.raises(InvalidOperationError, match=r"Sequential returned ValidateAfter.*not longer"):
        run_search(lambda: Sequential(bad="same_length"), metric)


def test_a_stalled_method_is_reported() -> None:
    with pytest.raises(SearchMethodError, match="stalled"):
        run_search(lambda: Sequential(bad="stall"), metric)


def test_progress_outside_zero_one_is_reported() -> None:
    with pytest.raises(SearchMethodError, match=r"progress\(\) returned 2.0"):
        run_search(lambda: Sequential(bad="progress"), metric)


def test_completion_orders_and_early_exits() -> None:
    with pytest.raises(ValueError, match="order must be"):
        run_search(lambda: Sequential(), metric, order="sideways")  # type: ignore[arg-type]
    result = run_search(lambda: Sequential(2), metric, exit_fn=lambda h, n: ExitedReason.ERRORED)
    assert [r.exited_reason for r in result.trials.values()] == [ExitedReason.ERRORED] * 2
    with pytest.raises(ValueError, match="no outstanding work"):
        driver = MethodDriver(Sequential())
        driver.start()
        driver.complete(uuid.UUID(int=1), 0.1)
        driver.complete(uuid.UUID(int=1), 0.1)
        driver.complete(uuid.UUID(int=1), 0.1)
