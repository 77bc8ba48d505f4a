"""Resuming a finished search is cheap: no method load, no new snapshot, the same outcome."""

from __future__ import annotations

import pathlib
import sqlite3

import engine_helpers as eh
import pytest

from searchkit_core._store import DB_NAME


def _snapshots(experiment: pathlib.Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(experiment / DB_NAME)
    try:
        rows = db.execute("SELECT kind, seq, crc FROM snapshots ORDER BY kind").fetchall()
        rows += db.execute("SELECT name, length(data), 0 FROM snapshot_files ORDER BY name").fetchall()
        rows += db.execute("SELECT COUNT(*), MAX(seq), 0 FROM journal").fetchall()
        return rows
    finally:
        db.close()


@pytest.mark.parametrize("make_config", [eh.asha, eh.flaky], ids=["asha", "flaky"])
def test_resuming_a_finished_search_changes_nothing(tmp_path: pathlib.Path, make_config: object) -> None:
    experiment = eh.create(tmp_path / "exp", make_config())  # type: ignore[operator]
    first = eh.run(experiment)
    assert first.status == "completed"
    before = _snapshots(experiment)
    again = eh.run(experiment)
    assert again == first
    assert _snapshots(experiment) == before


def test_resuming_a_finished_non_replayable_search_changes_nothing(tmp_path: pathlib.Path) -> None:
    raw = eh.config({"name": "uuid-random", "max_length": {"batches": 16}, "max_trials": 12})
    experiment = eh.create(tmp_path / "exp", raw)
    first = eh.run(experiment)
    before = _snapshots(experiment)
    assert eh.run(experiment) == first
    assert _snapshots(experiment) == before
