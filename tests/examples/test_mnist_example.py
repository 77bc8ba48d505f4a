"""The MNIST example (examples/mnist): its data, its training function, and a tiny search on the real data."""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import shutil

import pytest
from examples_helpers import (
    EXAMPLES,
    PYTHON,
    SEARCHKIT,
    SHARED_MNIST,
    TINY_HPARAMS,
    check_asha_shape,
    metrics,
    model_modules,
    run,
    status,
)

from searchkit_core._executor import CheckpointReported, MetricsReported, ValidationReported
from searchkit_core._trial import run_inline

MNIST = EXAMPLES / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


@pytest.fixture(scope="module")
def data_module():  # type: ignore[no-untyped-def]
    with model_modules(MNIST, "data") as (data,):
        yield data


def test_shared_folder_holds_the_real_test_set() -> None:
    for name, md5 in (
        ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
        ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
    ):
        with gzip.open(SHARED_MNIST / f"{name}.gz", "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == md5


def test_only_the_test_set_gives_a_fixed_8000_2000_split(data_module, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO")
    data = data_module.load_mnist(SHARED_MNIST, download=False)
    assert tuple(data.train_images.shape) == (8000, 1, 28, 28)
    assert tuple(data.validation_images.shape) == (2000, 1, 28, 28)
    assert data.train_labels.bincount().tolist() and data.validation_labels.bincount().min() > 150
    # Normalised like torchvision's MNIST example: mean ~0, std ~1 over the data.
    assert abs(float(data.train_images.mean())) < 0.05 and 0.9 < float(data.train_images.std()) < 1.1
    # The split is every fifth image, the same on every call and machine.
    again = data_module._load_cached.__wrapped__(SHARED_MNIST, False, SHARED_MNIST)
    assert bool((again.validation_labels == data.validation_labels).all())
    assert "fixed split" in data.source and "8000 for training and 2000 for validation" in data.source
    assert any("fixed split" in record.getMessage() for record in caplog.records)


def test_decompressed_files_in_torchvision_layout_read_the_same(data_module, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in TEST_FILES:
        with gzip.open(SHARED_MNIST / f"{name}.gz", "rb") as f:
            (raw / name).write_bytes(f.read())
    data = data_module.load_mnist(tmp_path, download=False)
    shared = data_module.load_mnist(SHARED_MNIST, download=False)
    assert bool((data.train_images == shared.train_images).all())
    assert bool((data.validation_labels == shared.validation_labels).all())


def test_all_four_files_train_on_train_and_validate_on_test(data_module, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    # Stand-in training files: the test files under the training names (valid IDX files).
    for train_name, test_name in zip(TRAIN_FILES, TEST_FILES, strict=True):
        shutil.copy(SHARED_MNIST / f"{test_name}.gz", tmp_path / f"{train_name}.gz")
        shutil.copy(SHARED_MNIST / f"{test_name}.gz", tmp_path / f"{test_name}.gz")
    data = data_module.load_mnist(tmp_path, download=False)
    assert len(data.train_labels) == 10000 and len(data.validation_labels) == 10000
    assert "training images" in data.source and "fixed split" not in data.source


def test_a_folder_without_mnist_says_what_to_put_there(data_module, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(data_module.MnistDataError) as info:
        data_module.load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "t10k-images-idx3-ubyte.gz" in message and "train-images-idx3-ubyte.gz" in message
    assert "data.download: true" in message


def test_a_failed_download_is_part_of_the_one_error(data_module, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    # Nothing can be downloaded on these machines: the error says so, and what to put where.
    with pytest.raises(data_module.MnistDataError, match=r"downloading into .* failed") as info:
        data_module.load_mnist(tmp_path / "empty", download=True)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_a_corrupt_test_file_is_refused_by_its_md5(data_module, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", tmp_path)
    with gzip.open(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", "rb") as f:
        images = bytearray(f.read())
    images[5000] ^= 0xFF
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes(images))
    with pytest.raises(data_module.MnistDataError, match="md5"):
        data_module.load_mnist(tmp_path, download=False)


def test_relative_data_dir_is_relative_to_the_model_directory(data_module) -> None:  # type: ignore[no-untyped-def]
    assert data_module.resolve_data_dir("../../../shared/data/mnist", MNIST) == SHARED_MNIST
    assert data_module.resolve_data_dir("/abs/dir", MNIST) == pathlib.Path("/abs/dir")


def _train_inline(tmp_path: pathlib.Path, lengths: list[int], checkpoint=None):  # type: ignore[no-untyped-def]
    with model_modules(MNIST, "model_def") as (model_def,):
        return run_inline(
            model_def.train,
            experiment_dir=tmp_path,
            hparams=TINY_HPARAMS,
            lengths=lengths,
            metric="validation_loss",
            checkpoint=checkpoint,
            data={"data_dir": "../../../shared/data/mnist", "download": False},
        )


def test_training_reports_both_metrics_and_resumes_exactly_from_its_checkpoint(
    tmp_path: pathlib.Path,
) -> None:
    straight = _train_inline(tmp_path / "a", [10, 30])
    validations = [r for r in straight if isinstance(r, MetricsReported) and r.group == "validation"]
    assert [v.steps for v in validations] == [10, 30]
    assert set(validations[-1].metrics) >= {"validation_loss", "accuracy"}
    assert 0.0 <= validations[-1].metrics["accuracy"] <= 1.0
    completed = [r for r in straight if isinstance(r, ValidationReported)]
    assert [c.metric for c in completed] == [v.metrics["validation_loss"] for v in validations]

    # Paused at 10 and promoted later: a new run starts from the checkpoint, not from zero,
    # and ends exactly where the uninterrupted run did (model, optimizer and data order restored).
    first = _train_inline(tmp_path / "b", [10])
    checkpoint = next(r.checkpoint for r in first if isinstance(r, CheckpointReported))
    assert checkpoint.steps_completed == 10
    resumed = _train_inline(tmp_path / "b", [30], checkpoint=checkpoint)
    progress = [r.units for r in resumed if type(r).__name__ == "ProgressReported"]
    assert progress[0] == 20, progress  # the first report after resuming: it trained 10 -> 20
    resumed_metric = next(r.metric for r in resumed if isinstance(r, ValidationReported))
    assert resumed_metric == pytest.approx(completed[-1].metric, rel=1e-5)


def test_tiny_mnist_search_end_to_end_on_the_real_data(tmp_path: pathlib.Path) -> None:
    # What scripts/demo.sh (the README's first command) runs, shrunk with --set:
    # the search, then the report of its result.
    experiment = tmp_path / "exp"
    search = run(
        [
            *SEARCHKIT, "run", str(MNIST / "config.yaml"), str(MNIST), "--runner", "local", "--workers", "2",
            "--experiment-dir", str(experiment),
            "--set", "searcher.max_length.batches=24", "--set", "searcher.max_trials=4",
            "--set", "searcher.num_rungs=2", "--set", "searcher.divisor=2", "--set", "searcher.max_concurrent_trials=4",
        ],
        timeout=150,
    )  # fmt: skip
    assert search.returncode == 0, search.stdout + search.stderr
    result = run([PYTHON, str(MNIST / "report.py"), str(experiment)])
    assert result.returncode == 0, result.stdout + result.stderr
    document = status(experiment)
    check_asha_shape(document, [12, 24], max_trials=4)
    best = document["best_trial"]
    assert best is not None and best["length"] == 24
    rows = metrics(experiment)
    assert all(set(values) >= {"validation_loss", "accuracy"} for _, _, values in rows)
    best_accuracy = dict(
        (steps, values["accuracy"]) for rid, steps, values in rows if rid == best["request_id"]
    )[24]
    assert best_accuracy > 0.2  # ten classes: chance is 0.1; 24 batches already learn something
    logs = [pathlib.Path(t["log"]).read_text() for t in document["trials"]]
    assert all("fixed split" in log for log in logs)
    for trial in document["trials"]:
        assert trial["latest_checkpoint"]["steps_completed"] == trial["validations"][-1]["length"]

    # The report: best hyperparameters, their accuracy, trials per rung, plots and logs.
    out = result.stdout
    assert f"best trial {best['trial_id']}: validation_loss {best['metric']:.4f} after 24 batches" in out
    assert f"validation accuracy {100 * best_accuracy:.2f} %" in out
    assert f"learning_rate={best['hparams']['learning_rate']:.4g}" in out
    assert "trials per rung: 4 at 12 batches" in out
    for plot in ("accuracy.svg", "validation_loss.svg"):
        svg = (experiment / "plots" / plot).read_text()
        assert svg.startswith("<svg") and svg.count("<polyline") == 4
    assert str(experiment / "trials") in out
