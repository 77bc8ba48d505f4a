"""The trial actor: a warm Ray actor that imports the training function once and runs trials one after another.

It is the Ray counterpart of the local runner's worker process and reuses its
trial loop (:func:`searchkit_runners.local._worker.run_trial`): the same
context, the same log file per trial, the same classification of how a trial
ended. Only the channel differs: instead of a pipe, the executor sends control
messages with :meth:`TrialActor.control` (numbered, applied in order even
though the actor is threaded) and long-polls reports with
:meth:`TrialActor.poll`. Everything crossing the actor boundary is wire-format
JSON text (``searchkit_core._wire``), never a pickled searchkit object.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import threading
from typing import Any

from searchkit_core._trial import trial_logger
from searchkit_core._usercode import load_entrypoint
from searchkit_core.errors import UserCodeError
from searchkit_runners.local import _messages as msg
from searchkit_runners.local._worker import WorkerChannel, run_trial


class ActorChannel(WorkerChannel):
    """A :class:`WorkerChannel` whose messages travel through actor calls instead of a pipe."""

    def __init__(self) -> None:  # no pipe and no reader thread: control() calls deliver()
        self._init_state()
        self.outbox: queue.Queue[str] = queue.Queue()

    def send(self, message: object) -> None:
        self.outbox.put(msg.encode(message).decode())


def node_identity() -> dict[str, Any]:
    """Where this process runs: Ray node id and address, host name and pid."""
    import ray

    context = ray.get_runtime_context()
    try:
        node_ip = ray.util.get_node_ip_address()
    except Exception:  # only informative
        node_ip = ""
    return {
        "node_id": context.get_node_id(),
        "node_ip": node_ip,
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


class TrialActor:
    """Runs trial segments for the remote executor; created with the resources each trial asks for.

    ``config_json``: ``experiment_dir``, ``entrypoint``, ``metric``, ``data``,
    ``index`` and ``model_dir`` (``null``: the model directory was shipped as
    the runtime environment's working directory, which is this process's
    current directory).
    """

    def __init__(self, config_json: str) -> None:
        config = json.loads(config_json)
        self._config = config
        model_dir = config.get("model_dir") or os.getcwd()
        self._config["model_dir"] = model_dir
        experiment_dir = pathlib.Path(config["experiment_dir"])
        identity = node_identity()
        logs = experiment_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._config["worker_log"] = str(logs / f"ray-trial-actor-{config['index']}-{identity['pid']}.log")
        self._identity = identity
        self._channel = ActorChannel()
        self._next_seq = 0
        self._held: dict[int, str] = {}
        self._control_lock = threading.Lock()
        self._error: str | None = None
        try:
            os.chdir(model_dir)  # like the local runner: relative paths in user code mean the model directory
            self._train = load_entrypoint(model_dir, config["entrypoint"])
        except (UserCodeError, OSError) as exc:
            self._error = str(exc)
            return
        threading.Thread(target=self._serve, name="searchkit-trial-runner", daemon=True).start()

    def ready(self) -> str:
        """JSON: where the actor runs, and the error if the entrypoint could not be loaded."""
        return json.dumps({**self._identity, "error": self._error})

    def control(self, seq: int, data: str) -> None:
        """Deliver control message number ``seq``; messages are applied in ``seq`` order."""
        with self._control_lock:
            self._held[seq] = data
            while self._next_seq in self._held:
                text = self._held.pop(self._next_seq)
                self._next_seq += 1
                self._channel.deliver(msg.decode_to_worker(text.encode()))

    def poll(self, timeout: float) -> list[str]:
        """Reports and run ends since the last poll (wire JSON); waits up to ``timeout`` s for the first."""
        out: list[str] = []
        try:
            out.append(self._channel.outbox.get(timeout=timeout))
        except queue.Empty:
            return out
        while True:
            try:
                out.append(self._channel.outbox.get_nowait())
            except queue.Empty:
                return out

    def _serve(self) -> None:
        while True:
            command = self._channel.next_command()
            if isinstance(command, msg.ExitWorker):
                return
            where = self._identity
            trial_logger(self._config["experiment_dir"], command.trial_id).info(
                "searchkit: trial %d runs in Ray trial actor %s on node %s (%s, host %s, pid %s)",
                command.trial_id,
                self._config["index"],
                where.get("node_ip"),
                where.get("node_id"),
                where.get("host"),
                where.get("pid"),
            )
            status = run_trial(self._train, command, self._channel, self._config, int(self._config["index"]))
            self._channel.send(msg.RunEnded(command.run_id, status))
