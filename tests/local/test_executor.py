"""The local executor with real worker processes: segments, continuing in place, pause and resume, faults."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from local_helpers import MODEL_DIR, collect_until, ended, is_alive, segment, validated

from searchkit_core._executor import (
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    TrialCrashed,
    TrialExited,
    ValidationReported,
)
from searchkit_core._operations import ExitedReason
from searchkit_core.errors import UserCodeError
from searchkit_runners.local import LocalExecutor
from searchkit_runners.local._executor import Phase

Make = Callable[..., LocalExecutor]


def _metrics(reports: list[Any], rid: uuid.UUID) -> list[dict[str, Any]]:
    return [r.metrics for r in reports if isinstance(r, MetricsReported) and r.request_id == rid]


def test_segments_continue_in_place_and_report_everything(
    make_executor: Make, tmp_path: pathlib.Path
) -> None:
    ex = make_executor()
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5, {"x": 0.2}))
    reports = collect_until(ex, validated(rid, 5))
    assert ex.phase(rid) is Phase.AWAITING  # the worker waits for the engine's answer
    first_pid = _metrics(reports, rid)[-1]["pid"]
    assert any(isinstance(r, CheckpointReported) and r.checkpoint.steps_completed == 5 for r in reports)
    assert any(isinstance(r, ProgressReported) for r in reports)

    ex.launch(segment(rid, 1, 12, {"x": 0.2}))  # the next operation is known: continue without a restart
    reports = collect_until(ex, validated(rid, 12))
    last = _metrics(reports, rid)[-1]
    assert last["pid"] == first_pid
    assert last["started_from"] == 0  # same run of train(): it never restarted from a checkpoint
    valid = [r for r in reports if isinstance(r, ValidationReported)]
    assert valid[-1].metric == pytest.approx((0.2 - 0.3) ** 2 + 1 / 13)

    ex.pause(rid)
    collect_until(ex, lambda _: ex.phase(rid) is Phase.IDLE, timeout=10)
    log = (tmp_path / "exp" / "trials" / "1" / "trial.log").read_text()
    assert "trial 1 starts from 0" in log  # print() output lands in the trial log
    assert "restored 0 units" in log  # so does ctx.log


def test_launch_is_idempotent(make_executor: Make) -> None:
    ex = make_executor(workers=1)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 4))
    ex.launch(segment(rid, 1, 4))
    reports = collect_until(ex, validated(rid, 4))
    ex.pause(rid)
    reports += collect_until(ex, lambda _: ex.phase(rid) is Phase.IDLE, timeout=10)
    assert sum(isinstance(r, ValidationReported) for r in reports) == 1


def test_paused_trial_resumes_from_its_checkpoint_on_a_free_worker(make_executor: Make) -> None:
    ex = make_executor(workers=1)
    a, b = uuid.uuid4(), uuid.uuid4()
    ex.launch(segment(a, 1, 6))
    reports = collect_until(ex, validated(a, 6))
    checkpoint = [r.checkpoint for r in reports if isinstance(r, CheckpointReported)][-1]
    ex.pause(a)  # frees the only worker
    ex.launch(segment(b, 2, 3))  # another trial takes it
    reports = collect_until(ex, validated(b, 3))
    ex.pause(b)
    ex.launch(segment(a, 1, 10, checkpoint=checkpoint))  # promoted later: starts again from its checkpoint
    reports = collect_until(ex, validated(a, 10))
    assert _metrics(reports, a)[-1]["started_from"] == 6
    ex.pause(a)


def test_the_next_trial_follows_a_stopping_one_on_its_worker(make_executor: Make) -> None:
    ex = make_executor(workers=1)
    a, b = uuid.uuid4(), uuid.uuid4()
    ex.launch(segment(a, 1, 2, {"linger": 1.0}))
    collect_until(ex, validated(a, 2))
    pid = ex.worker_of(a)
    ex.pause(a)  # ``a`` lingers a second before its run ends ...
    ex.launch(segment(b, 2, 2))  # ... and ``b`` is already queued behind it on the same worker
    assert ex.worker_of(b) == pid and ex.phase(b) is Phase.RUNNING
    collect_until(ex, validated(b, 2))
    assert ex.phase(a) is Phase.IDLE


def test_a_trial_queued_behind_a_dying_worker_moves_to_a_new_one_without_a_crash(make_executor: Make) -> None:
    ex = make_executor(workers=1)
    a, b = uuid.uuid4(), uuid.uuid4()
    ex.launch(segment(a, 1, 2, {"linger": 30.0}))
    collect_until(ex, validated(a, 2))
    pid = ex.worker_of(a)
    assert pid is not None
    ex.pause(a)
    ex.launch(segment(b, 2, 2))
    os.kill(pid, signal.SIGKILL)
    reports = collect_until(ex, validated(b, 2))
    assert not any(isinstance(r, TrialCrashed) for r in reports)  # neither was training when it died
    assert ex.worker_of(b) not in (None, pid)


def test_trials_beyond_the_worker_count_queue(make_executor: Make) -> None:
    ex = make_executor(workers=2)
    rids = [uuid.uuid4() for _ in range(5)]
    for i, rid in enumerate(rids):
        ex.launch(segment(rid, i + 1, 3))
    assert len(ex.worker_pids()) == 2
    done: set[uuid.UUID] = set()
    end = time.monotonic() + 60
    while len(done) < 5 and time.monotonic() < end:
        for r in ex.wait(0.5):
            if isinstance(r, ValidationReported):
                done.add(r.request_id)
                ex.pause(r.request_id)
        assert len(ex.worker_pids()) <= 2
    assert done == set(rids)


def test_worker_imports_the_entrypoint_once(make_executor: Make) -> None:
    ex = make_executor("toy:slow_import_marker", workers=1)
    imported: set[float] = set()
    for i in range(4):
        rid = uuid.uuid4()
        ex.launch(segment(rid, i + 1, 2))
        reports = collect_until(ex, validated(rid, 2))
        imported.add(_metrics(reports, rid)[-1]["imported_at"])
        ex.pause(rid)
    assert len(imported) == 1
    assert len(ex.startup_seconds) == 1


def test_a_crash_is_reported_with_a_summary_and_the_traceback_in_the_log(
    make_executor: Make, tmp_path: pathlib.Path
) -> None:
    ex = make_executor(workers=1)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5, {"always_crash": True}))
    reports = collect_until(ex, ended(rid))
    crash = next(r for r in reports if isinstance(r, TrialCrashed))
    assert "ValueError: this trial always crashes" in crash.error
    assert "toy.py:" in crash.error and "in _faults" in crash.error
    log = (tmp_path / "exp" / "trials" / "1" / "trial.log").read_text()
    assert "Traceback (most recent call last)" in log and "this trial always crashes" in log
    # The worker survives a Python exception and runs the restart (the engine relaunches).
    pid = ex.worker_pids()[0]
    collect_until(ex, lambda _: ex.phase(rid) is Phase.IDLE, timeout=10)
    ex.launch(segment(rid, 1, 5, {"x": 0.1}, restarts=1))
    collect_until(ex, validated(rid, 5))
    assert ex.worker_pids() == [pid]


@pytest.mark.parametrize(
    ("hparams", "expected"),
    [({"exit_at": 2}, "exited with code 3"), ({"kill_at": 2}, "killed by SIGKILL")],
)
def test_a_dying_worker_is_a_crash_and_is_replaced(
    make_executor: Make, hparams: dict[str, Any], expected: str
) -> None:
    ex = make_executor(workers=1)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5, hparams))
    reports = collect_until(ex, ended(rid))
    crash = next(r for r in reports if isinstance(r, TrialCrashed))
    assert expected in crash.error
    other = uuid.uuid4()
    ex.launch(segment(other, 2, 3))  # a fresh worker takes the next trial
    collect_until(ex, validated(other, 3))


def test_a_trial_over_its_timeout_is_killed(make_executor: Make, tmp_path: pathlib.Path) -> None:
    ex = make_executor(workers=1, trial_timeout=1.5)
    rid = uuid.uuid4()
    started = time.monotonic()
    ex.launch(segment(rid, 1, 5, {"hang": True}))
    reports = collect_until(ex, ended(rid), timeout=30)
    assert time.monotonic() - started < 15
    crash = next(r for r in reports if isinstance(r, TrialCrashed))
    assert "timed out after 1.5 s" in crash.error
    assert "timed out" in (tmp_path / "exp" / "trials" / "1" / "trial.log").read_text()


def test_killing_a_trial_kills_the_processes_it_started(make_executor: Make) -> None:
    ex = make_executor(workers=1, trial_timeout=1.5)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5, {"spawn_child": True, "hang": True}))
    reports = collect_until(ex, ended(rid), timeout=30)
    child = next(m["child"] for m in _metrics(reports, rid) if "child" in m)
    end = time.monotonic() + 5
    while is_alive(child) and time.monotonic() < end:
        time.sleep(0.1)
    assert not is_alive(child)


def test_invalid_hp_exits_without_restart(make_executor: Make) -> None:
    ex = make_executor(workers=1)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5, {"invalid": True}))
    reports = collect_until(ex, ended(rid))
    exited = next(r for r in reports if isinstance(r, TrialExited))
    assert exited.reason is ExitedReason.INVALID_HP
    assert "x is out of range" in exited.error


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("toy:wrong_metric", "without the searcher metric 'loss'"),
        ("toy:returns_early", "returned before completing the operation of length 5"),
    ],
)
def test_trial_api_mistakes_exit_errored(make_executor: Make, entrypoint: str, message: str) -> None:
    ex = make_executor(entrypoint, workers=1)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5))
    reports = collect_until(ex, ended(rid))
    exited = next(r for r in reports if isinstance(r, TrialExited))
    assert exited.reason is ExitedReason.ERRORED
    assert message in exited.error
    assert not any(isinstance(r, TrialCrashed) for r in reports)


def test_a_broken_entrypoint_stops_the_search_with_a_user_error(make_executor: Make) -> None:
    ex = make_executor("toy:no_such_function", workers=1)
    ex.launch(segment(uuid.uuid4(), 1, 5))
    with pytest.raises(UserCodeError, match="has no attribute 'no_such_function'"):
        collect_until(ex, lambda _: False, timeout=30)


def test_a_worker_that_dies_while_starting_points_at_its_log(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "dies.py").write_text("import os\n\nos._exit(4)\n\n\ndef train(ctx):\n    pass\n")
    ex = LocalExecutor(tmp_path / "exp", entrypoint="dies:train", model_dir=model, metric="loss", workers=1)
    try:
        rid = uuid.uuid4()
        ex.launch(segment(rid, 1, 2))
        reports = collect_until(ex, ended(rid))
        crash = next(r for r in reports if isinstance(r, TrialCrashed))
        assert "exited with code 4 while starting" in crash.error
        assert "local-worker-0.log" in crash.error
    finally:
        ex.shutdown(cancel=True)


def test_shutdown_preempts_running_trials_which_checkpoint_and_stop(make_executor: Make) -> None:
    ex = make_executor(workers=2)
    rids = [uuid.uuid4(), uuid.uuid4()]
    for i, rid in enumerate(rids):
        ex.launch(segment(rid, i + 1, 10_000, {"unit_seconds": 0.01}))
    collect_until(
        ex, lambda reps: {r.request_id for r in reps if isinstance(r, ProgressReported)} == set(rids)
    )
    pids = ex.worker_pids()
    started = time.monotonic()
    ex.shutdown(cancel=False)
    assert time.monotonic() - started < 3.0  # they stopped at their next report, well within the grace period
    reports = ex.wait(0)
    stored = {r.request_id for r in reports if isinstance(r, CheckpointReported)}
    assert stored == set(rids)  # each trial stored a checkpoint on its way out
    assert not any(isinstance(r, (TrialCrashed, TrialExited)) for r in reports)
    assert not any(is_alive(pid) for pid in pids)


def test_closing_a_trial_that_ignores_preemption_kills_it_after_the_grace_period(make_executor: Make) -> None:
    ex = make_executor("toy:ignores_preempt", workers=1, grace_period=1.0)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 5))
    collect_until(ex, lambda reps: any(isinstance(r, ProgressReported) for r in reps))  # inside its operation
    pid = ex.worker_of(rid)
    assert pid is not None
    ex.close(rid)
    reports = collect_until(ex, lambda _: ex.phase(rid) is None, timeout=20)
    assert not any(isinstance(r, TrialCrashed) for r in reports)  # a closed trial is not a crash
    assert not is_alive(pid)
    other = uuid.uuid4()
    ex.launch(segment(other, 2, 2, {}))  # the slot is free again: a fresh worker runs the next trial
    collect_until(
        ex, lambda reps: any(isinstance(r, ProgressReported) and r.request_id == other for r in reps)
    )
    assert ex.worker_of(other) not in (None, pid)


def test_device_groups_set_cuda_visible_devices_per_worker(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "envcheck.py").write_text(
        textwrap.dedent(
            """
            import os

            def train(ctx):
                for op in ctx.searcher.operations():
                    ctx.train.report_validation_metrics(op.length, {"devices": os.environ.get("CUDA_VISIBLE_DEVICES")})
                    op.report_completed(1.0)
            """
        )
    )
    ex = LocalExecutor(
        tmp_path / "exp",
        entrypoint="envcheck:train",
        model_dir=model,
        metric="loss",
        device_groups=["0,1", "2,3"],
    )
    try:
        assert ex.workers == 2
        rids = [uuid.uuid4(), uuid.uuid4()]
        for i, rid in enumerate(rids):
            ex.launch(segment(rid, i + 1, 1))
        reports = collect_until(ex, lambda reps: sum(isinstance(r, ValidationReported) for r in reps) == 2)
        seen = {m["devices"] for rid in rids for m in _metrics(reports, rid)}
        assert seen == {"0,1", "2,3"}
    finally:
        ex.shutdown(cancel=True)


ORPHAN_SCRIPT = """
import sys, time, uuid
sys.path.insert(0, {tests!r})
from local_helpers import segment
from searchkit_runners.local import LocalExecutor

ex = LocalExecutor({exp!r}, entrypoint="toy:train", model_dir={model!r}, metric="loss", workers=2)
for i in range(2):
    ex.launch(segment(uuid.uuid4(), i + 1, 100000, {{"unit_seconds": 0.05}}))
end = time.monotonic() + 60
while len(ex.worker_pids()) < 2 or len(ex.startup_seconds) < 2:
    ex.wait(0.2)
    assert time.monotonic() < end
print(" ".join(map(str, ex.worker_pids())), flush=True)
while True:
    ex.wait(1.0)
"""


def test_workers_die_when_the_searchkit_process_is_sigkilled(tmp_path: pathlib.Path) -> None:
    script = ORPHAN_SCRIPT.format(
        tests=str(pathlib.Path(__file__).parent), exp=str(tmp_path / "exp"), model=str(MODEL_DIR)
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2 and all(is_alive(p) for p in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    end = time.monotonic() + 10
    while any(is_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(is_alive(p) for p in pids), "worker processes outlived the SIGKILLed searchkit process"


def test_checkpoint_directories_hold_what_the_trial_saved(
    make_executor: Make, tmp_path: pathlib.Path
) -> None:
    ex = make_executor(workers=1)
    rid = uuid.uuid4()
    ex.launch(segment(rid, 1, 3))
    reports = collect_until(ex, validated(rid, 3))
    ref = next(r.checkpoint for r in reports if isinstance(r, CheckpointReported))
    directory = tmp_path / "exp" / "checkpoints" / ref.uuid
    assert json.loads((directory / "state.json").read_text()) == {"trained": 3}
    info = json.loads((directory / ".searchkit-checkpoint.json").read_text())
    assert info["request_id"] == str(rid) and info["steps_completed"] == 3 and info["trial_id"] == 1
    assert os.listdir(tmp_path / "exp" / "logs") == ["local-worker-0.log"]
    ex.pause(rid)
