"""Run a Determined ``PyTorchTrial`` class through searchkit's trial API.

Determined's ``PyTorchTrial`` training loop (``determined.pytorch``) talks to a
Core API context: ``checkpoint``, ``train``, ``preempt``. Here that context is
built from bridges to searchkit's trial context, so that:

- every searchkit ``ValidateAfter(length)`` trains to ``length`` batches,
  validates and checkpoints (one Determined training run per operation);
- a Determined checkpoint IS a searchkit checkpoint (``store_path`` and
  ``restore_path`` go to ``<experiment_dir>/checkpoints/<uuid>``), so a promoted
  or restarted trial resumes from its latest checkpoint with its optimizer and
  data position;
- validation and training metrics land in searchkit's store; the searcher metric
  is the config's ``searcher.metric`` from the validation metrics;
- a runner's preemption request stops training at the next report boundary
  after a checkpoint, exactly as Determined's own preemption does.

This module imports ``determined`` at import time; :mod:`searchkit_runners.determined`
imports it only when a PyTorchTrial is actually run.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pathlib
import random
import warnings
from collections.abc import Iterator
from typing import Any, cast

import determined as det
import numpy as np
import torch
from determined import core, pytorch

from searchkit_core.errors import InvalidHP

#: Batches between progress reports (and preemption checks) inside an operation.
REPORTING_PERIOD = 10


class _CheckpointBridge:
    """Determined's ``CheckpointContext`` on top of searchkit's ``ctx.checkpoint``."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    @contextlib.contextmanager
    def store_path(
        self, metadata: dict[str, Any] | None = None, *, shard: bool = False
    ) -> Iterator[tuple[pathlib.Path, str]]:
        with self._ctx.checkpoint.store_path(dict(metadata or {})) as path:
            # searchkit names a checkpoint directory by its uuid: that is Determined's storage id.
            yield pathlib.Path(path), pathlib.Path(path).name

    @contextlib.contextmanager
    def restore_path(self, storage_id: str, *args: Any, **kwargs: Any) -> Iterator[pathlib.Path]:
        with self._ctx.checkpoint.restore_path(storage_id) as path:
            yield pathlib.Path(path)

    def get_metadata(self, storage_id: str) -> dict[str, Any]:
        latest = self._ctx.checkpoint.latest
        if latest is not None and latest.uuid == storage_id:
            return dict(latest.metadata)
        return {}


class _TrainBridge(core.DummyTrainContext):
    """Determined's ``TrainContext``: metrics and progress go to searchkit."""

    def __init__(self, ctx: Any) -> None:
        super().__init__()
        self._ctx = ctx
        self.op: Any = None  # the searchkit operation being trained
        self.last_validation: tuple[int, dict[str, Any]] | None = None
        self.exited_early: Any = None

    def set_status(self, status: str) -> None:
        pass  # Determined logs every status change; the trial log needs none of that

    def report_training_metrics(
        self, steps_completed: int, metrics: dict[str, Any], batch_metrics: Any = None
    ) -> None:
        self._ctx.train.report_training_metrics(steps_completed, metrics)

    def report_validation_metrics(self, steps_completed: int, metrics: dict[str, Any]) -> None:
        self._ctx.train.report_validation_metrics(steps_completed, metrics)
        self.last_validation = (int(steps_completed), dict(metrics))

    def report_progress(self, progress: float) -> None:
        # Determined reports the fraction of fit()'s max_length, which is the operation's length.
        if self.op is not None:
            self.op.report_progress(min(round(progress * self.op.length), self.op.length))

    def report_early_exit(self, reason: Any) -> None:
        self.exited_early = reason


class _PreemptBridge(core.DummyPreemptContext):
    """Determined's ``PreemptContext``: preempted when the searchkit runner wants the slot back."""

    def __init__(self, ctx: Any, distributed: Any) -> None:
        super().__init__(distributed)
        self._ctx = ctx
        self.was_preempted = False

    def should_preempt(self, auto_ack: bool = True) -> bool:
        if self._ctx.preempt.should_preempt():
            self.was_preempted = True
        return self.was_preempted


@contextlib.contextmanager
def _working_directory(path: pathlib.Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def model_directory(trial_class: type) -> pathlib.Path:
    """The directory of the module defining ``trial_class``: Determined's model directory."""
    return pathlib.Path(inspect.getfile(trial_class)).resolve().parent


def _seed_everything(seed: int) -> None:
    # What determined.pytorch.init() does with the trial seed.
    random.seed(seed)
    np.random.seed(seed)
    torch.random.manual_seed(seed)


def run_pytorch_trial(trial_class: type, ctx: Any) -> None:
    """Train ``trial_class`` (a ``determined.pytorch.PyTorchTrial``) for every operation ``ctx`` hands out."""
    # Determined's checkpoints are its own pickles (torch.save of optimizer state and RNG
    # states); loading them needs torch's full unpickler. searchkit itself never reads them.
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    latest = ctx.checkpoint.latest
    steps = latest.steps_completed if latest is not None else 0
    latest_uuid = latest.uuid if latest is not None else None

    distributed = core.DummyDistributedContext()
    train = _TrainBridge(ctx)
    preempt = _PreemptBridge(ctx, distributed)
    core_context = core.Context(
        checkpoint=cast(core.CheckpointContext, _CheckpointBridge(ctx)),
        distributed=distributed,
        preempt=preempt,
        train=train,
    )
    trial_seed = int(ctx.trial_id)
    _seed_everything(trial_seed)
    exp_conf = {
        # What a Determined trial may read through context.get_experiment_config().
        "data": dict(ctx.data),
        "hyperparameters": dict(ctx.hparams),
        "searcher": {"name": "custom", "metric": ctx.searcher.metric},
    }
    # Determined copies the working directory into every checkpoint (as "code/", honouring
    # .detignore): make that the model directory, as on a Determined cluster, whatever the
    # runner's working directory is.
    with core_context, _working_directory(model_directory(trial_class)):
        context = pytorch.PyTorchTrialContext(
            core_context=core_context,
            trial_seed=trial_seed,
            hparams=dict(ctx.hparams),
            slots_per_trial=1,
            num_gpus=1 if torch.cuda.is_available() else 0,
            exp_conf=exp_conf,
            aggregation_frequency=1,
            steps_completed=steps,
            managed_training=True,
            debug_enabled=False,
            enable_tensorboard_logging=False,
        )
        try:
            trial = trial_class(context)
            for op in ctx.searcher.operations():
                train.op = op
                train.last_validation = None
                if latest_uuid is not None:
                    ctx.log.info(
                        "%s: training from checkpoint %s at %d batches to %d",
                        trial_class.__name__, latest_uuid, steps, op.length,
                    )  # fmt: skip
                _fit(trial, context, op.length, steps, latest_uuid)
                if preempt.was_preempted or train.last_validation is None:
                    return  # preempted: the checkpoint is stored, the runner pauses the trial
                steps = op.length
                latest_uuid = ctx.checkpoint.latest.uuid
                op.report_completed(train.last_validation[1])
        except det.InvalidHP as exc:
            raise InvalidHP(str(exc)) from exc


def _fit(trial: Any, context: Any, length: int, steps_completed: int, latest_checkpoint: str | None) -> None:
    """One Determined training run: from ``steps_completed`` to ``length`` batches, validate, checkpoint.

    ``Trainer.fit`` in local mode always starts its batch count at zero (it knows no
    steps completed without a master), which would train ``length`` batches MORE
    after a resume; the controller it builds is given the true count here instead.
    """
    controller = pytorch._PyTorchTrialController(
        trial_inst=trial,
        context=context,
        checkpoint_period=pytorch.Batch(length),
        validation_period=pytorch.Batch(length),
        reporting_period=pytorch.Batch(REPORTING_PERIOD),
        smaller_is_better=True,  # only used by checkpoint_policy="best"
        steps_completed=steps_completed,
        latest_checkpoint=latest_checkpoint,
        local_training=True,
        test_mode=False,
        searcher_metric_name=None,
        checkpoint_policy="all",
        step_zero_validation=False,
        max_length=pytorch.Batch(length),
        global_batch_size=None,
        profiling_enabled=False,
    )
    with warnings.catch_warnings():
        # Expected: the adapter sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD on purpose (see run_pytorch_trial).
        warnings.filterwarnings("ignore", message="Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        # determined 0.38 reads .detignore with a pathspec API that newer pathspec deprecates.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pathspec")
        controller.run()
