"""The ``simulate`` runner: search methods against learning curves in virtual time.

It drives the real engine and store (so every recovery property holds) with an
executor whose clock is virtual: a preview of what a search will cost, a
benchmark harness for search methods, and the engine's crash-test bench.
See docs/engine.md ("The simulate runner").
"""

from __future__ import annotations

from searchkit_runners.simulate._curves import TABLE_COLUMNS, Curves, SyntheticCurves, TableCurves
from searchkit_runners.simulate._executor import SIMULATE_GROUP, SimulateExecutor
from searchkit_runners.simulate._runner import (
    DEFAULT_WORKERS,
    SimulateRunner,
    SimulateSettings,
    SimulationSummary,
    build_executor,
    check_options,
    default_workers,
)

__all__ = [
    "DEFAULT_WORKERS",
    "SIMULATE_GROUP",
    "TABLE_COLUMNS",
    "Curves",
    "SimulateExecutor",
    "SimulateRunner",
    "SimulateSettings",
    "SimulationSummary",
    "SyntheticCurves",
    "TableCurves",
    "build_executor",
    "check_options",
    "default_workers",
]
