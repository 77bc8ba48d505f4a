"""``searchkit run`` with the real local runner and ASHA, then ``searchkit status`` on the result."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from searchkit_core._plugins import AUTOLOAD_DISABLE_ENV, Registry
from searchkit_core.cli import main

TRAIN = """
def train(ctx):
    x = ctx.hparams["x"]
    trained = 0
    for op in ctx.searcher.operations():
        while trained < op.length:
            trained += 1
            op.report_progress(trained)
        loss = (x - 0.3) ** 2 + 1.0 / (1 + trained)
        ctx.train.report_validation_metrics(trained, {"loss": loss})
        op.report_completed(loss)
"""

CONFIG = """\
name: status-demo
entrypoint: model_def:train
searcher:
  name: asha
  metric: loss
  smaller_is_better: true
  max_length: {batches: 8}
  max_trials: 4
  num_rungs: 2
  divisor: 2
  max_concurrent_trials: 2
hyperparameters:
  x: {type: double, minval: 0.0, maxval: 1.0}
seed: 11
"""


@pytest.fixture(scope="module")
def finished_experiment(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("status")
    model = root / "model"
    model.mkdir()
    (model / "model_def.py").write_text(textwrap.dedent(TRAIN))
    (model / "config.yaml").write_text(CONFIG)
    experiment_dir = root / "experiment"
    environment = {k: v for k, v in os.environ.items() if k not in (AUTOLOAD_DISABLE_ENV, "SEARCHKIT_DEBUG")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "searchkit_core",
            "run",
            str(model / "config.yaml"),
            "--runner",
            "local",
            "--workers",
            "2",
            "--experiment-dir",
            str(experiment_dir),
            "--plain",
        ],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return experiment_dir


def test_status_json_is_the_collected_document(finished_experiment, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["status", str(finished_experiment), "--json"], registry=Registry(autoload=False)) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format_version"] == 1 and document["type"] == "ExperimentStatus"
    assert (
        document["name"] == "status-demo" and document["searcher"] == "asha" and document["runner"] == "local"
    )
    assert len(document["trials"]) == 4
    best = document["best_trial"]
    assert best["metric"] == min(t["last_metric"] for t in document["trials"] if t["last_metric"] is not None)


def test_status_table_shows_trials_and_the_best_one(finished_experiment, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["status", str(finished_experiment)], registry=Registry(autoload=False)) == 0
    out = capsys.readouterr().out
    assert "experiment: status-demo" in out and "searcher: asha" in out
    assert "trials" in out and "loss" in out
    document = json.loads(
        subprocess.run(
            [sys.executable, "-m", "searchkit_core", "status", str(finished_experiment), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    best = document["best_trial"]
    assert f"best trial: {best['trial_id']}" in out
    for trial in document["trials"]:
        assert f"x={trial['hparams']['x']:.6g}" in out
        assert trial["request_id"][:8] in out  # the short request id, as in the trials' logs


def test_status_of_a_directory_that_is_not_an_experiment(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["status", str(tmp_path)], registry=Registry(autoload=False))
    err = capsys.readouterr().err
    assert code == 5
    assert err.startswith("searchkit: error: ") and err.count("\n") == 1 and "Traceback" not in err
