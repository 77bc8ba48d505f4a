"""check_operations: every operation a method returns is checked before anything is recorded.

Each rejection names the method, the event and the operation; a list is accepted
or rejected whole, so the ledger is never half-updated.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from searchkit_core import (
    Close,
    Create,
    ExitedReason,
    Progress,
    Shutdown,
    ValidateAfter,
    check_operations,
)
from searchkit_core._events import SearchStarted
from searchkit_core._ledger import Ledger, TrialRecord
from searchkit_core.errors import InvalidOperationError

EVENT = SearchStarted()


def _ledger() -> tuple[Ledger, dict[str, uuid.UUID]]:
    """Trials: ``open`` (trained 4, target 8 queued), ``paused`` (trained 2), ``closed``, ``errored``."""
    ledger = Ledger()
    ids = {
        name: uuid.UUID(int=i + 1, version=4)
        for i, name in enumerate(("open", "paused", "closed", "errored"))
    }
    for trial_id, rid in enumerate(ids.values(), start=1):
        ledger.trials[rid] = TrialRecord(request_id=rid, trial_id=trial_id, hparams={"x": 1})
    ledger.trials[ids["open"]].trained = 4
    ledger.trials[ids["open"]].targets = [8]
    ledger.trials[ids["paused"]].trained = 2
    ledger.trials[ids["closed"]].closed = True
    ledger.trials[ids["errored"]].exited_reason = ExitedReason.ERRORED
    return ledger, ids


def _reject(ops: list[Any], *fragments: str, ledger: Ledger | None = None) -> str:
    ledger = ledger if ledger is not None else _ledger()[0]
    with pytest.raises(InvalidOperationError) as info:
        check_operations(ops, ledger, method_name="my-method", event=EVENT)
    message = str(info.value)
    assert message.startswith("my-method returned "), message
    assert "SearchStarted()" in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_good_list_passes_and_changes_nothing() -> None:
    ledger, ids = _ledger()
    new = uuid.uuid4()
    ops = [
        Create(new, {"x": 0.5, "nested": {"a": [1, "b", None, True]}}),
        ValidateAfter(new, 3),
        ValidateAfter(new, 6),
        ValidateAfter(ids["open"], 9),
        ValidateAfter(ids["paused"], 3),
        Close(ids["errored"]),  # closing a trial that already exited is harmless
        Progress(0.5),
        Shutdown(),
        Progress(1.0),
    ]
    check_operations(ops, ledger, method_name="my-method", event=EVENT)
    assert new not in ledger.trials and ledger.trials[ids["open"]].targets == [8]


def test_an_operation_for_an_unknown_trial() -> None:
    _reject(
        [ValidateAfter(uuid.uuid4(), 4)], "ValidateAfter", "unknown trial (no Create with this request_id)"
    )
    _reject([Close(uuid.uuid4())], "Close", "unknown trial")


def test_an_operation_for_a_closed_or_exited_trial() -> None:
    ledger, ids = _ledger()
    _reject([ValidateAfter(ids["closed"], 10)], "the trial is already closed", ledger=ledger)
    _reject([Close(ids["closed"])], "the trial is already closed", ledger=ledger)
    _reject([ValidateAfter(ids["errored"], 10)], "the trial already exited (ERRORED)", ledger=ledger)
    # closed earlier in the same list
    _reject(
        [Close(ids["paused"]), ValidateAfter(ids["paused"], 10)], "the trial is already closed", ledger=ledger
    )
    _reject([Close(ids["paused"]), Close(ids["paused"])], "the trial is already closed", ledger=ledger)


def test_a_reused_request_id() -> None:
    ledger, ids = _ledger()
    _reject([Create(ids["closed"], {})], "request_id is already used by another Create", ledger=ledger)
    new = uuid.uuid4()
    _reject([Create(new, {}), Create(new, {})], "request_id is already used by another Create", ledger=ledger)


def test_a_validate_after_not_longer_than_what_the_trial_has() -> None:
    ledger, ids = _ledger()
    _reject([ValidateAfter(ids["open"], 8)], "length 8 is not longer than the 8 units", ledger=ledger)
    _reject([ValidateAfter(ids["paused"], 2)], "length 2 is not longer than the 2 units", ledger=ledger)
    _reject([ValidateAfter(ids["paused"], 1)], "not longer than the 2 units", ledger=ledger)
    new = uuid.uuid4()
    _reject(
        [Create(new, {}), ValidateAfter(new, 0)], "length 0 is not longer than the 0 units", ledger=ledger
    )
    _reject(
        [ValidateAfter(ids["paused"], 5), ValidateAfter(ids["paused"], 5)],
        "length 5 is not longer than the 5 units",
        ledger=ledger,
    )
    _reject([ValidateAfter(ids["paused"], 5.0)], "length must be an int", ledger=ledger)  # type: ignore[arg-type]
    _reject([ValidateAfter(ids["paused"], True)], "length must be an int", ledger=ledger)


@pytest.mark.parametrize(
    "hparams",
    [
        {"x": (1, 2)},
        {"x": math.nan},
        {"x": math.inf},
        {"x": object()},
        {1: "int key"},
        {"x": {"nested": {1, 2}}},
        {"x": b"bytes"},
        [("x", 1)],
    ],
)
def test_hyperparameters_that_are_not_plain_json(hparams: Any) -> None:
    _reject([Create(uuid.uuid4(), hparams)], "hyperparameters must be a dict of plain JSON values")


@pytest.mark.parametrize("progress", [-0.1, 1.01, math.nan, math.inf, "0.5", None, True])
def test_progress_outside_zero_to_one(progress: Any) -> None:
    _reject([Progress(progress)], "progress must be a number in [0, 1]")


def test_work_after_shutdown() -> None:
    ledger, ids = _ledger()
    _reject([Shutdown(), Create(uuid.uuid4(), {})], "the method already shut down", ledger=ledger)
    ledger.shutdown = Shutdown()
    _reject([ValidateAfter(ids["paused"], 10)], "the method already shut down", ledger=ledger)
    check_operations([Progress(1.0)], ledger, method_name="my-method", event=EVENT)


def test_something_that_is_not_an_operation_or_a_list() -> None:
    _reject(["Create"], "not an operation")
    with pytest.raises(InvalidOperationError, match="returned NoneType in answer to SearchStarted"):
        check_operations(None, _ledger()[0], method_name="my-method", event=EVENT)  # type: ignore[arg-type]
