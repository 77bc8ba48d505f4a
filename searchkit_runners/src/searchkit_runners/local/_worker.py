"""The worker process of the local runner: imports the entrypoint once, then runs trials one after another.

A worker is a fresh interpreter (``python -m searchkit_runners.local._worker``,
so no state of the searchkit process leaks into user code) in its own session
(a Ctrl-C in the terminal reaches only the searchkit process). It

1. arranges to die with its parent, and to take every process it started
   with it (data loaders, ``subprocess`` calls of the user's code: they share
   its process group): ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on Linux with a
   handler that kills the group, plus a reader thread that does the same when
   the pipe to the parent closes and a watchdog that polls the parent pid (for
   a main thread stuck in C code, and other systems);
2. ignores SIGINT: the searchkit process decides how trials stop
   (``should_preempt``, then a grace period);
3. imports the user's entrypoint once (torch and friends are paid once per
   worker, not per trial segment);
4. runs :class:`StartRun` after :class:`StartRun`, each with a fresh trial
   context whose channel is this process's pipe. Between operations of one run
   ``next_length()`` blocks until the executor says continue or stop.

While a trial runs, file descriptors 1 and 2 point at the trial's log, so
prints, warnings, C-level output and the traceback of a crash all land in
``<experiment_dir>/trials/<trial_id>/trial.log``. Between trials they point at
the worker's own log, ``<experiment_dir>/logs/local-worker-<n>.log``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pathlib
import queue
import signal
import sys
import threading
import time
import traceback
import types
from multiprocessing.connection import Connection
from typing import Any

from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    TrialCrashed,
    TrialExited,
    ValidationReported,
)
from searchkit_core._operations import ExitedReason
from searchkit_core._trial import (
    TrialAPIError,
    TrialContext,
    TrialInfo,
    close_trial_logger,
    trial_log_path,
    trial_logger,
)
from searchkit_core._usercode import load_entrypoint
from searchkit_core.errors import InvalidHP, UserCodeError
from searchkit_runners.local import _messages as msg

PR_SET_PDEATHSIG = 1
PROGRESS_INTERVAL = 0.25  # seconds between progress messages; progress is only shown, never decided on
WATCHDOG_INTERVAL = 1.0


def die_with_group() -> None:
    """End this worker and every process it started (it leads its own process group)."""
    if os.getpgrp() == os.getpid():
        with contextlib.suppress(OSError):
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Make sure this process and its children do not outlive ``parent_pid``, even when it is SIGKILLed.

    The parent-death signal is SIGTERM, not SIGKILL, so that its handler can
    kill the whole process group first: a SIGKILL would end only this process
    and leave the user's subprocesses running.
    """
    worker_pid = os.getpid()

    def on_sigterm(signum: int, frame: types.FrameType | None) -> None:
        if os.getpid() == worker_pid:
            die_with_group()
        # A process the user's code forked (a data loader) inherits this handler; it must not
        # take the whole trial down when its own parent terminates it.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent_pid:
        die_with_group()  # the parent died before prctl took effect

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_INTERVAL)
            if os.getppid() != parent_pid:
                die_with_group()

    threading.Thread(target=watch, name="searchkit-parent-watchdog", daemon=True).start()


class WorkerChannel:
    """The :class:`~searchkit_core._executor.TrialChannel` of a worker process: the pipe to the executor.

    A reader thread receives control messages, so ``should_preempt()`` is a
    cheap flag check and ``next_length()`` a blocking queue read.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._init_state()
        threading.Thread(target=self._read, name="searchkit-worker-reader", daemon=True).start()

    def _init_state(self) -> None:
        """Set up what the channel keeps apart from its transport (the Ray trial actor's channel shares it)."""
        self._send_lock = threading.Lock()
        self._commands: queue.Queue[msg.StartRun | msg.ExitWorker] = queue.Queue()
        self._lengths: queue.Queue[tuple[int, int | None]] = queue.Queue()
        self._preempt = threading.Event()
        self._preempted_runs: set[int] = set()
        self.run: msg.StartRun | None = None
        self._first_length: int | None = None
        self._outstanding: int | None = None  # a length handed out and not completed yet
        self._last_progress = 0.0

    # -- the reader thread -------------------------------------------------------

    def _read(self) -> None:
        while True:
            try:
                data = self._conn.recv_bytes()
            except (EOFError, OSError):
                die_with_group()  # the searchkit process is gone: never outlive it
            self.deliver(msg.decode_to_worker(data))

    def deliver(self, message: Any) -> None:
        """Apply one control message from the executor (the reader thread's pipe, or a Ray actor call)."""
        if isinstance(message, (msg.StartRun, msg.ExitWorker)):
            self._commands.put(message)
        elif isinstance(message, msg.ContinueRun):
            self._lengths.put((message.run_id, message.length))
        elif isinstance(message, msg.StopRun):
            self._lengths.put((message.run_id, None))
        elif isinstance(message, msg.PreemptRun):
            self._preempted_runs.add(message.run_id)
            run = self.run
            if run is not None and run.run_id == message.run_id:
                self._preempt.set()
                self._lengths.put((message.run_id, None))  # wake a trial waiting between operations

    # -- the main thread -----------------------------------------------------------

    def send(self, message: object) -> None:
        data = msg.encode(message)
        with self._send_lock:
            self._conn.send_bytes(data)

    def next_command(self) -> msg.StartRun | msg.ExitWorker:
        return self._commands.get()

    def begin(self, run: msg.StartRun) -> None:
        self.run = run
        self._first_length = run.length
        self._outstanding = None
        self._last_progress = 0.0
        if run.run_id in self._preempted_runs:
            self._preempt.set()
        else:
            self._preempt.clear()

    def end(self) -> None:
        self.run = None
        self._preempt.clear()

    @property
    def has_outstanding_operation(self) -> bool:
        return self._outstanding is not None

    @property
    def is_preempted(self) -> bool:
        return self._preempt.is_set()

    def _request_id(self) -> Any:
        assert self.run is not None
        return self.run.request_id

    # TrialChannel

    def next_length(self) -> int | None:
        run = self.run
        assert run is not None
        if self._preempt.is_set():
            return None
        if self._first_length is not None:
            length: int | None = self._first_length
            self._first_length = None
        else:
            while True:
                run_id, length = self._lengths.get()
                if run_id == run.run_id:
                    break
        self._outstanding = length
        return length

    def report_progress(self, units: float) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            self.send(ProgressReported(self._request_id(), units, time.time()))

    def report_completed(self, length: int, metric: float) -> None:
        self._outstanding = None
        self.send(ValidationReported(self._request_id(), length, metric, time.time()))

    def report_metrics(self, group: str, steps: int, metrics: dict[str, Any]) -> None:
        self.send(MetricsReported(self._request_id(), group, steps, metrics, time.time()))

    def report_checkpoint(self, checkpoint: CheckpointRef) -> None:
        self.send(CheckpointReported(self._request_id(), checkpoint, time.time()))

    def should_preempt(self) -> bool:
        return self._preempt.is_set()


def _redirect_output(path: pathlib.Path) -> None:
    """Point file descriptors 1 and 2 (and so print, warnings, C libraries) at ``path``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _summary(exc: BaseException) -> str:
    """One line for status: the exception and the innermost frame of user code."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "searchkit_core" not in frame.filename and "searchkit_runners" not in frame.filename:
            where = f" ({pathlib.Path(frame.filename).name}:{frame.lineno} in {frame.name})"
            break
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def run_trial(
    train: Any, run: msg.StartRun, channel: WorkerChannel, config: dict[str, Any], index: int
) -> str:
    """Run one StartRun to its end; report what happened; return the RunEnded status."""
    experiment_dir = pathlib.Path(config["experiment_dir"])
    log_path = trial_log_path(experiment_dir, run.trial_id)
    _redirect_output(log_path)
    log = trial_logger(experiment_dir, run.trial_id)
    start = run.checkpoint.steps_completed if run.checkpoint is not None else 0
    log.info(
        "searchkit: trial %d runs in local worker %d (pid %d): from %d units%s to %d%s",
        run.trial_id,
        index,
        os.getpid(),
        start,
        f" (checkpoint {run.checkpoint.uuid})" if run.checkpoint is not None else "",
        run.length,
        f", restart {run.restarts}" if run.restarts else "",
    )
    info = TrialInfo(
        request_id=run.request_id,
        trial_id=run.trial_id,
        hparams=run.hparams,
        experiment_dir=experiment_dir,
        metric=config["metric"],
        data=config.get("data") or {},
        latest_checkpoint=run.checkpoint,
        restarts=run.restarts,
    )
    channel.begin(run)
    status = "returned"
    try:
        train(TrialContext(info, channel, log=log))
        if channel.is_preempted:
            status = "preempted"
        elif channel.has_outstanding_operation:
            status = "exited"
            error = (
                f"train() returned before completing the operation of length {channel._outstanding}: "
                "call op.report_completed(metric) for every operation, or return only when "
                "ctx.preempt.should_preempt() is True"
            )
            log.error("%s", error)
            channel.send(TrialExited(run.request_id, ExitedReason.ERRORED, error, time.time()))
        log.info("searchkit: trial %d left worker %d (%s)", run.trial_id, index, status)
    except InvalidHP as exc:
        status = "exited"
        log.warning("searchkit: the training function raised InvalidHP: %s", exc)
        channel.send(TrialExited(run.request_id, ExitedReason.INVALID_HP, _summary(exc), time.time()))
    except TrialAPIError as exc:
        status = "exited"
        log.error(
            "searchkit: the trial API was used wrongly (the trial is not restarted):\n%s",
            traceback.format_exc(),
        )
        channel.send(TrialExited(run.request_id, ExitedReason.ERRORED, f"{exc}", time.time()))
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        status = "crashed"
        log.error("searchkit: the training function raised:\n%s", traceback.format_exc())
        channel.send(TrialCrashed(run.request_id, _summary(exc), time.time()))
    finally:
        channel.end()
        close_trial_logger(run.trial_id)
        _redirect_output(pathlib.Path(config["worker_log"]))
    return status


def worker_main(conn: Connection, config: dict[str, Any]) -> None:
    """Serve runs on ``conn`` until told to exit (``config``: plain JSON values, see LocalExecutor._spawn)."""
    die_with_parent(int(config["parent_pid"]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if config.get("model_dir"):
        os.chdir(config["model_dir"])  # like Determined: relative paths in user code mean the model directory
    index = int(config["index"])
    channel = WorkerChannel(conn)
    try:
        train = load_entrypoint(config.get("model_dir"), config["entrypoint"])
    except UserCodeError as exc:
        traceback.print_exc()
        channel.send(msg.WorkerFailed(str(exc)))
        return
    channel.send(msg.WorkerReady(os.getpid()))
    while True:
        command = channel.next_command()
        if isinstance(command, msg.ExitWorker):
            return
        status = run_trial(train, command, channel, config, index)
        channel.send(msg.RunEnded(command.run_id, status))


def main(argv: list[str]) -> None:
    """``python -m searchkit_runners.local._worker FD CONFIG_JSON``: started by LocalExecutor._spawn."""
    fd, config_text = int(argv[0]), argv[1]
    worker_main(Connection(fd), json.loads(config_text))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # do not wait for user threads that never end


if __name__ == "__main__":
    main(sys.argv[1:])
