"""searchkit's engine and store beside Optuna and Ray Tune on one synthetic ASHA workload (a benchmark).

Every system runs the same search: ASHA with rungs at 1, 4, 16 and 64 units
(reduction factor 4), hyperparameters ``lr`` (log-uniform in [1e-4, 1]) and
``width`` (int in [8, 64]), and the simulate runner's synthetic learning
curves (seed 1). Trials cost no time, so what is measured is the cost of
deciding and of recording:

- searchkit: the engine + ASHA + the SQLite store, driven by the simulate
  executor (16 workers in virtual time); every event committed to SQLite, in
  batches of up to 512 events (the simulator is volatile: it is rebuilt from the
  store after a crash, so it may hear of decisions before their commit), and
  separately with a commit after every wait, as the local and remote runners do.
- Optuna: ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)`` with
  a ``RandomSampler``, reporting at the same four lengths; in-memory storage and
  ``JournalStorage(JournalFileBackend)``.
- Ray Tune: ``ASHAScheduler(max_t=64, grace_period=1, reduction_factor=4)`` on a
  local Ray the benchmark starts (2 CPUs, loopback), reporting at the same lengths.

Each measurement runs in a fresh subprocess (so peak memory, ``ru_maxrss``, is
its own); ratios are peer wall time / searchkit wall time for the same number
of trials, from the same run. Requirements: benchmarks/requirements.txt.

    .venv/bin/python benchmarks/engine_vs_peers.py                   # the table in docs/benchmarks.md
    .venv/bin/python benchmarks/engine_vs_peers.py --million         # adds the 1M-trial searchkit run
    .venv/bin/python benchmarks/engine_vs_peers.py --sizes 1000 --optuna-sizes 1000 --ray-trials 0
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

BUDGETS = (1, 4, 16, 64)
DIVISOR = 4
SEED = 1
WORKERS = 16


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _curves() -> Any:
    from searchkit_runners.simulate import SyntheticCurves

    return SyntheticCurves(seed=SEED, max_length=BUDGETS[-1])


# -- measurements, each in its own process -------------------------------------------------


def searchkit_config(trials: int) -> dict[str, Any]:
    return {
        "name": f"bench-{trials}",
        "entrypoint": "model_def:train",
        "searcher": {
            "name": "asha",
            "metric": "loss",
            "max_length": {"batches": BUDGETS[-1]},
            "max_trials": trials,
            "num_rungs": len(BUDGETS),
            "divisor": DIVISOR,
            "max_concurrent_trials": WORKERS,
        },
        "hyperparameters": {
            "lr": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0},
            "width": {"type": "int", "minval": 8, "maxval": 64},
        },
        "seed": SEED,
    }


def measure_searchkit(trials: int, directory: str, *, commit_per_wait: bool = False) -> dict[str, Any]:
    from searchkit_core._config import validate_config
    from searchkit_core._session import create_experiment, drive, open_experiment
    from searchkit_core._store import db_path
    from searchkit_runners.simulate import build_executor

    experiment = create_experiment(
        validate_config(searchkit_config(trials)),
        experiment_dir=pathlib.Path(directory),
        model_dir=None,
        runner="simulate",
        runner_options={"workers": WORKERS},
    )
    started = time.perf_counter()
    executor, _ = build_executor(open_experiment(experiment), {"workers": WORKERS})
    if commit_per_wait:
        # As with the local and remote runners, whose executors outlive no crash of the engine:
        # a commit after every wait, and only committed decisions handed out.
        executor.is_volatile = False
    outcome = drive(experiment, executor, poll=0.0)
    wall = time.perf_counter() - started
    peak = _peak_mb()  # before reading anything back
    db = sqlite3.connect(db_path(experiment))
    (created,) = db.execute("SELECT COUNT(*) FROM trials").fetchone()
    db.close()
    assert outcome.status == "completed", outcome
    return {"wall": wall, "events": outcome.events, "trials": created, "peak_mb": peak}


def measure_resume(directory: str) -> dict[str, Any]:
    """Open a finished experiment's store and resume it: recovery, then the engine sees it is done."""
    from searchkit_core._session import drive, open_experiment
    from searchkit_runners.simulate import build_executor

    started = time.perf_counter()
    info = open_experiment(pathlib.Path(directory))
    executor, _ = build_executor(info, {"workers": WORKERS})
    outcome = drive(info.experiment_dir, executor, poll=0.0)
    wall = time.perf_counter() - started
    assert outcome.status == "completed"
    return {"wall": wall, "events": outcome.events, "peak_mb": _peak_mb()}


def measure_optuna(trials: int, storage_kind: str, directory: str) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = _curves()
    storage: Any = None
    if storage_kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(os.path.join(directory, "optuna.log")))
    study = optuna.create_study(
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=SEED),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=BUDGETS[0], reduction_factor=DIVISOR, min_early_stopping_rate=0
        ),
        direction="minimize",
    )
    reports = 0

    def objective(trial: Any) -> float:
        nonlocal reports
        hp = {
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "width": trial.suggest_int("width", 8, 64),
        }
        value = 0.0
        for length in BUDGETS:
            value = curves.metric(trial.number + 1, hp, length)
            trial.report(value, length)
            reports += 1
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - started
    return {"wall": wall, "events": reports, "trials": trials, "peak_mb": _peak_mb()}


def measure_ray(trials: int, directory: str) -> dict[str, Any]:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    curves = _curves()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.2",
        object_store_memory=200 * 1024 * 1024,
        _temp_dir=tempfile.mkdtemp(prefix="rt", dir="/tmp"),
        log_to_driver=False,
    )
    try:
        counter = {"n": 0}

        def trainable(config: dict[str, Any]) -> None:
            hp = {"lr": config["lr"], "width": config["width"]}
            for length in BUDGETS:
                tune.report({"loss": curves.metric(1, hp, length), "length": length})

        scheduler = ASHAScheduler(
            time_attr="length",
            metric="loss",
            mode="min",
            max_t=BUDGETS[-1],
            grace_period=BUDGETS[0],
            reduction_factor=DIVISOR,
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"lr": tune.loguniform(1e-4, 1.0), "width": tune.randint(8, 65)},
            tune_config=tune.TuneConfig(num_samples=trials, scheduler=scheduler, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=directory, name="bench", verbose=0),
        )
        started = time.perf_counter()
        results = tuner.fit()
        wall = time.perf_counter() - started
        del counter
        return {"wall": wall, "events": 0, "trials": len(results), "peak_mb": _peak_mb()}
    finally:
        ray.shutdown()


# -- the parent: run each measurement in a subprocess, print the table ------------------------------


def _sub(*args: str, timeout: float) -> dict[str, Any] | None:
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--measure", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        print(f"  {' '.join(args)}: over {timeout:.0f} s, left out", file=sys.stderr, flush=True)
        return None
    if done.returncode != 0:
        print(f"  {' '.join(args)} failed:\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {' '.join(args[:2])}: {result['wall']:.3f} s", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--per-wait-sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--optuna-sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--journal-sizes", type=int, nargs="*", default=[1000])
    parser.add_argument("--ray-trials", type=int, default=1000, help="0: no Ray Tune")
    parser.add_argument("--million", action="store_true", help="also run searchkit with 1,000,000 trials")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        kind, *rest = args.measure
        if kind in ("searchkit", "searchkit-per-wait"):
            result = measure_searchkit(int(rest[0]), rest[1], commit_per_wait=kind == "searchkit-per-wait")
        elif kind == "resume":
            result = measure_resume(rest[0])
        elif kind in ("optuna-memory", "optuna-journal"):
            result = measure_optuna(int(rest[0]), kind.split("-")[1], rest[1])
        elif kind == "ray":
            result = measure_ray(int(rest[0]), rest[1])
        else:
            raise SystemExit(f"unknown measurement {kind}")
        print(json.dumps(result))
        return

    rows: list[dict[str, Any]] = []
    ours: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="sk-bench-") as tmp:
        sizes = sorted(set(args.sizes) | ({1_000_000} if args.million else set()))
        resume_dir = None
        for n in sizes:
            directory = os.path.join(tmp, f"sk-{n}")
            r = _sub("searchkit", str(n), directory, timeout=args.timeout)
            if r:
                ours[n] = r["wall"]
                rows.append({"system": "searchkit engine + ASHA + SQLite", "n": n, **r})
                if n == 100_000:
                    resume_dir = directory
        for n in args.per_wait_sizes:
            directory = os.path.join(tmp, f"sk-per-wait-{n}")
            r = _sub("searchkit-per-wait", str(n), directory, timeout=args.timeout)
            if r:
                rows.append({"system": "searchkit, a commit after every wait", "n": n, **r})
        if resume_dir is not None:
            r = _sub("resume", resume_dir, timeout=args.timeout)
            if r:
                rows.append({"system": "searchkit: open + resume a finished store", "n": 100_000, **r})
        for n in args.optuna_sizes:
            r = _sub("optuna-memory", str(n), tmp, timeout=args.timeout)
            if r:
                rows.append({"system": "Optuna SHA pruner, in-memory", "n": n, **r})
        for n in args.journal_sizes:
            directory = os.path.join(tmp, f"optuna-journal-{n}")
            os.makedirs(directory)
            r = _sub("optuna-journal", str(n), directory, timeout=args.timeout)
            if r:
                rows.append({"system": "Optuna SHA pruner, JournalFileStorage", "n": n, **r})
        if args.ray_trials:
            directory = os.path.join(tmp, "ray")
            r = _sub("ray", str(args.ray_trials), directory, timeout=args.timeout)
            if r:
                rows.append(
                    {"system": "Ray Tune ASHAScheduler (local Ray, 2 CPUs)", "n": args.ray_trials, **r}
                )

    print()
    print(
        "| system | trials | wall s | trials/s | events/s | peak RSS MB | wall / searchkit wall |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for row in rows:
        n, wall = row["n"], row["wall"]
        is_ours = row["system"].startswith("searchkit engine")
        has_events = is_ours or "every wait" in row["system"]
        events = f"{row['events'] / wall:,.0f}" if has_events and wall > 0 else "-"
        ratio = (
            "1"
            if is_ours
            else (f"{wall / ours[n]:.1f}x" if n in ours and "resume" not in row["system"] else "-")
        )
        rate = f"{n / wall:,.0f}" if "resume" not in row["system"] else "-"
        print(
            f"| {row['system']} | {n:,} | {wall:.3f} | {rate} | {events} | {row['peak_mb']:.0f} | {ratio} |"
        )
    print()
    print(
        f"workload: ASHA rungs {BUDGETS}, reduction factor {DIVISOR}, synthetic curves seed {SEED}, "
        f"{WORKERS} virtual workers; {os.cpu_count()} CPUs; python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
