"""The local executor: trial segments on a pool of warm worker processes on this machine.

The engine calls :meth:`LocalExecutor.launch` / ``pause`` / ``close`` /
``wait`` / ``shutdown`` from one thread; this class is not thread-safe and
needs no threads of its own: :meth:`wait` multiplexes every worker's pipe and
process handle (a pidfd on Linux) with :func:`multiprocessing.connection.wait`.

Scheduling, in short:

- At most ``workers`` processes, started on demand. Each imports the user's
  entrypoint once and then runs any number of trials.
- A trial waiting for a worker is queued first come, first served.
- After a trial reports a validation its worker waits (``next_length()``
  blocks) for the engine's answer: a launch of the next length continues the
  trial in place; a pause stops it and frees the worker. A paused trial that is
  launched again starts on any free worker from its latest checkpoint.
- A worker that dies takes its trial down with it (``TrialCrashed``); the next
  trial gets a fresh worker. A trial over its time limit is killed the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing.connection
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import attrs

from searchkit_core.errors import UserCodeError
from searchkit_runners.local import _messages as msg
from searchkit_runners.local._pool import DEFAULT_GRACE_PERIOD, Phase, PooledExecutor, Slot

__all__ = ["DEFAULT_GRACE_PERIOD", "LocalExecutor", "Phase"]

log = logging.getLogger("searchkit.local")

POLL_WITHOUT_PIDFD = 1.0  # seconds between exit checks where the OS has no pidfd


@attrs.define(eq=False, kw_only=True)
class _Worker(Slot):
    """A worker process: the slot of the local executor."""

    process: subprocess.Popen[bytes]
    conn: Connection
    devices: str | None
    pidfd: int | None = None  # readable once the process exited (Linux); else the pipe's EOF tells
    started: float = 0.0


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "was lost"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"


class LocalExecutor(PooledExecutor[_Worker]):
    """Runs segments in at most ``workers`` warm worker processes; see the module docstring.

    ``device_groups``: one ``CUDA_VISIBLE_DEVICES`` value per worker slot (for
    trials that use GPUs); when given, the pool has ``len(device_groups)``
    workers and each keeps its devices for life. ``trial_timeout``: seconds one
    segment (one operation, from its start to its validation) may take before
    its worker is killed and the trial reported crashed.
    """

    kind = "local"
    shutdown_poll = 0.2

    def __init__(
        self,
        experiment_dir: pathlib.Path | str,
        *,
        entrypoint: str,
        model_dir: pathlib.Path | str | None,
        metric: str,
        data: Mapping[str, Any] | None = None,
        workers: int | None = None,
        device_groups: Sequence[str] | None = None,
        trial_timeout: float | None = None,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.experiment_dir = pathlib.Path(experiment_dir).absolute()
        self.entrypoint = entrypoint
        self.model_dir = pathlib.Path(model_dir).absolute() if model_dir is not None else None
        self.metric = metric
        self.data = dict(data or {})
        if device_groups is not None:
            if not device_groups:
                raise ValueError("device_groups must name at least one group of GPUs")
            self._slots: list[str | None] = list(device_groups)
        else:
            count = workers if workers is not None else (os.cpu_count() or 1)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"workers must be a positive int, got {workers!r}")
            self._slots = [None] * count
        if trial_timeout is not None and not trial_timeout > 0:
            raise ValueError(f"trial_timeout must be a positive number of seconds, got {trial_timeout!r}")
        self.trial_timeout = trial_timeout
        self.grace_period = grace_period
        self.env = dict(env or {})
        super().__init__()

    @property
    def workers(self) -> int:
        """The most trials that run at once."""
        return len(self._slots)

    # -- the pool's transport -----------------------------------------------------

    def _poll_timeout(self, now: float, deadline: float | None) -> float | None:
        # Wake for the next kill or timeout deadline; with neither, block until a worker speaks.
        wait_for = None if deadline is None else max(0.0, deadline - now)
        internal = self._next_deadline()
        if internal is not None:
            wait_for = (
                max(0.0, internal - now) if wait_for is None else min(wait_for, max(0.0, internal - now))
            )
        return wait_for

    def _after_stop(self) -> None:
        self._dispatch()  # a queued trial can follow on this worker right away

    def _end_slots(self) -> None:
        for worker in self._workers:
            if not worker.is_dead:
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(msg.encode(msg.ExitWorker()))
        stop_by = time.monotonic() + 2.0
        for worker in self._workers:
            _join(worker.process, max(0.0, stop_by - time.monotonic()))
        for worker in list(self._workers):
            self._kill(worker)
        self._workers.clear()

    def _send(self, worker: _Worker, message: object) -> None:
        if worker.is_dead:
            return
        with contextlib.suppress(OSError, ValueError):  # a dead worker: wait() sees its end
            worker.conn.send_bytes(msg.encode(message))

    def _free_slot(self) -> _Worker | None:
        worker = next((w for w in self._workers if w.trial is None and not w.is_dead), None)
        if worker is None:
            # A worker whose trial is stopping takes the next run right after it (the worker runs
            # commands in order), which saves a round trip over waiting for the stop to finish.
            worker = next(
                (
                    w
                    for w in self._workers
                    if not w.is_dead
                    and w.reserved is None
                    and w.trial is not None
                    and w.trial.phase is Phase.STOPPING
                ),
                None,
            )
        if worker is None:
            if len(self._workers) >= len(self._slots):
                return None
            worker = self._spawn()
        return worker

    def _spawn(self) -> _Worker:
        used = {w.index for w in self._workers}
        index = next(i for i in range(len(self._slots)) if i not in used)
        devices = self._slots[index]
        env = dict(os.environ)
        env.update(self.env)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        config = {
            "index": index,
            "parent_pid": os.getpid(),
            "experiment_dir": str(self.experiment_dir),
            "model_dir": str(self.model_dir) if self.model_dir is not None else None,
            "entrypoint": self.entrypoint,
            "metric": self.metric,
            "data": self.data,
            "worker_log": str(self._worker_log(index)),
        }
        ours, theirs = socket.socketpair()
        worker_log = open(str(config["worker_log"]), "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            # A fresh interpreter (no state of this process leaks into user code, and unlike
            # multiprocessing's spawn it never re-imports the caller's __main__), in its own
            # session so a Ctrl-C in the terminal reaches only searchkit, which stops trials in order.
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "searchkit_runners.local._worker",
                    str(theirs.fileno()),
                    json.dumps(config),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=worker_log,
                stderr=worker_log,
                env=env,
                start_new_session=True,
            )
        finally:
            worker_log.close()
            theirs.close()
        conn = Connection(ours.detach())
        pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(process.pid)
            except OSError:
                pidfd = None
        worker = _Worker(
            index=index, process=process, conn=conn, devices=devices, pidfd=pidfd, started=time.monotonic()
        )
        self._workers.append(worker)
        log.debug("started local worker %d (pid %s, devices %s)", index, process.pid, devices)
        return worker

    def warm_up(self) -> None:
        """Start one worker and wait until it has imported the entrypoint.

        ``searchkit run`` calls this before the engine makes its first decision, so that
        training code that cannot be imported is a user error with nothing decided (and
        no experiment left behind). The worker then serves the search's first trial.
        """
        worker = self._free_slot()
        if worker is None or worker.is_ready:
            return
        while not worker.is_ready:
            if self._fatal is not None:
                raise self._fatal
            if worker not in self._workers:  # it died: _on_death forgot it
                raise UserCodeError(
                    f"the first worker {_describe_exit(worker.process.returncode)} while importing "
                    f"entrypoint {self.entrypoint} (its output is in {self._worker_log(worker.index)})"
                )
            self._poll(0.2)

    def _worker_log(self, index: int) -> pathlib.Path:
        return self.experiment_dir / "logs" / f"local-worker-{index}.log"

    # -- waiting ----------------------------------------------------------------

    def _poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for worker messages or deaths and handle them."""
        handles: list[Any] = []
        for worker in self._workers:
            handles.append(worker.conn)
            if worker.pidfd is not None:
                handles.append(worker.pidfd)
        if not handles:
            if timeout is None:
                raise RuntimeError("wait() with nothing running and no timeout would never return")
            time.sleep(timeout)
            return
        if any(w.pidfd is None for w in self._workers):
            # Without a pidfd a dead worker shows only as the pipe's EOF; poll its exit status too.
            timeout = POLL_WITHOUT_PIDFD if timeout is None else min(timeout, POLL_WITHOUT_PIDFD)
        ready = multiprocessing.connection.wait(handles, timeout)
        for worker in list(self._workers):
            if ready:
                self._drain(worker)
            if (
                worker.is_dead
                or (worker.pidfd is not None and worker.pidfd in ready)
                or worker.process.poll() is not None
            ):
                self._drain(worker)
                self._on_death(worker)
        self._dispatch()

    def _drain(self, worker: _Worker) -> None:
        while not worker.is_dead:
            try:
                if not worker.conn.poll(0):
                    return
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):
                worker.is_dead = True
                return
            self._on_message(worker, msg.decode_from_worker(data))

    def _on_message(self, worker: _Worker, message: Any) -> None:
        if isinstance(message, msg.WorkerReady):
            worker.is_ready = True
            self.startup_seconds.append(time.monotonic() - worker.started)
            return
        if isinstance(message, msg.WorkerFailed):
            self._fatal = UserCodeError(f"{message.error} (traceback in {self._worker_log(worker.index)})")
            return
        self._on_run_message(worker, message)

    def _on_death(self, worker: _Worker) -> None:
        _join(worker.process, 1.0)
        self._forget(worker)
        trial = worker.trial
        if trial is None:
            if not self._is_shut_down and not worker.is_ready and self._fatal is None:
                log.warning(
                    "local worker %d %s while starting",
                    worker.index,
                    _describe_exit(worker.process.returncode),
                )
            return
        error = f"the trial's worker process {_describe_exit(worker.process.returncode)}"
        if not worker.is_ready:
            error += f" while starting (its output is in {self._worker_log(worker.index)})"
        self._lose(worker, trial, error)

    def _kill(self, worker: _Worker) -> None:
        """Kill the worker and every process it started (it leads its own process group)."""
        if worker.process.poll() is None:
            try:
                os.killpg(worker.process.pid, signal.SIGKILL)
            except OSError:
                with contextlib.suppress(OSError):
                    worker.process.kill()
        else:
            with contextlib.suppress(OSError):
                os.killpg(worker.process.pid, signal.SIGKILL)  # children it left behind (data loaders, ...)
        _join(worker.process, 5.0)
        self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        """Release what this process holds of a worker that is gone."""
        reserved, worker.reserved = worker.reserved, None
        if reserved is not None and reserved.worker is worker:
            # Its run never started: it waits for another worker, and it is no crash.
            reserved.worker = None
            if reserved.current is not None:
                reserved.targets.appendleft(reserved.current)
                reserved.current = None
            if reserved.is_closing:
                self._trials.pop(reserved.request_id, None)
            elif not self._is_shut_down:
                reserved.phase = Phase.QUEUED
                self._queue.appendleft(reserved)
            else:
                reserved.phase = Phase.IDLE
        worker.is_dead = True
        if worker in self._workers:
            self._workers.remove(worker)
        with contextlib.suppress(OSError):
            worker.conn.close()
        if worker.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(worker.pidfd)
            worker.pidfd = None

    # -- introspection (tests, benchmarks, the display) ----------------------------

    def phase(self, request_id: uuid.UUID) -> Phase | None:
        trial = self._trials.get(request_id)
        return trial.phase if trial is not None else None

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.process.pid for w in self._workers if not w.is_dead and w.process.pid is not None]

    def worker_of(self, request_id: uuid.UUID) -> int | None:
        """The pid of the worker running the trial, if any."""
        trial = self._trials.get(request_id)
        if trial is None or trial.worker is None:
            return None
        return int(trial.worker.process.pid)


def _join(process: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
