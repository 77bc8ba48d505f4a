"""The ``local`` runner: trials in a pool of warm worker processes on this machine."""

from searchkit_runners.local._executor import LocalExecutor
from searchkit_runners.local._runner import LocalRunner, check_options, plan_slots

__all__ = ["LocalExecutor", "LocalRunner", "check_options", "plan_slots"]
