"""Training functions for the local runner's tests: pure Python, fast, deterministic.

The metric depends only on the hyperparameters and the length trained, so two
runs of one search give the same decisions whatever the timing.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import time
from typing import Any

import searchkit_core

STATE = "state.json"


def metric_of(hparams: dict[str, Any], length: int) -> float:
    return round((float(hparams.get("x", 0.5)) - 0.3) ** 2 + 1.0 / (1.0 + length), 12)


def _restore(ctx: Any) -> int:
    latest = ctx.checkpoint.latest
    if latest is None:
        return 0
    with ctx.checkpoint.restore_path(latest.uuid) as path:
        return int(json.loads((pathlib.Path(path) / STATE).read_text())["trained"])


def _save(ctx: Any, trained: int) -> None:
    with ctx.checkpoint.store_path({"steps_completed": trained}) as path:
        (pathlib.Path(path) / STATE).write_text(json.dumps({"trained": trained}))


def _faults(ctx: Any, trained: int, op: Any) -> None:
    hp = ctx.hparams
    rate = float(hp.get("crash_rate", 0.0))
    # ``crash_rate`` of the segments crash, halfway through (seeded: the same segments crash every run).
    halfway = trained == (op.length + trained_at_start(ctx)) // 2
    if rate and halfway and random.Random(f"{ctx.trial_id}/{op.length}/{ctx.restarts}").random() < rate:
        raise RuntimeError(f"injected crash at {trained}")
    if hp.get("always_crash"):
        raise ValueError("this trial always crashes")
    if hp.get("exit_at") == trained:
        os._exit(3)
    if hp.get("kill_at") == trained:
        os.kill(os.getpid(), signal.SIGKILL)


def trained_at_start(ctx: Any) -> int:
    latest = ctx.checkpoint.latest
    return int(latest.steps_completed) if latest is not None else 0


def train(ctx: Any) -> None:
    """Sleep ``unit_seconds`` per unit (default 0.01), validate, checkpoint, complete."""
    hp = ctx.hparams
    unit = float(hp.get("unit_seconds", 0.01))
    if hp.get("invalid"):
        raise searchkit_core.InvalidHP("x is out of range")
    trained = _restore(ctx)
    started_from = trained
    print(f"trial {ctx.trial_id} starts from {trained} in pid {os.getpid()}", flush=True)
    ctx.log.info("restored %d units", trained)
    for op in ctx.searcher.operations():
        if hp.get("spawn_child"):
            child = subprocess.Popen(["sleep", "300"])
            ctx.train.report_training_metrics(trained, {"child": child.pid})
        while trained < op.length:
            _faults(ctx, trained, op)
            if hp.get("hang"):
                time.sleep(3600)
            time.sleep(unit)
            trained += 1
            op.report_progress(trained)
            if ctx.preempt.should_preempt():
                _save(ctx, trained)
                return
        metric = metric_of(hp, trained)
        ctx.train.report_validation_metrics(
            trained, {"loss": metric, "pid": os.getpid(), "started_from": started_from}
        )
        _save(ctx, trained)
        op.report_completed(metric)
    time.sleep(float(hp.get("linger", 0.0)))  # slow clean-up after the last operation


def train_no_checkpoint(ctx: Any) -> None:
    """Completes operations without storing checkpoints (restarts from zero)."""
    for op in ctx.searcher.operations():
        op.report_progress(op.length)
        op.report_completed(metric_of(ctx.hparams, op.length))


def wrong_metric(ctx: Any) -> None:
    for op in ctx.searcher.operations():
        op.report_completed({"accuracy": 0.5})


def returns_early(ctx: Any) -> None:
    for _op in ctx.searcher.operations():
        return


def ignores_preempt(ctx: Any) -> None:
    for op in ctx.searcher.operations():
        op.report_progress(0)
        time.sleep(3600)
        op.report_completed(1.0)


def slow_import_marker(ctx: Any) -> None:
    """Reports the module's import time: equal across segments of one worker."""
    for op in ctx.searcher.operations():
        op.report_progress(op.length)
        ctx.train.report_validation_metrics(op.length, {"imported_at": IMPORTED_AT, "pid": os.getpid()})
        op.report_completed(float(op.length))


IMPORTED_AT = time.time()
