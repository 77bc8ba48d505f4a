"""The trial API: the ``ctx`` object a training function ``train(ctx)`` receives.

It mirrors Determined's Core API (``core_context.searcher.operations()``,
``op.report_progress``, ``op.report_completed``, ``core_context.train.report_*``,
``core_context.checkpoint.store_path`` / ``restore_path``,
``core_context.preempt.should_preempt``) so Determined users read it naturally.

The context talks to its runner only through a
:class:`~searchkit_core._executor.TrialChannel`, so the same training function
runs unchanged in a local worker process, a Ray actor, or inline in a test
(:class:`ScriptedChannel`).

Rules the context enforces (a violation raises :class:`TrialAPIError`, and the
trial exits ``ERRORED`` without restarts, because a restart would make the
same mistake again):

- ``op.report_completed(metric)``: ``metric`` is a finite number, or a mapping
  holding the config's ``searcher.metric`` as a finite number; the trial's
  reported length (its latest ``report_progress`` or validation ``steps``, if
  any) must equal ``op.length``; an operation completes once.
- A trial cannot train past its operation: ``report_progress(units)``,
  ``report_*_metrics(steps, ...)`` and checkpoints with ``steps_completed``
  beyond ``op.length`` raise.
- The next operation is only handed out once the current one completed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import pathlib
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    Report,
    TrialChannel,
    ValidationReported,
)
from searchkit_core.errors import UserCodeError

CHECKPOINT_INFO_FILE = ".searchkit-checkpoint.json"
"""Written into every checkpoint directory: who stored it, at which length, with what metadata."""


class TrialAPIError(UserCodeError):
    """Training code used the trial API wrongly; the trial exits ERRORED and is not restarted."""


@attrs.frozen
class TrialInfo:
    """What a runner tells a trial about itself when it starts a segment."""

    request_id: uuid.UUID
    trial_id: int
    hparams: dict[str, Any]
    experiment_dir: pathlib.Path = attrs.field(converter=pathlib.Path)
    metric: str  # the config's searcher.metric
    data: dict[str, Any] = attrs.field(factory=dict)  # the config's ``data:`` mapping
    latest_checkpoint: CheckpointRef | None = None
    restarts: int = 0


def trial_dir(experiment_dir: pathlib.Path | str, trial_id: int) -> pathlib.Path:
    """``<experiment_dir>/trials/<trial_id>``: the trial's log lives here."""
    return pathlib.Path(experiment_dir) / "trials" / str(trial_id)


def trial_log_path(experiment_dir: pathlib.Path | str, trial_id: int) -> pathlib.Path:
    """The trial's log file: everything its logger, prints and tracebacks write, across restarts."""
    return trial_dir(experiment_dir, trial_id) / "trial.log"


def checkpoint_dir(experiment_dir: pathlib.Path | str, checkpoint_uuid: str) -> pathlib.Path:
    """``<experiment_dir>/checkpoints/<uuid>``."""
    return pathlib.Path(experiment_dir) / "checkpoints" / checkpoint_uuid


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise TrialAPIError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TrialAPIError(f"{what} must be a number, got {value!r} ({exc})") from None
    if not math.isfinite(number):
        raise TrialAPIError(f"{what} must be a finite number, got {number}")
    return number


def _steps(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import operator

            value = operator.index(value)  # numpy integers
        except TypeError:
            raise TrialAPIError(f"{what} must be an int, got {type(value).__name__} {value!r}") from None
    if value < 0:
        raise TrialAPIError(f"{what} must not be negative, got {value}")
    return int(value)


def plain_metrics(metrics: Any, what: str = "metrics") -> dict[str, Any]:
    """Metrics as plain JSON values: numbers (numpy/torch scalars become floats), strings, bools, None, nesting."""
    if not isinstance(metrics, Mapping):
        raise TrialAPIError(f"{what} must be a mapping of names to values, got {type(metrics).__name__}")
    return {str(k): _plain(v, f"{what}[{k!r}]") for k, v in metrics.items()}


def _plain(value: Any, what: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN; a diverged loss reads as null
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{what}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "__float__"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
        else:
            return number if math.isfinite(number) else None
    raise TrialAPIError(
        f"{what} must be a number, string, bool, None, list or mapping, got {type(value).__name__}"
    )


class SearcherOperation:
    """Train until the trial's total units trained equal :attr:`length`, then report completion."""

    def __init__(self, context: SearcherContext, length: int, start: int) -> None:
        self._context = context
        self._length = length
        self._start = start
        self._completed = False

    @property
    def length(self) -> int:
        """The absolute target: the trial's total units trained when this operation completes."""
        return self._length

    @property
    def is_completed(self) -> bool:
        return self._completed

    def report_progress(self, length: float) -> None:
        """Tell the runner the trial has trained ``length`` units in total (absolute, like Determined)."""
        self._check_open("report_progress")
        units = _number(length, "report_progress(length)")
        if units > self._length:
            raise TrialAPIError(
                f"report_progress({units:g}) is past the operation's length {self._length}: "
                "a trial cannot train past its operation"
            )
        self._context._units = units
        self._context._channel.report_progress(units)

    def report_completed(self, searcher_metric: Any) -> None:
        """Report the searcher metric at :attr:`length`: a number, or a mapping holding the config's metric."""
        self._check_open("report_completed")
        name = self._context._metric
        if isinstance(searcher_metric, Mapping):
            if name not in searcher_metric:
                raise TrialAPIError(
                    f"report_completed got metrics {sorted(map(str, searcher_metric))} without the searcher "
                    f"metric '{name}' (searcher.metric in the config)"
                )
            value = _number(searcher_metric[name], f"report_completed: searcher metric '{name}'")
        else:
            value = _number(searcher_metric, f"report_completed: searcher metric '{name}'")
        units = self._context._units
        if units is not None and units != self._length:
            raise TrialAPIError(
                f"report_completed for an operation of length {self._length}, but the trial reported "
                f"{units:g} units trained; train to exactly op.length before completing"
            )
        self._completed = True
        self._context._units = float(self._length)
        self._context._channel.report_completed(self._length, value)

    def _check_open(self, what: str) -> None:
        if self._completed:
            raise TrialAPIError(f"{what} on an operation (length {self._length}) that already completed")
        if self._context._current is not self:
            raise TrialAPIError(f"{what} on an operation (length {self._length}) that is no longer current")

    def __repr__(self) -> str:
        return f"SearcherOperation(length={self._length}, completed={self._completed})"


class SearcherContext:
    """``ctx.searcher``: the operations the search method gives this trial."""

    def __init__(self, channel: TrialChannel, metric: str, start_units: int) -> None:
        self._channel = channel
        self._metric = metric
        self._units: float | None = None  # latest length the trial reported in the current operation
        self._trained = start_units
        self._current: SearcherOperation | None = None
        self._started = False

    @property
    def metric(self) -> str:
        """The searcher metric's name (``searcher.metric`` in the config)."""
        return self._metric

    def operations(self) -> Iterator[SearcherOperation]:
        """Yield operations until the method has no more work for this trial or the runner needs its slot.

        Each must be completed (``op.report_completed``) before the next is
        handed out. When the iterator ends, return from the training function:
        the trial is paused (it resumes later from its latest checkpoint) or done.
        """
        if self._started:
            raise TrialAPIError("ctx.searcher.operations() can be iterated only once per trial run")
        self._started = True
        while True:
            length = self._channel.next_length()
            if length is None:
                self._current = None
                return
            op = SearcherOperation(self, length, int(self._trained))
            self._current = op
            self._units = None
            yield op
            if not op.is_completed:
                raise TrialAPIError(
                    f"the operation of length {op.length} was not completed: call op.report_completed(metric) "
                    "before asking for the next operation"
                )
            self._trained = op.length

    def _limit(self) -> int | None:
        return self._current.length if self._current is not None else None

    def _note_steps(self, steps: int, what: str) -> None:
        limit = self._limit()
        if limit is not None and steps > limit:
            raise TrialAPIError(
                f"{what} at {steps} steps is past the operation's length {limit}: a trial cannot train past its operation"
            )


class TrainContext:
    """``ctx.train``: metrics for ``status`` and plots (the searcher sees only ``report_completed``)."""

    def __init__(self, channel: TrialChannel, searcher: SearcherContext) -> None:
        self._channel = channel
        self._searcher = searcher

    def report_training_metrics(self, steps_completed: int, metrics: Mapping[str, Any]) -> None:
        """Record training metrics at ``steps_completed`` total units."""
        steps = _steps(steps_completed, "report_training_metrics(steps_completed)")
        self._searcher._note_steps(steps, "report_training_metrics")
        self._channel.report_metrics("training", steps, plain_metrics(metrics, "training metrics"))

    def report_validation_metrics(self, steps_completed: int, metrics: Mapping[str, Any]) -> None:
        """Record validation metrics at ``steps_completed`` total units."""
        steps = _steps(steps_completed, "report_validation_metrics(steps_completed)")
        self._searcher._note_steps(steps, "report_validation_metrics")
        self._searcher._units = float(steps) if self._searcher._current is not None else self._searcher._units
        self._channel.report_metrics("validation", steps, plain_metrics(metrics, "validation metrics"))


class CheckpointContext:
    """``ctx.checkpoint``: store and restore checkpoint directories under ``<experiment_dir>/checkpoints``."""

    def __init__(
        self, channel: TrialChannel, info: TrialInfo, searcher: SearcherContext, log: logging.Logger
    ) -> None:
        self._channel = channel
        self._info = info
        self._searcher = searcher
        self._log = log
        self._latest = info.latest_checkpoint

    @property
    def latest(self) -> CheckpointRef | None:
        """This trial's latest checkpoint (from an earlier run or this one), or None: start from scratch."""
        return self._latest

    @contextlib.contextmanager
    def store_path(self, metadata: Mapping[str, Any]) -> Iterator[pathlib.Path]:
        """Yield a new, empty checkpoint directory; save the model into it.

        ``metadata`` must hold ``steps_completed`` (the units trained when the
        checkpoint was taken). On a clean exit the checkpoint is reported and
        becomes :attr:`latest`; if the block raises, the directory is removed.
        """
        if not isinstance(metadata, Mapping) or "steps_completed" not in metadata:
            raise TrialAPIError(
                'ctx.checkpoint.store_path(metadata) needs metadata with "steps_completed" (units trained so far)'
            )
        steps = _steps(metadata["steps_completed"], 'checkpoint metadata["steps_completed"]')
        self._searcher._note_steps(steps, "a checkpoint")
        clean = plain_metrics(metadata, "checkpoint metadata")
        checkpoint_uuid = str(uuid.uuid4())
        path = checkpoint_dir(self._info.experiment_dir, checkpoint_uuid)
        path.mkdir(parents=True, exist_ok=False)
        try:
            yield path
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        ref = CheckpointRef(uuid=checkpoint_uuid, steps_completed=steps, metadata=clean)
        info = {
            "format_version": 1,
            "uuid": checkpoint_uuid,
            "request_id": str(self._info.request_id),
            "trial_id": self._info.trial_id,
            "steps_completed": steps,
            "metadata": clean,
        }
        (path / CHECKPOINT_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
        self._latest = ref
        self._channel.report_checkpoint(ref)
        self._log.debug("stored checkpoint %s at %d steps", checkpoint_uuid, steps)

    @contextlib.contextmanager
    def restore_path(self, storage_id: str | CheckpointRef | None = None) -> Iterator[pathlib.Path]:
        """Yield the directory of checkpoint ``storage_id`` (default: :attr:`latest`) to load from."""
        if storage_id is None:
            if self._latest is None:
                raise TrialAPIError(
                    "ctx.checkpoint.restore_path(): this trial has no checkpoint yet (check ctx.checkpoint.latest)"
                )
            storage_id = self._latest.uuid
        if isinstance(storage_id, CheckpointRef):
            storage_id = storage_id.uuid
        path = checkpoint_dir(self._info.experiment_dir, str(storage_id))
        if not path.is_dir():
            raise TrialAPIError(f"checkpoint {storage_id} does not exist ({path})")
        yield path


class PreemptContext:
    """``ctx.preempt``: whether the runner wants the trial to stop (Ctrl-C, a closed trial, a slot needed)."""

    def __init__(self, channel: TrialChannel) -> None:
        self._channel = channel

    def should_preempt(self) -> bool:
        """True: store a checkpoint if useful and return from the training function soon."""
        return bool(self._channel.should_preempt())


class TrialContext:
    """The ``ctx`` a training function gets: hyperparameters, searcher operations, metrics, checkpoints."""

    def __init__(self, info: TrialInfo, channel: TrialChannel, log: logging.Logger | None = None) -> None:
        self.info = info
        self.log = log if log is not None else trial_logger(info.experiment_dir, info.trial_id)
        start = info.latest_checkpoint.steps_completed if info.latest_checkpoint is not None else 0
        self.searcher = SearcherContext(channel, info.metric, start)
        self.train = TrainContext(channel, self.searcher)
        self.checkpoint = CheckpointContext(channel, info, self.searcher, self.log)
        self.preempt = PreemptContext(channel)

    @property
    def hparams(self) -> dict[str, Any]:
        """The trial's hyperparameters (nested mappings as in the config)."""
        return self.info.hparams

    @property
    def trial_id(self) -> int:
        """1-based creation order of the trial in its experiment; names its log directory."""
        return self.info.trial_id

    @property
    def request_id(self) -> uuid.UUID:
        """The id the search method uses for this trial."""
        return self.info.request_id

    @property
    def data(self) -> dict[str, Any]:
        """The config's ``data:`` mapping (paths to data sets and the like)."""
        return self.info.data

    @property
    def experiment_dir(self) -> pathlib.Path:
        return self.info.experiment_dir

    @property
    def restarts(self) -> int:
        """How many times this trial was restarted after a crash."""
        return self.info.restarts


def trial_logger(experiment_dir: pathlib.Path | str, trial_id: int) -> logging.Logger:
    """A logger writing to the trial's log file (created on first use); one per trial per process."""
    logger = logging.getLogger(f"searchkit.trial.{trial_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    path = trial_log_path(experiment_dir, trial_id)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler) and pathlib.Path(handler.baseFilename) == path.resolve():
            return logger
        logger.removeHandler(handler)
        handler.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def close_trial_logger(trial_id: int) -> None:
    """Close the trial's log file handle (a worker runs many trials; file handles must not pile up)."""
    logger = logging.getLogger(f"searchkit.trial.{trial_id}")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class ScriptedChannel:
    """A :class:`TrialChannel` that runs a training function inline with a fixed list of target lengths.

    For testing a training function without a runner: it hands out ``lengths``
    one by one, records every report in :attr:`reports`, and answers
    ``should_preempt`` with ``preempt_after`` (stop asking after that many
    completed operations), see :func:`run_inline`.
    """

    def __init__(
        self, request_id: uuid.UUID, lengths: Sequence[int], preempt_after: int | None = None
    ) -> None:
        self.request_id = request_id
        self._lengths = list(lengths)
        self._preempt_after = preempt_after
        self._completed = 0
        self.reports: list[Report] = []

    def _now(self) -> float:
        import time

        return time.time()

    def next_length(self) -> int | None:
        if self.should_preempt() or not self._lengths:
            return None
        return self._lengths.pop(0)

    def report_progress(self, units: float) -> None:
        self.reports.append(ProgressReported(self.request_id, units, self._now()))

    def report_completed(self, length: int, metric: float) -> None:
        self._completed += 1
        self.reports.append(ValidationReported(self.request_id, length, metric, self._now()))

    def report_metrics(self, group: str, steps: int, metrics: dict[str, Any]) -> None:
        self.reports.append(MetricsReported(self.request_id, group, steps, metrics, self._now()))

    def report_checkpoint(self, checkpoint: CheckpointRef) -> None:
        self.reports.append(CheckpointReported(self.request_id, checkpoint, self._now()))

    def should_preempt(self) -> bool:
        return self._preempt_after is not None and self._completed >= self._preempt_after


def run_inline(
    train: Callable[[TrialContext], Any],
    *,
    experiment_dir: pathlib.Path | str,
    hparams: Mapping[str, Any],
    lengths: Sequence[int],
    metric: str,
    trial_id: int = 1,
    checkpoint: CheckpointRef | None = None,
    data: Mapping[str, Any] | None = None,
    preempt_after: int | None = None,
) -> list[Report]:
    """Run ``train(ctx)`` in this thread with the given target lengths and return what it reported.

    Handy in a training function's own unit tests::

        reports = run_inline(train, experiment_dir=tmp_path, hparams={"lr": 0.1},
                             lengths=[10, 20], metric="validation_loss")
    """
    request_id = uuid.uuid4()
    info = TrialInfo(
        request_id=request_id,
        trial_id=trial_id,
        hparams=dict(hparams),
        experiment_dir=pathlib.Path(experiment_dir),
        metric=metric,
        data=dict(data or {}),
        latest_checkpoint=checkpoint,
    )
    channel = ScriptedChannel(request_id, lengths, preempt_after)
    try:
        train(TrialContext(info, channel))
    finally:
        close_trial_logger(trial_id)
    return channel.reports
