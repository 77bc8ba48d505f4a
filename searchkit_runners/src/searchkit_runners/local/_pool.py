"""The trial bookkeeping the local and the remote executor share: a pool of slots running trial segments.

A *slot* is whatever runs one trial at a time: a worker process
(:mod:`searchkit_runners.local._executor`) or a Ray actor
(:mod:`searchkit_runners.remote._executor`). Both executors keep the same
state machine per trial (:class:`Phase`), the same first-come-first-served
queue, the same idempotency of ``launch`` by ``(request_id, length)``, and the
same answers to the worker's messages (continue in place after a validation,
stop, preempt then kill after a grace period, report a crash when a slot is
lost). :class:`PooledExecutor` holds that logic once; a subclass adds only how
it talks to its slots: starting one, sending it a message, waiting for its
messages, noticing and handling its end.

It lives in the ``local`` package, next to the messages both executors send
(:mod:`searchkit_runners.local._messages`), which the remote runner already
reuses; a module above ``local`` that imported those messages would run
``local/__init__`` (and so the local executor, which imports this module)
while half loaded.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import pathlib
import time
import uuid
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    Report,
    Segment,
    TrialCrashed,
    TrialExited,
    ValidationReported,
)
from searchkit_core._trial import trial_log_path
from searchkit_core.errors import UserCodeError
from searchkit_runners.local import _messages as msg

DEFAULT_GRACE_PERIOD = 10.0  # seconds a trial gets to stop after should_preempt() turns True


class Phase(enum.Enum):
    """Where a trial stands in an executor."""

    IDLE = "idle"  # no worker, no work (paused, or waiting for the engine after a crash)
    QUEUED = "queued"  # has work, waits for a worker
    RUNNING = "running"  # on a worker, training toward ``current``
    AWAITING = "awaiting"  # on a worker, validated, waits for the engine's next length or a stop
    STOPPING = "stopping"  # on a worker, told to stop; the worker is freed when the run ends


@attrs.define(eq=False)
class Slot:
    """What the shared bookkeeping needs of a worker process or a trial actor.

    Subclasses add the transport (a process and its pipe, an actor handle) as
    keyword-only fields.
    """

    index: int
    trial: Trial[Any] | None = None
    #: Runs next: its StartRun was sent while ``trial`` was stopping (only where
    #: :meth:`PooledExecutor._free_slot` hands out stopping slots).
    reserved: Trial[Any] | None = None
    is_ready: bool = False
    is_dead: bool = False


S = TypeVar("S", bound=Slot)


@attrs.define
class Trial(Generic[S]):
    """One trial as an executor sees it: its phase, the lengths it still has to train to, its slot."""

    request_id: uuid.UUID
    trial_id: int
    hparams: dict[str, Any]
    restarts: int
    checkpoint: CheckpointRef | None
    phase: Phase = Phase.IDLE
    targets: collections.deque[int] = attrs.field(factory=collections.deque)
    current: int | None = None  # the length the worker trains toward
    worker: S | None = None
    run_id: int = 0
    segment_started: float = 0.0  # monotonic time the current segment began
    is_closing: bool = False
    kill_at: float | None = None  # monotonic deadline after a preempt


class PooledExecutor(Generic[S]):
    """The :class:`~searchkit_core._executor.Executor` logic over a pool of slots; see the module docstring.

    Subclasses set ``experiment_dir``, ``grace_period`` and ``trial_timeout``,
    then call ``super().__init__()``, and implement :meth:`_free_slot`,
    :meth:`_send`, :meth:`_poll`, :meth:`_kill` and :meth:`_end_slots`.
    Called from one thread; not thread-safe.
    """

    #: Names the executor in the error of a launch after shutdown.
    kind: ClassVar[str] = "pooled"
    #: How often :meth:`shutdown` looks whether the stopping trials have ended.
    shutdown_poll: ClassVar[float] = 0.2

    experiment_dir: pathlib.Path
    grace_period: float
    trial_timeout: float | None

    def __init__(self) -> None:
        self._trials: dict[uuid.UUID, Trial[S]] = {}
        self._queue: collections.deque[Trial[S]] = collections.deque()
        self._workers: list[S] = []
        self._reports: list[Report] = []
        self._next_run_id = 0
        self._fatal: UserCodeError | None = None
        self._is_shut_down = False
        #: Seconds from a slot's start to its readiness (the cost of the user's imports), for benchmarks.
        self.startup_seconds: list[float] = []
        (self.experiment_dir / "logs").mkdir(parents=True, exist_ok=True)

    # -- Executor -----------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def launch(self, segment: Segment) -> None:
        if self._is_shut_down:
            raise RuntimeError(f"the {self.kind} executor was shut down")
        trial = self._trials.get(segment.request_id)
        if trial is None:
            trial = Trial(
                request_id=segment.request_id,
                trial_id=segment.trial_id,
                hparams=dict(segment.hparams),
                restarts=segment.restarts,
                checkpoint=segment.checkpoint,
            )
            self._trials[segment.request_id] = trial
        elif segment.length == trial.current or segment.length in trial.targets:
            return  # the same launch again (the engine hands out unanswered work after a recovery)
        trial.is_closing = False
        trial.restarts = segment.restarts
        if trial.worker is None:
            # The engine's latest checkpoint is the one to start from; a trial on a worker knows its own.
            trial.checkpoint = segment.checkpoint
            trial.hparams = dict(segment.hparams)
        trial.targets.append(segment.length)
        if trial.phase is Phase.AWAITING:
            self._continue(trial)
        elif trial.phase is Phase.IDLE:
            trial.phase = Phase.QUEUED
            self._queue.append(trial)
            self._dispatch()
        # RUNNING: the target waits behind the current one; STOPPING/QUEUED: picked up later.

    def pause(self, request_id: uuid.UUID) -> None:
        trial = self._trials.get(request_id)
        if trial is None:
            return
        trial.targets.clear()
        if trial.phase is Phase.AWAITING:
            self._stop(trial)
            self._after_stop()
        elif trial.phase is Phase.QUEUED:
            self._unqueue(trial)
            trial.phase = Phase.IDLE
        # RUNNING: nothing queued behind, so it stops after its validation unless launched again.

    def close(self, request_id: uuid.UUID) -> None:
        trial = self._trials.get(request_id)
        if trial is None:
            return
        trial.targets.clear()
        trial.is_closing = True
        if trial.phase in (Phase.IDLE, Phase.QUEUED):
            self._unqueue(trial)
            del self._trials[request_id]
        elif trial.phase is Phase.AWAITING:
            self._stop(trial)
            self._after_stop()
        elif trial.phase is Phase.RUNNING:
            self._preempt(trial)

    def wait(self, timeout: float | None) -> list[Report]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._fatal is not None:
                raise self._fatal
            self._check_deadlines()
            if self._reports:
                reports, self._reports = self._reports, []
                return reports
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return []
            self._poll(self._poll_timeout(now, deadline))

    def shutdown(self, cancel: bool) -> None:
        """Ask running trials to stop at their next report, wait up to the grace period, then end every slot.

        Reports that arrive meanwhile (a last checkpoint, say) stay available to :meth:`wait`.
        """
        if self._is_shut_down:
            return
        self._is_shut_down = True
        self._queue.clear()
        for trial in list(self._trials.values()):
            trial.targets.clear()
            if trial.phase is Phase.AWAITING:
                self._stop(trial)
            elif trial.phase is Phase.RUNNING:
                self._preempt(trial)
            elif trial.phase is Phase.QUEUED:
                trial.phase = Phase.IDLE
        end = time.monotonic() + self.grace_period
        while any(w.trial is not None and not w.is_dead for w in self._workers) and time.monotonic() < end:
            self._poll(min(self.shutdown_poll, max(0.0, end - time.monotonic())))
        self._end_slots()

    # -- what a subclass provides ---------------------------------------------------

    def _free_slot(self) -> S | None:
        """The slot the next queued trial starts on (starting one if that is the way), or None to stop dispatching."""
        raise NotImplementedError

    def _send(self, worker: S, message: object) -> None:
        """Send a control message to the slot; a dead slot is noticed by :meth:`_poll`, not here."""
        raise NotImplementedError

    def _poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for messages or deaths of slots, handle them, then dispatch."""
        raise NotImplementedError

    def _kill(self, worker: S) -> None:
        """End the slot at once and drop it from the pool."""
        raise NotImplementedError

    def _end_slots(self) -> None:
        """End every slot at shutdown, after the grace period."""
        raise NotImplementedError

    def _poll_timeout(self, now: float, deadline: float | None) -> float | None:
        """How long one :meth:`_poll` of :meth:`wait` may block (``deadline``: the caller's, monotonic)."""
        return None if deadline is None else max(0.0, deadline - now)

    def _after_stop(self) -> None:
        """Called after pause/close told an awaiting trial to stop (its slot may take the next run at once)."""

    def _drain(self, worker: S) -> None:
        """Handle the messages the slot has sent already (before it is killed for a deadline)."""

    def _on_run_starting(self, worker: S, trial: Trial[S]) -> None:
        """Called as ``trial`` is handed to ``worker``, before its StartRun is sent."""

    # -- state changes ----------------------------------------------------------

    def _unqueue(self, trial: Trial[S]) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(trial)

    def _continue(self, trial: Trial[S]) -> None:
        assert trial.worker is not None
        trial.current = trial.targets.popleft()
        trial.phase = Phase.RUNNING
        trial.segment_started = time.monotonic()
        self._send(trial.worker, msg.ContinueRun(trial.run_id, trial.current))

    def _stop(self, trial: Trial[S]) -> None:
        assert trial.worker is not None
        trial.phase = Phase.STOPPING
        self._send(trial.worker, msg.StopRun(trial.run_id))

    def _preempt(self, trial: Trial[S]) -> None:
        assert trial.worker is not None
        trial.kill_at = time.monotonic() + self.grace_period
        self._send(trial.worker, msg.PreemptRun(trial.run_id))

    def _dispatch(self) -> None:
        """Start queued trials, first come first served, on the slots :meth:`_free_slot` hands out."""
        while self._queue:
            worker = self._free_slot()
            if worker is None:
                return
            trial = self._queue.popleft()
            self._next_run_id += 1
            trial.run_id = self._next_run_id
            trial.worker = worker
            if worker.trial is None:
                worker.trial = trial
            else:
                worker.reserved = trial
            trial.current = trial.targets.popleft()
            trial.phase = Phase.RUNNING
            trial.segment_started = time.monotonic()
            trial.kill_at = None
            self._on_run_starting(worker, trial)
            self._send(
                worker,
                msg.StartRun(
                    run_id=trial.run_id,
                    request_id=trial.request_id,
                    trial_id=trial.trial_id,
                    hparams=trial.hparams,
                    length=trial.current,
                    checkpoint=trial.checkpoint,
                    restarts=trial.restarts,
                ),
            )

    def _on_run_message(self, worker: S, message: Any) -> None:
        """Handle a RunEnded or a report of the run on ``worker``; stale ones (of an ended run) are dropped."""
        trial = worker.trial
        if isinstance(message, msg.RunEnded):
            if trial is not None and trial.run_id == message.run_id:
                self._on_run_ended(worker, trial)
            return
        if trial is None or message.request_id != trial.request_id:
            return  # a report of a run that already ended
        if isinstance(message, ValidationReported):
            if message.length != trial.current:
                return
            trial.current = None
            if trial.is_closing:
                self._stop(trial)
                return
            if trial.targets:
                self._continue(trial)
            else:
                trial.phase = Phase.AWAITING
            self._reports.append(message)
        elif isinstance(message, CheckpointReported):
            trial.checkpoint = message.checkpoint
            self._reports.append(message)
        elif isinstance(message, (MetricsReported, ProgressReported)):
            if not trial.is_closing:
                self._reports.append(message)
        elif isinstance(message, (TrialCrashed, TrialExited)):
            if not trial.is_closing and not self._is_shut_down:
                self._reports.append(message)
            trial.targets.clear()
            trial.current = None

    def _on_run_ended(self, worker: S, trial: Trial[S]) -> None:
        worker.trial, worker.reserved = worker.reserved, None
        trial.worker = None
        trial.current = None
        trial.kill_at = None
        if trial.is_closing:
            self._trials.pop(trial.request_id, None)
        elif trial.targets and not self._is_shut_down:
            # Launched again while it was stopping: start over on a free worker from its checkpoint.
            trial.phase = Phase.QUEUED
            self._queue.append(trial)
        else:
            trial.phase = Phase.IDLE

    def _lose(self, worker: S, trial: Trial[S], error: str) -> None:
        """The trial's run is gone with its slot: report a crash (unless nobody wants it any more)."""
        worker.trial = None
        trial.worker = None
        was_working = trial.phase is Phase.RUNNING
        trial.current = None
        trial.kill_at = None
        if trial.is_closing:
            self._trials.pop(trial.request_id, None)
            return
        note_in_log(self.experiment_dir, trial.trial_id, f"searchkit: {error}")
        if was_working and not self._is_shut_down:
            self._reports.append(TrialCrashed(trial.request_id, error, time.time()))
            trial.targets.clear()
        if trial.targets and not self._is_shut_down:
            trial.phase = Phase.QUEUED
            self._queue.append(trial)
        else:
            trial.phase = Phase.IDLE

    # -- deadlines ----------------------------------------------------------------

    def _check_deadlines(self) -> None:
        """Kill the slots of trials past their preempt grace period or their ``trial_timeout``."""
        now = time.monotonic()
        changed = False
        for worker in list(self._workers):
            trial = worker.trial
            if trial is None:
                continue
            if trial.kill_at is not None and now >= trial.kill_at:
                self._drain(worker)
                if worker.trial is trial:
                    self._kill(worker)
                    self._lose(
                        worker,
                        trial,
                        f"the trial did not stop within {self.grace_period:g} s of being asked to",
                    )
                    changed = True
            elif (
                self.trial_timeout is not None
                and trial.phase is Phase.RUNNING
                and now - trial.segment_started >= self.trial_timeout
            ):
                self._drain(worker)
                if worker.trial is trial and trial.phase is Phase.RUNNING:
                    self._kill(worker)
                    self._lose(
                        worker,
                        trial,
                        f"timed out after {self.trial_timeout:g} s (trial_timeout) training to length {trial.current}",
                    )
                    changed = True
        if changed:
            self._dispatch()

    def _next_deadline(self) -> float | None:
        """The earliest monotonic time :meth:`_check_deadlines` has something to do, if any."""
        deadlines: list[float] = []
        for worker in self._workers:
            trial = worker.trial
            if trial is None:
                continue
            if trial.kill_at is not None:
                deadlines.append(trial.kill_at)
            elif self.trial_timeout is not None and trial.phase is Phase.RUNNING:
                deadlines.append(trial.segment_started + self.trial_timeout)
        return min(deadlines) if deadlines else None


def note_in_log(experiment_dir: pathlib.Path, trial_id: int, line: str) -> None:
    """Append a line to the trial's log from the searchkit process (the worker that would write it is gone)."""
    path = trial_log_path(experiment_dir, trial_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR {line}\n")
    except OSError:
        pass
