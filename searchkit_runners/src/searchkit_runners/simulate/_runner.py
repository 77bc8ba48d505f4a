"""The ``simulate`` runner: a whole search in virtual time, through the real engine and store.

``searchkit run config.yaml --runner simulate`` previews a search: it runs the
method against learning curves instead of training code and ends with a
summary of how many trials reached each length, how many units of training
that cost, and how long it takes in virtual seconds on W workers.

Runner options (``--name=value`` on the command line, recorded for resume):

``workers``           trials that train at once (default: ``searcher.max_concurrent_trials``
                      when positive, else 16)
``seconds_per_unit``  virtual seconds per unit of the synthetic curves (default 1)
``curves``            a CSV table of curves instead of the synthetic family
``noise``             standard deviation of the synthetic curves' noise (default 0)
``vary_cost``         the synthetic cost per unit depends on the hyperparameters (default false)
``crash_fraction``    fraction of segments that crash part-way (default 0)
``quiet``             no live display (the summary is still printed)
"""

from __future__ import annotations

import math
import pathlib
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import attrs

from searchkit_core._display import format_duration, make_display
from searchkit_core._session import ExperimentInfo, drive, open_experiment
from searchkit_core._store import Store, db_path
from searchkit_core.errors import ConfigError
from searchkit_core.hookspecs import RunRequest
from searchkit_runners.simulate._curves import Curves, SyntheticCurves, TableCurves
from searchkit_runners.simulate._executor import SIMULATE_GROUP, SimulateExecutor

DEFAULT_WORKERS = 16
KNOWN_OPTIONS = (
    "workers",
    "seconds_per_unit",
    "curves",
    "noise",
    "vary_cost",
    "crash_fraction",
    "quiet",
    "plain",
)


def _number(options: Mapping[str, Any], key: str, default: float, *, low: float, strict: bool) -> float:
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"runner option {key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < low or (strict and number == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ConfigError(f"runner option {key} must be a number {bound}, got {value!r}")
    return number


def _flag(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0", ""):
        return value.lower() in ("true", "yes", "1")
    raise ConfigError(f"runner option {key} must be true or false, got {value!r}")


def default_workers(searcher: Mapping[str, Any]) -> int:
    """``searcher.max_concurrent_trials`` when it is a positive integer, else :data:`DEFAULT_WORKERS`."""
    value = searcher.get("max_concurrent_trials")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_WORKERS


def check_options(options: Mapping[str, Any]) -> tuple[int | None, float, float, float]:
    """Check the runner options that need no experiment; ``searchkit run`` calls this first (preflight).

    Returns (workers or None, seconds_per_unit, noise, crash_fraction); raises
    :class:`ConfigError` naming the option.
    """
    unknown = sorted(set(options) - set(KNOWN_OPTIONS) - {"address", "storage_path", "trial_timeout"})
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the simulate runner: {', '.join(unknown)} "
            f"(known: {', '.join(KNOWN_OPTIONS)})"
        )
    workers: int | None = None
    workers_value = options.get("workers")
    if workers_value is not None:
        workers = int(_number(options, "workers", 1, low=1, strict=False))
        if workers != float(workers_value):
            raise ConfigError(f"runner option workers must be a positive integer, got {workers_value!r}")
    seconds = _number(options, "seconds_per_unit", 1.0, low=0.0, strict=True)
    noise = _number(options, "noise", 0.0, low=0.0, strict=False)
    crash_fraction = _number(options, "crash_fraction", 0.0, low=0.0, strict=False)
    if crash_fraction >= 1.0:
        raise ConfigError(f"runner option crash_fraction must be below 1, got {crash_fraction!r}")
    for flag in ("vary_cost", "quiet", "plain"):
        _flag(options, flag)
    return workers, seconds, noise, crash_fraction


@attrs.frozen
class SimulateSettings:
    """The simulate runner's options, checked."""

    workers: int
    curves: Curves
    crash_fraction: float
    is_quiet: bool
    is_plain: bool

    @classmethod
    def from_options(cls, options: Mapping[str, Any], info: ExperimentInfo) -> SimulateSettings:
        workers_option, seconds, noise, crash_fraction = check_options(options)
        config = info.config
        workers = workers_option if workers_option is not None else default_workers(config.searcher)
        curves: Curves
        table = options.get("curves")
        if table:
            path = pathlib.Path(str(table))
            if not path.is_absolute() and info.model_dir is not None and (info.model_dir / path).is_file():
                path = info.model_dir / path
            curves = TableCurves.from_csv(path)
        else:
            curves = SyntheticCurves(
                seed=config.seed,
                max_length=config.max_length or 100,
                noise=noise,
                base_seconds_per_unit=seconds,
                vary_cost=_flag(options, "vary_cost"),
            )
        return cls(
            workers=workers,
            curves=curves,
            crash_fraction=crash_fraction,
            is_quiet=_flag(options, "quiet"),
            is_plain=_flag(options, "plain"),
        )


def build_executor(
    info: ExperimentInfo, options: Mapping[str, Any]
) -> tuple[SimulateExecutor, SimulateSettings]:
    """The executor for an experiment, restored from its store when it already ran."""
    settings = SimulateSettings.from_options(options, info)
    executor = SimulateExecutor(
        settings.curves,
        workers=settings.workers,
        metric=info.config.metric,
        seed=info.config.seed,
        crash_fraction=settings.crash_fraction,
    )
    store = Store.open(db_path(info.experiment_dir), is_readonly=True)
    try:
        executor.restore(store)
    finally:
        store.close()
    return executor, settings


#: Written into the experiment directory after a simulated search: every segment of every trial.
TIMELINE_FILE = "simulation-timeline.csv"
#: Trials whose segments the summary prints (all are in TIMELINE_FILE).
TIMELINE_LINES = 20


@attrs.frozen
class SimulationSummary:
    """What a simulated search cost, read from its store."""

    trials: int
    reached: dict[int, int]  # length -> trials that reached at least that length
    units: int  # units trained in all, crashed work included
    crashes: int
    virtual_seconds: float  # from the start to the last event
    busy_seconds: float  # sum over segments of their virtual duration
    workers: int
    best_trial_id: int | None
    best_metric: float | None
    best_length: int | None
    states: dict[str, int]
    #: When each trial ran: trial id -> its segments as (virtual start, virtual end, length reached).
    timeline: dict[int, list[tuple[float, float, int]]] = attrs.field(factory=dict)

    @classmethod
    def read(
        cls, experiment_dir: pathlib.Path, *, workers: int, smaller_is_better: bool
    ) -> SimulationSummary:
        store = Store.open(db_path(experiment_dir), is_readonly=True)
        try:
            trials = store.trials()
            lengths: dict[str, int] = {}
            units = 0
            busy = 0.0
            crashes = 0
            best: tuple[float, int, int] | None = None
            ids = {t.request_id: t.trial_id for t in trials}
            timeline: dict[int, list[tuple[float, float, int]]] = {}
            for rid, group, steps, metrics, _time in store.metrics():
                if group == "validation" and "segment_start" in metrics:
                    lengths[rid] = max(lengths.get(rid, 0), steps)
                    units += int(metrics.get("units", 0))
                    start, end = float(metrics["segment_start"]), float(metrics["segment_end"])
                    busy += end - start
                    timeline.setdefault(ids[rid], []).append((start, end, steps))
                elif group == SIMULATE_GROUP and "crashed" in metrics:
                    crashes += 1
                    units += int(metrics.get("units", 0))
                    busy += float(metrics["crashed"]) - float(metrics["started"])
            for t in trials:
                if t.last_metric is None:
                    continue
                key = t.last_metric if smaller_is_better else -t.last_metric
                if best is None or key < best[0]:
                    best = (key, t.trial_id, t.trained)
            virtual = store.last_journal_time()
        finally:
            store.close()
        reached: dict[int, int] = {}
        for length in sorted(set(lengths.values())):
            reached[length] = sum(1 for v in lengths.values() if v >= length)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state] = states.get(t.state, 0) + 1
        del ids
        for segments in timeline.values():
            segments.sort()
        return cls(
            trials=len(trials),
            reached=reached,
            units=units,
            crashes=crashes,
            virtual_seconds=virtual,
            busy_seconds=busy,
            workers=workers,
            best_trial_id=best[1] if best else None,
            best_metric=(best[0] if smaller_is_better else -best[0]) if best else None,
            best_length=best[2] if best else None,
            states=states,
            timeline=dict(sorted(timeline.items())),
        )

    def write_timeline(self, path: pathlib.Path) -> None:
        """Every segment of every trial as CSV: trial_id, start, end (virtual seconds), length."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("trial_id,start_seconds,end_seconds,length\n")
            for trial_id, segments in self.timeline.items():
                for start, end, length in segments:
                    f.write(f"{trial_id},{start:.6g},{end:.6g},{length}\n")

    def timeline_lines(self, unit: str = "units", most: int = TIMELINE_LINES) -> list[str]:
        """When the first ``most`` trials ran, one line each: ``trial 3: 0-40 s (40), 120-240 s (160)``."""
        out = []
        for trial_id, segments in list(self.timeline.items())[:most]:
            spans = ", ".join(f"{start:.6g}-{end:.6g} s ({length})" for start, end, length in segments)
            out.append(f"  trial {trial_id}: {spans}")
        if out:
            out.insert(0, f"when each trial ran (virtual seconds; {unit} reached in brackets):")
        if len(self.timeline) > most:
            out.append(f"  ... and {len(self.timeline) - most} more trials")
        return out

    def lines(self, unit: str = "units") -> list[str]:
        out = [
            f"simulated search: {self.trials} trials ({', '.join(f'{n} {s}' for s, n in sorted(self.states.items()))})"
        ]
        for length, count in self.reached.items():
            out.append(f"  reached {length} {unit}: {count} trials")
        utilization = (
            self.busy_seconds / (self.virtual_seconds * self.workers) if self.virtual_seconds > 0 else 0.0
        )
        out.append(
            f"training: {self.units} {unit} in total, {self.busy_seconds:.6g} worker-seconds"
            + (f", {self.crashes} crashed segments" if self.crashes else "")
        )
        out.append(
            f"virtual wall time with {self.workers} workers: {self.virtual_seconds:.6g} s "
            f"({format_duration(self.virtual_seconds)}), {utilization:.0%} of worker time used"
        )
        if self.best_trial_id is not None:
            out.append(
                f"best: trial {self.best_trial_id}, metric {self.best_metric:.6g} at {self.best_length} {unit}"
            )
        return out


class SimulateRunner:
    """Runs a search against learning curves in virtual time (``--runner simulate``)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out

    def run(self, request: RunRequest) -> int:
        from searchkit_runners.local._runner import EXIT_STOPPED, StopSignals

        info = open_experiment(request.experiment_dir)
        executor, settings = build_executor(info, request.options)
        out = self.out or sys.stdout
        stop = StopSignals()
        if settings.is_quiet:
            with stop:
                outcome = drive(info.experiment_dir, executor, should_stop=stop.is_set, poll=0.0)
        else:
            display = make_display(force_plain=settings.is_plain)
            with stop, display:
                outcome = drive(
                    info.experiment_dir, executor, observer=display, should_stop=stop.is_set, poll=0.0
                )
        summary = SimulationSummary.read(
            info.experiment_dir, workers=settings.workers, smaller_is_better=info.config.smaller_is_better
        )
        timeline = info.experiment_dir / TIMELINE_FILE
        summary.write_timeline(timeline)
        print(f"simulate: {settings.curves.describe()}, {settings.workers} workers", file=out)
        for line in [*summary.timeline_lines(info.config.unit), *summary.lines(info.config.unit)]:
            print(line, file=out)
        print(f"every segment of every trial: {TIMELINE_FILE} in the experiment directory", file=out)
        out.flush()
        if outcome.status == "stopped" and stop.received is not None:
            return EXIT_STOPPED.get(stop.received, 130)
        return 0
