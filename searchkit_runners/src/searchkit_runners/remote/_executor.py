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

import contextlib
import json
import logging
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import attrs

from searchkit_core._executor import MetricsReported
from searchkit_core.errors import ConfigError, UserCodeError
from searchkit_runners.local import _messages as msg
from searchkit_runners.local._pool import DEFAULT_GRACE_PERIOD, PooledExecutor, Slot, Trial

__all__ = ["DEFAULT_GRACE_PERIOD", "RayExecutor", "TrialResources", "check_capacity", "default_workers"]

log = logging.getLogger("searchkit.remote")

POLL_SECONDS = 2.0  # how long one poll call waits inside a trial actor for a report
PLACEMENT_GROUP = "placement"  # MetricsReported group recording where a trial ran


@attrs.frozen
class TrialResources:
    """What one trial actor asks Ray for."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    custom: Mapping[str, float] = attrs.field(factory=dict)


@attrs.define(eq=False, kw_only=True)
class _Actor(Slot):
    """A Ray trial actor: the slot of the remote executor (``is_ready``: its ready() answered)."""

    handle: Any
    ready_ref: Any
    seq: int = 0
    poll_ref: Any = None
    identity: dict[str, Any] = attrs.field(factory=dict)


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


class RayExecutor(PooledExecutor[_Actor]):
    """Runs segments on Ray trial actors; see the module docstring. Call it from one thread."""

    kind = "remote"
    shutdown_poll = 0.5

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
        self._next_index = 0
        self._created_at: dict[int, float] = {}
        super().__init__()

    # -- the pool's transport -----------------------------------------------------

    def _poll_timeout(self, now: float, deadline: float | None) -> float | None:
        # Ray futures cannot be waited on together with the kill deadlines: poll at least once a second.
        wait_for = 1.0 if deadline is None else min(1.0, deadline - now)
        return max(0.0, wait_for)

    def _end_slots(self) -> None:
        import ray

        for actor in list(self._workers):
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor.handle, no_restart=True)
        self._workers.clear()

    def _send(self, actor: _Actor, message: object) -> None:
        if actor.is_dead:
            return
        seq = actor.seq
        actor.seq += 1
        # Fire and forget: a dead actor shows up as a failed poll.
        actor.handle.control.remote(seq, msg.encode(message).decode())

    def _free_slot(self) -> _Actor | None:
        actor = next((a for a in self._workers if a.is_ready and a.trial is None and not a.is_dead), None)
        if actor is None:
            starting = sum(1 for a in self._workers if not a.is_ready and not a.is_dead)
            if len(self._workers) < self.workers and starting < len(self._queue):
                self._spawn()
        return actor

    def _on_run_starting(self, actor: _Actor, trial: Trial[_Actor]) -> None:
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
        self._workers.append(actor)
        log.info("started trial actor %d with %s", index, options)

    # -- waiting ----------------------------------------------------------------

    def _poll(self, timeout: float | None) -> None:
        import ray

        assert timeout is not None  # _poll_timeout and shutdown() always bound it
        refs: dict[Any, tuple[_Actor, str]] = {}
        for actor in self._workers:
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
                    self._on_run_message(actor, msg.decode_from_worker(text.encode()))
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

    def _on_death(self, actor: _Actor, exc: BaseException) -> None:
        actor.is_dead = True
        if actor in self._workers:
            self._workers.remove(actor)
        trial = actor.trial
        where = actor.identity.get("node_ip") or "an unplaced actor"
        log.warning("trial actor %d on %s died: %s", actor.index, where, _describe_error(exc))
        if trial is None:
            return
        self._lose(actor, trial, f"the trial's Ray actor on node {where} was lost ({_describe_error(exc)})")

    def _kill(self, actor: _Actor) -> None:
        import ray

        actor.is_dead = True
        if actor in self._workers:
            self._workers.remove(actor)
        with contextlib.suppress(Exception):
            ray.kill(actor.handle, no_restart=True)

    # -- introspection -----------------------------------------------------------

    def placements(self) -> dict[int, dict[str, Any]]:
        """Trial id -> identity of the actor it runs on now."""
        return {a.trial.trial_id: dict(a.identity) for a in self._workers if a.trial is not None}
