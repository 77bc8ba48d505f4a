"""Experiment directories: creating one, opening one, and driving one with an executor.

An experiment directory holds everything needed to inspect or resume a search::

    searchkit.db         the store (config, journal, snapshots, trials, metrics, checkpoints)
    config.yaml          a copy of the config as given, for people
    .lock                held by the one process driving the experiment
    checkpoints/<uuid>/  trial checkpoints
    trials/<id>/         trial logs
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import pathlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from searchkit_core import _wire
from searchkit_core._engine import Engine, Outcome
from searchkit_core._executor import Executor
from searchkit_core._store import DB_NAME, Store, db_path
from searchkit_core._view import Observer
from searchkit_core.errors import ExperimentLockedError, StoreError
from searchkit_core.hookspecs import MethodContext

if TYPE_CHECKING:
    from searchkit_core._config import ExperimentConfig
    from searchkit_core._plugins import Registry

LOCK_NAME = ".lock"


@attrs.frozen
class ExperimentInfo:
    """What the store says about an experiment, read without taking its lock."""

    experiment_dir: pathlib.Path
    config: ExperimentConfig
    runner: str
    model_dir: pathlib.Path | None
    status: str  # created, running, stopped, completed
    meta: dict[str, str]


def create_experiment(
    config: ExperimentConfig,
    *,
    experiment_dir: pathlib.Path,
    model_dir: pathlib.Path | None,
    runner: str,
    runner_options: dict[str, Any] | None = None,
    config_text: str | None = None,
) -> pathlib.Path:
    """Make a new experiment directory holding ``config``; refuse one that already holds an experiment."""
    experiment_dir = pathlib.Path(experiment_dir).absolute()
    if (experiment_dir / DB_NAME).exists():
        raise StoreError(
            f"{experiment_dir} already holds an experiment; resume it with "
            f"`searchkit resume {experiment_dir}` or choose another --experiment-dir"
        )
    if experiment_dir.exists() and not experiment_dir.is_dir():
        raise StoreError(f"{experiment_dir} exists and is not a directory")
    try:
        experiment_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the experiment directory {experiment_dir}: {exc.strerror or exc}"
        ) from None
    meta = {
        "config": _wire.to_json(config),
        "name": config.name,
        "searcher": str(config.searcher["name"]),
        "runner": runner,
        "runner_options": json.dumps(runner_options or {}),
        "model_dir": str(pathlib.Path(model_dir).absolute()) if model_dir is not None else "",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "status": "created",
    }
    Store.create(db_path(experiment_dir), meta).close()
    if config_text is not None:
        (experiment_dir / "config.yaml").write_text(config_text)
    return experiment_dir


#: What :func:`create_experiment` and a first run put in an experiment directory, except ``logs/``.
_CREATED_ENTRIES = (
    DB_NAME,
    f"{DB_NAME}-wal",
    f"{DB_NAME}-shm",
    "config.yaml",
    LOCK_NAME,
    "trials",
    "checkpoints",
)


def discard_unstarted(experiment_dir: pathlib.Path, *, existed: bool) -> None:
    """Remove an experiment that ``searchkit run`` created but whose search never made a decision.

    Called when a run fails with a user error (training code that cannot be
    imported, a GPU request the machine cannot meet) before the engine journaled
    anything: the mistake leaves no experiment behind, and the same command works
    once it is fixed. ``logs/`` stays when it holds something (the traceback of
    an import that failed); a directory that existed before keeps everything
    else it held.
    """
    import shutil

    experiment_dir = pathlib.Path(experiment_dir).absolute()
    try:
        store = Store.open(db_path(experiment_dir), is_readonly=True)
        try:
            if store.journal_length() > 0:
                return
        finally:
            store.close()
    except StoreError:
        return
    for name in _CREATED_ENTRIES:
        entry = experiment_dir / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    logs = experiment_dir / "logs"
    if logs.is_dir() and not any(logs.iterdir()):
        logs.rmdir()
    if not existed and not any(experiment_dir.iterdir()):
        experiment_dir.rmdir()


def open_experiment(experiment_dir: pathlib.Path) -> ExperimentInfo:
    """Read an experiment's config and choices (read-only; any process may do this at any time)."""
    experiment_dir = pathlib.Path(experiment_dir).absolute()
    if not experiment_dir.is_dir():
        raise StoreError(f"{experiment_dir} is not a directory (no such experiment)")
    store = Store.open(db_path(experiment_dir), is_readonly=True)
    try:
        meta = store.meta()
    finally:
        store.close()
    from searchkit_core._config import ExperimentConfig

    config = _wire.from_json(meta["config"], ExperimentConfig)
    model_dir = meta.get("model_dir") or None
    return ExperimentInfo(
        experiment_dir=experiment_dir,
        config=config,
        runner=meta.get("runner", ""),
        model_dir=pathlib.Path(model_dir) if model_dir else None,
        status=meta.get("status", "created"),
        meta=meta,
    )


@contextmanager
def experiment_lock(experiment_dir: pathlib.Path) -> Iterator[None]:
    """Hold the experiment's lock: one driving process at a time; released even on SIGKILL."""
    path = pathlib.Path(experiment_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ExperimentLockedError(
                f"{experiment_dir} is already being driven by {holder}; "
                "wait for it to end or stop it before resuming"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def build_method_for(info: ExperimentInfo, registry: Registry) -> tuple[str, Any]:
    """Construct the experiment's search method from its config through the plugin registry."""
    config = info.config
    name = str(config.searcher["name"])
    plugin = registry.search_method(name)
    method = plugin.factory(
        MethodContext(searcher=config.searcher, space=config.hyperparameters, seed=config.seed)
    )
    return name, method


def drive(
    experiment_dir: pathlib.Path,
    executor: Executor,
    *,
    observer: Observer | None = None,
    should_stop: Callable[[], bool] | None = None,
    registry: Registry | None = None,
    poll: float = 0.5,
) -> Outcome:
    """Drive an experiment to its end (or until ``should_stop()``), resuming wherever its store stands.

    This is what every runner calls, in the ``searchkit`` process (local, simulate)
    or inside a Ray actor (remote).
    """
    from searchkit_core._plugins import default_registry

    info = open_experiment(experiment_dir)
    method_name, method = build_method_for(info, registry or default_registry())
    with experiment_lock(info.experiment_dir):
        store = Store.open(db_path(info.experiment_dir))
        try:
            searcher = info.config.searcher
            engine = Engine(
                store,
                method,
                executor,
                method_name=method_name,
                max_restarts=info.config.max_restarts,
                metric=str(searcher.get("metric", "metric")),
                smaller_is_better=bool(searcher.get("smaller_is_better", True)),
                experiment_name=info.config.name,
                observer=observer,
            )
            return engine.run(should_stop, poll=poll)
        finally:
            store.close()
