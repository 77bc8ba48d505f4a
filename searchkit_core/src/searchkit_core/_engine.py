"""The search engine: one loop that drives every search, whatever runner executes the trials.

For each thing that happens to a trial the engine makes an event, calls the
method, checks the operations it returned, journals the event with its
operations, and only after the commit hands the resulting work to the
executor. The engine's own state (the :class:`Ledger`) is a pure fold of the
journal, so after a crash it is rebuilt from the latest snapshot plus the
journal tail, and the method is either replayed over that tail (replayable
methods) or loaded from the snapshot taken at the last commit (the others).

Work handed out before a crash may be handed out again afterwards; executors
treat a second launch of the same ``(request_id, length)`` as the same launch,
and the method never sees a committed event twice.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import pathlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from searchkit_core import _wire
from searchkit_core._events import (
    JournalEvent,
    SearchStarted,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    TrialRestarted,
    ValidationCompleted,
)
from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    Executor,
    MetricsReported,
    ProgressReported,
    Report,
    Segment,
    TrialCrashed,
    TrialExited,
    ValidationReported,
)
from searchkit_core._ledger import Ledger, TrialRecord, TrialState
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
from searchkit_core._store import Store
from searchkit_core._view import Observer, SearchView
from searchkit_core.errors import SearchMethodError, StoreError

log = logging.getLogger("searchkit.engine")

#: Events processed before one commit at most; bounds the work lost to a crash and the latency of a batch.
MAX_BATCH = 512
#: A replayable method is snapshotted once the journal written since the last snapshot
#: reaches this fraction of the last snapshot's size (at least MIN_SNAPSHOT_INTERVAL bytes):
#: amortized O(1) per event, and a replay after a crash bounded by a multiple of the state.
#: At 2, the snapshots grow by about 1.5x from one to the next, so each trial is written into
#: about three snapshots over a search (at 0.5 it was nine: a quarter of a 100k-trial run's time).
SNAPSHOT_FRACTION = 2.0
MIN_SNAPSHOT_INTERVAL = 256 * 1024
OBSERVER_INTERVAL = 0.25  # seconds between views handed to the observer
#: With a volatile executor, the longest a batch stays uncommitted (wall seconds), so readers keep up.
COMMIT_INTERVAL = 0.5


@attrs.frozen
class LedgerSnapshot:
    """The engine's state at one journal position, stored column-wise to load fast."""

    request_ids: list[str]
    trial_ids: list[int]
    hparams: list[dict[str, Any]]
    trained: list[int]
    targets: list[list[int]]
    closed: list[bool]
    exited: list[str | None]
    restarts: list[int]
    last_metric: list[float | None]
    issued_at: list[float]
    errors: list[str | None]
    pending: list[dict[str, Any]]
    is_shut_down: bool
    shutdown_cancel: bool
    shutdown_failure: bool
    progress: float


_wire.register_type(TrialRestarted)
_wire.register_type(LedgerSnapshot)


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _field(value: Any) -> Any:
    """A field value as the wire writes it (plain values as they are, the rest through the wire)."""
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is float and math.isfinite(value):
        return value
    return _wire.unstructure(value)


def _number_text(value: Any) -> str | None:
    """``value`` as JSON writes it when it is a finite float or an int, else ``None``."""
    cls = type(value)
    if cls is int or (cls is float and math.isfinite(value)):
        return repr(value)  # what json.dumps writes for both
    return None


def _op_text(op: Operation) -> str:
    """``_wire.dumps_fragment(_wire.unstructure(op))``, built directly for the common operations (the hot path).

    Only called on checked operations: lengths are ints, hyperparameters plain JSON,
    request ids UUIDs (whose text needs no escaping).
    """
    cls = type(op)
    if cls is ValidateAfter:
        va: ValidateAfter = op  # type: ignore[assignment]
        return f'{{"type":"ValidateAfter","request_id":"{va.request_id}","length":{int(va.length)!r}}}'
    if cls is Close:
        return f'{{"type":"Close","request_id":"{op.request_id}"}}'  # type: ignore[union-attr]
    if cls is Create:
        create: Create = op  # type: ignore[assignment]
        return (
            f'{{"type":"Create","request_id":"{create.request_id}","hparams":{_ENCODE(create.hparams)},'
            f'"checkpoint":{_ENCODE(_field(create.checkpoint))}}}'
        )
    return _ENCODE(_wire.unstructure(op))


def _event_text(event: JournalEvent) -> str:
    """``_wire.dumps_fragment(event)``, built directly for the common events (the hot path)."""
    cls = type(event)
    if cls is ValidationCompleted:
        done: ValidationCompleted = event  # type: ignore[assignment]
        metric = _number_text(done.metric)
        length = _number_text(done.train_length)
        if metric is not None and length is not None:
            return (
                f'{{"type":"ValidationCompleted","request_id":"{done.request_id}",'
                f'"metric":{metric},"train_length":{length}}}'
            )
    elif cls is TrialCreated or cls is TrialClosed:
        return f'{{"type":"{cls.__name__}","request_id":"{event.request_id}"}}'  # type: ignore[union-attr]
    return _wire.dumps_fragment(event)


def _ops_text(ops: Iterable[Operation]) -> str:
    return "[" + ",".join([_op_text(op) for op in ops]) + "]"


def _snapshot_text(snap: LedgerSnapshot) -> str:
    """``_wire.dumps_fragment(snap)``, without cattrs walking every list (a snapshot of a million trials).

    Hyperparameters are plain JSON (checked when created); non-finite metrics and
    times take the wire's own spelling.
    """
    data: dict[str, Any] = {"type": "LedgerSnapshot"}
    for field in attrs.fields(LedgerSnapshot):
        data[field.name] = getattr(snap, field.name)
    data["last_metric"] = [_field(m) for m in snap.last_metric]
    data["issued_at"] = [_field(t) for t in snap.issued_at]
    data["progress"] = _field(snap.progress)
    return _ENCODE(data)


def _snapshot_from_text(body: bytes) -> LedgerSnapshot:
    """Read what :func:`_snapshot_text` wrote; anything unexpected goes through the wire's checks."""
    data = json.loads(body)
    names = [f.name for f in attrs.fields(LedgerSnapshot)]
    if not (isinstance(data, dict) and data.get("type") == "LedgerSnapshot" and len(data) == len(names) + 1):
        return _wire.structure(data, LedgerSnapshot)
    try:
        values = {name: data[name] for name in names}
    except KeyError:
        return _wire.structure(data, LedgerSnapshot)
    for name in ("last_metric", "issued_at"):
        column = values[name]
        if any(type(v) is str for v in column):  # non-finite numbers, spelled by the wire
            values[name] = [_wire.structure(v, float) if type(v) is str else v for v in column]
    if type(values["progress"]) is str:
        values["progress"] = _wire.structure(values["progress"], float)
    return LedgerSnapshot(**values)


def _metrics_text(metrics: Any) -> str:
    """A metrics dict as JSON: flat dicts of plain values directly, anything else through the wire."""
    if type(metrics) is dict:
        for key, value in metrics.items():
            cls = type(value)
            if type(key) is not str or not (
                cls is str
                or cls is int
                or cls is bool
                or value is None
                or (cls is float and math.isfinite(value))
            ):
                break
        else:
            return _ENCODE(metrics)
    return _ENCODE(_wire.unstructure(metrics))


@attrs.frozen
class Outcome:
    """How a drive ended: ``completed`` (the method shut down) or ``stopped`` (asked to stop)."""

    status: str
    events: int
    best_trial_id: int | None
    best_metric: float | None


@attrs.define
class _Touch:
    """What a batch did to one trial, to decide what to tell the executor after the commit."""

    has_new_head: bool = False
    is_validated: bool = False
    is_closed: bool = False
    is_exited: bool = False


class Engine:
    """Drives one experiment: a method, its store and an executor."""

    def __init__(
        self,
        store: Store,
        method: SearchMethod,
        executor: Executor,
        *,
        method_name: str,
        max_restarts: int,
        metric: str = "metric",
        smaller_is_better: bool = True,
        experiment_name: str = "",
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.method = method
        self.executor = executor
        self.method_name = method_name
        self.max_restarts = max_restarts
        self.metric = metric
        self.smaller_is_better = smaller_is_better
        self.experiment_name = experiment_name
        self.observer = observer
        self.is_replayable = bool(getattr(method, "replayable", False))

        self.ledger = Ledger()
        self.seq = 0
        self.pending: collections.deque[JournalEvent] = collections.deque()
        self._inbox: collections.deque[Report] = collections.deque()  # reports not yet turned into events
        self.checkpoints: dict[uuid.UUID, CheckpointRef] = {}
        self._issued_at: dict[uuid.UUID, float] = {}
        self._errors: dict[uuid.UUID, str] = {}
        self._hparams_texts: dict[uuid.UUID, str] = {}  # trials-table text, written once per trial
        self._counts: collections.Counter[str] = collections.Counter()
        self._best: tuple[float, int] | None = None  # (metric, trial_id)
        self._recent: collections.deque[str] = collections.deque(maxlen=64)

        # the batch being built, committed together
        self._rows: list[tuple[int, float, str, str]] = []
        self._touched: dict[uuid.UUID, _Touch] = {}  # what to tell the executor next
        self._dirty: dict[uuid.UUID, None] = {}  # trials whose row the next commit writes
        # A volatile executor dies with this process and is rebuilt from the store, so it may
        # hear of decisions before they are committed: commits then happen per MAX_BATCH rows
        # (or COMMIT_INTERVAL) instead of per wait.
        self.is_executor_volatile = bool(getattr(executor, "is_volatile", False))
        self._last_commit = time.monotonic()
        self._metric_rows: list[tuple[str, str, int, str, float]] = []
        self._checkpoint_rows: list[tuple[str, str, int, str, float]] = []
        self._row_bytes_since_snapshot = 0
        self._last_snapshot_bytes = 0
        self._engine_snapshot_seq = 0  # journal positions the stored snapshots stand for
        self._method_snapshot_seq = 0
        self.is_method_loaded = True  # False: a finished search resumed without its method
        self._shutdown_now: Shutdown | None = None
        self._started = time.monotonic()
        self._last_view = 0.0

    # -- recovery ------------------------------------------------------------------

    def recover(self) -> None:
        """Rebuild the engine and the method from the store; queue ``SearchStarted`` for a new search."""
        snap = self.store.snapshot("engine")
        method_snap = self.store.snapshot("method")
        engine_seq = 0
        if snap is not None:
            engine_seq, body = snap
            self._load_ledger(_snapshot_from_text(body))
            self._last_snapshot_bytes = len(body)
        method_seq = 0
        if method_snap is not None:
            method_seq = method_snap[0]
            if method_seq < engine_seq:
                raise StoreError(f"{self.store.path}: the method snapshot is older than the engine snapshot")
            if self.ledger.shutdown is not None and self.store.journal_length() == engine_seq:
                # A finished search with nothing to replay: the method is never called again.
                self.is_method_loaded = False
            else:
                self._load_method(self.store.files())
        elif engine_seq > 0:
            raise StoreError(f"{self.store.path}: the engine snapshot has no method snapshot beside it")
        self.seq = engine_seq
        self._engine_snapshot_seq = engine_seq
        self._method_snapshot_seq = method_seq
        for row in self.store.journal(after=engine_seq):
            event = _wire.structure(json.loads(row.event), JournalEvent)
            recorded = row.operations
            if self.pending and self.pending[0] == event:
                self.pending.popleft()
            if row.seq > method_seq and not isinstance(event, TrialRestarted):
                ops = self._call_method(event)
                produced = _ops_text(ops)
                if produced != recorded:
                    raise StoreError(
                        f"{self.method_name} is declared replayable but gave different operations when "
                        f"replaying journal row {row.seq} ({event!r}): recorded {recorded}, now {produced}. "
                        "Set `replayable = False` on the method (it is then snapshotted after every event)."
                    )
            else:
                ops = [_wire.structure(op, Operation) for op in json.loads(recorded)]
            self.seq = row.seq
            self._apply(event, ops, row.time)
        self._row_bytes_since_snapshot = 0
        for rid, (uuid_, steps, metadata) in self.store.latest_checkpoints().items():
            self.checkpoints[uuid.UUID(rid)] = CheckpointRef(uuid_, steps, json.loads(metadata))
        self._touched.clear()
        self._dirty.clear()
        if self.seq == 0 and not self.pending:
            self.pending.append(SearchStarted())
        log.info(
            "recovered %s at journal row %d (%d trials)", self.method_name, self.seq, len(self.ledger.trials)
        )

    def _load_ledger(self, snap: LedgerSnapshot) -> None:
        ledger = self.ledger
        state = ledger.searcher_state
        for i, rid_text in enumerate(snap.request_ids):
            rid = uuid.UUID(rid_text)
            exited = snap.exited[i]
            rec = TrialRecord(
                request_id=rid,
                trial_id=snap.trial_ids[i],
                hparams=snap.hparams[i],
                trained=snap.trained[i],
                targets=list(snap.targets[i]),
                closed=snap.closed[i],
                exited_reason=ExitedReason(exited) if exited is not None else None,
                restarts=snap.restarts[i],
                last_metric=snap.last_metric[i],
            )
            ledger.trials[rid] = rec
            state._trials_created.add(rid)
            if rec.trained:
                state._trial_progress[rid] = rec.trained
            if rec.closed:
                state._trials_closed.add(rid)
            if rec.exited_reason is not None:
                state._failures.add(rid)
            self._issued_at[rid] = snap.issued_at[i]
            if snap.errors[i] is not None:
                self._errors[rid] = snap.errors[i]  # type: ignore[assignment]
            self._counts[rec.state.value] += 1
            self._note_metric(rec)
        self.pending.extend(_wire.structure(e, JournalEvent) for e in snap.pending)
        if snap.is_shut_down:
            ledger.shutdown = Shutdown(cancel=snap.shutdown_cancel, failure=snap.shutdown_failure)
        ledger.progress = snap.progress

    def _dump_ledger(self) -> bytes:
        trials = list(self.ledger.trials.values())
        shutdown = self.ledger.shutdown
        snap = LedgerSnapshot(
            request_ids=[str(t.request_id) for t in trials],
            trial_ids=[t.trial_id for t in trials],
            hparams=[t.hparams for t in trials],
            trained=[t.trained for t in trials],
            targets=[list(t.targets) for t in trials],
            closed=[t.closed for t in trials],
            exited=[t.exited_reason.value if t.exited_reason else None for t in trials],
            restarts=[t.restarts for t in trials],
            last_metric=[t.last_metric for t in trials],
            issued_at=[self._issued_at.get(t.request_id, 0.0) for t in trials],
            errors=[self._errors.get(t.request_id) for t in trials],
            pending=[_wire.unstructure(e) for e in self.pending],
            is_shut_down=shutdown is not None,
            shutdown_cancel=bool(shutdown and shutdown.cancel),
            shutdown_failure=bool(shutdown and shutdown.failure),
            progress=self.ledger.progress,
        )
        return _snapshot_text(snap).encode()

    def _load_method(self, files: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory(prefix="searchkit-method-") as tmp:
            root = pathlib.Path(tmp)
            for name, data in files.items():
                target = (root / name).resolve()
                if root.resolve() not in target.parents:
                    raise StoreError(
                        f"{self.store.path}: method snapshot file {name!r} escapes its directory"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            try:
                self.method.load_method_state(root)
            except Exception as exc:
                raise SearchMethodError(f"{self.method_name}.load_method_state raised {exc!r}") from exc

    def _dump_method(self) -> dict[str, bytes]:
        with tempfile.TemporaryDirectory(prefix="searchkit-method-") as tmp:
            root = pathlib.Path(tmp)
            try:
                self.method.save_method_state(root)
            except Exception as exc:
                raise SearchMethodError(f"{self.method_name}.save_method_state raised {exc!r}") from exc
            return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    # -- the loop ------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] | None = None, *, poll: float = 0.5) -> Outcome:
        """Drive the search until the method shuts down, or until ``should_stop()`` says so."""
        self.recover()
        if self.ledger.shutdown is None:
            self.store.set_meta(status="running")
            self._relaunch_outstanding()
        try:
            while self.ledger.shutdown is None:
                if should_stop is not None and should_stop():
                    self._commit(final=True)
                    self.store.set_meta(status="stopped")
                    self.executor.shutdown(cancel=False)
                    self._update_observer(force=True)
                    return self._outcome("stopped")
                if self.pending:
                    self._drain_pending()
                else:
                    if not self._inbox and not self._has_outstanding_work():
                        self._commit()
                        raise SearchMethodError(
                            f"{self.method_name} left nothing running and did not shut down "
                            f"(after journal row {self.seq}); the search cannot continue"
                        )
                    if not self._inbox:
                        self._inbox.extend(self.executor.wait(poll))
                    while self._inbox and len(self._rows) < MAX_BATCH and self.ledger.shutdown is None:
                        self._on_report(self._inbox.popleft())
                        # Each report's consequences (TrialCreated, TrialClosed) before the next
                        # report: the order of events must not depend on where a batch ends, or a
                        # search resumed from a commit (whose batches end elsewhere) would diverge.
                        self._drain_pending()
                if (
                    self.is_executor_volatile
                    and len(self._rows) < MAX_BATCH
                    and self.ledger.shutdown is None
                    and time.monotonic() - self._last_commit < COMMIT_INTERVAL
                ):
                    self._act(self._touched)
                    self._touched = {}
                    continue
                self._commit()
                self._update_observer()
        except BaseException:
            # Decisions of an unfinished batch were never handed out: drop them, so the
            # store stays exactly at its last commit (their reports come again after a
            # resume, since their segments are still outstanding there). Their metrics go too:
            # the relaunched segments report them again, and keeping both would record them
            # twice. Keep the checkpoints: files on disk a relaunch can start from.
            self._commit_reports_quietly()
            self._mark_stopped_quietly()
            raise
        self._commit(final=True)
        self.store.set_meta(status="completed")
        shutdown = self.ledger.shutdown
        self.executor.shutdown(cancel=bool(shutdown and shutdown.cancel))
        self._update_observer(force=True)
        return self._outcome("completed")

    def _outcome(self, status: str) -> Outcome:
        best_metric, best_id = self._best if self._best else (None, None)
        return Outcome(status=status, events=self.seq, best_trial_id=best_id, best_metric=best_metric)

    def _has_outstanding_work(self) -> bool:
        return self._counts.get(TrialState.RUNNING.value, 0) > 0

    def _drain_pending(self) -> None:
        while self.pending and len(self._rows) < MAX_BATCH and self.ledger.shutdown is None:
            self._process(self.pending.popleft())

    def _relaunch_outstanding(self) -> None:
        """Hand out again every segment that was unanswered when the store was last written."""
        outstanding = [r for r in self.ledger.trials.values() if r.targets and not r.is_ended]
        outstanding.sort(key=lambda r: (self._issued_at.get(r.request_id, 0.0), r.trial_id))
        for rec in outstanding:
            self.executor.launch(self._segment(rec))

    # -- reports -> events -------------------------------------------------------------

    def _on_report(self, report: Report) -> None:
        rec = self.ledger.trials.get(report.request_id)
        if rec is None:
            log.warning("ignored a report for an unknown trial: %r", report)
            return
        rid = rec.request_id
        if isinstance(report, ValidationReported):
            if rec.is_ended or not rec.targets or rec.targets[0] != report.length:
                log.info("ignored a stale validation: %r", report)
                return
            self._process(ValidationCompleted(rid, report.metric, report.length))
        elif isinstance(report, MetricsReported):
            self._metric_rows.append(
                (
                    str(rid),
                    report.group,
                    report.steps,
                    _metrics_text(report.metrics),
                    report.time,
                )
            )
        elif isinstance(report, CheckpointReported):
            ref = report.checkpoint
            self._checkpoint_rows.append(
                (ref.uuid, str(rid), ref.steps_completed, json.dumps(ref.metadata), report.time)
            )
            current = self.checkpoints.get(rid)
            if current is None or ref.steps_completed >= current.steps_completed:
                self.checkpoints[rid] = ref
        elif isinstance(report, ProgressReported):
            pass  # shown live by the runner's trial; decisions use validated lengths only
        elif isinstance(report, TrialCrashed):
            if rec.is_ended or not rec.targets:
                log.info("ignored a crash of a trial with no work: %r", report)
                return
            self._errors[rid] = report.error
            if rec.restarts < self.max_restarts:
                self._process(TrialRestarted(rid, report.error))
            else:
                self._process(TrialExitedEarly(rid, ExitedReason.ERRORED))
        elif isinstance(report, TrialExited):
            if rec.is_ended:
                return
            if report.error:
                self._errors[rid] = report.error
            self._process(TrialExitedEarly(rid, report.reason))
        else:
            raise TypeError(f"not a report: {report!r}")

    # -- events -> method -> operations --------------------------------------------

    def _call_method(self, event: JournalEvent) -> list[Operation]:
        method, state = self.method, self.ledger.searcher_state
        try:
            if isinstance(event, ValidationCompleted):
                ops = method.on_validation_completed(
                    state, event.request_id, event.metric, event.train_length
                )
            elif isinstance(event, TrialCreated):
                ops = method.on_trial_created(state, event.request_id)
            elif isinstance(event, TrialClosed):
                ops = method.on_trial_closed(state, event.request_id)
            elif isinstance(event, TrialExitedEarly):
                ops = method.on_trial_exited_early(state, event.request_id, event.exited_reason)
            elif isinstance(event, SearchStarted):
                ops = method.initial_operations(state)
            else:
                raise TypeError(f"not a method event: {event!r}")
        except Exception as exc:
            raise SearchMethodError(
                f"{self.method_name} raised {type(exc).__name__}: {exc} while handling {event!r}"
            ) from exc
        self.ledger.check(ops, method_name=self.method_name, event=event)
        return list(ops)

    def _process(self, event: JournalEvent) -> None:
        """Feed one event to the method, check and apply what it returned, and journal both."""
        ops: list[Operation] = [] if isinstance(event, TrialRestarted) else self._call_method(event)
        now = self.executor.now()
        self.seq += 1
        event_text = _event_text(event)
        ops_text = _ops_text(ops)
        self._rows.append((self.seq, now, event_text, ops_text))
        self._row_bytes_since_snapshot += len(event_text) + len(ops_text)
        self._apply(event, ops, now)

    def _touch(self, rid: uuid.UUID) -> _Touch:
        touch = self._touched.get(rid)
        if touch is None:
            touch = self._touched[rid] = _Touch()
            self._dirty[rid] = None
        return touch

    def _apply(self, event: JournalEvent, ops: Iterable[Operation], now: float) -> None:
        """Fold one journal row into the ledger. Pure bookkeeping: no I/O, no method calls."""
        ledger = self.ledger
        state = ledger.searcher_state
        if isinstance(event, ValidationCompleted):
            rec = ledger.trials[event.request_id]
            before = rec.state.value
            del rec.targets[0]
            rec.trained = event.train_length
            rec.last_metric = event.metric
            state._trial_progress[rec.request_id] = event.train_length
            self._issued_at[rec.request_id] = now
            self._touch(rec.request_id).is_validated = True
            self._recount(before, rec)
            self._note_metric(rec)
            self._recent.append(f"trial {rec.trial_id} validated at {event.train_length}: {event.metric:.6g}")
        elif isinstance(event, TrialExitedEarly):
            rec = ledger.trials[event.request_id]
            before = rec.state.value
            rec.exited_reason = event.exited_reason
            rec.targets.clear()
            state._failures.add(rec.request_id)
            self._touch(rec.request_id).is_exited = True
            self._recount(before, rec)
            self._recent.append(f"trial {rec.trial_id} exited: {event.exited_reason.value}")
        elif isinstance(event, TrialRestarted):
            rec = ledger.trials[event.request_id]
            rec.restarts += 1
            self._errors[rec.request_id] = event.error  # also when replayed from the journal
            # The relaunch is issued now: a simulator times the new attempt from here.
            self._issued_at[rec.request_id] = now
            self._touch(rec.request_id).has_new_head = True
            self._recent.append(f"trial {rec.trial_id} restarted ({rec.restarts}/{self.max_restarts})")
        elif isinstance(event, TrialCreated):
            self._recent.append(f"trial {ledger.trials[event.request_id].trial_id} created")
        for op in ops:
            if isinstance(op, ValidateAfter):
                rec = ledger.trials[op.request_id]
                before = rec.state.value
                if not rec.targets:
                    self._issued_at[rec.request_id] = now
                    self._touch(rec.request_id).has_new_head = True
                rec.targets.append(op.length)
                self._recount(before, rec)
            elif isinstance(op, Create):
                rec = TrialRecord(
                    request_id=op.request_id,
                    trial_id=len(ledger.trials) + 1,
                    hparams=op.hparams,
                    checkpoint=op.checkpoint,
                )
                ledger.trials[op.request_id] = rec
                state._trials_created.add(op.request_id)
                self._counts[rec.state.value] += 1
                self._touch(op.request_id)
                self.pending.append(TrialCreated(op.request_id))
            elif isinstance(op, Close):
                rec = ledger.trials[op.request_id]
                if rec.is_ended:
                    continue  # Close of a trial that already exited: nothing to do
                before = rec.state.value
                rec.closed = True
                rec.targets.clear()
                state._trials_closed.add(op.request_id)
                self._touch(op.request_id).is_closed = True
                self._recount(before, rec)
                self.pending.append(TrialClosed(op.request_id))
            elif isinstance(op, Shutdown):
                ledger.shutdown = op
                state.experiment_completed = not op.failure
                state.experiment_failed = op.failure
                self._recent.append("the method shut down" + (" (failure)" if op.failure else ""))
            elif isinstance(op, Progress):
                ledger.progress = float(op.progress)

    def _recount(self, before: str, rec: TrialRecord) -> None:
        after = rec.state.value
        if after != before:
            self._counts[before] -= 1
            self._counts[after] += 1

    def _note_metric(self, rec: TrialRecord) -> None:
        metric = rec.last_metric
        if metric is None or not math.isfinite(metric):
            return
        key = metric if self.smaller_is_better else -metric
        if self._best is None or key < (self._best[0] if self.smaller_is_better else -self._best[0]):
            self._best = (metric, rec.trial_id)

    # -- commit, then act -------------------------------------------------------------

    def _segment(self, rec: TrialRecord) -> Segment:
        return Segment(
            request_id=rec.request_id,
            trial_id=rec.trial_id,
            hparams=rec.hparams,
            length=rec.targets[0],
            checkpoint=self.checkpoints.get(rec.request_id),
            restarts=rec.restarts,
            issued_at=self._issued_at.get(rec.request_id, 0.0),
        )

    def _commit(self, *, final: bool = False) -> None:
        """Write the batch in one transaction, then tell the executor what to do."""
        if not (self._rows or self._dirty or self._metric_rows or self._checkpoint_rows or final):
            return
        touched = self._touched
        trials = self.ledger.trials
        with self.store.transaction() as store:
            store.append_journal(self._rows)
            store.put_trials([self._trial_row(trials[rid]) for rid in self._dirty])
            store.put_metrics(self._metric_rows)
            store.put_checkpoints(self._checkpoint_rows)
            if self._rows or final:
                self._snapshot_if_due(store, final=final)
        self._rows, self._metric_rows, self._checkpoint_rows = [], [], []
        self._touched = {}
        self._dirty = {}
        self._last_commit = time.monotonic()
        self._act(touched)

    def _mark_stopped_quietly(self) -> None:
        """After an error the search is no longer running; `searchkit status` should say so."""
        try:
            self.store.set_meta(status="stopped")
        except Exception:  # the original error matters more
            log.exception("could not record that the search stopped")

    def _commit_reports_quietly(self) -> None:
        try:
            if self._checkpoint_rows:
                with self.store.transaction() as store:
                    store.put_checkpoints(self._checkpoint_rows)
        except Exception:  # the original error matters more
            log.exception("could not record the last reports")

    def _snapshot_if_due(self, store: Store, *, final: bool) -> None:
        # Nothing new since the stored snapshots (a finished search resumed): write nothing.
        due = (final and self.seq > self._engine_snapshot_seq) or self._row_bytes_since_snapshot >= max(
            MIN_SNAPSHOT_INTERVAL, self._last_snapshot_bytes * SNAPSHOT_FRACTION
        )
        if not self.is_replayable and self.seq > self._method_snapshot_seq:
            # Not replayable: the method's state must match the journal after every commit.
            store.put_files(self._dump_method())
            store.put_snapshot("method", self.seq, b"")
            self._method_snapshot_seq = self.seq
        if due:
            body = self._dump_ledger()
            store.put_snapshot("engine", self.seq, body)
            self._engine_snapshot_seq = self.seq
            if self.is_replayable:
                store.put_files(self._dump_method())
                store.put_snapshot("method", self.seq, b"")
                self._method_snapshot_seq = self.seq
            self._last_snapshot_bytes = len(body)
            self._row_bytes_since_snapshot = 0

    def _trial_row(self, rec: TrialRecord) -> tuple[Any, ...]:
        """The trial's row for readers, in :class:`TrialRow`'s field order."""
        metric = rec.last_metric
        return (
            str(rec.request_id),
            rec.trial_id,
            self._hparams_text(rec),
            rec.state.value,
            rec.trained,
            rec.targets[0] if rec.targets else None,
            rec.restarts,
            metric if metric is None or math.isfinite(metric) else None,
            self._errors.get(rec.request_id),
            self.seq,
        )

    def _hparams_text(self, rec: TrialRecord) -> str:
        text = self._hparams_texts.get(rec.request_id)
        if text is None:
            text = self._hparams_texts[rec.request_id] = _wire.dumps_fragment(rec.hparams)
        return text

    def _act(self, touched: dict[uuid.UUID, _Touch]) -> None:
        executor = self.executor
        for rid, touch in touched.items():
            rec = self.ledger.trials[rid]
            if touch.is_closed or touch.is_exited:
                executor.close(rid)
            elif rec.targets and (touch.has_new_head or touch.is_validated):
                executor.launch(self._segment(rec))
            elif touch.is_validated:
                executor.pause(rid)

    # -- observing ------------------------------------------------------------------

    def view(self, *, is_finished: bool = False) -> SearchView:
        try:
            # A finished search resumed without loading its method is done.
            progress = (
                float(self.method.progress(self.ledger.searcher_state)) if self.is_method_loaded else 1.0
            )
        except Exception:
            progress = self.ledger.progress
        best_metric, best_id = self._best if self._best else (None, None)
        return SearchView(
            experiment=self.experiment_name,
            method=self.method_name,
            metric=self.metric,
            smaller_is_better=self.smaller_is_better,
            counts={k: v for k, v in self._counts.items() if v},
            best_trial_id=best_id,
            best_metric=best_metric,
            progress=min(1.0, max(0.0, progress)) if math.isfinite(progress) else 0.0,
            recent=tuple(self._recent),
            elapsed=time.monotonic() - self._started,
            events=self.seq,
            is_finished=is_finished or self.ledger.shutdown is not None,
        )

    def _update_observer(self, *, force: bool = False) -> None:
        if self.observer is None:
            return
        now = time.monotonic()
        if force or now - self._last_view >= OBSERVER_INTERVAL:
            self._last_view = now
            try:
                self.observer.on_update(self.view())
            except Exception:
                log.exception("the observer failed; the search goes on")


def drive(experiment_dir: pathlib.Path, executor: Executor, **options: Any) -> Outcome:
    """Drive an experiment with ``executor``; see :func:`searchkit_core._session.drive`."""
    from searchkit_core._session import drive as _drive

    return _drive(experiment_dir, executor, **options)
