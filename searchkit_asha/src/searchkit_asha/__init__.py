"""ASHA for searchkit: asynchronous successive halving with promotions, as a plugin.

Registered through the ``searchkit`` entry point exactly as a third-party plugin
would be; select it with ``searcher.name: asha`` or ``--searcher asha``. See
docs/asha.md for the algorithm and every config key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import searchkit_core
from searchkit_asha._config import (
    AshaConfig,
    Bracket,
    RungsReducedWarning,
    bracket_rung_counts,
    plan_brackets,
    rung_budgets,
    validate_searcher,
)
from searchkit_asha._method import AshaSearch, AshaSnapshot
from searchkit_core.errors import ConfigError
from searchkit_core.hookspecs import MethodContext, SearchMethodPlugin

__version__ = "0.1.0"

__all__ = [
    "AshaConfig",
    "AshaSearch",
    "AshaSnapshot",
    "Bracket",
    "RungsReducedWarning",
    "bracket_rung_counts",
    "plan_brackets",
    "rung_budgets",
    "searchkit_search_methods",
    "validate_searcher",
]


def _build(context: MethodContext) -> AshaSearch:
    problems = validate_searcher(context.searcher)
    if problems:
        raise ConfigError(problems)
    return AshaSearch(AshaConfig.from_mapping(context.searcher), context.space, context.seed)


def _validate(searcher: Mapping[str, Any]) -> list[str]:
    return validate_searcher(searcher)


@searchkit_core.hookimpl
def searchkit_search_methods() -> list[SearchMethodPlugin]:
    """ASHA's registration: one search method named ``asha``."""
    return [
        SearchMethodPlugin(
            name="asha",
            summary="ASHA: asynchronous successive halving with promotions (or stopping), adaptive brackets",
            factory=_build,
            validate=_validate,
        )
    ]
