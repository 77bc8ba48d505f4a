"""The boundary between the engine and a runner.

The engine decides what work exists; an :class:`Executor` carries it out and
reports what happened. Executors never call the search method. Everything that
crosses this boundary is a frozen value, so an executor can live in another
process or on a Ray cluster.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol, runtime_checkable

import attrs

from searchkit_core._operations import ExitedReason, to_request_id


@attrs.frozen
class CheckpointRef:
    """A checkpoint a trial stored: a directory ``checkpoints/<uuid>`` in the experiment directory."""

    uuid: str
    steps_completed: int
    metadata: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Segment:
    """One piece of work: train the trial until it has ``length`` units in total, validate, report.

    Executors must treat launching the same ``(request_id, length)`` twice as one
    launch: after a crash the engine hands out unanswered segments again.
    """

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    trial_id: int
    hparams: dict[str, Any]
    length: int
    checkpoint: CheckpointRef | None  # the latest checkpoint to start from, if any
    restarts: int  # how many times this trial has been restarted after a crash
    issued_at: float  # the engine clock when the operation was committed


# Reports: what a runner saw happen, in the past tense.


@attrs.frozen
class ValidationReported:
    """The trial reached ``length`` and reported the searcher metric."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    length: int
    metric: float
    time: float


@attrs.frozen
class MetricsReported:
    """Training or validation metrics, recorded for ``status`` and plots (not fed to the method)."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    group: str  # "training" or "validation"
    steps: int
    metrics: dict[str, Any]
    time: float


@attrs.frozen
class CheckpointReported:
    """The trial stored a checkpoint; later segments of the trial start from the latest one."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    checkpoint: CheckpointRef
    time: float


@attrs.frozen
class ProgressReported:
    """The trial has trained ``units`` in total."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    units: float
    time: float


@attrs.frozen
class TrialCrashed:
    """The trial's process raised, exited or was lost; the engine restarts it or reports ERRORED."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    error: str
    time: float


@attrs.frozen
class TrialExited:
    """The trial ended for a reason that a restart cannot fix (INVALID_HP, USER_CANCELED)."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    reason: ExitedReason
    error: str
    time: float


Report = (
    ValidationReported | MetricsReported | CheckpointReported | ProgressReported | TrialCrashed | TrialExited
)


@runtime_checkable
class Executor(Protocol):
    """Carries out segments on some compute and reports back. Implemented by runners."""

    def now(self) -> float:
        """The runner's clock in seconds: wall time, or virtual time in a simulator."""
        ...

    def launch(self, segment: Segment) -> None:
        """Start (or continue) a trial's work. Idempotent by ``(request_id, length)``."""
        ...

    def pause(self, request_id: uuid.UUID) -> None:
        """The trial finished its work and has none queued: free its slot, keep its checkpoint."""
        ...

    def close(self, request_id: uuid.UUID) -> None:
        """The method closed the trial: stop any work of it and forget it."""
        ...

    def wait(self, timeout: float | None) -> list[Report]:
        """Block until something happened (or ``timeout`` seconds passed) and return the reports."""
        ...

    def shutdown(self, cancel: bool) -> None:
        """The search is over (or stopping): stop every trial and release resources."""
        ...


@runtime_checkable
class TrialChannel(Protocol):
    """How a trial's context (the trial API) talks to the runner that started it."""

    def next_length(self) -> int | None:
        """Block until the trial's next absolute target length; ``None``: stop here (paused, closed or preempted)."""
        ...

    def report_progress(self, units: float) -> None: ...

    def report_completed(self, length: int, metric: float) -> None: ...

    def report_metrics(self, group: str, steps: int, metrics: dict[str, Any]) -> None: ...

    def report_checkpoint(self, checkpoint: CheckpointRef) -> None: ...

    def should_preempt(self) -> bool: ...
