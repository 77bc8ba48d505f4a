"""The simulator's executor: W workers in virtual time, trained against learning curves.

Time is a number the executor owns. ``wait()`` jumps the clock to the next
instant at which some segment completes (or, with crash injection, crashes) and
returns what happened at that instant; nothing sleeps, so a search of a million
trials runs as fast as the engine decides.

The schedule is a pure function of the segments the engine hands out, which
is what makes a resumed search reproduce the uninterrupted one:

- A segment from ``a`` units (the trial's last validated length) to ``L``
  takes ``(L - a) * seconds_per_unit`` virtual seconds.
- Workers are handed out when the clock leaves an instant, once every launch
  of that instant has arrived: waiting segments, ordered by ``(issued_at,
  trial_id)`` (first come, first served), take the free workers. A segment
  that finds one at once starts at its ``issued_at``.
- Reports of one instant are ordered by trial id.

Every start is reported (``MetricsReported`` group ``simulate``,
``{"started": t}``) ahead of everything that happens later, so a commit that
holds a start also holds whatever freed its worker. After a crash of the
``searchkit`` process, :meth:`restore` reads the clock (the last journal row's
time), each trial's trained length and the recorded starts; the engine hands
out every unanswered segment again with its original ``issued_at``: recorded
ones run on from their start, the others wait and are handed workers as the
first time, so the resumed search is exactly the uninterrupted one.
"""

from __future__ import annotations

import heapq
import itertools
import uuid

from searchkit_core._executor import (
    MetricsReported,
    Report,
    Segment,
    TrialCrashed,
    ValidationReported,
)
from searchkit_core._store import Store
from searchkit_runners.simulate._curves import Curves, _unit

#: The metrics group the simulator records segment starts and crashes under.
SIMULATE_GROUP = "simulate"


class _Run:
    """One segment in the simulator: queued, then running, then done (or cancelled)."""

    __slots__ = ("crash_at", "finish", "from_length", "is_live", "is_running", "segment", "start")

    def __init__(self, segment: Segment, from_length: int) -> None:
        self.segment = segment
        self.from_length = from_length
        self.start = 0.0
        self.finish = 0.0
        self.crash_at: float | None = None
        self.is_live = True
        self.is_running = False


class SimulateExecutor:
    """An :class:`~searchkit_core.Executor` in virtual time with ``workers`` identical workers.

    ``crash_fraction`` makes that fraction of segments crash part-way (chosen by
    a hash of the seed, the trial, the target length and the restart count, so
    the same segments crash in every run), which exercises the engine's
    restarts (``max_restarts``) and its ``ERRORED`` path.
    """

    #: The executor lives and dies with the engine's process and is rebuilt from the
    #: store (:meth:`restore`), so the engine may hand it decisions before committing
    #: them and commit in large batches: a crash loses the executor's state too.
    is_volatile = True

    def __init__(
        self,
        curves: Curves,
        *,
        workers: int,
        metric: str = "metric",
        seed: int = 0,
        crash_fraction: float = 0.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if not 0.0 <= crash_fraction < 1.0:
            raise ValueError(f"crash_fraction must be in [0, 1), got {crash_fraction}")
        self.curves = curves
        self.workers = workers
        self.metric_name = metric
        self.seed = seed
        self.crash_fraction = crash_fraction
        self._clock = 0.0
        self._free = workers
        self._trained: dict[uuid.UUID, int] = {}  # last validated length: where a segment starts from
        self._active: dict[uuid.UUID, _Run] = {}  # queued or running, one per trial
        self._events: list[tuple[float, int, int, _Run]] = []  # (time, trial_id, n, run) of running segments
        self._queue: list[tuple[float, int, int, _Run]] = []  # (issued_at, trial_id, n, run)
        self._counter = itertools.count()
        self._restored_starts: dict[tuple[uuid.UUID, int, int], float] = {}

    # -- restoring after a crash --------------------------------------------------------

    def restore(self, store: Store) -> None:
        """Continue from a store: the clock, each trial's trained length, recorded starts.

        Call before the engine hands out the unanswered segments again.
        """
        self._clock = store.last_journal_time()
        running: set[str] = set()
        # Only trials that may train again matter (ended ones are never relaunched).
        for row in store.trials(states=("RUNNING", "PAUSED")):
            self._trained[uuid.UUID(row.request_id)] = row.trained
            if row.state == "RUNNING":
                running.add(row.request_id)
        if not running:
            return
        for rid, _group, steps, metrics, _time in store.metrics(group=SIMULATE_GROUP):
            if rid in running and "started" in metrics and "crashed" not in metrics:
                key = (uuid.UUID(rid), steps, int(metrics.get("restarts", 0)))
                self._restored_starts[key] = float(metrics["started"])

    # -- the Executor protocol -------------------------------------------------------------

    def now(self) -> float:
        return self._clock

    def launch(self, segment: Segment) -> None:
        rid = segment.request_id
        current = self._active.get(rid)
        if current is not None:
            if current.segment.length == segment.length:
                return  # the same launch again (after a crash): idempotent
            self._cancel(rid)
        run = _Run(segment, min(self._trained.get(rid, 0), segment.length))
        self._active[rid] = run
        restored = self._restored_starts.pop((rid, segment.length, segment.restarts), None)
        if restored is not None:
            self._start(run, restored)  # it had started before the crash: it runs on from then
        else:
            # Workers are handed out when the clock leaves this instant (in wait()), in
            # (issued_at, trial_id) order, so the order of launches within an instant does not
            # matter: after a crash they come back sorted, and get the same workers.
            heapq.heappush(self._queue, (segment.issued_at, segment.trial_id, next(self._counter), run))

    def pause(self, request_id: uuid.UUID) -> None:
        # A validated segment already gave its worker back; nothing else runs for this trial.
        self._cancel(request_id)

    def close(self, request_id: uuid.UUID) -> None:
        self._cancel(request_id)  # its worker takes the next in line when the clock moves on

    def wait(self, timeout: float | None) -> list[Report]:
        self._drop_stale()
        out: list[Report] = []
        if not self._events or self._events[0][0] > self._clock:
            # Leaving the current instant: every launch of it has arrived; fill free workers.
            # The start records come first, so they are committed before anything later.
            out = self._fill(self._clock)
            self._drop_stale()
        if not self._events:
            if out:
                return out
            raise RuntimeError(
                "simulate: the engine waits for work but no segment is running or queued "
                "(a launch was lost); this is a bug in searchkit"
            )
        instant = self._events[0][0]
        self._clock = max(self._clock, instant)
        finished: list[Report] = []
        while self._events and self._events[0][0] == instant:
            run = heapq.heappop(self._events)[3]
            if not run.is_live:
                continue
            run.is_live = False
            self._free += 1
            segment = run.segment
            rid = segment.request_id
            del self._active[rid]
            if run.crash_at is not None:
                units = round(
                    (run.crash_at - run.start)
                    / max(run.finish - run.start, 1e-300)
                    * (segment.length - run.from_length)
                )
                finished.append(
                    MetricsReported(
                        rid,
                        SIMULATE_GROUP,
                        segment.length,
                        {
                            "crashed": instant,
                            "started": run.start,
                            "restarts": segment.restarts,
                            "units": units,
                        },
                        instant,
                    )
                )
                finished.append(TrialCrashed(rid, "simulated crash (crash_fraction)", instant))
                continue
            value = self.curves.metric(segment.trial_id, segment.hparams, segment.length)
            self._trained[rid] = segment.length
            finished.append(
                MetricsReported(
                    rid,
                    "validation",
                    segment.length,
                    {
                        self.metric_name: value,
                        "segment_start": run.start,
                        "segment_end": instant,
                        "units": segment.length - run.from_length,
                    },
                    instant,
                )
            )
            finished.append(ValidationReported(rid, segment.length, value, instant))
        return out + finished

    def shutdown(self, cancel: bool) -> None:
        for run in self._active.values():
            run.is_live = False
        self._active.clear()
        self._events.clear()
        self._queue.clear()
        self._free = self.workers

    # -- inside -------------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Segments queued or running."""
        return len(self._active)

    def _start(self, run: _Run, start: float) -> None:
        segment = run.segment
        self._free -= 1
        duration = (segment.length - run.from_length) * self.curves.seconds_per_unit(
            segment.trial_id, segment.hparams
        )
        run.is_running = True
        run.start = start
        run.finish = max(start + duration, self._clock)
        at = run.finish
        if (
            self.crash_fraction
            and _unit(self.seed, "crash", segment.trial_id, segment.length, segment.restarts)
            < self.crash_fraction
        ):
            when = 0.1 + 0.8 * _unit(self.seed, "when", segment.trial_id, segment.length, segment.restarts)
            run.crash_at = at = max(start + duration * when, self._clock)
        heapq.heappush(self._events, (at, segment.trial_id, next(self._counter), run))

    def _drop_stale(self) -> None:
        while self._events and not self._events[0][3].is_live:
            heapq.heappop(self._events)

    def _fill(self, instant: float) -> list[Report]:
        """Start queued segments on free workers at ``instant``; return their start records."""
        records: list[Report] = []
        while self._free > 0 and self._queue:
            run = heapq.heappop(self._queue)[3]
            if not run.is_live:
                continue
            segment = run.segment
            self._start(run, instant)
            records.append(
                MetricsReported(
                    segment.request_id,
                    SIMULATE_GROUP,
                    segment.length,
                    {"started": instant, "restarts": segment.restarts},
                    instant,
                )
            )
        return records

    def _cancel(self, request_id: uuid.UUID) -> bool:
        """Drop the trial's segment; return whether it held a worker."""
        run = self._active.pop(request_id, None)
        if run is None:
            return False
        run.is_live = False
        if run.is_running:
            self._free += 1
        return run.is_running
