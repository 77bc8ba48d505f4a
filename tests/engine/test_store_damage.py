"""A damaged, truncated or newer store is refused with a clear StoreError and never written to."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys

import engine_helpers as eh
import pytest
from store_dump import dump

from searchkit_core._store import DB_NAME, STORE_FORMAT_VERSION, Store
from searchkit_core.errors import StoreError

DRIVER = pathlib.Path(__file__).with_name("crash_driver.py")


@pytest.fixture
def finished(tmp_path: pathlib.Path) -> pathlib.Path:
    experiment = eh.create(tmp_path / "exp", eh.asha())
    assert eh.run(experiment).status == "completed"
    return experiment


def _assert_refused(experiment: pathlib.Path, match: str, *, is_refused_on_open: bool = True) -> None:
    """Resuming fails with ``match``; so does opening, for damage a reader must notice; no byte changes."""
    before = eh.fingerprint(experiment)
    with pytest.raises(StoreError, match=match):
        eh.run(experiment)
    if is_refused_on_open:
        with pytest.raises(StoreError, match=match):
            Store.open(experiment / DB_NAME, is_readonly=True).close()
    assert eh.fingerprint(experiment) == before


def test_a_store_of_garbage_is_refused_untouched(finished: pathlib.Path) -> None:
    db = finished / DB_NAME
    data = bytearray(db.read_bytes())
    data[:16] = b"not a database!!"
    db.write_bytes(bytes(data))
    _assert_refused(finished, "not an SQLite database")


def test_a_truncated_store_is_refused_untouched(finished: pathlib.Path) -> None:
    db = finished / DB_NAME
    data = db.read_bytes()
    assert len(data) > 8192
    db.write_bytes(data[: len(data) // 2])
    _assert_refused(finished, "truncated")


def test_an_empty_store_is_refused_untouched(finished: pathlib.Path) -> None:
    (finished / DB_NAME).write_bytes(b"")
    _assert_refused(finished, "empty")


def test_damaged_pages_are_refused_untouched(finished: pathlib.Path) -> None:
    db = finished / DB_NAME
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page, len(data) - page, 3 * page):  # scribble over every third page but the first
        data[offset : offset + page] = bytes([0xA5]) * page
    db.write_bytes(bytes(data))
    _assert_refused(finished, "cannot be read|damaged|malformed")


def test_a_snapshot_that_fails_its_checksum_is_refused(finished: pathlib.Path) -> None:
    db = sqlite3.connect(finished / DB_NAME)
    (body,) = db.execute("SELECT body FROM snapshots WHERE kind = 'engine'").fetchone()
    damaged = bytearray(body)
    damaged[len(damaged) // 2] ^= 0x01  # one bit flipped
    db.execute("UPDATE snapshots SET body = ? WHERE kind = 'engine'", (bytes(damaged),))
    db.commit()
    db.close()
    _assert_refused(finished, "engine snapshot fails its checksum", is_refused_on_open=False)


def test_a_journal_row_that_fails_its_checksum_is_refused(tmp_path: pathlib.Path) -> None:
    experiment = eh.create(tmp_path / "exp", eh.asha())
    eh.run(experiment, {})
    db = sqlite3.connect(experiment / DB_NAME)
    # Drop the final snapshots so that recovery reads the journal from its start.
    db.execute("DELETE FROM snapshots")
    db.execute("UPDATE journal SET event = event || ' ' WHERE seq = 20")  # valid JSON, wrong CRC
    db.commit()
    db.close()
    _assert_refused(experiment, "journal row 20 fails its checksum", is_refused_on_open=False)


def test_a_store_from_a_newer_searchkit_is_refused_untouched(finished: pathlib.Path) -> None:
    db = sqlite3.connect(finished / DB_NAME)
    db.execute(
        "UPDATE meta SET value = ? WHERE key = 'store_format_version'", (str(STORE_FORMAT_VERSION + 1),)
    )
    db.commit()
    db.close()
    _assert_refused(finished, f"newer searchkit \\(store format {STORE_FORMAT_VERSION + 1}\\)")


def test_a_torn_wal_tail_falls_back_to_the_last_complete_commit(tmp_path: pathlib.Path) -> None:
    """Kill a search, tear the end of its write-ahead log, resume: the result is the uninterrupted one."""
    spec = {
        # Enough events for several commits (the simulate executor lets the engine batch them).
        "config": eh.asha(max_trials=600),
        "options": {"workers": 6},
    }

    def drive(name: str, kills: list[dict[str, int]], finish: bool = True) -> dict[str, int]:
        path = tmp_path / f"{name}.json"
        document = {
            **spec,
            "experiment_dir": str(tmp_path / name),
            "kills": kills,
            "finish": finish,
            "count_file": str(tmp_path / "count"),
        }
        path.write_text(json.dumps(document))
        done = subprocess.run(
            [sys.executable, str(DRIVER), str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
        assert not report["errors"], done.stdout
        return report

    drive("reference", [])
    late = int(json.loads((tmp_path / "count").read_text())["total"] * 0.9)
    assert drive("torn", [{"hook": late}], finish=False)["killed"] == 1
    torn = tmp_path / "torn"
    wal = torn / (DB_NAME + "-wal")
    assert wal.exists() and wal.stat().st_size > 5000, "the killed search left no write-ahead log"
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 700)  # the last frame is torn
    drive("torn", [])
    assert dump(torn) == dump(tmp_path / "reference")
