"""One fixed example of every core wire type: the golden files under golden/ are these, as format 1.

To regenerate after an intended, versioned change of the format (never for format 1
once released): ``.venv/bin/python tests/wire/wire_examples.py --write``.
"""

from __future__ import annotations

import math
import pathlib
import sys
import uuid

from searchkit_core import _wire
from searchkit_core._config import ExperimentConfig, Resources
from searchkit_core._events import (
    SearchStarted,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    ValidationCompleted,
)
from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    Segment,
    TrialCrashed,
    TrialExited,
    ValidationReported,
)
from searchkit_core._ledger import TrialRecord
from searchkit_core._operations import Close, Create, ExitedReason, Progress, Shutdown, ValidateAfter
from searchkit_core._space import SearchSpace
from searchkit_core._state import SearcherState

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"

A = uuid.UUID("0b1e7a5c-3f29-4d6e-9a51-2c8f0d4b7e13")
B = uuid.UUID("7d2c9e41-8b03-4f5a-a6c7-e19f2b4d8a60")
CHECKPOINT = CheckpointRef(
    "5f0e6c2a-1d7b-4e93-8c4f-a2b6d9e0f317", 250, {"steps_completed": 250, "framework": "torch"}
)
SPACE = SearchSpace.from_config(
    {
        "global_batch_size": 64,
        "learning_rate": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0},
        "n_filters1": {"type": "int", "minval": 8, "maxval": 64, "count": 4},
        "dropout1": {"type": "double", "minval": 0.2, "maxval": 0.8},
        "activation": {"type": "categorical", "vals": ["relu", "tanh"]},
        "optimizer": {"name": "sgd", "momentum": {"type": "double", "minval": 0.0, "maxval": 0.99}},
    }
)


def _searcher_state() -> SearcherState:
    state = SearcherState()
    state._trials_created.update({A, B})
    state._trials_closed.add(B)
    state._failures.add(B)
    state._trial_progress.update({A: 250.0, B: 40.0})
    return state


def _trial_record() -> TrialRecord:
    record = TrialRecord(A, 1, {"lr": 0.001, "layers": [64, 32]}, checkpoint=CHECKPOINT, trained=250)
    record.targets.extend([1000, 4000])
    record.restarts = 1
    record.last_metric = 0.25
    return record


EXAMPLES: list[object] = [
    Create(A, {"learning_rate": 0.001, "activation": "relu", "optimizer": {"name": "sgd"}}, CHECKPOINT),
    ValidateAfter(A, 1000),
    Close(A),
    Shutdown(cancel=True, failure=False),
    Progress(0.375),
    SearchStarted(),
    TrialCreated(A),
    ValidationCompleted(A, 0.0731, 1000),
    TrialClosed(A),
    TrialExitedEarly(B, ExitedReason.INVALID_HP),
    CHECKPOINT,
    Segment(A, 1, {"learning_rate": 0.001}, 1000, CHECKPOINT, 0, 12.5),
    ValidationReported(A, 1000, 0.0731, 98.25),
    CheckpointReported(A, CHECKPOINT, 97.5),
    ProgressReported(A, 640.0, 60.0),
    TrialCrashed(B, "RuntimeError: CUDA out of memory", 31.0),
    TrialExited(B, ExitedReason.USER_CANCELED, "stopped by the user", 32.0),
    MetricsReported(
        A, "validation", 1000, {"validation_loss": 0.0731, "accuracy": 0.97, "grad_norm": math.inf}, 98.0
    ),
    _searcher_state(),
    _trial_record(),
    SPACE,
    Resources(slots_per_trial=1, cpus_per_trial=2.0),
    ExperimentConfig(
        name="mnist-asha",
        entrypoint="model_def:train",
        searcher={
            "name": "asha",
            "metric": "validation_loss",
            "smaller_is_better": True,
            "max_length": {"batches": 1000},
            "max_trials": 16,
        },
        hyperparameters=SPACE,
        resources=Resources(),
        max_restarts=3,
        data={"url": "file:///data/mnist", "subset": 8000},
        seed=1234,
        trial_timeout=600.0,
        description="the seed's MNIST search",
    ),
]


def golden_path(obj: object) -> pathlib.Path:
    return GOLDEN_DIR / f"{_wire.type_tag(type(obj))}.json"


def golden_text(obj: object) -> str:
    return _wire.to_json(obj, indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: wire_examples.py --write   (rewrites every golden file)")
    GOLDEN_DIR.mkdir(exist_ok=True)
    for example in EXAMPLES:
        golden_path(example).write_text(golden_text(example))
        print("wrote", golden_path(example))
