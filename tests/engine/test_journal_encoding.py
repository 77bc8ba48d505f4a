"""The engine's fast journal encoding writes exactly what the wire module writes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from searchkit_core import _wire
from searchkit_core._engine import _event_text, _ops_text
from searchkit_core._events import (
    SearchStarted,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    TrialRestarted,
    ValidationCompleted,
)
from searchkit_core._operations import Close, Create, ExitedReason, Progress, Shutdown, ValidateAfter
from searchkit_core.errors import WireFormatError

RID = uuid.UUID("12345678-1234-4234-9234-123456789abc")

OPERATIONS: list[Any] = [
    Create(RID, {"lr": 0.001, "name": "ünïcode", "nested": {"a": [1, 2.5, None, True]}}),
    Create(RID, {}, checkpoint="c0ffee"),
    ValidateAfter(RID, 10),
    Close(RID),
    Shutdown(),
    Shutdown(cancel=True, failure=True),
    Progress(0.25),
    Progress(1),
]

EVENTS: list[Any] = [
    SearchStarted(),
    TrialCreated(RID),
    TrialClosed(RID),
    ValidationCompleted(RID, 0.125, 10),
    ValidationCompleted(RID, 3, 7),
    ValidationCompleted(RID, float("nan"), 7),
    ValidationCompleted(RID, float("inf"), 7),
    TrialExitedEarly(RID, ExitedReason.INVALID_HP),
    TrialRestarted(RID, "boom"),
]


@pytest.mark.parametrize("event", EVENTS, ids=repr)
def test_events_are_written_as_the_wire_writes_them(event: Any) -> None:
    assert _event_text(event) == _wire.dumps_fragment(event)


def test_operations_are_written_as_the_wire_writes_them() -> None:
    text = _ops_text(OPERATIONS)
    assert json.loads(text) == [_wire.unstructure(op) for op in OPERATIONS]
    assert text == _wire.dumps_fragment([_wire.unstructure(op) for op in OPERATIONS])
    for op in OPERATIONS:
        assert _ops_text([op]) == _wire.dumps_fragment([_wire.unstructure(op)])


def test_engine_snapshots_are_written_as_the_wire_writes_them() -> None:
    from searchkit_core._engine import LedgerSnapshot, _snapshot_text

    snap = LedgerSnapshot(
        request_ids=[str(RID), str(uuid.UUID(int=7))],
        trial_ids=[1, 2],
        hparams=[{"lr": 0.1, "deep": {"x": [1, "a"]}}, {}],
        trained=[10, 0],
        targets=[[30, 90], []],
        closed=[False, True],
        exited=[None, "ERRORED"],
        restarts=[0, 2],
        last_metric=[0.5, float("nan")],
        issued_at=[12.5, float("inf")],
        errors=[None, "boom"],
        pending=[_wire.unstructure(TrialCreated(RID))],
        is_shut_down=False,
        shutdown_cancel=False,
        shutdown_failure=False,
        progress=0.25,
    )
    text = _snapshot_text(snap)
    assert text == _wire.dumps_fragment(snap)
    again = _wire.structure(json.loads(text), LedgerSnapshot)
    assert again.trial_ids == snap.trial_ids and again.errors == snap.errors


def test_metrics_are_written_as_the_wire_writes_them() -> None:
    from searchkit_core._engine import _metrics_text

    for metrics in (
        {"loss": 0.5, "n": 3, "tag": "x", "ok": True, "none": None},
        {"loss": float("nan")},
        {"deep": {"a": [1]}},
    ):
        assert json.loads(_metrics_text(metrics)) == _wire.unstructure(metrics)


def test_engine_snapshots_read_back_as_the_wire_reads_them() -> None:
    from searchkit_core._engine import LedgerSnapshot, _snapshot_from_text

    snap = LedgerSnapshot(
        request_ids=[str(RID)],
        trial_ids=[1],
        hparams=[{"lr": 0.1}],
        trained=[10],
        targets=[[30]],
        closed=[False],
        exited=[None],
        restarts=[0],
        last_metric=[float("-inf")],
        issued_at=[float("inf")],
        errors=[None],
        pending=[],
        is_shut_down=True,
        shutdown_cancel=False,
        shutdown_failure=False,
        progress=1.0,
    )
    text = _wire.dumps_fragment(snap).encode()
    assert _snapshot_from_text(text) == _wire.structure(json.loads(text), LedgerSnapshot)
    with pytest.raises(WireFormatError, match="bogus"):
        _snapshot_from_text(text.replace(b'"progress"', b'"bogus"'))
