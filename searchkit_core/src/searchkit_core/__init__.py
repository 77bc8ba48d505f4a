"""searchkit core: the search method protocol, operations and events, and the plugin hooks.

A method written for Determined's ``determined.searcher`` runs after changing
``from determined import searcher`` to ``import searchkit_core as searcher``.
"""

from searchkit_core._config import ExperimentConfig, load_config
from searchkit_core._events import (
    Event,
    SearchStarted,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    ValidationCompleted,
)
from searchkit_core._executor import CheckpointRef
from searchkit_core._ledger import check_operations
from searchkit_core._method import SearchMethod
from searchkit_core._operations import (
    Close,
    Create,
    ExitedReason,
    Operation,
    Progress,
    Shutdown,
    ValidateAfter,
)
from searchkit_core._plugins import PluginLoadWarning, Registry
from searchkit_core._space import SearchSpace
from searchkit_core._state import SearcherState
from searchkit_core._trial import TrialAPIError, TrialContext
from searchkit_core.errors import InvalidHP
from searchkit_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "CheckpointRef",
    "Close",
    "Create",
    "Event",
    "ExitedReason",
    "ExperimentConfig",
    "InvalidHP",
    "Operation",
    "PluginLoadWarning",
    "Progress",
    "Registry",
    "SearchMethod",
    "SearchSpace",
    "SearchStarted",
    "SearcherState",
    "Shutdown",
    "TrialAPIError",
    "TrialClosed",
    "TrialContext",
    "TrialCreated",
    "TrialExitedEarly",
    "ValidateAfter",
    "ValidationCompleted",
    "__version__",
    "check_operations",
    "hookimpl",
    "load_config",
]
