"""Helpers for the remote runner's tests: configs, CLI subprocesses, and reading results from the store."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from searchkit_core._store import Store, db_path

MODEL_DIR = pathlib.Path(__file__).parent / "model"
BASE_CONFIG = MODEL_DIR / "asha.yaml"


def write_config(tmp_path: pathlib.Path, name: str, **changes: Any) -> pathlib.Path:
    """A copy of model/asha.yaml named ``name``; ``changes`` map dotted keys to values."""
    config = yaml.safe_load(BASE_CONFIG.read_text())
    config["name"] = name
    for key, value in changes.items():
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "searchkit_core", *args]


def run_cli(
    *args: str, timeout: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
    )


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 60.0) -> str:
    """Read the process's output line by line until a line holds ``needle``; return what was read."""
    assert proc.stdout is not None
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not seen within {timeout} s; output:\n{''.join(seen)}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def open_store(experiment_dir: pathlib.Path) -> Store:
    return Store.open(db_path(experiment_dir), is_readonly=True)


def meta_status(experiment_dir: pathlib.Path) -> str:
    store = open_store(experiment_dir)
    try:
        return store.meta().get("status", "")
    finally:
        store.close()


def placements(experiment_dir: pathlib.Path) -> dict[int, list[dict[str, Any]]]:
    """Trial id -> where each of its runs started (MetricsReported group "placement"), in order."""
    store = open_store(experiment_dir)
    try:
        ids = {row.request_id: row.trial_id for row in store.trials()}
        out: dict[int, list[dict[str, Any]]] = {}
        for request_id, group, steps, metrics, when in store.metrics():
            if group == "placement":
                out.setdefault(ids[request_id], []).append({**metrics, "steps": steps, "time": when})
        for runs in out.values():
            runs.sort(key=lambda r: r["time"])
        return out
    finally:
        store.close()


def results(experiment_dir: pathlib.Path) -> dict[str, Any]:
    """What a search decided, independent of timing and request ids: trials and the journal's events."""
    store = open_store(experiment_dir)
    try:
        trials = sorted(store.trials(), key=lambda r: r.trial_id)
        ids = {row.request_id: row.trial_id for row in trials}
        events = []
        for row in store.journal():
            event = json.loads(row.event)
            rid = event.pop("request_id", None)
            if rid is not None:
                event["trial"] = ids.get(str(rid))
            events.append(event)
        return {
            "trials": [
                (r.trial_id, json.loads(r.hparams), r.state, r.trained, r.last_metric, r.restarts)
                for r in trials
            ],
            "events": events,
            "status": store.meta().get("status"),
        }
    finally:
        store.close()
