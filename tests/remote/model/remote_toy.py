"""Training functions for the remote runner's tests: pure Python, deterministic, checkpointed.

The metric depends only on the hyperparameters and the length trained, so two
runs of one search with one seed make the same decisions whatever the timing,
the node, or the crashes in between.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

STATE = "state.json"


def metric_of(hparams: dict[str, Any], length: int) -> float:
    return round((float(hparams.get("x", 0.5)) - 0.3) ** 2 + 1.0 / (1.0 + length), 12)


def _save(ctx: Any, trained: int) -> None:
    with ctx.checkpoint.store_path({"steps_completed": trained}) as path:
        (pathlib.Path(path) / STATE).write_text(json.dumps({"trained": trained}))


def train(ctx: Any) -> None:
    """Sleep ``unit_seconds`` per unit, validate, checkpoint every operation, complete.

    With ``checkpoint_every_unit``, also checkpoint after every unit (so that a trial
    lost mid-segment has a checkpoint to resume from).
    """
    hp = ctx.hparams
    unit = float(hp.get("unit_seconds", 0.01))
    trained = 0
    latest = ctx.checkpoint.latest
    if latest is not None:
        with ctx.checkpoint.restore_path(latest.uuid) as path:
            trained = int(json.loads((pathlib.Path(path) / STATE).read_text())["trained"])
    for op in ctx.searcher.operations():
        while trained < op.length:
            time.sleep(unit)
            trained += 1
            op.report_progress(trained)
            if hp.get("checkpoint_every_unit") and trained < op.length:
                _save(ctx, trained)
            if ctx.preempt.should_preempt():
                return
        metric = metric_of(hp, trained)
        ctx.train.report_validation_metrics(trained, {"loss": metric, "pid": os.getpid()})
        _save(ctx, trained)
        op.report_completed(metric)
