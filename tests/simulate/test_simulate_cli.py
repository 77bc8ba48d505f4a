"""``searchkit run CONFIG --runner simulate``: a preview of a search's rungs and cost, through the real CLI."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from searchkit_core._plugins import Registry
from searchkit_core._store import Store, db_path

CONFIG = textwrap.dedent(
    """\
    name: preview
    entrypoint: model_def:train
    searcher:
      name: asha
      metric: validation_loss
      max_length: {batches: 64}
      max_trials: 32
      num_rungs: 3
      divisor: 4
      max_concurrent_trials: 8
    hyperparameters:
      learning_rate: {type: log, base: 10, minval: -4.0, maxval: 0.0}
      width: {type: int, minval: 8, maxval: 64}
    seed: 7
    """
)


@pytest.fixture
def model_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "model_def.py").write_text(
        "def train(ctx):\n    raise RuntimeError('never called by simulate')\n"
    )
    return tmp_path


def searchkit(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchkit_core", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_the_simulate_runner_is_registered() -> None:
    assert "simulate" in Registry().names("runner")


def test_a_preview_reports_trials_per_length_cost_and_virtual_time(model_dir: pathlib.Path) -> None:
    done = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "exp", "--quiet", cwd=model_dir
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "simulate: synthetic curves (seed 7), 1 s per unit, 8 workers" in out

    store = Store.open(db_path(model_dir / "exp"), is_readonly=True)
    try:
        trials = store.trials()
        end = store.last_journal_time()
        validations = [m for m in store.metrics() if m[1] == "validation"]
        assert store.meta()["status"] == "completed"
    finally:
        store.close()
    assert f"simulated search: {len(trials)} trials" in out
    reached = {int(n): int(c) for n, c in re.findall(r"reached (\d+) batches: (\d+) trials", out)}
    assert list(reached) == [4, 16, 64]  # ASHA's rungs for max_length 64, divisor 4
    for length, count in reached.items():
        assert count == sum(1 for t in trials if t.trained >= length)
    units = sum(m[3]["units"] for m in validations)
    assert f"training: {units} batches in total, {units:g} worker-seconds" in out
    assert f"virtual wall time with 8 workers: {end:g} s" in out
    # max_concurrent_trials workers: nothing waits, so every segment starts when it is issued.
    assert all(m[3]["segment_end"] - m[3]["segment_start"] == m[3]["units"] for m in validations)

    again = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "exp2", "--quiet", cwd=model_dir
    )
    assert again.stdout == out  # same seed, same preview

    resumed = searchkit("resume", "exp", cwd=model_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "simulated search" in resumed.stdout


def test_the_preview_says_when_each_trial_ran_on_w_workers(model_dir: pathlib.Path) -> None:
    done = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "exp", "--workers=3", "--quiet",
        cwd=model_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (model_dir / "exp" / "simulation-timeline.csv").read_text().splitlines()
    assert rows[0] == "trial_id,start_seconds,end_seconds,length"
    segments = [(int(t), float(a), float(b), int(n)) for t, a, b, n in (r.split(",") for r in rows[1:])]
    store = Store.open(db_path(model_dir / "exp"), is_readonly=True)
    try:
        trials = {t.trial_id: t for t in store.trials()}
    finally:
        store.close()
    assert {t for t, *_ in segments} == set(trials)
    for trial_id, trial in trials.items():
        lengths = [n for t, _, _, n in segments if t == trial_id]
        assert lengths == sorted(lengths) and lengths[-1] == trial.trained  # ran rung after rung
    # Never more than 3 segments at once: the workers are modelled.
    instants = sorted({a for _, a, _, _ in segments})
    assert max(sum(1 for _, a, b, _ in segments if a <= x < b) for x in instants) == 3
    # The first trials' segments are printed too.
    first = [s for s in segments if s[0] == 1]
    spans = ", ".join(f"{a:g}-{b:g} s ({n})" for _, a, b, n in first)
    assert f"  trial 1: {spans}" in done.stdout
    assert "when each trial ran (virtual seconds; batches reached in brackets):" in done.stdout
    assert f"... and {len(trials) - 20} more trials" in done.stdout


def test_fewer_workers_make_a_longer_search(model_dir: pathlib.Path) -> None:
    times = []
    for workers in (8, 2):
        done = searchkit(
            "run", "config.yaml", "--runner", "simulate", f"--experiment-dir=w{workers}", f"--workers={workers}",
            "--quiet", cwd=model_dir,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        times.append(float(re.search(r"virtual wall time with \d+ workers: ([\d.e+]+) s", done.stdout)[1]))  # type: ignore[index]
    assert times[1] > times[0]


def test_a_curve_table_drives_the_preview(model_dir: pathlib.Path) -> None:
    rows = ["config_id,hparams,step,metric,seconds_per_step"]
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        for step in (4, 16, 64):
            hp = json.dumps({"learning_rate": lr, "width": 16}).replace('"', '""')
            rows.append(f'c{i},"{hp}",{step},{1.0 / (1 + step * (i + 1))},0.5')
    (model_dir / "curves.csv").write_text("\n".join(rows) + "\n")
    done = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "t", "--curves=curves.csv", "--quiet",
        cwd=model_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "curve table" in done.stdout and "3 configurations" in done.stdout
    store = Store.open(db_path(model_dir / "t"), is_readonly=True)
    try:
        for rid, group, steps, metrics, _ in store.metrics():
            if group == "validation":
                trial_id = next(t.trial_id for t in store.trials() if t.request_id == rid)
                i = (trial_id - 1) % 3
                assert metrics["validation_loss"] == pytest.approx(1.0 / (1 + steps * (i + 1)))
                assert metrics["segment_end"] - metrics["segment_start"] == pytest.approx(
                    0.5 * metrics["units"]
                )
    finally:
        store.close()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--noise=-1", "runner option noise must be a number >= 0"),
        ("--seconds-per-unit=0", "runner option seconds_per_unit must be a number > 0"),
        ("--crash-fraction=1.5", "runner option crash_fraction must be below 1"),
        ("--bogus=1", "unknown option\\(s\\) for the simulate runner: bogus"),
        ("--curves=missing.csv", "the curve table 'missing.csv' does not exist"),
    ],
)
def test_bad_options_are_one_line_errors(model_dir: pathlib.Path, option: str, message: str) -> None:
    done = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "bad", option, cwd=model_dir
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert re.search(message, done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    if "curves" not in option:  # checked before anything is stored
        assert not (model_dir / "bad").exists()


def test_ctrl_c_stops_cleanly_and_resume_finishes_as_if_never_stopped(model_dir: pathlib.Path) -> None:
    import signal
    import sys as _sys
    import time

    _sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "engine"))
    from store_dump import dump

    (model_dir / "config.yaml").write_text(CONFIG.replace("max_trials: 32", "max_trials: 6000"))
    reference = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "ref", "--quiet", cwd=model_dir
    )
    assert reference.returncode == 0, reference.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "searchkit_core", "run", "config.yaml", "--runner", "simulate",
         "--experiment-dir", "stopped", "--quiet"],
        cwd=model_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    db = model_dir / "stopped" / "searchkit.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the search is under way
        if db.exists():
            reader = Store.open(db, is_readonly=True)
            try:
                if reader.last_journal_time() > 0:
                    break
            finally:
                reader.close()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "SIGINT received" in err
    store = Store.open(db, is_readonly=True)
    try:
        assert store.meta()["status"] == "stopped"
    finally:
        store.close()

    resumed = searchkit("resume", "stopped", cwd=model_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert dump(model_dir / "stopped") == dump(model_dir / "ref")


def test_a_preview_needs_no_training_code(tmp_path: pathlib.Path) -> None:
    """The simulator runs curves, not code: a config alone previews a search."""
    (tmp_path / "config.yaml").write_text(CONFIG)  # model_def.py does not exist
    done = searchkit(
        "run", "config.yaml", "--runner", "simulate", "--experiment-dir", "preview", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    store = Store.open(db_path(tmp_path / "preview"), is_readonly=True)
    try:
        assert store.meta()["status"] == "completed"
    finally:
        store.close()
    local = searchkit("run", "config.yaml", "--runner", "local", "--experiment-dir", "real", cwd=tmp_path)
    assert local.returncode == 8 and "model_def" in local.stderr
    assert not (tmp_path / "real").exists()


def test_asha_using_fewer_rungs_is_one_warning_line(model_dir: pathlib.Path) -> None:
    (model_dir / "small.yaml").write_text(
        CONFIG.replace("max_length: {batches: 64}", "max_length: {batches: 4}")
    )
    for argv in (
        ("run", "small.yaml", "--runner", "simulate", "--experiment-dir", "small", "--quiet"),
        ("resume", "small", "--quiet"),
    ):
        done = searchkit(*argv, cwd=model_dir)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if "too small" in line]
        assert warnings == [
            "searchkit: warning: searcher.num_rungs: max_length 4 is too small for 3 distinct rung budgets "
            "with divisor 4; using 2 rungs with budgets [1, 4]"
        ], done.stderr
