"""``searchkit status``: what an experiment's store says, as one JSON document (docs/status-json.md).

Read-only: the store is opened read-only (SQLite WAL lets this run while a
search writes) and nothing in the experiment directory is changed, not even the
lock. The document is stable: fields are only ever added, and
``format_version`` changes if one ever changes meaning.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

from searchkit_core import _wire
from searchkit_core._events import ValidationCompleted
from searchkit_core._store import Store, db_path
from searchkit_core.errors import StoreError

STATUS_FORMAT_VERSION = 1
STATUS_TYPE = "ExperimentStatus"
STATE_NAMES = ("RUNNING", "PAUSED", "CLOSED", "ERRORED", "USER_CANCELED", "INVALID_HP")


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _driver(experiment_dir: pathlib.Path) -> dict[str, Any] | None:
    """The process that last took the experiment's lock, and whether it is alive (on this host)."""
    path = experiment_dir / ".lock"
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    parts = text.split()
    if len(parts) < 4 or parts[0] != "pid" or parts[2] != "on" or not parts[1].isdigit():
        return None
    pid, host = int(parts[1]), parts[3]
    is_alive: bool | None = None
    if host == os.uname().nodename:
        try:
            os.kill(pid, 0)
            is_alive = True
        except ProcessLookupError:
            is_alive = False
        except PermissionError:
            is_alive = True
    return {"pid": pid, "host": host, "is_alive": is_alive}


def collect(experiment_dir: pathlib.Path | str) -> dict[str, Any]:
    """The status document of the experiment in ``experiment_dir`` (raises StoreError if there is none)."""
    root = pathlib.Path(experiment_dir).absolute()
    if not root.is_dir():
        raise StoreError(f"{root} is not a directory (no such experiment)")
    store = Store.open(db_path(root), is_readonly=True)
    try:
        meta = store.meta()
        rows = store.trials()
        validations: dict[str, list[dict[str, Any]]] = {}
        restarts_errors: dict[str, list[str]] = {}
        events = 0
        for entry in store.journal():
            events = entry.seq
            if '"ValidationCompleted"' not in entry.event and '"TrialRestarted"' not in entry.event:
                continue  # cheap filter: most rows are other events
            data = json.loads(entry.event)
            tag = data.get("type") if isinstance(data, dict) else None
            if tag == "ValidationCompleted":
                event = _wire.structure(data, ValidationCompleted)
                validations.setdefault(str(event.request_id), []).append(
                    {"length": event.train_length, "metric": _finite(event.metric), "time": entry.time}
                )
            elif tag == "TrialRestarted":
                restarts_errors.setdefault(str(data.get("request_id")), []).append(str(data.get("error", "")))
        checkpoints = store.latest_checkpoints()
    finally:
        store.close()

    config: dict[str, Any] = {}
    if meta.get("config"):
        try:
            config = json.loads(meta["config"])
        except json.JSONDecodeError as exc:
            raise StoreError(f"{root}: the stored config is not valid JSON ({exc})") from None
    searcher = config.get("searcher") or {}
    metric = str(searcher.get("metric", "metric"))
    smaller_is_better = bool(searcher.get("smaller_is_better", True))

    counts = dict.fromkeys(STATE_NAMES, 0)
    trials: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for row in rows:
        rid = row.request_id
        counts[row.state] = counts.get(row.state, 0) + 1
        history = validations.get(rid, [])
        checkpoint = checkpoints.get(rid)
        trial = {
            "trial_id": row.trial_id,
            "request_id": rid,
            "state": row.state,
            "hparams": json.loads(row.hparams),
            "trained": row.trained,
            "target": row.target,
            "rung": len(history) - 1 if history else None,
            "last_metric": _finite(row.last_metric),
            "validations": [{"length": v["length"], "metric": v["metric"]} for v in history],
            "restarts": row.restarts,
            "error": row.error,
            "crashes": restarts_errors.get(rid, []),
            "latest_checkpoint": (
                {"uuid": checkpoint[0], "steps_completed": checkpoint[1]} if checkpoint is not None else None
            ),
            "log": str(root / "trials" / str(row.trial_id) / "trial.log"),
        }
        trials.append(trial)
        for v in history:
            value = v["metric"]
            if value is None:
                continue
            key = value if smaller_is_better else -value
            if best is None or key < best["_key"]:
                best = {
                    "_key": key,
                    "trial_id": row.trial_id,
                    "request_id": rid,
                    "metric": value,
                    "length": v["length"],
                    "hparams": trial["hparams"],
                    "state": row.state,
                }
    if best is not None:
        best.pop("_key")
    return {
        "format_version": STATUS_FORMAT_VERSION,
        "type": STATUS_TYPE,
        "experiment_dir": str(root),
        "name": meta.get("name", ""),
        "searcher": meta.get("searcher", ""),
        "runner": meta.get("runner", ""),
        "status": meta.get("status", "created"),
        "created_at": meta.get("created_at"),
        "driver": _driver(root),
        "metric": metric,
        "smaller_is_better": smaller_is_better,
        "events": events,
        "counts": counts,
        "best_trial": best,
        "trials": trials,
    }
