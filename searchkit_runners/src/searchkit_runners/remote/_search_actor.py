"""The search actor: the engine and the search method running on the cluster, in a restartable Ray actor.

The client creates it as a named, detached actor (namespace ``searchkit``,
name ``searchkit-experiment:<experiment name>``) with unlimited restarts. Its
constructor starts a thread that drives the experiment with
:func:`searchkit_core._session.drive` and a :class:`RayExecutor`. If the
actor's process dies, Ray starts a new one with the same arguments; the new
constructor drives again, and ``drive`` resumes from the store (snapshot plus
journal), handing out every unanswered segment again. Nothing is lost or
repeated: the store's lock (``flock``) guarantees one driving process.

The actor is threaded (``max_concurrency``), so clients can ask for the latest
view, the status document, or a cancel while the engine runs. After the
search ends it stays ``linger`` seconds, so a client that reattaches late still
sees how it ended, then removes itself.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import threading
import time
import traceback
from typing import Any

import attrs

from searchkit_core._view import SearchView
from searchkit_core.errors import SearchkitError

log = logging.getLogger("searchkit.remote")

DEFAULT_LINGER = 300.0


def view_to_json(view: SearchView) -> dict[str, Any]:
    data = attrs.asdict(view)
    data["counts"] = dict(view.counts)
    data["recent"] = list(view.recent)
    return data


def view_from_json(data: dict[str, Any]) -> SearchView:
    return SearchView(
        experiment=str(data["experiment"]),
        method=str(data["method"]),
        metric=str(data["metric"]),
        smaller_is_better=bool(data["smaller_is_better"]),
        counts={str(k): int(v) for k, v in dict(data["counts"]).items()},
        best_trial_id=data.get("best_trial_id"),
        best_metric=data.get("best_metric"),
        progress=float(data["progress"]),
        recent=tuple(str(x) for x in data.get("recent", ())),
        elapsed=float(data["elapsed"]),
        events=int(data["events"]),
        is_finished=bool(data["is_finished"]),
    )


def _log_to(path: pathlib.Path) -> None:
    """Also write searchkit's log (engine, executor) to the experiment directory, across restarts."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return  # the storage problem shows up when the store is opened
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("searchkit").addHandler(handler)


class SearchActor:
    """Drives one experiment on the cluster; see the module docstring.

    ``options_json``: runner options (``workers``, ``trial_resources``,
    ``trial_timeout``, ``grace_period``, ``linger``, ``ship_code``).
    """

    def __init__(self, experiment_dir: str, options_json: str) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        self.experiment_dir = pathlib.Path(experiment_dir)
        self.options: dict[str, Any] = json.loads(options_json)
        self._view: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._outcome: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._started = time.time()
        self._lock = threading.Lock()
        from searchkit_runners.remote._trial_actor import node_identity

        self._identity = node_identity()  # node_id, node_ip, host, pid
        _log_to(self.experiment_dir / "logs" / "search-actor.log")
        log.info("search actor started on %s; driving %s", self._identity, self.experiment_dir)
        threading.Thread(target=self._drive, name="searchkit-drive", daemon=True).start()

    # -- the engine thread ------------------------------------------------------------

    def on_update(self, view: SearchView) -> None:
        """The engine's observer: keep the latest view for clients."""
        data = view_to_json(view)
        with self._lock:
            self._view = data

    def _drive(self) -> None:
        from searchkit_core._session import drive, open_experiment
        from searchkit_runners.remote._runner import build_executor

        executor = None
        try:
            info = open_experiment(self.experiment_dir)
            executor = build_executor(info, self.options)
            outcome = drive(self.experiment_dir, executor, observer=self, should_stop=self._stop.is_set)
            self._outcome = attrs.asdict(outcome)
        except SearchkitError as exc:
            log.error("the search ended with an error: %s", exc)
            self._error = {"message": str(exc), "exit_code": exc.exit_code, "type": type(exc).__name__}
        except BaseException as exc:
            log.error("the search failed:\n%s", traceback.format_exc())
            self._error = {
                "message": f"{type(exc).__name__}: {exc}",
                "exit_code": 1,
                "type": type(exc).__name__,
            }
        finally:
            if executor is not None:
                try:
                    executor.shutdown(cancel=True)
                except Exception:
                    log.exception("could not shut the executor down")
            self._done.set()
        linger = float(self.options.get("linger", DEFAULT_LINGER))
        threading.Timer(linger, self._leave).start()

    def _leave(self) -> None:
        """Remove this detached actor for good (no restart)."""
        import ray

        try:
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
        except Exception:
            os._exit(0)

    # -- what clients call ---------------------------------------------------------------

    def state(self) -> str:
        """JSON: the latest view, whether the search ended and how, where this actor runs."""
        with self._lock:
            view = self._view
        return json.dumps(
            {
                "experiment_dir": str(self.experiment_dir),
                "view": view,
                "is_done": self._done.is_set(),
                "outcome": self._outcome,
                "error": self._error,
                **self._identity,
                "started": self._started,
            }
        )

    def status_document(self) -> str:
        """JSON: the ``searchkit status --json`` document of the experiment (read-only)."""
        from searchkit_core import _status

        return json.dumps(_status.collect(self.experiment_dir))

    def cancel(self, timeout: float) -> str:
        """Stop the search (trials get their grace period), wait up to ``timeout`` s, then leave; returns state()."""
        self._stop.set()
        self._done.wait(timeout)
        result = self.state()
        threading.Timer(1.0, self._leave).start()
        return result

    def release(self) -> None:
        """Leave now if the search has ended (a client saw the end and nobody needs this actor)."""
        if self._done.is_set():
            threading.Timer(0.5, self._leave).start()
