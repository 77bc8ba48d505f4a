"""Registers the Determined-style ASHA (search_method.py) with searchkit as ``determined-asha``.

A search method reaches searchkit through a plugin hook. Packaged, this module is a
plugin on its own: name it in a ``pyproject.toml``::

    [project.entry-points.searchkit]
    determined-asha = "asha_plugin"

Unpackaged, ``run_search.py`` next to it registers it and runs the searchkit CLI,
the way Determined's ``run_experiment.py`` scripts started a search runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_method import ASHASearchMethod, search_space

import searchkit_core
from searchkit_core.hookspecs import MethodContext, SearchMethodPlugin

NAME = "determined-asha"
_REQUIRED_INTS = ("max_trials", "num_rungs", "divisor")


def _max_length(searcher: Mapping[str, Any]) -> int:
    value = searcher["max_length"]
    return int(next(iter(value.values()))) if isinstance(value, Mapping) else int(value)


def validate(searcher: Mapping[str, Any]) -> list[str]:
    """One message per problem with the ``searcher:`` section, each naming its key."""
    problems = []
    if "max_length" not in searcher:
        problems.append("searcher.max_length: required key missing (for example {batches: 1000})")
    for key in _REQUIRED_INTS:
        value = searcher.get(key)
        if value is None:
            problems.append(f"searcher.{key}: required key missing (a positive integer)")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"searcher.{key}: must be a positive integer, got {value!r}")
    return problems


def build(context: MethodContext) -> ASHASearchMethod:
    """The method, from the config's ``searcher:`` section (the search space is search_method.search_space)."""
    searcher = context.searcher
    return ASHASearchMethod(
        search_space,
        max_length=_max_length(searcher),
        max_trials=int(searcher["max_trials"]),
        num_rungs=int(searcher["num_rungs"]),
        divisor=int(searcher["divisor"]),
        max_concurrent_trials=int(searcher.get("max_concurrent_trials", 16)),
        smaller_is_better=bool(searcher.get("smaller_is_better", True)),
    )


@searchkit_core.hookimpl
def searchkit_search_methods() -> list[SearchMethodPlugin]:
    return [
        SearchMethodPlugin(
            name=NAME,
            summary="ASHA written for Determined's custom-searcher API (uuid4, global random, pickle)",
            factory=build,
            validate=validate,
        )
    ]
