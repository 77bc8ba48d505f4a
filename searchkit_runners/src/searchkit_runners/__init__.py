"""searchkit's runners, registered through the ``searchkit`` entry-point group like any plugin.

Each runner is one line in :data:`RUNNERS`; its module is imported only when
the runner is used, so ``searchkit plugins`` stays fast and a runner whose
dependencies are missing (Ray, say) does not take the others down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from searchkit_core import hookimpl
from searchkit_core.hookspecs import RunnerPlugin, TrialAdapterPlugin

if TYPE_CHECKING:
    from searchkit_core.hookspecs import Runner

__version__ = "0.1.0"


def _local() -> Runner:
    from searchkit_runners.local import LocalRunner

    return LocalRunner()


def _local_preflight(options: Mapping[str, Any]) -> None:
    from searchkit_runners.local import check_options

    check_options(options)


def _simulate() -> Runner:
    from searchkit_runners.simulate import SimulateRunner

    return SimulateRunner()


def _simulate_preflight(options: Mapping[str, Any]) -> None:
    from searchkit_runners.simulate import check_options

    check_options(options)


def _remote() -> Runner:
    from searchkit_runners.remote import RemoteRunner

    return RemoteRunner()


def _remote_attach(name: str, options: Mapping[str, Any]) -> int:
    from searchkit_runners.remote import attach

    return attach(name, options)


def _remote_cancel(name: str, options: Mapping[str, Any]) -> int:
    from searchkit_runners.remote import cancel

    return cancel(name, options)


def _remote_preflight(options: Mapping[str, Any]) -> None:
    from searchkit_runners.remote import preflight

    preflight(options)


def _remote_status(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    from searchkit_runners.remote import status_document

    return status_document(name, options)


RUNNERS: list[RunnerPlugin] = [
    RunnerPlugin(
        name="local",
        summary="trials in warm worker processes on this machine",
        factory=_local,
        preflight=_local_preflight,
    ),
    RunnerPlugin(
        name="simulate",
        summary="virtual time against learning curves: preview a search's cost, benchmark methods",
        factory=_simulate,
        preflight=_simulate_preflight,
        needs_user_code=False,
    ),
    RunnerPlugin(
        name="remote",
        summary="the search and its trials on a Ray cluster (--address; searchkit-runners[remote])",
        factory=_remote,
        attach=_remote_attach,
        cancel=_remote_cancel,
        status=_remote_status,
        preflight=_remote_preflight,
    ),
]


@hookimpl
def searchkit_runners() -> list[RunnerPlugin]:
    """The runners this distribution provides."""
    return list(RUNNERS)


def _adapt_determined(obj: type) -> Callable[[Any], Any] | None:
    # Imports neither determined nor torch: a class that subclasses PyTorchTrial already did.
    from searchkit_runners.determined import adapt_trial_class

    return adapt_trial_class(obj)


TRIAL_ADAPTERS: list[TrialAdapterPlugin] = [
    TrialAdapterPlugin(
        name="determined-pytorch",
        summary="a Determined PyTorchTrial class as the entrypoint (searchkit-runners[determined])",
        base_classes=("PyTorchTrial",),
        adapt=_adapt_determined,
    ),
]


@hookimpl
def searchkit_trial_adapters() -> list[TrialAdapterPlugin]:
    """Class entrypoints this distribution can run: Determined's PyTorchTrial."""
    return list(TRIAL_ADAPTERS)
