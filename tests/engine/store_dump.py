"""A canonical, comparable dump of an experiment store (request ids replaced by trial ids)."""

from __future__ import annotations

import collections
import json
import pathlib
import re
from typing import Any

from searchkit_core._store import Store, db_path

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def dump(experiment_dir: pathlib.Path) -> dict[str, Any]:
    """Everything that must match between a crashed-and-resumed search and an uninterrupted one."""
    store = Store.open(db_path(experiment_dir), is_readonly=True)
    try:
        trials = store.trials()
        ids = {t.request_id: t.trial_id for t in trials}

        def canon(text: str) -> str:
            return _UUID.sub(lambda m: f"trial-{ids.get(m.group(0), m.group(0))}", text)

        journal = [(r.seq, r.time, canon(r.event), canon(r.operations)) for r in store.journal()]
        trial_rows = [
            (t.trial_id, t.hparams, t.state, t.trained, t.target, t.restarts, t.last_metric, t.error)
            for t in trials
        ]
        metrics = sorted(
            (ids[rid], group, steps, json.dumps(values, sort_keys=True), time)
            for rid, group, steps, values, time in store.metrics()
        )
        status = store.meta().get("status")
    finally:
        store.close()
    return {"journal": journal, "trials": trial_rows, "metrics": metrics, "status": status}


def closing_order(snapshot: dict[str, Any]) -> list[str]:
    """The TrialClosed / TrialExitedEarly events in journal order."""
    return [ev for _, _, ev, _ in snapshot["journal"] if '"TrialClosed"' in ev or '"TrialExitedEarly"' in ev]


def duplicates(snapshot: dict[str, Any]) -> list[Any]:
    """Validation events or validation metric rows recorded twice for one (trial, length, attempt)."""
    seen: collections.Counter[Any] = collections.Counter()
    for _, _, ev, _ in snapshot["journal"]:
        if '"ValidationCompleted"' in ev:
            seen[ev] += 1
    for trial_id, group, steps, values, _time in snapshot["metrics"]:
        seen[(trial_id, group, steps, values)] += 1
    return [key for key, n in seen.items() if n > 1]
