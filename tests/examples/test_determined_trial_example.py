"""A Determined PyTorchTrial (examples/determined_trial) as a searchkit trial: entrypoint model_def:MNistTrial."""

from __future__ import annotations

import pathlib
import re
import time
from typing import Any

import determined as det
import pytest
from determined import pytorch
from examples_helpers import (
    EXAMPLES,
    SEARCHKIT,
    TINY_HPARAMS,
    check_asha_shape,
    kill_group,
    metrics,
    model_modules,
    run,
    start,
    status,
    validations_so_far,
    wait_for,
)

from searchkit_core._executor import CheckpointReported, MetricsReported, ValidationReported
from searchkit_core._trial import run_inline
from searchkit_core._usercode import check_entrypoint, load_entrypoint
from searchkit_core.errors import InvalidHP, UserCodeError
from searchkit_runners.determined import is_pytorch_trial_class, trial_function

TRIAL_DIR = EXAMPLES / "determined_trial"
DATA = {"data_dir": "../../../shared/data/mnist", "download": False}
TINY = [
    "--set", "searcher.max_length.batches=16", "--set", "searcher.max_trials=4",
    "--set", "searcher.num_rungs=2", "--set", "searcher.divisor=2", "--set", "searcher.max_concurrent_trials=4",
]  # fmt: skip


def _train(tmp_path: pathlib.Path, lengths: list[int], checkpoint=None):  # type: ignore[no-untyped-def]
    with model_modules(TRIAL_DIR, "model_def") as (model_def,):
        assert is_pytorch_trial_class(model_def.MNistTrial)
        return run_inline(
            trial_function(model_def.MNistTrial),
            experiment_dir=tmp_path,
            hparams=TINY_HPARAMS,
            lengths=lengths,
            metric="validation_loss",
            checkpoint=checkpoint,
            data=DATA,
        )


def test_each_validate_after_trains_validates_checkpoints_and_resumes_exactly(tmp_path: pathlib.Path) -> None:
    straight = _train(tmp_path / "a", [10, 20])
    completed = [r for r in straight if isinstance(r, ValidationReported)]
    assert [c.length for c in completed] == [10, 20]
    validations = [r for r in straight if isinstance(r, MetricsReported) and r.group == "validation"]
    assert [v.steps for v in validations] == [10, 20]
    assert set(validations[-1].metrics) >= {"validation_loss", "accuracy"}
    assert completed[-1].metric == validations[-1].metrics["validation_loss"]
    checkpoints = [r.checkpoint for r in straight if isinstance(r, CheckpointReported)]
    assert [c.steps_completed for c in checkpoints] == [10, 20]
    # A Determined checkpoint is a searchkit checkpoint directory, with Determined's files in it.
    stored = tmp_path / "a" / "checkpoints" / checkpoints[0].uuid
    assert (stored / "state_dict.pth").is_file() and (stored / "code" / "model_def.py").is_file()

    # Paused after 10 batches, promoted later as a new run (a new trial object, context and
    # Trainer; in this process: a new process is the SIGKILL test below): it resumes from the
    # checkpoint (model, optimizer, RNG and data position) and ends where the uninterrupted run did.
    first = _train(tmp_path / "b", [10])
    checkpoint = next(r.checkpoint for r in first if isinstance(r, CheckpointReported))
    resumed = _train(tmp_path / "b", [20], checkpoint=checkpoint)
    progress = [r.units for r in resumed if type(r).__name__ == "ProgressReported"]
    assert progress == [20.0], progress  # 10 more batches, not 20
    metric = next(r.metric for r in resumed if isinstance(r, ValidationReported))
    assert metric == pytest.approx(completed[-1].metric, rel=1e-5)


def test_a_pytorchtrial_class_is_a_valid_entrypoint() -> None:
    assert str(check_entrypoint(TRIAL_DIR, "model_def:MNistTrial")) == "model_def:MNistTrial"
    with model_modules(TRIAL_DIR):
        train = load_entrypoint(TRIAL_DIR, "model_def:MNistTrial")
        assert callable(train) and "MNistTrial" in train.__name__


def test_other_classes_are_still_refused_with_one_clear_line(tmp_path: pathlib.Path) -> None:
    (tmp_path / "plain.py").write_text("class Model:\n    pass\n")
    with pytest.raises(UserCodeError, match="is a class, not a function"):
        check_entrypoint(tmp_path, "plain:Model")
    (tmp_path / "dettrial.py").write_text("from x import PyTorchTrial\nclass T(Unknown):\n    pass\n")
    with pytest.raises(UserCodeError, match="is a class, not a function"):
        check_entrypoint(tmp_path, "dettrial:T")


def test_a_pytorchtrial_search_completes_after_sigkill_and_resume(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    log = tmp_path / "first.log"
    argv = [
        *SEARCHKIT,
        "run",
        str(TRIAL_DIR / "config.yaml"),
        "--workers",
        "2",
        "--experiment-dir",
        str(experiment),
    ]
    process = start([*argv, *TINY], log)
    try:
        wait_for(lambda: validations_so_far(experiment) >= 2, 120, "two validations", log)
        time.sleep(0.3)
    finally:
        kill_group(process)
    assert status(experiment)["status"] != "completed"

    result = run([*SEARCHKIT, "resume", str(experiment)], timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    document = status(experiment)
    check_asha_shape(document, [8, 16], max_trials=4)
    rows = metrics(experiment)
    assert all({"validation_loss", "accuracy"} <= set(values) for _, _, values in rows)
    promoted = [t for t in document["trials"] if len(t["validations"]) == 2]
    assert promoted
    for trial in promoted:
        # Trained on from its rung-0 checkpoint, never past its operation.
        log = pathlib.Path(trial["log"]).read_text()
        assert re.search(r"training from checkpoint \S+ at 8 batches to 16", log), log
        training = [steps for rid, steps, _ in metrics(experiment, "training") if rid == trial["request_id"]]
        assert max(training) == 16, training
        assert trial["latest_checkpoint"]["steps_completed"] == 16


class _PickyTrial(pytorch.PyTorchTrial):
    """Refuses a learning rate above 0.5 the Determined way: raising det.InvalidHP."""

    def __init__(self, context: pytorch.PyTorchTrialContext) -> None:
        if context.get_hparam("learning_rate") > 0.5:
            raise det.InvalidHP("learning_rate above 0.5 diverges")
        raise AssertionError("not reached in this test")

    def build_training_data_loader(self) -> pytorch.DataLoader:
        raise NotImplementedError

    def build_validation_data_loader(self) -> pytorch.DataLoader:
        raise NotImplementedError

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, Any]:
        raise NotImplementedError


def test_determineds_invalid_hp_becomes_searchkits(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidHP, match=r"learning_rate above 0\.5"):
        run_inline(
            trial_function(_PickyTrial),
            experiment_dir=tmp_path,
            hparams=TINY_HPARAMS,
            lengths=[10],
            metric="validation_loss",
        )
