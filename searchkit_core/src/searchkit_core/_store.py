"""The experiment store: one SQLite file in the experiment directory.

SQLite runs in WAL mode, so ``searchkit status`` can read while the engine
writes, and a transaction is atomic against the death of the process at any
instant: a commit that did not finish is rolled back when the file is next
opened, so the last complete commit stands. Each journal row also carries a
CRC32 of its text, so a row damaged after the fact is detected, never
replayed.

Tables:

- ``meta``: the store format version, the experiment config and its choices.
- ``journal``: one row per event fed to the method, with the operations it produced.
- ``trials``: the current record of each trial (a view for readers; the engine
  rebuilds its own state from snapshots and the journal).
- ``metrics``, ``checkpoints``: what trials reported.
- ``snapshots`` / ``snapshot_files``: the engine's state and the method's saved files.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from searchkit_core.errors import StoreError

STORE_FORMAT_VERSION = 1
DB_NAME = "searchkit.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    operations TEXT NOT NULL,
    crc INTEGER NOT NULL
);
-- Keyed by trial_id (creation order), not by the random request id: updates then touch the
-- end of the table instead of random pages of an index.
CREATE TABLE IF NOT EXISTS trials (
    trial_id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    hparams TEXT NOT NULL,
    state TEXT NOT NULL,
    trained INTEGER NOT NULL,
    target INTEGER,
    restarts INTEGER NOT NULL,
    last_metric REAL,
    error TEXT,
    updated_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    steps INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    time REAL NOT NULL
);
-- metrics has no index by trial on purpose: rows arrive in time order and readers read them
-- all, while an index on random request ids cost about a tenth of the engine's time at 100k trials.
CREATE TABLE IF NOT EXISTS checkpoints (
    uuid TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    steps INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_by_trial ON checkpoints (request_id, steps);
CREATE TABLE IF NOT EXISTS snapshots (
    kind TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    crc INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot_files (
    name TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""


def crc(text: str | bytes) -> int:
    """The checksum stored beside every journal row and snapshot."""
    return zlib.crc32(text.encode() if isinstance(text, str) else text)


@attrs.frozen
class JournalRow:
    """One committed event and the operations it produced, as JSON text."""

    seq: int
    time: float
    event: str
    operations: str


@attrs.frozen
class TrialRow:
    """The reader's view of a trial, written by the engine after each commit that touched it."""

    request_id: str
    trial_id: int
    hparams: str
    state: str
    trained: int
    target: int | None
    restarts: int
    last_metric: float | None
    error: str | None
    updated_seq: int


#: Connections this process holds open, by file. Closing ANY descriptor of a database file
#: drops every POSIX lock this process holds on it, SQLite's included ("How To Corrupt An
#: SQLite Database File", 2.2), so searchkit reads a file's header itself only while it
#: has no connection to that file.
_OPEN_FILES: collections.Counter[tuple[int, int]] = collections.Counter()


def _file_key(path: pathlib.Path) -> tuple[int, int]:
    info = path.stat()
    return (info.st_dev, info.st_ino)


def _check_header(path: pathlib.Path) -> None:
    """Refuse a file that is not an SQLite database, or is shorter than its header says.

    Checked before SQLite sees the file, so that a damaged store is never rewritten.
    """
    with open(path, "rb") as f:
        header_page = f.read(100)
    if header_page[:16] != b"SQLite format 3\x00":
        raise StoreError(f"{path}: not an SQLite database (corrupt or not a searchkit store); left untouched")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # a checkpoint may have stopped half-way; SQLite finishes it from the WAL
    raw_page_size = int.from_bytes(header_page[16:18], "big")
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    page_count = int.from_bytes(header_page[28:32], "big")
    if path.stat().st_size < page_size * page_count:
        raise StoreError(f"{path}: the experiment store is truncated; it was left untouched")


def db_path(experiment_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(experiment_dir) / DB_NAME


def _wrap(path: pathlib.Path, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"{path}: the experiment store cannot be read ({exc}); it was left untouched")


class Store:
    """The SQLite store of one experiment. One writer (the engine); any number of readers."""

    def __init__(self, path: pathlib.Path, *, is_readonly: bool = False) -> None:
        self.path = pathlib.Path(path)
        self.is_readonly = is_readonly
        self._key: tuple[int, int] | None = None
        try:
            if is_readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            else:
                self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
        except sqlite3.Error as exc:
            raise _wrap(self.path, exc) from None
        self._key = _file_key(self.path)
        _OPEN_FILES[self._key] += 1

    # -- opening -----------------------------------------------------------

    @classmethod
    def create(cls, path: pathlib.Path, meta: dict[str, str]) -> Store:
        """Create a new store holding ``meta``; refuses to touch an existing file.

        The file is built under a temporary name and renamed into place, so a
        crash during creation never leaves a half-made store behind.
        """
        path = pathlib.Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists; resume it with `searchkit resume {path.parent}`")
        tmp = path.with_name(path.name + ".creating")
        tmp.unlink(missing_ok=True)
        store = cls(tmp)
        try:
            store._db.execute("PRAGMA journal_mode = WAL")
            store._db.executescript(_SCHEMA)
            with store.transaction():
                store._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("store_format_version", str(STORE_FORMAT_VERSION)), *meta.items()],
                )
        except sqlite3.Error as exc:
            raise _wrap(path, exc) from None
        finally:
            store.close()
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return cls.open(path)

    @classmethod
    def open(cls, path: pathlib.Path, *, is_readonly: bool = False) -> Store:
        """Open an existing store, refusing a missing, corrupt or newer one without writing to it."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise StoreError(
                f"{path.parent} is not a searchkit experiment directory (no {DB_NAME}); "
                "start one with `searchkit run CONFIG`"
            )
        if path.stat().st_size == 0:
            raise StoreError(f"{path}: the experiment store is empty (truncated?); it was left untouched")
        if not _OPEN_FILES[_file_key(path)]:
            _check_header(path)
        store = cls(path, is_readonly=True)
        try:
            version = store.meta().get("store_format_version")
        except StoreError:
            store.close()
            raise
        if version is None:
            store.close()
            raise StoreError(f"{path}: not a searchkit store (no format version); left untouched")
        if int(version) > STORE_FORMAT_VERSION:
            store.close()
            raise StoreError(
                f"{path} was written by a newer searchkit (store format {version}); "
                f"this searchkit reads format {STORE_FORMAT_VERSION}: upgrade searchkit-core"
            )
        if is_readonly:
            return store
        store.close()
        writer = cls(path)
        writer._db.execute("PRAGMA synchronous = NORMAL")
        return writer

    def close(self) -> None:
        if self._key is not None:
            _OPEN_FILES[self._key] -= 1
            self._key = None
        self._db.close()

    # -- transactions --------------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _wrap(self.path, exc) from None

    # -- meta ----------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    # -- journal ---------------------------------------------------------------

    def append_journal(self, rows: Iterable[tuple[int, float, str, str]]) -> None:
        self._db.executemany(
            "INSERT INTO journal (seq, time, event, operations, crc) VALUES (?, ?, ?, ?, ?)",
            [(seq, t, ev, ops, crc(ev + ops)) for seq, t, ev, ops in rows],
        )

    def journal_length(self) -> int:
        row = self._query("SELECT MAX(seq) FROM journal")[0]
        return int(row[0] or 0)

    def last_journal_time(self) -> float:
        """The time of the last committed journal row (0.0 for an empty journal)."""
        rows = self._query("SELECT time FROM journal ORDER BY seq DESC LIMIT 1")
        return float(rows[0][0]) if rows else 0.0

    def journal(self, after: int = 0) -> Iterator[JournalRow]:
        """Rows with ``seq > after`` in order, each checked against its CRC."""
        try:
            cursor = self._db.execute(
                "SELECT seq, time, event, operations, crc FROM journal WHERE seq > ? ORDER BY seq", (after,)
            )
            expected = after + 1
            for seq, t, ev, ops, checksum in cursor:
                if seq != expected:
                    raise StoreError(f"{self.path}: journal row {expected} is missing; the store is damaged")
                if crc(ev + ops) != checksum:
                    raise StoreError(
                        f"{self.path}: journal row {seq} fails its checksum; the store is damaged"
                    )
                expected += 1
                yield JournalRow(seq, t, ev, ops)
        except sqlite3.Error as exc:
            raise _wrap(self.path, exc) from None

    # -- snapshots -------------------------------------------------------------

    def put_snapshot(self, kind: str, seq: int, body: bytes) -> None:
        self._db.execute(
            "INSERT INTO snapshots (kind, seq, body, crc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind) DO UPDATE SET seq = excluded.seq, body = excluded.body, crc = excluded.crc",
            (kind, seq, body, crc(body)),
        )

    def snapshot(self, kind: str) -> tuple[int, bytes] | None:
        rows = self._query("SELECT seq, body, crc FROM snapshots WHERE kind = ?", (kind,))
        if not rows:
            return None
        seq, body, checksum = rows[0]
        body = body.encode() if isinstance(body, str) else bytes(body)  # a hand-edited row may hold text
        if crc(body) != checksum:
            raise StoreError(f"{self.path}: the {kind} snapshot fails its checksum; the store is damaged")
        return int(seq), body

    def put_files(self, files: dict[str, bytes]) -> None:
        self._db.execute("DELETE FROM snapshot_files")
        self._db.executemany("INSERT INTO snapshot_files (name, data) VALUES (?, ?)", list(files.items()))

    def files(self) -> dict[str, bytes]:
        return {name: bytes(data) for name, data in self._query("SELECT name, data FROM snapshot_files")}

    # -- trials, metrics, checkpoints --------------------------------------------

    def put_trials(self, rows: Iterable[Sequence[Any]]) -> None:
        """Write trial records, each a tuple in :class:`TrialRow`'s field order (the engine's hot path)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO trials (request_id, trial_id, hparams, state, trained, target, "
            "restarts, last_metric, error, updated_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def trials(self, states: Sequence[str] | None = None) -> list[TrialRow]:
        """Every trial in creation order; only those in ``states`` (TrialState values) when given."""
        sql = (
            "SELECT request_id, trial_id, hparams, state, trained, target, restarts, last_metric, "
            "error, updated_seq FROM trials"
        )
        args: tuple[Any, ...] = ()
        if states is not None:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            args = tuple(states)
        return [TrialRow(*row) for row in self._query(sql + " ORDER BY trial_id", args)]

    def put_metrics(self, rows: Iterable[tuple[str, str, int, str, float]]) -> None:
        self._db.executemany(
            "INSERT INTO metrics (request_id, grp, steps, metrics, time) VALUES (?, ?, ?, ?, ?)", list(rows)
        )

    def metrics(
        self, request_id: str | None = None, *, group: str | None = None
    ) -> list[tuple[str, str, int, dict[str, Any], float]]:
        sql = "SELECT request_id, grp, steps, metrics, time FROM metrics"
        where: list[str] = []
        args: tuple[Any, ...] = ()
        if request_id is not None:
            where.append("request_id = ?")
            args += (request_id,)
        if group is not None:
            where.append("grp = ?")
            args += (group,)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [(r, g, s, json.loads(m), t) for r, g, s, m, t in self._query(sql + " ORDER BY id", args)]

    def put_checkpoints(self, rows: Iterable[tuple[str, str, int, str, float]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO checkpoints (uuid, request_id, steps, metadata, time) VALUES (?, ?, ?, ?, ?)",
            list(rows),
        )

    def latest_checkpoints(self) -> dict[str, tuple[str, int, str]]:
        """Each trial's latest checkpoint: request_id -> (uuid, steps, metadata JSON)."""
        latest: dict[str, tuple[str, int, str]] = {}
        for uuid_, rid, steps, metadata in self._query(
            "SELECT uuid, request_id, steps, metadata FROM checkpoints ORDER BY request_id, steps, time"
        ):
            latest[rid] = (uuid_, steps, metadata)
        return latest


class _Transaction:
    """``with store.transaction():`` commits on success and rolls back on any error."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __enter__(self) -> Store:
        self._store._db.execute("BEGIN IMMEDIATE")
        return self._store

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        db = self._store._db
        if exc_type is None:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as err:
                db.execute("ROLLBACK")
                raise _wrap(self._store.path, err) from None
        else:
            db.execute("ROLLBACK")


def fsync_dir(path: pathlib.Path) -> None:
    """Make a new directory entry durable (used after creating the experiment directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
