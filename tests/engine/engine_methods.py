"""Search methods for the engine tests, registered as a plugin module (``register(registry)``).

- ``uuid-random``: written the way Determined's own methods are: request ids
  from ``uuid.uuid4()`` and draws from the global ``random`` module. It is not
  replayable, so the engine snapshots it after every commit; its saved state
  holds the global generator's state, so a resumed search draws what the
  uninterrupted one drew (request ids differ, which the tests allow for).
- ``flaky``: a small replayable random search that raises on the N-th event
  while ``SEARCHKIT_TEST_FLAKY_AT`` is set to N (or returns an invalid operation
  when ``SEARCHKIT_TEST_FLAKY_MODE=invalid``); with the variable unset it is the
  fixed method.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import uuid
from typing import Any

import searchkit_core
from searchkit_core import (
    Close,
    Create,
    ExitedReason,
    Operation,
    SearcherState,
    SearchMethod,
    Shutdown,
    ValidateAfter,
)
from searchkit_core.hookspecs import MethodContext, SearchMethodPlugin


class UuidRandomSearch(SearchMethod):
    """Random search with early stops, decisions drawn from the global ``random`` (not replayable)."""

    replayable = False

    def __init__(self, context: MethodContext) -> None:
        searcher = context.searcher
        self.space = context.space
        self.max_trials = int(searcher["max_trials"])
        self.max_length = int(searcher["max_length"]["batches"])
        self.concurrency = int(searcher.get("max_concurrent_trials", 4))
        self.created = 0
        self.ended = 0
        random.seed(context.seed)

    def _create(self) -> list[Operation]:
        self.created += 1
        rid = uuid.uuid4()
        hparams = self.space.sample(random._inst)
        hparams["draw"] = random.random()
        return [Create(rid, hparams), ValidateAfter(rid, self.max_length // 4)]

    def initial_operations(self, searcher_state: SearcherState) -> list[Operation]:
        ops: list[Operation] = []
        for _ in range(min(self.concurrency, self.max_trials)):
            ops += self._create()
        return ops

    def on_trial_created(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return []

    def on_validation_completed(
        self, searcher_state: SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[Operation]:
        if train_length < self.max_length and random.random() < 0.6:
            return [ValidateAfter(request_id, min(self.max_length, train_length * 2))]
        return [Close(request_id)]

    def _ended(self) -> list[Operation]:
        self.ended += 1
        if self.created < self.max_trials:
            return self._create()
        if self.ended >= self.created:
            return [Shutdown()]
        return []

    def on_trial_closed(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return self._ended()

    def on_trial_exited_early(
        self, searcher_state: SearcherState, request_id: uuid.UUID, exited_reason: ExitedReason
    ) -> list[Operation]:
        return self._ended()

    def progress(self, searcher_state: SearcherState) -> float:
        return self.ended / self.max_trials

    def save_method_state(self, path: pathlib.Path) -> None:
        version, internal, gauss = random.getstate()
        state = {"created": self.created, "ended": self.ended, "random": [version, list(internal), gauss]}
        (path / "state.json").write_text(json.dumps(state))

    def load_method_state(self, path: pathlib.Path) -> None:
        state = json.loads((path / "state.json").read_text())
        self.created, self.ended = state["created"], state["ended"]
        version, internal, gauss = state["random"]
        random.setstate((version, tuple(internal), gauss))


class FlakySearch(SearchMethod):
    """A seeded, replayable random search that misbehaves on one event while told to."""

    replayable = True

    def __init__(self, context: MethodContext) -> None:
        searcher = context.searcher
        self.space = context.space
        self.max_trials = int(searcher["max_trials"])
        self.max_length = int(searcher["max_length"]["batches"])
        self.concurrency = int(searcher.get("max_concurrent_trials", 4))
        self.rng = random.Random(context.seed)
        self.created = 0
        self.ended = 0
        self.events = 0

    def _tick(self, ops: list[Operation]) -> list[Operation]:
        self.events += 1
        at = os.environ.get("SEARCHKIT_TEST_FLAKY_AT")
        if at is not None and self.events == int(at):
            if os.environ.get("SEARCHKIT_TEST_FLAKY_MODE") == "invalid":
                return [*ops, ValidateAfter(uuid.UUID(int=12345), 10)]
            raise RuntimeError(f"flaky failure on event {self.events}")
        return ops

    def _create(self) -> list[Operation]:
        self.created += 1
        rid = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        return [Create(rid, self.space.sample(self.rng)), ValidateAfter(rid, self.max_length // 4)]

    def initial_operations(self, searcher_state: SearcherState) -> list[Operation]:
        ops: list[Operation] = []
        for _ in range(min(self.concurrency, self.max_trials)):
            ops += self._create()
        return self._tick(ops)

    def on_trial_created(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return self._tick([])

    def on_validation_completed(
        self, searcher_state: SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[Operation]:
        if train_length < self.max_length and self.rng.random() < 0.5:
            return self._tick([ValidateAfter(request_id, self.max_length)])
        return self._tick([Close(request_id)])

    def _ended(self) -> list[Operation]:
        self.ended += 1
        if self.created < self.max_trials:
            return self._create()
        if self.ended >= self.created:
            return [Shutdown()]
        return []

    def on_trial_closed(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return self._tick(self._ended())

    def on_trial_exited_early(
        self, searcher_state: SearcherState, request_id: uuid.UUID, exited_reason: ExitedReason
    ) -> list[Operation]:
        return self._tick(self._ended())

    def progress(self, searcher_state: SearcherState) -> float:
        return self.ended / self.max_trials

    def save_method_state(self, path: pathlib.Path) -> None:
        version, internal, gauss = self.rng.getstate()
        state = {
            "created": self.created,
            "ended": self.ended,
            "events": self.events,
            "rng": [version, list(internal), gauss],
        }
        (path / "state.json").write_text(json.dumps(state))

    def load_method_state(self, path: pathlib.Path) -> None:
        state = json.loads((path / "state.json").read_text())
        self.created, self.ended, self.events = state["created"], state["ended"], state["events"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


@searchkit_core.hookimpl
def searchkit_search_methods() -> list[SearchMethodPlugin]:
    return [
        SearchMethodPlugin("uuid-random", "test: uuid4 + global random (not replayable)", UuidRandomSearch),
        SearchMethodPlugin("flaky", "test: raises on the N-th event while told to", FlakySearch),
    ]


def register_into_default_registry() -> None:
    """Make the test methods known to the registry the runners use."""
    import sys

    from searchkit_core._plugins import default_registry

    registry = default_registry()
    if "uuid-random" not in registry.names("search_method"):
        registry.register(sys.modules[__name__], name="engine-test-methods")
