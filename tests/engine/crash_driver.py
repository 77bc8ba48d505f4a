"""Drive a simulated search in child processes and SIGKILL them at chosen moments (run by the crash tests).

Usage: ``python crash_driver.py SPEC.json``. SPEC holds ``experiment_dir``,
``config`` (a mapping), ``options`` (simulate runner options), ``engine``
(``max_batch``, ``is_volatile``: how often the engine commits) and ``kills``, a
list of kill plans, each ``{"hook": K}`` (SIGKILL at the K-th pass through a
hook point: inside a store transaction before COMMIT, right after COMMIT,
at a launch, at a wait; with ``"site": NAME`` the K-th pass through that one;
with ``"at_row": R`` counting only once the store holds R journal rows) or ``{"timer": S}`` (SIGKILL after S wall seconds,
wherever the child is, SQLite's own COMMIT included). The parent imports
everything once and forks one child per plan, each resuming the experiment;
then, with ``"tail_kill": PLAN``, that plan again and again until a child
completes the search (so that the end of a search is killed too); a last
child runs without a kill to the end (unless ``"finish": false``). Prints a
JSON report, with the journal rows committed at each kill.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import threading
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import engine_methods

from searchkit_core import _engine, _store
from searchkit_core._config import validate_config
from searchkit_core._session import create_experiment
from searchkit_core.hookspecs import RunRequest
from searchkit_runners.simulate import SimulateExecutor, SimulateRunner

_calls = 0
_kill_at = -1
_sites_file: str | None = None
_kill_site: str | None = None  # count passes through this site only
_site_calls: dict[str, int] = {}


_at_row = 0  # the kill is armed once the store holds this many journal rows
_is_armed = True
_db_path: pathlib.Path | None = None


def _committed_rows() -> int:
    assert _db_path is not None
    return _journal_length(_db_path.parent)


def _hook(site: str) -> None:
    global _calls, _is_armed
    if not _is_armed:
        if site != "__exit__" or _committed_rows() < _at_row:
            return
        _is_armed = True
    _calls += 1
    _site_calls[site] = _site_calls.get(site, 0) + 1
    count = _site_calls[site] if _kill_site is not None else _calls
    if count == _kill_at and _kill_site in (None, site):
        if _sites_file:
            with open(_sites_file, "a") as f:  # where this kill lands, for the test to check
                f.write(site + "\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _install_hooks() -> None:
    """Wrap the places a kill matters most; each pass counts once."""

    def wrap(owner: Any, name: str, *, after: bool = False) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not after:
                _hook(name)
            result = original(*args, **kwargs)
            if after:
                _hook(name)
            return result

        setattr(owner, name, wrapper)

    for name in ("append_journal", "put_trials", "put_metrics", "put_snapshot", "put_files"):
        wrap(_store.Store, name)  # inside the transaction, before COMMIT
    wrap(_store._Transaction, "__exit__", after=True)  # committed, not yet acted upon
    wrap(SimulateExecutor, "launch")
    wrap(SimulateExecutor, "wait")


def _child(spec: dict[str, Any], plan: dict[str, Any], is_resume: bool, count_file: str | None) -> None:
    global _kill_at, _sites_file, _kill_site, _at_row, _is_armed, _db_path
    _sites_file = spec.get("sites_file")
    engine_methods.register_into_default_registry()
    engine = spec.get("engine", {})
    if "max_batch" in engine:  # smaller batches: many more commits to land a kill in
        _engine.MAX_BATCH = int(engine["max_batch"])
    if "is_volatile" in engine:  # False: commit after every wait, act only after the commit
        SimulateExecutor.is_volatile = bool(engine["is_volatile"])
    _install_hooks()
    if "hook" in plan:
        _kill_at = int(plan["hook"])
        _kill_site = plan.get("site")
        _at_row = int(plan.get("at_row", 0))
        _db_path = pathlib.Path(spec["experiment_dir"]) / _store.DB_NAME
        _is_armed = _committed_rows() >= _at_row
    if "timer" in plan:
        delay = float(plan["timer"])

        def later() -> None:
            time.sleep(delay)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=later, daemon=True).start()
    with open(os.devnull, "w") as devnull:
        request = RunRequest(
            experiment_dir=pathlib.Path(spec["experiment_dir"]),
            model_dir=None,
            is_resume=is_resume,
            options={**spec["options"], "quiet": True},
        )
        code = SimulateRunner(out=devnull).run(request)
    if count_file:
        pathlib.Path(count_file).write_text(json.dumps({"total": _calls, **_site_calls}))
    os._exit(code)


def main() -> None:
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    engine_methods.register_into_default_registry()
    experiment_dir = pathlib.Path(spec["experiment_dir"])
    if not (experiment_dir / _store.DB_NAME).exists():
        config = validate_config(spec["config"])
        create_experiment(
            config,
            experiment_dir=experiment_dir,
            model_dir=None,
            runner="simulate",
            runner_options=spec["options"],
        )
    report: dict[str, Any] = {"killed": 0, "completed_early": 0, "errors": [], "journal_at_kills": []}
    plans = list(spec["kills"])
    tail = spec.get("tail_kill")  # then this plan again and again until a child completes the search
    started = time.monotonic()
    index = 0
    while True:
        if index < len(plans):
            plan = plans[index]
        elif tail and index < len(plans) + MAX_TAIL_KILLS and not report.get("done"):
            plan = dict(tail)
        elif spec.get("finish", True):
            plan = {}  # the last child: to the end (or, if the search is over, resuming it changes nothing)
        else:
            break
        count_file = spec.get("count_file") if not plan else None
        pid = os.fork()
        if pid == 0:
            try:
                _child(spec, plan, is_resume=index > 0, count_file=count_file)
            except BaseException as exc:  # report, then die without running the parent's code
                sys.stderr.write(f"child failed: {exc!r}\n")
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        index += 1
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            report["killed"] += 1
            report["journal_at_kills"].append(_journal_length(experiment_dir))
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            report["done"] = True
            if plan:
                report["completed_early"] += 1
            else:
                break
        else:
            report["errors"].append(f"plan {plan}: status {status}")
            break
    report["seconds"] = time.monotonic() - started
    print(json.dumps(report))


MAX_TAIL_KILLS = 400


def _journal_length(experiment_dir: pathlib.Path) -> int:
    """Journal rows committed when a child was killed (read as any reader would)."""
    import sqlite3

    db = sqlite3.connect(f"file:{experiment_dir / _store.DB_NAME}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])
    finally:
        db.close()


if __name__ == "__main__":
    main()
