"""searchkit's hook specifications, and the typed records the hooks return.

A plugin is a module named by an entry point in the ``searchkit`` group::

    [project.entry-points.searchkit]
    myplugin = "searchkit_myplugin"

It implements any of the hooks below with ``@searchkit_core.hookimpl``. Each
hook returns a list of records; the registry rejects two records with one name.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import pluggy

if TYPE_CHECKING:
    from searchkit_core._method import SearchMethod
    from searchkit_core._space import SearchSpace

PROJECT_NAME = "searchkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@attrs.frozen
class MethodContext:
    """What a search method gets to build itself from the experiment config."""

    searcher: Mapping[str, Any]  # the config's ``searcher:`` section, ``name`` included
    space: SearchSpace  # the config's ``hyperparameters:``
    seed: int  # the experiment seed; replayable methods seed every generator from it


def _no_problems(searcher: Mapping[str, Any]) -> list[str]:
    return []


@attrs.frozen
class SearchMethodPlugin:
    """A search method registered by name."""

    name: str
    summary: str  # one line for ``searchkit plugins``
    factory: Callable[[MethodContext], SearchMethod]
    #: Problems with the ``searcher:`` section, one message per problem, each naming its key.
    validate: Callable[[Mapping[str, Any]], list[str]] = _no_problems


@attrs.frozen
class RunRequest:
    """What ``searchkit run`` / ``resume`` hands a runner once the experiment directory exists."""

    experiment_dir: pathlib.Path
    model_dir: pathlib.Path | None
    is_resume: bool
    options: Mapping[str, Any] = attrs.field(factory=dict)  # runner options: workers, address, ...


class Runner(Protocol):
    """Executes an experiment's trials. Most runners build an executor and call the engine."""

    def run(self, request: RunRequest) -> int:
        """Drive the experiment to its end (or until stopped); return the CLI exit code."""
        ...


@attrs.frozen
class RunnerPlugin:
    """A runner registered by name."""

    name: str
    summary: str
    factory: Callable[[], Runner]
    #: Runners whose searches outlive the client (``remote``) serve these by experiment name;
    #: each takes ``(name, options)`` (options: ``address`` and the like). ``None``: not offered.
    #: ``searchkit attach`` / ``cancel`` return an exit code; ``searchkit status --address`` a status document.
    attach: Callable[[str, Mapping[str, Any]], int] | None = None
    cancel: Callable[[str, Mapping[str, Any]], int] | None = None
    status: Callable[[str, Mapping[str, Any]], dict[str, Any]] | None = None
    #: Called by ``searchkit run`` with the runner options before anything is stored: raise a
    #: SearchkitError if the runner cannot start (no cluster at the address, say), so that a
    #: mistake leaves no experiment directory behind. ``None``: nothing to check.
    preflight: Callable[[Mapping[str, Any]], None] | None = None
    #: Whether the runner imports the config's entrypoint. ``False`` (the simulator, which runs
    #: learning curves instead of training code): ``searchkit run`` does not look for it.
    needs_user_code: bool = True


@attrs.frozen
class TrialAdapterPlugin:
    """Runs training code that is a class rather than a ``train(ctx)`` function.

    For example a Determined ``PyTorchTrial`` subclass named by
    ``entrypoint: model_def:MNistTrial`` (``searchkit-runners[determined]``).
    """

    name: str
    summary: str
    #: Names of base classes (the last dotted part, e.g. ``"PyTorchTrial"``) that mark a class
    #: entrypoint as this adapter's: the entrypoint check reads the source, it imports nothing.
    base_classes: tuple[str, ...]
    #: A training function ``train(ctx)`` for the class, or None if the class is not this adapter's.
    adapt: Callable[[type], Callable[[Any], Any] | None]


@hookspec
def searchkit_search_methods() -> list[SearchMethodPlugin]:  # type: ignore[empty-body]
    """Return the search methods this plugin provides."""


@hookspec
def searchkit_runners() -> list[RunnerPlugin]:  # type: ignore[empty-body]
    """Return the runners this plugin provides."""


@hookspec
def searchkit_trial_adapters() -> list[TrialAdapterPlugin]:  # type: ignore[empty-body]
    """Return the trial adapters this plugin provides (class entrypoints such as a PyTorchTrial)."""
