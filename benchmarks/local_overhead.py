"""How much of the local runner's worker time goes to training: dispatch latency and per-segment overhead.

Usage::

    .venv/bin/python benchmarks/local_overhead.py [--segments 150] [--segment-seconds 0.2] [--workers 2]
                                                 [--torch]

Each segment of the benchmark's training function sleeps ``--segment-seconds``
(sleeping, not computing, so the numbers measure the runner and not how busy
the machine's cores are), then reports validation metrics, stores a checkpoint
and completes. Times are taken inside the worker: ``t_start`` when the
operation is handed to the training function, ``t_end`` when its training
ends; everything between one segment's ``t_end`` and the next ``t_start`` on
the same worker is overhead (metrics, checkpoint, report, the engine's
decision and SQLite commit, the message to the worker, and for a resumed trial
the start of a new run of ``train()`` from its checkpoint).

Scenarios, each with the real engine, store and worker processes:

- ``in place``: every validation is answered by the next operation of the same
  trial, which continues in its process (``next_length()`` returns).
- ``resume``: every validation pauses the trial and promotes another, paused
  one, which starts on the freed worker from its checkpoint (the worst case: no
  segment continues in place).
- ``executor only``: the resume scenario driven without the engine, to separate
  the executor's share of the latency from the engine's (commit) share.

``--torch`` adds a measurement of a worker's start-up with ``import torch`` in
the user's module: what a cold process per segment would pay every time and a
warm worker pays once.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import pathlib
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from typing import Any

from searchkit_core._config import load_config
from searchkit_core._engine import Engine
from searchkit_core._executor import Executor, Segment, ValidationReported
from searchkit_core._method import SearchMethod
from searchkit_core._operations import Close, Create, Operation, Shutdown, ValidateAfter
from searchkit_core._session import create_experiment
from searchkit_core._state import SearcherState
from searchkit_core._store import Store, db_path
from searchkit_runners.local import LocalExecutor

TRAIN_SOURCE = """
import os
import pathlib
import time


def train(ctx):
    seconds = float(ctx.hparams["segment_seconds"])
    latest = ctx.checkpoint.latest
    trained = 0
    if latest is not None:
        with ctx.checkpoint.restore_path(latest.uuid) as path:
            trained = int((pathlib.Path(path) / "state").read_text())
    for op in ctx.searcher.operations():
        t_start = time.time()
        time.sleep(seconds)
        trained = op.length
        op.report_progress(trained)
        t_end = time.time()
        ctx.train.report_validation_metrics(trained, {"t_start": t_start, "t_end": t_end, "pid": os.getpid()})
        with ctx.checkpoint.store_path({"steps_completed": trained}) as path:
            (pathlib.Path(path) / "state").write_text(str(trained))
        op.report_completed(1.0 / trained)
"""

TORCH_SOURCE = """
import torch  # noqa: F401 - the import is what is measured


def train(ctx):
    pass
"""

CONFIG = """
name: local-overhead
entrypoint: bench:train
searcher: {name: benchmark, metric: loss, smaller_is_better: true, max_length: {batches: 1000}}
hyperparameters: {}
max_restarts: 0
"""


class Benchmark(SearchMethod):
    """``trials`` trials, ``segments`` segments in all, one unit each; ``resume``: promote another trial each time."""

    replayable = True

    def __init__(self, trials: int, segments: int, workers: int, seconds: float, resume: bool) -> None:
        self.trials, self.segments, self.workers, self.seconds, self.resume = (
            trials,
            segments,
            workers,
            seconds,
            resume,
        )
        self.ids = [uuid.UUID(int=i + 1) for i in range(trials)]
        self.trained = dict.fromkeys(self.ids, 0)
        self.waiting: collections.deque[uuid.UUID] = collections.deque(self.ids[workers:])
        self.issued = 0
        self.running = 0

    def _next(self, rid: uuid.UUID) -> list[Operation]:
        self.issued += 1
        self.running += 1
        return [ValidateAfter(rid, self.trained[rid] + 1)]

    def initial_operations(self, searcher_state: SearcherState) -> list[Operation]:
        ops: list[Operation] = [Create(rid, {"segment_seconds": self.seconds}) for rid in self.ids]
        for rid in self.ids[: self.workers]:
            ops += self._next(rid)
        return ops

    def on_trial_created(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return []

    def on_validation_completed(
        self, searcher_state: SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[Operation]:
        self.running -= 1
        self.trained[request_id] = train_length
        if self.issued < self.segments:
            if not self.resume:
                return self._next(request_id)
            self.waiting.append(request_id)
            return self._next(self.waiting.popleft())
        if self.running == 0:
            return [*(Close(rid) for rid in self.ids), Shutdown()]
        return []

    def on_trial_closed(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        return []

    def on_trial_exited_early(
        self, searcher_state: SearcherState, request_id: uuid.UUID, exited_reason: Any
    ) -> list[Operation]:
        raise RuntimeError(f"a benchmark trial failed: {exited_reason}")

    def progress(self, searcher_state: SearcherState) -> float:
        return self.issued / self.segments


def summarize(spans: list[dict[str, float]], workers: int) -> dict[str, Any]:
    """Utilisation, and the gaps between consecutive segments in each worker process."""
    by_worker: dict[float, list[dict[str, float]]] = collections.defaultdict(list)
    for span in spans:
        by_worker[span["pid"]].append(span)
    gaps: list[float] = []
    for worker_spans in by_worker.values():
        worker_spans.sort(key=lambda s: s["t_start"])
        gaps += [b["t_start"] - a["t_end"] for a, b in itertools.pairwise(worker_spans)]
    gaps.sort()
    trained = sum(s["t_end"] - s["t_start"] for s in spans)
    window = max(s["t_end"] for s in spans) - min(s["t_start"] for s in spans)
    return {
        "segments": len(spans),
        "training_seconds": trained,
        "window_seconds": window,
        "utilisation": trained / (workers * window),
        "gap_median_ms": 1000 * statistics.median(gaps),
        "gap_p95_ms": 1000 * gaps[int(0.95 * (len(gaps) - 1))],
        "gap_max_ms": 1000 * gaps[-1],
    }


def write_model(root: pathlib.Path) -> pathlib.Path:
    """The model directory ``root/model`` holding the benchmark's training function (``bench:train``)."""
    model = root / "model"
    model.mkdir()
    (model / "bench.py").write_text(textwrap.dedent(TRAIN_SOURCE))
    return model


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a result depends on: the benchmark's arguments and the machine."""
    return {
        "segments": args.segments,
        "segment_seconds": args.segment_seconds,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def create_benchmark_experiment(
    root: pathlib.Path, model: pathlib.Path, name: str, runner: str
) -> pathlib.Path:
    """A fresh experiment directory ``root/name`` for the benchmark's search method."""
    config_path = root / f"{name}.yaml"
    config_path.write_text(CONFIG)
    return create_experiment(
        load_config(config_path), experiment_dir=root / name, model_dir=model, runner=runner
    )


def drive_benchmark(
    experiment: pathlib.Path, executor: Executor, args: argparse.Namespace, *, resume: bool
) -> tuple[dict[str, Any], float]:
    """Run the :class:`Benchmark` search through the engine on ``executor`` (then shut it down).

    Returns the :func:`summarize` of its validation spans and the wall seconds of the run.
    """
    method = Benchmark(args.workers * 4, args.segments, args.workers, args.segment_seconds, resume)
    store = Store.open(db_path(experiment))
    started = time.monotonic()
    try:
        Engine(store, method, executor, method_name="benchmark", max_restarts=0, metric="loss").run()
    finally:
        store.close()
        executor.shutdown(cancel=True)
    wall = time.monotonic() - started
    store = Store.open(db_path(experiment), is_readonly=True)
    spans = [m for _, group, _, m, _ in store.metrics() if group == "validation"]
    store.close()
    return summarize(spans, args.workers), wall


def run_engine(
    root: pathlib.Path, model: pathlib.Path, args: argparse.Namespace, *, resume: bool
) -> dict[str, Any]:
    experiment = create_benchmark_experiment(root, model, "resume" if resume else "inplace", "local")
    executor = LocalExecutor(
        experiment, entrypoint="bench:train", model_dir=model, metric="loss", workers=args.workers
    )
    result, wall = drive_benchmark(experiment, executor, args, resume=resume)
    result["wall_seconds_including_worker_startup"] = wall
    result["worker_startup_seconds"] = executor.startup_seconds
    return result


def run_executor_only(root: pathlib.Path, model: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    """The resume scenario driven directly: no engine, no SQLite."""
    executor = LocalExecutor(
        root / "direct", entrypoint="bench:train", model_dir=model, metric="loss", workers=args.workers
    )
    trials = [uuid.UUID(int=i + 1) for i in range(args.workers * 4)]
    trained = dict.fromkeys(trials, 0)
    checkpoints: dict[uuid.UUID, Any] = {}
    waiting = collections.deque(trials[args.workers :])
    spans: list[dict[str, float]] = []
    ids = {rid: i + 1 for i, rid in enumerate(trials)}

    def launch(rid: uuid.UUID) -> None:
        executor.launch(
            Segment(
                rid,
                ids[rid],
                {"segment_seconds": args.segment_seconds},
                trained[rid] + 1,
                checkpoints.get(rid),
                0,
                0.0,
            )
        )

    issued = 0
    for rid in trials[: args.workers]:
        launch(rid)
        issued += 1
    running = args.workers
    try:
        while running:
            for report in executor.wait(1.0):
                if type(report).__name__ == "CheckpointReported":
                    checkpoints[report.request_id] = report.checkpoint  # type: ignore[union-attr]
                elif type(report).__name__ == "MetricsReported":
                    spans.append(report.metrics)  # type: ignore[union-attr]
                elif isinstance(report, ValidationReported):
                    running -= 1
                    trained[report.request_id] = report.length
                    executor.pause(report.request_id)
                    if issued < args.segments:
                        waiting.append(report.request_id)
                        launch(waiting.popleft())
                        issued += 1
                        running += 1
                elif type(report).__name__ in ("TrialCrashed", "TrialExited"):
                    raise RuntimeError(f"a benchmark trial failed: {report}")
    finally:
        executor.shutdown(cancel=True)
    return summarize(spans, args.workers)


def torch_startup(root: pathlib.Path, model: pathlib.Path) -> dict[str, Any]:
    """A worker's start-up when the user's module imports torch, against one that does not."""
    (model / "withtorch.py").write_text(TORCH_SOURCE)
    results = {}
    for entrypoint in ("bench:train", "withtorch:train"):
        executor = LocalExecutor(
            root / f"startup-{entrypoint.split(':')[0]}",
            entrypoint=entrypoint,
            model_dir=model,
            metric="loss",
            workers=1,
        )
        try:
            rid = uuid.uuid4()
            executor.launch(Segment(rid, 1, {"segment_seconds": 0.0}, 1, None, 0, 0.0))
            end = time.monotonic() + 120
            while not executor.startup_seconds and time.monotonic() < end:
                executor.wait(0.2)
            results[entrypoint] = executor.startup_seconds[0]
        finally:
            executor.shutdown(cancel=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=150)
    parser.add_argument("--segment-seconds", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--torch", action="store_true", help="also measure a worker start-up that imports torch"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="searchkit-bench-") as tmp:
        root = pathlib.Path(tmp)
        model = write_model(root)
        results: dict[str, Any] = {
            "settings": settings(args),
            "in place (engine)": run_engine(root, model, args, resume=False),
            "resume (engine)": run_engine(root, model, args, resume=True),
            "resume (executor only)": run_executor_only(root, model, args),
        }
        if args.torch:
            results["worker start-up seconds"] = torch_startup(root, model)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"settings: {results.pop('settings')}")
    for name, result in results.items():
        if name == "worker start-up seconds":
            print(f"{name}: " + ", ".join(f"{k}: {v:.2f} s" for k, v in result.items()))
            continue
        print(
            f"{name}: utilisation {result['utilisation'] * 100:.1f}% over {result['segments']} segments; "
            f"gap between segments median {result['gap_median_ms']:.1f} ms, p95 {result['gap_p95_ms']:.1f} ms, "
            f"max {result['gap_max_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
