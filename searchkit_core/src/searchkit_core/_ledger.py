"""The engine's record of every trial, and the checks on the operations a method returns."""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from searchkit_core._operations import (
    Close,
    Create,
    ExitedReason,
    Operation,
    Progress,
    Shutdown,
    ValidateAfter,
)
from searchkit_core._state import SearcherState
from searchkit_core.errors import InvalidOperationError


class TrialState(enum.Enum):
    """Where a trial stands, as ``searchkit status`` shows it."""

    RUNNING = "RUNNING"  # has unanswered work
    PAUSED = "PAUSED"  # no work for now; may be promoted later
    CLOSED = "CLOSED"  # closed by the method
    ERRORED = "ERRORED"
    USER_CANCELED = "USER_CANCELED"
    INVALID_HP = "INVALID_HP"


@attrs.define(slots=True)
class TrialRecord:
    """What the engine knows of one trial. Mutable: the engine updates it in place."""

    request_id: uuid.UUID
    trial_id: int  # 1-based creation order, stable across resumes
    hparams: dict[str, Any]
    checkpoint: Any = None  # what ``Create`` asked to start from
    trained: int = 0  # length of the last completed validation
    # Unanswered targets, oldest first. A list, not a deque: it holds one or two lengths, and
    # an empty deque costs 624 bytes per trial (600 MB in a million-trial search).
    targets: list[int] = attrs.field(factory=list)
    closed: bool = False  # the method issued Close
    exited_reason: ExitedReason | None = None
    restarts: int = 0
    last_metric: float | None = None

    @property
    def is_ended(self) -> bool:
        return self.closed or self.exited_reason is not None

    @property
    def last_target(self) -> int:
        return self.targets[-1] if self.targets else self.trained

    @property
    def state(self) -> TrialState:
        if self.exited_reason is not None:
            return TrialState(self.exited_reason.value)
        if self.closed:
            return TrialState.CLOSED
        return TrialState.RUNNING if self.targets else TrialState.PAUSED


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` is made only of JSON values: dicts with str keys, lists, str, finite numbers, bools, None."""
    if value is None or isinstance(value, (bool, str, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_plain_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain_json(v) for k, v in value.items())
    return False


class Ledger:
    """Every trial of one experiment, plus Determined's :class:`SearcherState`."""

    def __init__(self) -> None:
        self.trials: dict[uuid.UUID, TrialRecord] = {}
        self.searcher_state = SearcherState()
        self.shutdown: Shutdown | None = None
        self.progress = 0.0

    def check(self, operations: Sequence[Operation], *, method_name: str, event: object) -> None:
        """Raise :class:`InvalidOperationError` unless every operation can be carried out in order.

        Checks run on a small overlay of what the list itself changes, so that a
        list is accepted or rejected whole and the ledger is never half-updated.
        """
        if not isinstance(operations, (list, tuple)):
            raise InvalidOperationError(
                f"{method_name} returned {type(operations).__name__} in answer to {event!r}; expected a list of operations"
            )
        created: dict[uuid.UUID, int] = {}  # new trial -> its last target within this list
        targets: dict[uuid.UUID, int] = {}
        closing: set[uuid.UUID] = set()
        shut = self.shutdown is not None
        for op in operations:

            def fail(reason: str, op: object = op) -> InvalidOperationError:
                return InvalidOperationError(
                    f"{method_name} returned {op!r} in answer to {event!r}: {reason}"
                )

            if shut and not isinstance(op, Progress):
                raise fail("the method already shut down")
            if isinstance(op, Create):
                if op.request_id in self.trials or op.request_id in created:
                    raise fail("request_id is already used by another Create")
                if not isinstance(op.hparams, dict) or not is_plain_json(op.hparams):
                    raise fail(
                        "hyperparameters must be a dict of plain JSON values (str keys; no NaN, objects or tuples)"
                    )
                created[op.request_id] = 0
            elif isinstance(op, ValidateAfter):
                if isinstance(op.length, bool) or not isinstance(op.length, int):
                    raise fail("length must be an int")
                have = self._last_target(op.request_id, created, targets, closing, fail)
                if op.length <= have:
                    raise fail(
                        f"length {op.length} is not longer than the {have} units the trial already has"
                    )
                targets[op.request_id] = op.length
            elif isinstance(op, Close):
                record = self.trials.get(op.request_id)
                if record is not None and record.exited_reason is not None and not record.closed:
                    continue  # closing a trial that already ended is harmless
                self._last_target(op.request_id, created, targets, closing, fail)
                closing.add(op.request_id)
            elif isinstance(op, Shutdown):
                shut = True
            elif isinstance(op, Progress):
                p = op.progress
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                    raise fail("progress must be a number in [0, 1]")
            else:
                raise fail("not an operation (expected Create, ValidateAfter, Close, Shutdown or Progress)")

    def _last_target(
        self,
        request_id: uuid.UUID,
        created: dict[uuid.UUID, int],
        targets: dict[uuid.UUID, int],
        closing: set[uuid.UUID],
        fail: Any,
    ) -> int:
        if request_id in closing:
            raise fail("the trial is already closed")
        if request_id in targets:
            return targets[request_id]
        if request_id in created:
            return 0
        record = self.trials.get(request_id)
        if record is None:
            raise fail("unknown trial (no Create with this request_id)")
        if record.closed:
            raise fail("the trial is already closed")
        if record.exited_reason is not None:
            raise fail(f"the trial already exited ({record.exited_reason.value})")
        return record.last_target


def check_operations(
    operations: Sequence[Operation], ledger: Ledger, *, method_name: str, event: object
) -> None:
    """Reject, with a message naming the method, the event and the operation, what cannot be carried out."""
    ledger.check(operations, method_name=method_name, event=event)
