"""Run simulated searches in this process, through the real engine, store and plugin registry."""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import engine_methods

from searchkit_core._config import validate_config
from searchkit_core._engine import Outcome
from searchkit_core._session import create_experiment, drive, open_experiment
from searchkit_runners.simulate import build_executor

SPACE = {
    "lr": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0},
    "width": {"type": "int", "minval": 8, "maxval": 64},
}


def config(searcher: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"engine-{searcher['name']}",
        "entrypoint": "model_def:train",
        "searcher": {"metric": "loss", **searcher},
        "hyperparameters": SPACE,
        "seed": 5,
        **extra,
    }


def asha(max_trials: int = 40, **extra: Any) -> dict[str, Any]:
    return config(
        {
            "name": "asha",
            "max_length": {"batches": 27},
            "max_trials": max_trials,
            "num_rungs": 3,
            "divisor": 3,
            "max_concurrent_trials": 6,
        },
        **extra,
    )


def flaky(max_trials: int = 20) -> dict[str, Any]:
    return config(
        {"name": "flaky", "max_length": {"batches": 16}, "max_trials": max_trials, "max_concurrent_trials": 3}
    )


def create(
    experiment_dir: pathlib.Path, raw_config: dict[str, Any], options: dict[str, Any] | None = None
) -> pathlib.Path:
    engine_methods.register_into_default_registry()
    return create_experiment(
        validate_config(raw_config),
        experiment_dir=experiment_dir,
        model_dir=None,
        runner="simulate",
        runner_options=options or {},
    )


def run(experiment_dir: pathlib.Path, options: dict[str, Any] | None = None) -> Outcome:
    """Drive (or resume) an experiment with the simulate executor, as the runner does."""
    engine_methods.register_into_default_registry()
    info = open_experiment(experiment_dir)
    executor, _ = build_executor(info, options or {})
    return drive(experiment_dir, executor, poll=0.0)


def fingerprint(experiment_dir: pathlib.Path) -> dict[str, str]:
    """Hashes of the store's database and write-ahead log, to prove nothing was written.

    SQLite may create an empty ``-wal`` and a ``-shm`` index beside a database it
    opens; those hold no data, so a missing log counts as an empty one and the
    shared-memory index is left out.
    """
    out = {}
    for name in ("searchkit.db", "searchkit.db-wal"):
        path = experiment_dir / name
        out[name] = hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()
    return out
