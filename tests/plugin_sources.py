"""Source text of small plugin modules, written into real distributions by the tests."""

from __future__ import annotations


def method_plugin(module: str, method_name: str, summary: str = "a test method") -> str:
    """A plugin module registering one random-search method called ``method_name``."""
    return f"""
import random
import uuid

import searchkit_core as searcher
from searchkit_core import hookimpl
from searchkit_core.hookspecs import SearchMethodPlugin


class RandomSearch(searcher.SearchMethod):
    def __init__(self, context):
        self.rng = random.Random(context.seed)
        self.budget = int(context.searcher.get("budget", 1))

    def initial_operations(self, searcher_state):
        request_id = uuid.UUID(int=self.rng.getrandbits(128))
        return [
            searcher.Create(request_id=request_id, hparams={{"x": self.rng.random()}}, checkpoint=None),
            searcher.ValidateAfter(request_id, self.budget),
        ]

    def on_trial_created(self, searcher_state, request_id):
        return []

    def on_validation_completed(self, searcher_state, request_id, metric, train_length):
        return [searcher.Close(request_id), searcher.Shutdown()]

    def on_trial_closed(self, searcher_state, request_id):
        return []

    def on_trial_exited_early(self, searcher_state, request_id, exited_reason):
        return [searcher.Shutdown(failure=True)]

    def progress(self, searcher_state):
        return 1.0 if searcher_state.trials_closed else 0.0


def _validate(searcher_section):
    problems = []
    if "budget" in searcher_section and not isinstance(searcher_section["budget"], int):
        problems.append("searcher.budget: must be an integer")
    return problems


@hookimpl
def searchkit_search_methods():
    return [SearchMethodPlugin(name={method_name!r}, summary={summary!r}, factory=RandomSearch, validate=_validate)]
"""


def runner_plugin(module: str, runner_name: str, summary: str = "a test runner") -> str:
    """A plugin module registering a runner that writes its RunRequest to ``request.json``."""
    return f"""
import json
import os
import pathlib

from searchkit_core import hookimpl
from searchkit_core.hookspecs import RunnerPlugin


class RecordingRunner:
    def run(self, request):
        record = {{
            "experiment_dir": str(request.experiment_dir),
            "model_dir": None if request.model_dir is None else str(request.model_dir),
            "is_resume": request.is_resume,
            "options": dict(request.options),
        }}
        (pathlib.Path(request.experiment_dir) / "request.json").write_text(json.dumps(record))
        behaviour = os.environ.get("TEST_RUNNER_BEHAVIOUR", "0")
        if behaviour == "interrupt":
            raise KeyboardInterrupt
        if behaviour == "sleep":
            import time

            print("runner started", flush=True)
            time.sleep(60)
        return int(behaviour)


@hookimpl
def searchkit_runners():
    return [RunnerPlugin(name={runner_name!r}, summary={summary!r}, factory=RecordingRunner)]
"""


BROKEN_ON_IMPORT = """
raise RuntimeError("this plugin is broken on purpose")
"""

HOOK_RAISES = """
from searchkit_core import hookimpl


@hookimpl
def searchkit_search_methods():
    raise ValueError("hook blew up")
"""

HOOK_RETURNS_GARBAGE = """
from searchkit_core import hookimpl


@hookimpl
def searchkit_runners():
    return ["not a RunnerPlugin"]
"""
