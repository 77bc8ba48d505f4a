"""Messages between the local executor and its worker processes.

They travel as wire-format JSON fragments (``searchkit_core._wire``) over a
multiprocessing pipe with ``send_bytes``/``recv_bytes``: nothing crossing the
pipe is pickled. Reports (``searchkit_core._executor.Report``) travel as they
are; the messages below carry the rest.

A *run* is one stay of a trial on a worker: it starts with :class:`StartRun`,
may continue through several operations (:class:`ContinueRun`), and ends with
:class:`RunEnded` when the training function returns or raises. Every control
message names its run, so a late message for an earlier run is ignored.
"""

from __future__ import annotations

import uuid
from typing import Any, Union

import attrs

from searchkit_core import _wire
from searchkit_core._executor import CheckpointRef, Report
from searchkit_core._operations import to_request_id


@attrs.frozen
class StartRun:
    """Run the trial's training function; its first operation trains to ``length``."""

    run_id: int
    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    trial_id: int
    hparams: dict[str, Any]
    length: int
    checkpoint: CheckpointRef | None
    restarts: int


@attrs.frozen
class ContinueRun:
    """The trial's next operation, answered to ``next_length()`` without leaving the process."""

    run_id: int
    length: int


@attrs.frozen
class StopRun:
    """No more operations for this run: ``next_length()`` returns None."""

    run_id: int


@attrs.frozen
class PreemptRun:
    """Ask the trial to stop at its next report: ``should_preempt()`` becomes True."""

    run_id: int


@attrs.frozen
class ExitWorker:
    """Leave the worker process."""


@attrs.frozen
class WorkerReady:
    """The worker imported the entrypoint and waits for runs."""

    pid: int


@attrs.frozen
class WorkerFailed:
    """The worker could not load the entrypoint (a user error; every trial would fail the same way)."""

    error: str


@attrs.frozen
class RunEnded:
    """The training function returned or raised; the worker is free again."""

    run_id: int
    status: str  # "returned", "preempted", "crashed", "exited"


ToWorker = Union[StartRun, ContinueRun, StopRun, PreemptRun, ExitWorker]  # noqa: UP007 - a runtime value for cattrs
FromWorker = Union[WorkerReady, WorkerFailed, RunEnded, Report]  # noqa: UP007

for _cls in (StartRun, ContinueRun, StopRun, PreemptRun, ExitWorker, WorkerReady, WorkerFailed, RunEnded):
    _wire.register_type(_cls)


def encode(message: object) -> bytes:
    return _wire.dumps_fragment(message).encode()


def decode_to_worker(data: bytes) -> Any:
    return _wire.loads_fragment(data, ToWorker)


def decode_from_worker(data: bytes) -> Any:
    return _wire.loads_fragment(data, FromWorker)
