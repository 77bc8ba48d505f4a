"""The trial API (ctx) and its rules, run inline through ScriptedChannel (a real TrialChannel)."""

from __future__ import annotations

import json
import math
import pathlib
import uuid
from typing import Any

import pytest

from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    ValidationReported,
)
from searchkit_core._trial import (
    CHECKPOINT_INFO_FILE,
    ScriptedChannel,
    TrialAPIError,
    TrialContext,
    TrialInfo,
    run_inline,
    trial_log_path,
)


def good_train(ctx: Any) -> None:
    trained = 0
    if ctx.checkpoint.latest is not None:
        with ctx.checkpoint.restore_path() as path:
            trained = json.loads((path / "s.json").read_text())["trained"]
    for op in ctx.searcher.operations():
        while trained < op.length:
            trained += 1
            op.report_progress(trained)
        ctx.train.report_training_metrics(trained, {"loss": 1.0 / trained})
        ctx.train.report_validation_metrics(trained, {"validation_loss": 2.0 / trained, "note": "ok"})
        with ctx.checkpoint.store_path({"steps_completed": trained}) as path:
            (path / "s.json").write_text(json.dumps({"trained": trained}))
        op.report_completed({"validation_loss": 2.0 / trained, "accuracy": 0.5})
        ctx.log.info("validated at %d", trained)


def test_a_well_behaved_training_function_reports_everything(tmp_path: pathlib.Path) -> None:
    reports = run_inline(
        good_train, experiment_dir=tmp_path, hparams={"lr": 0.1}, lengths=[3, 5], metric="validation_loss"
    )
    validations = [r for r in reports if isinstance(r, ValidationReported)]
    assert [(v.length, v.metric) for v in validations] == [(3, 2 / 3), (5, 2 / 5)]
    assert [r.units for r in reports if isinstance(r, ProgressReported)] == [1, 2, 3, 4, 5]
    groups = [(r.group, r.steps) for r in reports if isinstance(r, MetricsReported)]
    assert groups == [("training", 3), ("validation", 3), ("training", 5), ("validation", 5)]
    checkpoints = [r.checkpoint for r in reports if isinstance(r, CheckpointReported)]
    assert [c.steps_completed for c in checkpoints] == [3, 5]
    info = json.loads((tmp_path / "checkpoints" / checkpoints[-1].uuid / CHECKPOINT_INFO_FILE).read_text())
    assert info["steps_completed"] == 5 and info["trial_id"] == 1
    assert "validated at 5" in trial_log_path(tmp_path, 1).read_text()


def test_a_trial_resumes_from_its_latest_checkpoint(tmp_path: pathlib.Path) -> None:
    reports = run_inline(
        good_train, experiment_dir=tmp_path, hparams={}, lengths=[4], metric="validation_loss"
    )
    ref = next(r.checkpoint for r in reports if isinstance(r, CheckpointReported))
    reports = run_inline(
        good_train, experiment_dir=tmp_path, hparams={}, lengths=[8], metric="validation_loss", checkpoint=ref
    )
    assert [r.units for r in reports if isinstance(r, ProgressReported)] == [5, 6, 7, 8]


def test_context_exposes_hparams_ids_and_data(tmp_path: pathlib.Path) -> None:
    rid = uuid.uuid4()
    seen: dict[str, Any] = {}

    def train(ctx: Any) -> None:
        seen.update(
            hparams=ctx.hparams,
            trial_id=ctx.trial_id,
            request_id=ctx.request_id,
            data=ctx.data,
            latest=ctx.checkpoint.latest,
            metric=ctx.searcher.metric,
            preempt=ctx.preempt.should_preempt(),
        )

    info = TrialInfo(rid, 7, {"a": {"b": 1}}, tmp_path, "loss", data={"dir": "/d"})
    train(TrialContext(info, ScriptedChannel(rid, [])))
    assert seen == {
        "hparams": {"a": {"b": 1}},
        "trial_id": 7,
        "request_id": rid,
        "data": {"dir": "/d"},
        "latest": None,
        "metric": "loss",
        "preempt": False,
    }


def _run(train: Any, tmp_path: pathlib.Path, lengths: list[int] | None = None, **kw: Any) -> list[Any]:
    return run_inline(
        train,
        experiment_dir=tmp_path,
        hparams={},
        lengths=[5] if lengths is None else lengths,
        metric="loss",
        **kw,
    )


@pytest.mark.parametrize(
    ("completed", "message"),
    [
        ({"accuracy": 0.9}, "without the searcher metric 'loss'"),
        ("0.3", "must be a number, got str"),
        (True, "must be a number, got bool"),
        (math.nan, "must be a finite number"),
        ({"loss": None}, "must be a number, got NoneType"),
    ],
)
def test_report_completed_needs_the_searcher_metric_as_a_finite_number(
    tmp_path: pathlib.Path, completed: Any, message: str
) -> None:
    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            op.report_progress(op.length)
            op.report_completed(completed)

    with pytest.raises(TrialAPIError, match=message):
        _run(train, tmp_path)


def test_numpy_like_scalars_are_accepted(tmp_path: pathlib.Path) -> None:
    class Scalar:  # what numpy and torch scalars look like to the API: numbers with __float__
        def __float__(self) -> float:
            return 0.25

    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            ctx.train.report_validation_metrics(op.length, {"loss": Scalar(), "nested": {"x": [Scalar()]}})
            op.report_completed({"loss": Scalar()})

    reports = _run(train, tmp_path)
    assert next(r for r in reports if isinstance(r, ValidationReported)).metric == 0.25
    assert next(r for r in reports if isinstance(r, MetricsReported)).metrics == {
        "loss": 0.25,
        "nested": {"x": [0.25]},
    }


def test_completion_at_another_length_than_the_operation_is_an_error(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            op.report_progress(op.length - 1)
            op.report_completed(1.0)

    with pytest.raises(TrialAPIError, match="operation of length 5, but the trial reported 4 units"):
        _run(train, tmp_path)


def test_validation_steps_count_as_the_reported_length(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            ctx.train.report_validation_metrics(3, {"loss": 1.0})
            op.report_completed(1.0)

    with pytest.raises(TrialAPIError, match="reported 3 units"):
        _run(train, tmp_path)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            lambda ctx, op: op.report_progress(op.length + 1),
            r"report_progress\(6\) is past the operation's length 5",
        ),
        (
            lambda ctx, op: ctx.train.report_training_metrics(6, {}),
            "at 6 steps is past the operation's length 5",
        ),
        (lambda ctx, op: ctx.train.report_validation_metrics(9, {}), "at 9 steps is past"),
        (
            lambda ctx, op: ctx.checkpoint.store_path({"steps_completed": 7}).__enter__(),
            "a checkpoint at 7 steps",
        ),
    ],
)
def test_a_trial_cannot_train_past_its_operation(tmp_path: pathlib.Path, action: Any, message: str) -> None:
    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            action(ctx, op)

    with pytest.raises(TrialAPIError, match=message):
        _run(train, tmp_path)


def test_the_next_operation_needs_the_current_one_completed(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            op.report_progress(op.length)

    with pytest.raises(TrialAPIError, match="operation of length 5 was not completed"):
        _run(train, tmp_path, lengths=[5, 10])


def test_an_operation_completes_once(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            op.report_completed(1.0)
            op.report_completed(1.0)

    with pytest.raises(TrialAPIError, match="already completed"):
        _run(train, tmp_path)


def test_checkpoint_metadata_needs_steps_completed(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        with ctx.checkpoint.store_path({"epoch": 1}):
            pass

    with pytest.raises(TrialAPIError, match='needs metadata with "steps_completed"'):
        _run(train, tmp_path)


def test_a_failed_checkpoint_is_removed_and_not_reported(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        with ctx.checkpoint.store_path({"steps_completed": 0}):
            raise OSError("disk full")

    channel = ScriptedChannel(uuid.uuid4(), [5])
    info = TrialInfo(channel.request_id, 1, {}, tmp_path, "loss")
    with pytest.raises(OSError, match="disk full"):
        train(TrialContext(info, channel))
    assert channel.reports == []
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_restore_path_of_a_missing_checkpoint_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        with ctx.checkpoint.restore_path():
            pass

    with pytest.raises(TrialAPIError, match="has no checkpoint yet"):
        _run(train, tmp_path)
    ref = CheckpointRef(uuid="nope", steps_completed=3)
    with pytest.raises(TrialAPIError, match="checkpoint nope does not exist"):
        _run(train, tmp_path, checkpoint=ref)


def test_preemption_ends_the_operations(tmp_path: pathlib.Path) -> None:
    done: list[int] = []

    def train(ctx: Any) -> None:
        for op in ctx.searcher.operations():
            op.report_progress(op.length)
            op.report_completed(1.0)
            done.append(op.length)
        assert ctx.preempt.should_preempt()

    _run(train, tmp_path, lengths=[1, 2, 3], preempt_after=2)
    assert done == [1, 2]


def test_operations_iterate_once(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        list(ctx.searcher.operations())
        list(ctx.searcher.operations())

    with pytest.raises(TrialAPIError, match="can be iterated only once"):
        _run(train, tmp_path, lengths=[])


def test_metrics_must_be_plain_values(tmp_path: pathlib.Path) -> None:
    def train(ctx: Any) -> None:
        ctx.train.report_training_metrics(0, {"model": object()})

    with pytest.raises(TrialAPIError, match=r"training metrics\['model'\] must be a number, string"):
        _run(train, tmp_path)
