"""End to end: `searchkit run/resume/status --runner local` with real worker processes and ASHA.

The training function (tests/local/model/toy.py) reports a metric that depends
only on its hyperparameters and length, so results can be checked exactly and
an interrupted search can be compared with an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from local_helpers import MODEL_DIR, is_alive

CONFIG = MODEL_DIR / "asha.yaml"
RUNG_LENGTHS = [4, 8, 16]  # max_length 16, num_rungs 3, divisor 2


def metric_of(hparams: dict[str, Any], length: int) -> float:
    return round((float(hparams.get("x", 0.5)) - 0.3) ** 2 + 1.0 / (1.0 + length), 12)


def searchkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "searchkit_core", *args]


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(searchkit(*args), capture_output=True, text=True, timeout=timeout)


def status(experiment: pathlib.Path) -> dict[str, Any]:
    result = run("status", str(experiment), "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def journal(experiment: pathlib.Path) -> list[dict[str, Any]]:
    import sqlite3

    db = sqlite3.connect(f"file:{experiment / 'searchkit.db'}?mode=ro", uri=True)
    try:
        return [
            {"event": json.loads(e), "operations": json.loads(o)}
            for e, o in db.execute("SELECT event, operations FROM journal ORDER BY seq")
        ]
    finally:
        db.close()


def validations_in_order(experiment: pathlib.Path, doc: dict[str, Any]) -> list[tuple[int, int, float]]:
    """(trial_id, length, metric) of every ValidationCompleted, in journal order."""
    ids = {t["request_id"]: t["trial_id"] for t in doc["trials"]}
    return [
        (ids[row["event"]["request_id"]], row["event"]["train_length"], row["event"]["metric"])
        for row in journal(experiment)
        if row["event"]["type"] == "ValidationCompleted"
    ]


def check_completed_search(experiment: pathlib.Path, max_trials: int = 12) -> dict[str, Any]:
    """Every trial closed, validated at rung lengths with exactly the expected metric, none twice."""
    doc = status(experiment)
    assert doc["status"] == "completed"
    assert len(doc["trials"]) == max_trials
    for trial in doc["trials"]:
        assert trial["state"] == "CLOSED", trial
        lengths = [v["length"] for v in trial["validations"]]
        assert lengths == RUNG_LENGTHS[: len(lengths)] and lengths, trial
        for v in trial["validations"]:
            assert v["metric"] == pytest.approx(metric_of(trial["hparams"], v["length"]), abs=1e-12)
    seen = validations_in_order(experiment, doc)
    assert len(seen) == len({(t, length) for t, length, _ in seen}), (
        "a validation was fed to the method twice"
    )
    return doc


def test_run_to_completion_with_promotions_resuming_from_checkpoints(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    result = run(
        "run", str(CONFIG), "--runner", "local", "--workers", "2", "--experiment-dir", str(experiment)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the method shut down" in result.stdout  # plain lines when stdout is not a terminal
    assert "100.0% done" in result.stdout
    doc = check_completed_search(experiment)
    assert doc["best_trial"]["metric"] == min(v["metric"] for t in doc["trials"] for v in t["validations"])
    starts = promoted_starts(experiment, doc)
    assert starts, "ASHA promoted no trial"
    # Each later segment either continued in place (0: same run of train()) or resumed from the
    # checkpoint at the length it had reached; it never started over from zero after a pause.
    assert all(s in (0, *RUNG_LENGTHS) for s in starts)
    for trial in doc["trials"]:
        assert trial["latest_checkpoint"]["steps_completed"] == trial["trained"]
        assert (experiment / "checkpoints" / trial["latest_checkpoint"]["uuid"] / "state.json").is_file()
        assert pathlib.Path(trial["log"]).is_file()


def promoted_starts(experiment: pathlib.Path, doc: dict[str, Any]) -> list[int]:
    """For each validation after a trial's first: the length the run of train() that produced it began at."""
    import sqlite3

    db = sqlite3.connect(f"file:{experiment / 'searchkit.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT request_id, steps, metrics FROM metrics WHERE grp = 'validation'").fetchall()
    db.close()
    started = {(rid, steps): json.loads(m)["started_from"] for rid, steps, m in rows}
    return [started[(t["request_id"], v["length"])] for t in doc["trials"] for v in t["validations"][1:]]


def _start(experiment: pathlib.Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        searchkit(
            "run",
            str(CONFIG),
            "--runner",
            "local",
            "--experiment-dir",
            str(experiment),
            *extra,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_validations(experiment: pathlib.Path, count: int, process: subprocess.Popen[str]) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        assert process.poll() is None, "the search ended before it could be interrupted"
        if (experiment / "searchkit.db").exists():
            try:
                rows = journal(experiment)
            except Exception:
                rows = []
            if sum(r["event"]["type"] == "ValidationCompleted" for r in rows) >= count:
                return
        time.sleep(0.1)
    raise AssertionError("no progress")


def _worker_pids(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().split(")")[-1].split()[1]) == parent:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def test_sigkill_then_resume_loses_nothing_and_repeats_nothing(tmp_path: pathlib.Path) -> None:
    # One trial at a time, so the order of validations (which ASHA's decisions depend on)
    # is fixed, and the interrupted search must match the uninterrupted one exactly.
    slow = (
        "--workers",
        "1",
        "--set",
        "hyperparameters.unit_seconds=0.03",
        "--set",
        "searcher.max_concurrent_trials=1",
    )
    reference = tmp_path / "reference"
    result = run("run", str(CONFIG), "--runner", "local", "--experiment-dir", str(reference), *slow)
    assert result.returncode == 0, result.stdout + result.stderr
    ref_doc = check_completed_search(reference)
    expected = validations_in_order(reference, ref_doc)
    starts = promoted_starts(reference, ref_doc)
    # A trial promoted after others ran meanwhile was paused: it resumed from its checkpoint.
    assert any(s in RUNG_LENGTHS for s in starts) and all(s in (0, *RUNG_LENGTHS) for s in starts)

    experiment = tmp_path / "killed"
    process = _start(experiment, *slow)
    _wait_for_validations(experiment, 5, process)
    workers = _worker_pids(process.pid)
    assert workers
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    end = time.monotonic() + 10
    while any(is_alive(p) for p in workers) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(is_alive(p) for p in workers), "trial processes outlived the killed searchkit process"

    resumed = run("resume", str(experiment))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = check_completed_search(experiment)
    assert validations_in_order(experiment, doc) == expected
    assert [t["hparams"] for t in doc["trials"]] == [t["hparams"] for t in ref_doc["trials"]]


def test_sigkill_also_ends_the_processes_the_training_code_started(tmp_path: pathlib.Path) -> None:
    # Each operation of the toy trial starts `sleep 300` (as data loaders or subprocess
    # calls in real training code would): they must not outlive the search either.
    experiment = tmp_path / "exp"
    process = _start(
        experiment,
        "--workers",
        "2",
        "--set",
        "hyperparameters.spawn_child=true",
        "--set",
        "hyperparameters.unit_seconds=0.03",
    )
    _wait_for_validations(experiment, 2, process)
    workers = _worker_pids(process.pid)
    children = [c for w in workers for c in _worker_pids(w)]
    assert children, "the training code started no process to check"
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    end = time.monotonic() + 10
    while any(is_alive(p) for p in workers + children) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(is_alive(p) for p in workers), "trial processes outlived the killed searchkit process"
    assert not any(is_alive(p) for p in children), "processes started by training code outlived searchkit"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_cleanly_and_resume_completes(
    tmp_path: pathlib.Path, sig: signal.Signals, code: int
) -> None:
    experiment = tmp_path / "exp"
    process = _start(experiment, "--workers", "2", "--set", "hyperparameters.unit_seconds=0.03")
    _wait_for_validations(experiment, 3, process)
    workers = _worker_pids(process.pid)
    started = time.monotonic()
    process.send_signal(sig)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == code, output
    assert time.monotonic() - started < 8  # trials stopped at their next report, not after the grace period
    assert f"{sig.name} received" in output
    assert not any(is_alive(p) for p in workers)
    doc = status(experiment)
    assert doc["status"] == "stopped"
    assert not any(t["state"] == "ERRORED" or t["restarts"] for t in doc["trials"])  # a stop is no crash
    resumed = run("resume", str(experiment))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    check_completed_search(experiment)


def test_crashing_segments_are_restarted_and_the_search_completes(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    result = run(
        "run",
        str(CONFIG),
        "--runner",
        "local",
        "--workers",
        "2",
        "--experiment-dir",
        str(experiment),
        "--set",
        "hyperparameters.crash_rate=0.2",
        "--set",
        "max_restarts=8",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = check_completed_search(experiment)
    restarts = sum(t["restarts"] for t in doc["trials"])
    assert restarts > 0
    crashes = [c for t in doc["trials"] for c in t["crashes"]]
    assert len(crashes) == restarts and all("injected crash" in c for c in crashes)


def test_a_trial_that_always_crashes_ends_errored_after_max_restarts(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    result = run(
        "run",
        str(CONFIG),
        "--runner",
        "local",
        "--workers",
        "2",
        "--experiment-dir",
        str(experiment),
        "--set",
        "hyperparameters.always_crash=true",
        "--set",
        "max_restarts=2",
        "--set",
        "searcher.max_trials=3",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = status(experiment)
    assert doc["status"] == "completed"
    assert [t["state"] for t in doc["trials"]] == ["ERRORED"] * 3
    for trial in doc["trials"]:
        assert trial["restarts"] == 2
        assert "ValueError: this trial always crashes" in trial["error"]
        log = pathlib.Path(trial["log"]).read_text()
        assert log.count("Traceback (most recent call last)") == 3  # the first run and two restarts
    assert doc["counts"]["ERRORED"] == 3


def test_status_reads_a_running_search(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    process = _start(experiment, "--workers", "2", "--set", "hyperparameters.unit_seconds=0.2")
    try:
        _wait_for_validations(experiment, 2, process)
        doc = status(experiment)
        assert doc["status"] == "running"
        assert doc["driver"]["pid"] == process.pid and doc["driver"]["is_alive"] is True
        assert doc["counts"]["RUNNING"] + doc["counts"]["PAUSED"] + doc["counts"]["CLOSED"] == len(
            doc["trials"]
        )
        text = run("status", str(experiment), timeout=60)
        assert text.returncode == 0 and "trial" in text.stdout
        busy = run("resume", str(experiment), timeout=60)
        assert busy.returncode == 6 and "already being driven" in busy.stderr  # one driver at a time
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def test_a_bad_entrypoint_is_one_line_and_creates_nothing(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.read_text().replace("entrypoint: toy:train", "entrypoint: toy:no_such_function"))
    experiment = tmp_path / "exp"
    result = run("run", str(config), str(MODEL_DIR), "--runner", "local", "--experiment-dir", str(experiment))
    assert result.returncode == 8, result.stderr
    assert result.stderr.count("\n") == 1 and "no_such_function" in result.stderr
    assert "Traceback" not in result.stderr
    assert not experiment.exists()


def test_status_of_a_directory_that_is_no_experiment_is_one_line(tmp_path: pathlib.Path) -> None:
    result = run("status", str(tmp_path), "--json", timeout=60)
    assert result.returncode == 5
    assert "is not a searchkit experiment directory" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_model_that_fails_to_import_in_the_worker_stops_the_search_with_one_line(
    tmp_path: pathlib.Path,
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "broken.py").write_text("import no_such_dependency_xyz\n\n\ndef train(ctx):\n    pass\n")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.read_text().replace("entrypoint: toy:train", "entrypoint: broken:train"))
    experiment = tmp_path / "exp"
    result = run(
        "run",
        str(config),
        str(model),
        "--runner",
        "local",
        "--workers",
        "2",
        "--experiment-dir",
        str(experiment),
    )
    assert result.returncode == 8, result.stderr
    log_path = experiment / "logs" / "local-worker-0.log"
    assert result.stderr.strip().splitlines()[-1] == (
        "searchkit: error: entrypoint broken:train: importing 'broken' failed: "
        f"ModuleNotFoundError: No module named 'no_such_dependency_xyz' (traceback in {log_path})"
    )
    assert "Traceback" not in result.stderr
    log = log_path.read_text()
    assert "No module named 'no_such_dependency_xyz'" in log  # the full traceback is kept for the user
    # Nothing was decided, so no experiment was kept: once fixed, the same command works.
    assert sorted(p.name for p in experiment.iterdir()) == ["logs"]
    (model / "broken.py").write_text((MODEL_DIR / "toy.py").read_text())
    fixed = run(
        "run", str(config), str(model), "--runner", "local", "--workers", "2",
        "--experiment-dir", str(experiment),
    )  # fmt: skip
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    check_completed_search(experiment)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--workrs=3",), "unknown option(s) for the local runner: workrs"),
        (("--address=127.0.0.2:6379",), "(--address is for --runner remote)"),
        (("--grace-period=-1",), "runner option grace_period must be a positive number of seconds"),
        (("--trial-timeout=0",), "trial_timeout: must be a number of seconds > 0"),
        (("--set", "resources.slots_per_trial=2"), "resources.slots_per_trial is 2 but this machine shows"),
    ],
)
def test_a_bad_runner_option_or_resource_request_is_one_line_and_keeps_nothing(
    tmp_path: pathlib.Path, extra: tuple[str, ...], message: str
) -> None:
    experiment = tmp_path / "exp"
    result = subprocess.run(
        searchkit("run", str(CONFIG), "--runner", "local", "--experiment-dir", str(experiment), *extra),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"},  # one GPU, as far as searchkit can tell
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert not experiment.exists()


def test_status_picks_the_best_trial_by_the_metric_direction(tmp_path: pathlib.Path) -> None:
    experiment = tmp_path / "exp"
    result = run(
        "run", str(CONFIG), "--runner", "local", "--workers", "2", "--experiment-dir", str(experiment),
        "--set", "searcher.smaller_is_better=false", "--set", "searcher.max_trials=4",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    doc = status(experiment)
    assert doc["smaller_is_better"] is False
    everything = [(v["metric"], t["trial_id"], v["length"]) for t in doc["trials"] for v in t["validations"]]
    best = max(everything, key=lambda e: (e[0], -e[1]))
    assert (doc["best_trial"]["metric"], doc["best_trial"]["trial_id"], doc["best_trial"]["length"]) == best
    for trial in doc["trials"]:
        assert trial["rung"] == len(trial["validations"]) - 1
        assert trial["last_metric"] == trial["validations"][-1]["metric"]
