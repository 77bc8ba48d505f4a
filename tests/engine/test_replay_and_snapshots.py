"""How the engine saves methods: replayable ones are snapshotted rarely and replayed; a false claim is caught."""

from __future__ import annotations

import math
import pathlib
from typing import Any

import engine_helpers as eh
import engine_methods
import pytest

from searchkit_core import _engine
from searchkit_core._session import drive, open_experiment
from searchkit_core._store import Store
from searchkit_core.errors import StoreError
from searchkit_runners.simulate import build_executor


def _uuid_random_committing_per_wait(tmp_path: pathlib.Path) -> tuple[pathlib.Path, Any]:
    """A small uuid4 + global random search, and a simulate executor that commits after every wait."""
    searcher = {
        "name": "uuid-random",
        "max_length": {"batches": 16},
        "max_trials": 30,
        "max_concurrent_trials": 3,
    }
    experiment = eh.create(tmp_path / "exp", eh.config(searcher))
    executor, _ = build_executor(open_experiment(experiment), {})
    executor.is_volatile = False  # commit after every wait, as real runners do
    return experiment, executor


def test_a_method_that_claims_to_be_replayable_but_is_not_is_refused_on_recovery(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uuid4 request ids and the global random: replaying gives other operations.
    monkeypatch.setattr(engine_methods.UuidRandomSearch, "replayable", True)
    experiment, executor = _uuid_random_committing_per_wait(tmp_path)
    waits = 0

    def crash_midway() -> bool:
        nonlocal waits
        waits += 1
        if waits == 20:
            raise KeyboardInterrupt  # like a crash: no final commit, no final snapshot
        return False

    with pytest.raises(KeyboardInterrupt):
        drive(experiment, executor, should_stop=crash_midway, poll=0.0)
    before = eh.fingerprint(experiment)
    with pytest.raises(
        StoreError,
        match=r"uuid-random is declared replayable but gave different operations when replaying journal row 1 "
        r".*Set `replayable = False` on the method",
    ):
        eh.run(experiment)
    assert eh.fingerprint(experiment) == before  # nothing written

    monkeypatch.setattr(engine_methods.UuidRandomSearch, "replayable", False)
    with pytest.raises(
        StoreError
    ):  # the journal has no snapshot to load it from: still refused, never guessed
        eh.run(experiment)
    assert eh.fingerprint(experiment) == before


def _snapshot_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    written: list[tuple[str, int, int]] = []
    original = Store.put_snapshot

    def put_snapshot(self: Store, kind: str, seq: int, body: bytes) -> None:
        written.append((kind, seq, len(body)))
        original(self, kind, seq, body)

    monkeypatch.setattr(Store, "put_snapshot", put_snapshot)
    return written


@pytest.mark.parametrize("trials", [1000, 8000])
def test_a_replayable_method_is_snapshotted_amortized_o1_per_event(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, trials: int
) -> None:
    written = _snapshot_sizes(monkeypatch)
    searcher: dict[str, Any] = {
        "name": "asha",
        "max_length": {"batches": 64},
        "max_trials": trials,
        "num_rungs": 4,
        "divisor": 4,
        "max_concurrent_trials": 16,
    }
    experiment = eh.create(tmp_path / "exp", eh.config(searcher))
    outcome = eh.run(experiment, {"workers": 16})
    assert outcome.status == "completed"
    engine = [(seq, size) for kind, seq, size in written if kind == "engine"]
    assert engine[-1][0] == outcome.events  # the final snapshot: a finished search resumes without replay
    # Snapshots grow geometrically: their number is logarithmic in the events, and all of
    # them together are a bounded multiple of the largest, so each event pays O(1).
    assert len(engine) <= 2 + math.log(outcome.events, 1 + _engine.SNAPSHOT_FRACTION / 4), engine
    assert sum(size for _, size in engine) <= 4 * max(size for _, size in engine), engine
    # The method is snapshotted with the engine, never more often.
    assert [seq for kind, seq, _ in written if kind == "method"] == [seq for seq, _ in engine]


def test_a_method_that_is_not_replayable_is_snapshotted_at_every_commit(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _snapshot_sizes(monkeypatch)
    experiment, executor = _uuid_random_committing_per_wait(tmp_path)
    commits = 0
    original = Store.transaction

    def counting(self: Store) -> Any:
        nonlocal commits
        commits += 1
        return original(self)

    monkeypatch.setattr(Store, "transaction", counting)
    assert drive(experiment, executor, poll=0.0).status == "completed"
    method = [seq for kind, seq, _ in written if kind == "method"]
    assert len(method) == len(set(method)) >= 0.9 * commits > 10  # after (almost) every commit
