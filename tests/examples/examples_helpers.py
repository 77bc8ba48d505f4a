"""Helpers for the examples' tests: the repository's paths, CLI runs in subprocesses, status reads."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import pathlib
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from searchkit_core import _status
from searchkit_core._store import Store, db_path

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SHARED_MNIST = (REPO / ".." / "shared" / "data" / "mnist").resolve()
PYTHON = sys.executable
SEARCHKIT = [PYTHON, "-m", "searchkit_core"]

#: Small and fast: the seed's CNN with its smallest filter counts trains a batch in ~10 ms.
TINY_HPARAMS = {
    "global_batch_size": 64,
    "learning_rate": 1.0,
    "n_filters1": 8,
    "n_filters2": 8,
    "dropout1": 0.25,
    "dropout2": 0.5,
}


def env() -> dict[str, str]:
    """The test process's environment, single-threaded numerics, plugins from entry points."""
    environment = dict(os.environ)
    environment.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    environment.pop("SEARCHKIT_DISABLE_PLUGIN_AUTOLOAD", None)
    return environment


def run(
    argv: Sequence[str], timeout: float = 120.0, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail with its output if it does not end in time."""
    try:
        return subprocess.run(
            list(argv),
            cwd=REPO,
            env={**env(), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{argv} did not finish in {timeout}s; output:\n{exc.stdout}\n{exc.stderr}"
        ) from None


def start(argv: Sequence[str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    """Start a command in its own process group (so a test can kill it and all it started)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            list(argv), cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started by :func:`start` and everything in its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def status(experiment_dir: pathlib.Path) -> dict[str, Any]:
    """``searchkit status --json`` of the experiment, read in this process (read-only)."""
    return _status.collect(experiment_dir)


def validations_so_far(experiment_dir: pathlib.Path) -> int:
    if not db_path(experiment_dir).exists():
        return 0
    try:
        return sum(len(t["validations"]) for t in status(experiment_dir)["trials"])
    except Exception:  # the store may be being created right now
        return 0


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, log: pathlib.Path | None = None
) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            output = log.read_text(errors="replace") if log is not None and log.exists() else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; output:\n{output}")
        time.sleep(0.2)


def metrics(experiment_dir: pathlib.Path, group: str = "validation") -> list[tuple[str, int, dict[str, Any]]]:
    """Every reported metrics row of ``group``: (request id, steps, metrics)."""
    store = Store.open(db_path(experiment_dir), is_readonly=True)
    try:
        return [(rid, steps, values) for rid, grp, steps, values, _ in store.metrics() if grp == group]
    finally:
        store.close()


def check_asha_shape(document: dict[str, Any], rung_lengths: Sequence[int], max_trials: int) -> None:
    """A finished ASHA search: every trial closed, validations at rung lengths only, none repeated."""
    assert document["status"] == "completed", document["status"]
    trials = document["trials"]
    assert len(trials) == max_trials, [t["request_id"] for t in trials]
    for trial in trials:
        lengths = [v["length"] for v in trial["validations"]]
        assert trial["state"] == "CLOSED", trial
        assert lengths == list(rung_lengths[: len(lengths)]), (trial["trial_id"], lengths)
    counts = [sum(1 for t in trials if len(t["validations"]) > rung) for rung in range(len(rung_lengths))]
    assert counts[0] == max_trials
    assert all(later <= earlier for earlier, later in itertools.pairwise(counts)), counts
    assert counts[-1] >= 1, counts


@contextlib.contextmanager
def model_modules(model_dir: pathlib.Path, *names: str) -> Iterator[list[types.ModuleType]]:
    """Import modules of a model directory (``model_def``, ``data``) and forget them afterwards.

    Two examples each have a ``model_def`` and a ``data`` module; a test process must
    not mix them up.
    """
    shadowed = {name: sys.modules.pop(name) for name in ("model_def", "data", *names) if name in sys.modules}
    sys.path.insert(0, str(model_dir))
    try:
        yield [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(str(model_dir))
        for name in ("model_def", "data", *names):
            sys.modules.pop(name, None)
        sys.modules.update(shadowed)
