"""The remote executor: trial segments on a pool of warm Ray actors spread over the cluster.

It runs inside the search actor (next to the engine) and mirrors the local
executor's scheduling:

- At most ``workers`` trial actors (default: as many as the cluster's CPUs and
  GPUs can hold at once), created on demand with the resources a trial asks for
  (``resources.cpus_per_trial`` CPUs, ``resources.slots_per_trial`` GPUs, and any
  custom Ray resources) and the ``SPREAD`` strategy, so trials land on every node.
- A trial is handed only to an actor that has started (``ready()`` answered):
  an actor Ray cannot place yet (say, after a node left) holds no trial hostage.
- Each actor imports the entrypoint once and then runs any number of trials;
  after a validation it waits for the engine's next length (continue in place)
  or a stop (the actor is free again).
- An actor that dies (its process, or its whole node) takes its trial down with
  it: the trial is reported crashed and the engine restarts it on another actor
  from its latest checkpoint, up to ``max_restarts``.

Every run of a trial is recorded as a ``MetricsReported`` in the group
``"placement"`` (node id, node address, host, pid of the actor), so ``status``
and tests can tell where each trial ran.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import logging
import pathlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

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
from searchkit_core.errors import ConfigError, UserCodeError
from searchkit_runners.local import _messages as msg
from searchkit_runners.local._executor import _note_in_log

log = logging.getLogger("searchkit.remote")

DEFAULT_GRACE_PERIOD = 10.0
POLL_SECONDS = 2.0  # how long one poll call waits inside a trial actor for a report
PLACEMENT_GROUP = "placement"  # MetricsReported group recording where a trial ran


class Phase(enum.Enum):
    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING = "awaiting"
    STOPPING = "stopping"


@attrs.frozen
class TrialResources:
    """What one trial actor asks Ray for."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    custom: Mapping[str, float] = attrs.field(factory=dict)


@attrs.define
class _Trial:
    request_id: uuid.UUID
    trial_id: int
    hparams: dict[str, Any]
    restarts: int
    checkpoint: CheckpointRef | None
    phase: Phase = Phase.IDLE
    targets: collections.deque[int] = attrs.field(factory=collections.deque)
    current: int | None = None
    worker: _Actor | None = None
    run_id: int = 0
    segment_started: float = 0.0
    is_closing: bool = False
    kill_at: float | None = None


@attrs.define(eq=False)
class _Actor:
    index: int
    handle: Any
    ready_ref: Any
    seq: int = 0
    poll_ref: Any = None
    identity: dict[str, Any] = attrs.field(factory=dict)
    trial: _Trial | None = None
    is_ready: bool = False
    is_dead: bool = False


def check_capacity(resources: TrialResources, total: Mapping[str, float]) -> None:
    """ConfigError when the cluster (``ray.cluster_resources()``) cannot hold even one trial."""
    wanted = {"CPU": resources.num_cpus, "GPU": resources.num_gpus, **dict(resources.custom)}
    missing = [
        f"{amount:g} {name} (the cluster has {total.get(name, 0.0):g})"
        for name, amount in wanted.items()
        if amount > 0 and total.get(name, 0.0) < amount
    ]
    if missing:
        raise ConfigError(
            "each trial asks for "
            + ", ".join(missing)
            + " on the Ray cluster, so no trial could ever start; "
            "lower resources.slots_per_trial / resources.cpus_per_trial / --trial-resources, or add nodes"
        )


def default_workers(resources: TrialResources) -> int:
    """How many trials the cluster can hold at once with ``resources`` each (at least 1)."""
    import ray

    total = ray.cluster_resources()
    check_capacity(resources, total)
    counts: list[float] = []
    if resources.num_cpus > 0:
        counts.append(total.get("CPU", 0.0) / resources.num_cpus)
    if resources.num_gpus > 0:
        counts.append(total.get("GPU", 0.0) / resources.num_gpus)
    for name, amount in resources.custom.items():
        if amount > 0:
            counts.append(total.get(name, 0.0) / amount)
    return max(1, int(min(counts))) if counts else 1


def _describe_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RayExecutor:
    """Runs segments on Ray trial actors; see the module docstring. Call it from one thread."""

    def __init__(
        self,
        experiment_dir: pathlib.Path | str,
        *,
        entrypoint: str,
        metric: str,
        data: Mapping[str, Any] | None = None,
        resources: TrialResources | None = None,
        workers: int | None = None,
        model_dir: pathlib.Path | str | None = None,
        trial_timeout: float | None = None,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        spread: bool = True,
    ) -> None:
        self.experiment_dir = pathlib.Path(experiment_dir).absolute()
        self.entrypoint = entrypoint
        self.metric = metric
        self.data = dict(data or {})
        self.resources = resources or TrialResources()
        self.workers = workers if workers is not None else default_workers(self.resources)
        if self.workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.model_dir = str(model_dir) if model_dir is not None else None
        self.trial_timeout = trial_timeout
        self.grace_period = grace_period
        self.spread = spread
        self._trials: dict[uuid.UUID, _Trial] = {}
        self._queue: collections.deque[_Trial] = collections.deque()
        self._actors: list[_Actor] = []
        self._reports: list[Report] = []
        self._next_run_id = 0
        self._next_index = 0
        self._fatal: UserCodeError | None = None
        self._is_shut_down = False
        #: Seconds from an actor's creation to its ready() answer (Ray start + the user's imports).
        self.startup_seconds: list[float] = []
        self._created_at: dict[int, float] = {}
        (self.experiment_dir / "logs").mkdir(parents=True, exist_ok=True)

    # -- Executor -----------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def launch(self, segment: Segment) -> None:
        if self._is_shut_down:
            raise RuntimeError("the remote executor was shut down")
        trial = self._trials.get(segment.request_id)
        if trial is None:
            trial = _Trial(
                request_id=segment.request_id,
                trial_id=segment.trial_id,
                hparams=dict(segment.hparams),
                restarts=segment.restarts,
                checkpoint=segment.checkpoint,
            )
            self._trials[segment.request_id] = trial
        elif segment.length == trial.current or segment.length in trial.targets:
            return  # the same launch again (after a recovery)
        trial.is_closing = False
        trial.restarts = segment.restarts
        if trial.worker is None:
            trial.checkpoint = segment.checkpoint
            trial.hparams = dict(segment.hparams)
        trial.targets.append(segment.length)
        if trial.phase is Phase.AWAITING:
            self._continue(trial)
        elif trial.phase is Phase.IDLE:
            trial.phase = Phase.QUEUED
            self._queue.append(trial)
            self._dispatch()

    def pause(self, request_id: uuid.UUID) -> None:
        trial = self._trials.get(request_id)
        if trial is None:
            return
        trial.targets.clear()
        if trial.phase is Phase.AWAITING:
            self._stop(trial)
        elif trial.phase is Phase.QUEUED:
            self._unqueue(trial)
            trial.phase = Phase.IDLE

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
            wait_for = 1.0 if deadline is None else min(1.0, deadline - now)
            self._poll(max(0.0, wait_for))

    def shutdown(self, cancel: bool) -> None:
        """Stop every trial (a grace period to store a checkpoint), then end every trial actor."""
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
        while any(a.trial is not None and not a.is_dead for a in self._actors) and time.monotonic() < end:
            self._poll(min(0.5, max(0.0, end - time.monotonic())))
        import ray

        for actor in list(self._actors):
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor.handle, no_restart=True)
        self._actors.clear()

    # -- state changes ----------------------------------------------------------

    def _send(self, actor: _Actor, message: object) -> None:
        if actor.is_dead:
            return
        seq = actor.seq
        actor.seq += 1
        # Fire and forget: a dead actor shows up as a failed poll.
        actor.handle.control.remote(seq, msg.encode(message).decode())

    def _unqueue(self, trial: _Trial) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(trial)

    def _continue(self, trial: _Trial) -> None:
        assert trial.worker is not None
        trial.current = trial.targets.popleft()
        trial.phase = Phase.RUNNING
        trial.segment_started = time.monotonic()
        self._send(trial.worker, msg.ContinueRun(trial.run_id, trial.current))

    def _stop(self, trial: _Trial) -> None:
        assert trial.worker is not None
        trial.phase = Phase.STOPPING
        self._send(trial.worker, msg.StopRun(trial.run_id))

    def _preempt(self, trial: _Trial) -> None:
        assert trial.worker is not None
        trial.kill_at = time.monotonic() + self.grace_period
        self._send(trial.worker, msg.PreemptRun(trial.run_id))

    def _dispatch(self) -> None:
        while self._queue:
            actor = next((a for a in self._actors if a.is_ready and a.trial is None and not a.is_dead), None)
            if actor is None:
                starting = sum(1 for a in self._actors if not a.is_ready and not a.is_dead)
                if len(self._actors) < self.workers and starting < len(self._queue):
                    self._spawn()
                return
            trial = self._queue.popleft()
            self._next_run_id += 1
            trial.run_id = self._next_run_id
            trial.worker = actor
            actor.trial = trial
            trial.current = trial.targets.popleft()
            trial.phase = Phase.RUNNING
            trial.segment_started = time.monotonic()
            trial.kill_at = None
            start = trial.checkpoint.steps_completed if trial.checkpoint is not None else 0
            self._reports.append(
                MetricsReported(
                    trial.request_id,
                    PLACEMENT_GROUP,
                    start,
                    {**actor.identity, "actor": actor.index, "restarts": trial.restarts},
                    time.time(),
                )
            )
            self._send(
                actor,
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

    def _spawn(self) -> None:
        import ray

        from searchkit_runners.remote._trial_actor import TrialActor

        index = self._next_index
        self._next_index += 1
        config = {
            "index": index,
            "experiment_dir": str(self.experiment_dir),
            "model_dir": self.model_dir,
            "entrypoint": self.entrypoint,
            "metric": self.metric,
            "data": self.data,
        }
        options: dict[str, Any] = {
            "num_cpus": self.resources.num_cpus,
            "num_gpus": self.resources.num_gpus,
            "max_restarts": 0,  # a lost trial actor is a crashed trial: the engine decides what happens
            "max_concurrency": 4,  # poll() waits while control() messages come in
        }
        if self.resources.custom:
            options["resources"] = dict(self.resources.custom)
        if self.spread:
            options["scheduling_strategy"] = "SPREAD"
        handle: Any = ray.remote(TrialActor).options(**options).remote(json.dumps(config))
        actor = _Actor(index=index, handle=handle, ready_ref=handle.ready.remote())
        self._created_at[index] = time.monotonic()
        self._actors.append(actor)
        log.info("started trial actor %d with %s", index, options)

    # -- waiting ----------------------------------------------------------------

    def _poll(self, timeout: float) -> None:
        import ray

        refs: dict[Any, tuple[_Actor, str]] = {}
        for actor in self._actors:
            if actor.is_dead:
                continue
            if not actor.is_ready:
                refs[actor.ready_ref] = (actor, "ready")
                continue
            if actor.poll_ref is None:
                actor.poll_ref = actor.handle.poll.remote(POLL_SECONDS)
            refs[actor.poll_ref] = (actor, "poll")
        if not refs:
            time.sleep(timeout)
            self._dispatch()
            return
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in ready:
            actor, kind = refs[ref]
            try:
                value = ray.get(ref, timeout=10)
            except Exception as exc:  # the actor (or its node) is gone
                self._on_death(actor, exc)
                continue
            if kind == "ready":
                self._on_ready(actor, value)
            else:
                actor.poll_ref = None
                for text in value:
                    self._on_message(actor, msg.decode_from_worker(text.encode()))
        self._dispatch()

    def _on_ready(self, actor: _Actor, text: str) -> None:
        info = json.loads(text)
        if info.get("error"):
            self._fatal = UserCodeError(str(info["error"]))
            return
        actor.identity = {k: info[k] for k in ("node_id", "node_ip", "host", "pid") if k in info}
        actor.is_ready = True
        self.startup_seconds.append(time.monotonic() - self._created_at.get(actor.index, time.monotonic()))
        log.info("trial actor %d ready on %s", actor.index, actor.identity)

    def _on_message(self, actor: _Actor, message: Any) -> None:
        trial = actor.trial
        if isinstance(message, msg.RunEnded):
            if trial is not None and trial.run_id == message.run_id:
                self._on_run_ended(actor, trial)
            return
        if trial is None or message.request_id != trial.request_id:
            return
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

    def _on_run_ended(self, actor: _Actor, trial: _Trial) -> None:
        actor.trial = None
        trial.worker = None
        trial.current = None
        trial.kill_at = None
        if trial.is_closing:
            self._trials.pop(trial.request_id, None)
        elif trial.targets and not self._is_shut_down:
            trial.phase = Phase.QUEUED
            self._queue.append(trial)
        else:
            trial.phase = Phase.IDLE

    def _on_death(self, actor: _Actor, exc: BaseException) -> None:
        actor.is_dead = True
        if actor in self._actors:
            self._actors.remove(actor)
        trial = actor.trial
        where = actor.identity.get("node_ip") or "an unplaced actor"
        log.warning("trial actor %d on %s died: %s", actor.index, where, _describe_error(exc))
        if trial is None:
            return
        self._lose(actor, trial, f"the trial's Ray actor on node {where} was lost ({_describe_error(exc)})")

    def _lose(self, actor: _Actor, trial: _Trial, error: str) -> None:
        actor.trial = None
        trial.worker = None
        was_working = trial.phase is Phase.RUNNING
        trial.current = None
        trial.kill_at = None
        if trial.is_closing:
            self._trials.pop(trial.request_id, None)
            return
        _note_in_log(self.experiment_dir, trial.trial_id, f"searchkit: {error}")
        if was_working and not self._is_shut_down:
            self._reports.append(TrialCrashed(trial.request_id, error, time.time()))
            trial.targets.clear()
        if trial.targets and not self._is_shut_down:
            trial.phase = Phase.QUEUED
            self._queue.append(trial)
        else:
            trial.phase = Phase.IDLE

    def _kill(self, actor: _Actor) -> None:
        import ray

        actor.is_dead = True
        if actor in self._actors:
            self._actors.remove(actor)
        with contextlib.suppress(Exception):
            ray.kill(actor.handle, no_restart=True)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        changed = False
        for actor in list(self._actors):
            trial = actor.trial
            if trial is None:
                continue
            if trial.kill_at is not None and now >= trial.kill_at:
                self._kill(actor)
                self._lose(
                    actor, trial, f"the trial did not stop within {self.grace_period:g} s of being asked to"
                )
                changed = True
            elif (
                self.trial_timeout is not None
                and trial.phase is Phase.RUNNING
                and now - trial.segment_started >= self.trial_timeout
            ):
                self._kill(actor)
                self._lose(
                    actor,
                    trial,
                    f"timed out after {self.trial_timeout:g} s (trial_timeout) training to length {trial.current}",
                )
                changed = True
        if changed:
            self._dispatch()

    # -- introspection -----------------------------------------------------------

    def placements(self) -> dict[int, dict[str, Any]]:
        """Trial id -> identity of the actor it runs on now."""
        return {a.trial.trial_id: dict(a.identity) for a in self._actors if a.trial is not None}
