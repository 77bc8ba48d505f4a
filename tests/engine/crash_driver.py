"""Drive a simulated search in child processes and SIGKILL them at chosen moments (run by the crash tests).

Usage: ``python crash_driver.py SPEC.json``. SPEC holds ``experiment_dir``,
``config`` (a mapping), ``options`` (simulate runner options), ``engine``
(``max_batch``, ``is_volatile``: how often the engine commits) and ``kills``, a
list of kill plans, each ``{"hook": K}`` (SIGKILL at the K-th pass through a
hook point: inside a store transaction before COMMIT, right after COMMIT,
at a launch, at a wait; with ``"site": NAME`` the K-th pass through that one) or ``{"timer": S}`` (SIGKILL after S wall seconds,
wherever the child is, SQLite's own COMMIT included). The parent imports
everything once and forks one child per plan, each resuming the experiment;
a last child runs without a kill to the end (unless ``"finish": false``).
Prints a JSON report.
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


def _hook(site: str) -> None:
    global _calls
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
    global _kill_at, _sites_file, _kill_site
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
    report: dict[str, Any] = {"killed": 0, "completed_early": 0, "errors": []}
    plans = [*spec["kills"], {}] if spec.get("finish", True) else list(spec["kills"])
    started = time.monotonic()
    for index, plan in enumerate(plans):
        count_file = spec.get("count_file") if not plan else None
        pid = os.fork()
        if pid == 0:
            try:
                _child(spec, plan, is_resume=index > 0, count_file=count_file)
            except BaseException as exc:  # report, then die without running the parent's code
                sys.stderr.write(f"child failed: {exc!r}\n")
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            report["killed"] += 1
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            if plan:
                report["completed_early"] += 1
        else:
            report["errors"].append(f"plan {plan}: status {status}")
            break
    report["seconds"] = time.monotonic() - started
    print(json.dumps(report))


if __name__ == "__main__":
    main()
