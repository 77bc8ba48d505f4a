"""Test a search method without a cluster, a runner or an experiment directory.

:class:`MethodDriver` plays the engine: it feeds a method events, checks every
list of operations it returns with the engine's own rules
(:func:`~searchkit_core.check_operations`), keeps the engine's :class:`Ledger`
(trials, their outstanding ``ValidateAfter`` targets, Determined's
``SearcherState``), delivers ``TrialCreated``/``TrialClosed`` the way the engine
does, and can save and load the method through a temporary directory at any
point. :func:`run_search` drives a whole search to ``Shutdown`` with a metric
function and a chosen completion order::

    from searchkit_core.testing import run_search

    result = run_search(lambda: MyMethod(...), lambda hparams, length: hparams["x"] / length,
                        order="random", seed=1, save_every=7)
    assert result.is_shut_down
    assert len(result.trials) == 16

Nothing here is a mock of the method: it is the method, driven as the engine
drives it. What it does not do is train anything: the metric function answers
each ``ValidateAfter`` at once.
"""

from __future__ import annotations

import collections
import pathlib
import random
import tempfile
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from searchkit_core._events import (
    Event,
    SearchStarted,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    ValidationCompleted,
)
from searchkit_core._ledger import Ledger, TrialRecord, check_operations
from searchkit_core._method import SearchMethod
from searchkit_core._operations import (
    Close,
    Create,
    ExitedReason,
    Operation,
    Progress,
    Shutdown,
    ValidateAfter,
)
from searchkit_core.errors import SearchMethodError

__all__ = ["MethodDriver", "Order", "SearchResult", "Step", "run_search"]

Order = Literal["fifo", "lifo", "random"]


@attrs.frozen
class Step:
    """One event fed to the method and the operations it answered with."""

    event: Event
    operations: tuple[Operation, ...]
    progress: float


class MethodDriver:
    """Feed events to a search method as the engine does, checking every answer.

    ``auto_acknowledge`` (default on) delivers ``TrialCreated`` after each
    ``Create`` and ``TrialClosed`` after each ``Close`` right away, in order, as
    the engine does; turn it off to deliver them yourself with
    :meth:`acknowledge` (to test other interleavings).

    Every answer is checked with :func:`check_operations` (raising
    :class:`~searchkit_core.errors.InvalidOperationError`), and ``progress()`` is
    called after each event and must be a number in [0, 1]
    (:class:`~searchkit_core.errors.SearchMethodError` otherwise).
    """

    def __init__(
        self,
        method: SearchMethod,
        *,
        method_name: str | None = None,
        auto_acknowledge: bool = True,
    ) -> None:
        self.method = method
        self.method_name = method_name or type(method).__name__
        self.auto_acknowledge = auto_acknowledge
        self.ledger = Ledger()
        self.steps: list[Step] = []
        #: TrialCreated / TrialClosed events the engine would deliver next, in order.
        self.pending: collections.deque[Event] = collections.deque()
        #: Trials with unanswered work, in the order that work was issued.
        self.outstanding: dict[uuid.UUID, None] = {}
        self.shutdown: Shutdown | None = None
        self.saves = 0

    # -- what happened ----------------------------------------------------------------

    @property
    def is_shut_down(self) -> bool:
        return self.shutdown is not None

    @property
    def operations(self) -> list[Operation]:
        """Every operation the method returned, in order."""
        return [op for step in self.steps for op in step.operations]

    @property
    def trials(self) -> dict[uuid.UUID, TrialRecord]:
        """The engine's record of every trial created so far."""
        return self.ledger.trials

    def next_target(self, request_id: uuid.UUID) -> int | None:
        """The length a trial is training towards now, or None when it has no work."""
        record = self.ledger.trials[request_id]
        return record.targets[0] if record.targets and not record.is_ended else None

    def paused_trials(self) -> list[uuid.UUID]:
        """Trials that are neither ended nor busy: the method may still give them work."""
        return [rid for rid, r in self.ledger.trials.items() if not r.is_ended and not r.targets]

    # -- feeding events ---------------------------------------------------------------

    def start(self) -> list[Operation]:
        """Deliver ``SearchStarted`` (the method's ``initial_operations``)."""
        return self.send(SearchStarted())

    def complete(self, request_id: uuid.UUID, metric: Any) -> list[Operation]:
        """The trial reached its current target and reported ``metric``."""
        target = self.next_target(request_id)
        if target is None:
            raise ValueError(f"trial {request_id} has no outstanding work to complete")
        return self.send(ValidationCompleted(request_id, metric, target))

    def exit_early(self, request_id: uuid.UUID, reason: ExitedReason) -> list[Operation]:
        """The trial ended on its own (ERRORED, USER_CANCELED or INVALID_HP)."""
        return self.send(TrialExitedEarly(request_id, reason))

    def acknowledge(self) -> list[Operation]:
        """Deliver every pending ``TrialCreated`` / ``TrialClosed``; return what the method answered."""
        ops: list[Operation] = []
        while self.pending:
            ops.extend(self._send_one(self.pending.popleft()))
        return ops

    def send(self, event: Event) -> list[Operation]:
        """Feed any event (also a stale or duplicate one) and return the operations it produced.

        With ``auto_acknowledge`` the operations answering the acknowledgements that
        follow are in :attr:`steps`, not in the returned list.
        """
        ops = self._send_one(event)
        if self.auto_acknowledge:
            self.acknowledge()
        return ops

    def _send_one(self, event: Event) -> list[Operation]:
        method, state = self.method, self.ledger.searcher_state
        try:
            if isinstance(event, SearchStarted):
                ops = method.initial_operations(state)
            elif isinstance(event, TrialCreated):
                ops = method.on_trial_created(state, event.request_id)
            elif isinstance(event, ValidationCompleted):
                ops = method.on_validation_completed(
                    state, event.request_id, event.metric, event.train_length
                )
            elif isinstance(event, TrialClosed):
                ops = method.on_trial_closed(state, event.request_id)
            elif isinstance(event, TrialExitedEarly):
                ops = method.on_trial_exited_early(state, event.request_id, event.exited_reason)
            else:
                raise TypeError(f"not an event: {event!r}")
        except Exception as exc:
            raise SearchMethodError(
                f"{self.method_name} raised {type(exc).__name__}: {exc} while handling {event!r}"
            ) from exc
        check_operations(ops, self.ledger, method_name=self.method_name, event=event)
        self._apply_event(event)
        self._apply_operations(ops)
        try:
            progress = method.progress(state)
        except Exception as exc:
            raise SearchMethodError(
                f"{self.method_name}.progress() raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
            raise SearchMethodError(
                f"{self.method_name}.progress() returned {progress!r}, not a number in [0, 1]"
            )
        self.steps.append(Step(event, tuple(ops), float(progress)))
        return list(ops)

    def _apply_event(self, event: Event) -> None:
        ledger, state = self.ledger, self.ledger.searcher_state
        record = ledger.trials.get(getattr(event, "request_id", None))  # type: ignore[arg-type]
        if record is None or record.is_ended:
            return  # stale: the engine would not have sent it; the method must have ignored it
        if isinstance(event, ValidationCompleted) and record.targets:
            del record.targets[0]
            record.trained = event.train_length
            record.last_metric = event.metric
            state._trial_progress[record.request_id] = event.train_length
            if not record.targets:
                self.outstanding.pop(record.request_id, None)
        elif isinstance(event, TrialExitedEarly):
            record.exited_reason = event.exited_reason
            record.targets.clear()
            state._failures.add(record.request_id)
            self.outstanding.pop(record.request_id, None)

    def _apply_operations(self, ops: Sequence[Operation]) -> None:
        ledger, state = self.ledger, self.ledger.searcher_state
        for op in ops:
            if isinstance(op, Create):
                ledger.trials[op.request_id] = TrialRecord(
                    request_id=op.request_id,
                    trial_id=len(ledger.trials) + 1,
                    hparams=op.hparams,
                    checkpoint=op.checkpoint,
                )
                state._trials_created.add(op.request_id)
                self.pending.append(TrialCreated(op.request_id))
            elif isinstance(op, ValidateAfter):
                record = ledger.trials[op.request_id]
                if not record.targets:
                    self.outstanding[op.request_id] = None
                record.targets.append(op.length)
            elif isinstance(op, Close):
                record = ledger.trials[op.request_id]
                if record.is_ended:
                    continue
                record.closed = True
                record.targets.clear()
                state._trials_closed.add(op.request_id)
                self.outstanding.pop(op.request_id, None)
                self.pending.append(TrialClosed(op.request_id))
            elif isinstance(op, Shutdown):
                ledger.shutdown = op
                self.shutdown = op
                state.experiment_completed = not op.failure
                state.experiment_failed = op.failure
            elif isinstance(op, Progress):
                ledger.progress = float(op.progress)

    # -- persistence ------------------------------------------------------------------

    def save_and_load(self, make_method: Callable[[], SearchMethod]) -> SearchMethod:
        """Save the method into a fresh temporary directory, load it into ``make_method()``, drive that one.

        This is what a crash and a resume do to a method; a replayable method must
        answer the following events exactly as the saved one would have.
        """
        with tempfile.TemporaryDirectory(prefix="searchkit-method-") as tmp:
            path = pathlib.Path(tmp)
            self.method.save_method_state(path)
            fresh = make_method()
            fresh.load_method_state(path)
        self.method = fresh
        self.saves += 1
        return fresh


@attrs.frozen
class SearchResult:
    """How a search driven by :func:`run_search` went."""

    driver: MethodDriver
    events: int

    @property
    def is_shut_down(self) -> bool:
        return self.driver.is_shut_down

    @property
    def operations(self) -> list[Operation]:
        return self.driver.operations

    @property
    def trials(self) -> dict[uuid.UUID, TrialRecord]:
        return self.driver.trials

    @property
    def progress(self) -> list[float]:
        """``progress()`` after each event."""
        return [step.progress for step in self.driver.steps]

    def best(self, smaller_is_better: bool = True) -> TrialRecord | None:
        """The trial with the best last metric (finite metrics only), or None."""
        import math

        scored = [
            r
            for r in self.trials.values()
            if isinstance(r.last_metric, (int, float)) and math.isfinite(r.last_metric)
        ]
        if not scored:
            return None
        sign = 1.0 if smaller_is_better else -1.0
        return min(scored, key=lambda r: sign * float(r.last_metric))  # type: ignore[arg-type]


def run_search(
    make_method: Callable[[], SearchMethod],
    metric_fn: Callable[[dict[str, Any], int], Any],
    *,
    order: Order = "fifo",
    seed: int = 0,
    exit_fn: Callable[[dict[str, Any], int], ExitedReason | None] | None = None,
    save_every: int | None = None,
    max_events: int = 1_000_000,
    method_name: str | None = None,
) -> SearchResult:
    """Drive a search from ``SearchStarted`` to ``Shutdown``, answering work at once.

    ``make_method`` builds the method (called again for each save/load round trip
    when ``save_every`` is set: every that many events the method is saved into a
    temporary directory and a fresh one loads it). Each step one trial with
    outstanding work finishes its current target: the one whose work was issued
    first (``"fifo"``), last (``"lifo"``), or one chosen by ``random.Random(seed)``.
    ``metric_fn(hparams, length)`` gives its metric; ``exit_fn(hparams, length)``,
    when given, may instead make it exit early with a reason.

    Raises :class:`SearchMethodError` when the method stalls (no work outstanding,
    nothing pending, and no ``Shutdown``) or does not finish within ``max_events``.
    """
    if order not in ("fifo", "lifo", "random"):
        raise ValueError(f"order must be 'fifo', 'lifo' or 'random', got {order!r}")
    rng = random.Random(seed)
    driver = MethodDriver(make_method(), method_name=method_name)
    driver.start()
    events = 1
    while not driver.is_shut_down:
        if events >= max_events:
            raise SearchMethodError(f"{driver.method_name} did not shut down within {max_events} events")
        if not driver.outstanding:
            raise SearchMethodError(
                f"{driver.method_name} stalled: no trial has work, nothing is pending, and it did not shut down"
            )
        if order == "fifo":
            rid = next(iter(driver.outstanding))
        elif order == "lifo":
            rid = next(reversed(driver.outstanding))
        else:
            rid = rng.choice(list(driver.outstanding))
        record = driver.trials[rid]
        length = record.targets[0]
        reason = exit_fn(record.hparams, length) if exit_fn is not None else None
        if reason is not None:
            driver.exit_early(rid, reason)
        else:
            driver.complete(rid, metric_fn(record.hparams, length))
        events += 1
        if save_every and events % save_every == 0 and not driver.is_shut_down:
            driver.save_and_load(make_method)
    return SearchResult(driver=driver, events=events)
