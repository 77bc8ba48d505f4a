"""The ``remote`` runner's client side: submit a search to a Ray cluster, follow it, reattach, cancel, status.

``searchkit run CONFIG --runner remote --address HOST:PORT --storage-path DIR``
creates the experiment directory on the shared storage path (the CLI does
that), starts the search actor on the cluster and follows it with the same
live display as the local runner. Ctrl-C detaches: the search goes on, and
``searchkit attach NAME --address HOST:PORT`` follows it again.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from searchkit_core._display import make_display
from searchkit_core._session import ExperimentInfo, open_experiment
from searchkit_core._usercode import check_entrypoint
from searchkit_core.errors import ConfigError
from searchkit_core.hookspecs import RunRequest
from searchkit_runners._signals import SignalCatcher
from searchkit_runners.remote._cluster import (
    CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    NAMESPACE,
    ClusterError,
    actor_name,
    bounded,
    call,
    check_reachable,
    connect,
    find_search_actor,
    get_search_actor,
    resolve_address,
)
from searchkit_runners.remote._executor import (
    DEFAULT_GRACE_PERIOD,
    RayExecutor,
    TrialResources,
    check_capacity,
)

#: Exit code of a search that was cancelled (``searchkit cancel``) before its end; resume continues it.
EXIT_CANCELLED = 130
#: How long a client keeps following a search actor that does not answer (Ray restarts it meanwhile).
UNANSWERED_LIMIT = 120.0
FOLLOW_INTERVAL = 0.5


def _number(options: Mapping[str, Any], key: str, default: float | None, *, is_int: bool = False) -> Any:
    value = options.get(key)
    if value is None:
        return default
    kind = "integer" if is_int else "number"
    try:
        number = int(value) if is_int else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"runner option {key} must be a positive {kind}, got {value!r}") from None
    if not number > 0 or (is_int and str(number) != str(value).strip()):
        raise ConfigError(f"runner option {key} must be a positive {kind}, got {value!r}")
    return number


def _custom_resources(options: Mapping[str, Any]) -> dict[str, float]:
    raw = options.get("trial_resources")
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(
                f"runner option trial_resources must be a mapping of Ray resource names to amounts, "
                f"e.g. --trial-resources='{{accelerator_type:A100: 1}}', got {raw!r}"
            ) from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"runner option trial_resources must be a mapping, got {raw!r}")
    out: dict[str, float] = {}
    for name, amount in raw.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
            raise ConfigError(f"runner option trial_resources[{name!r}] must be a number > 0, got {amount!r}")
        out[str(name)] = float(amount)
    return out


def trial_resources(info: ExperimentInfo, options: Mapping[str, Any]) -> TrialResources:
    """What each trial actor asks Ray for: the config's resources plus ``trial_resources`` from the options."""
    res = info.config.resources
    return TrialResources(
        num_cpus=float(getattr(res, "cpus_per_trial", 1.0)),
        num_gpus=float(res.slots_per_trial),
        custom=_custom_resources(options),
    )


def build_executor(info: ExperimentInfo, options: Mapping[str, Any]) -> RayExecutor:
    """The executor the search actor drives the experiment with (called on the cluster)."""
    config = info.config
    ship_code = options.get("ship_code", True) is not False
    return RayExecutor(
        info.experiment_dir,
        entrypoint=config.entrypoint,
        metric=str(config.searcher.get("metric", "metric")),
        data=config.data,
        resources=trial_resources(info, options),
        workers=_number(options, "workers", None, is_int=True),
        model_dir=None if ship_code else info.model_dir,
        trial_timeout=_number(options, "trial_timeout", config.trial_timeout),
        grace_period=_number(options, "grace_period", DEFAULT_GRACE_PERIOD),
    )


def _options_for_actor(options: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("workers", "trial_resources", "trial_timeout", "grace_period", "linger", "ship_code")
    return {k: options[k] for k in keep if options.get(k) is not None}


class _Detach(SignalCatcher):
    """SIGINT/SIGTERM while following: stop following, leave the search running (``received`` tells)."""


def _say(text: str, stream: TextIO | None = None) -> None:
    print(f"searchkit: {text}", file=stream or sys.stderr, flush=True)


def follow(handle: Any, name: str, address: str, *, plain: bool = False) -> int:
    """Show the search's live display until it ends (exit code) or Ctrl-C detaches (0)."""
    from searchkit_runners.remote._search_actor import view_from_json

    display = make_display(force_plain=plain)
    last_answer = time.monotonic()
    is_restarting = False
    state: dict[str, Any] = {}
    detach = _Detach()
    with detach, display:
        while detach.received is None:
            try:
                state = json.loads(call(handle.state.remote(), timeout=10.0))
                last_answer = time.monotonic()
                if is_restarting:
                    _say("the search actor answers again (it resumed from the store)")
                    is_restarting = False
            except ClusterError as exc:
                if time.monotonic() - last_answer > UNANSWERED_LIMIT:
                    raise ClusterError(
                        f"the search actor of {name!r} has not answered for {UNANSWERED_LIMIT:g} s: {exc}"
                    ) from None
                if not is_restarting:
                    _say(f"the search actor does not answer ({exc}); waiting for Ray to restart it")
                    is_restarting = True
                state = {}
            view = state.get("view")
            if view is not None:
                display.on_update(view_from_json(view))
            if state.get("is_done"):
                break
            end = time.monotonic() + FOLLOW_INTERVAL
            while detach.received is None and time.monotonic() < end:
                time.sleep(0.05)
    if detach.received is not None:
        _say(
            f"detached: the search {name!r} goes on on the cluster. Follow it again with "
            f"`searchkit attach {name} --address {address}`; stop it with "
            f"`searchkit cancel {name} --address {address}`"
        )
        return 0
    error = state.get("error")
    if error:
        _say(f"error: {error.get('message')}")
        return int(error.get("exit_code") or 1)
    outcome = state.get("outcome") or {}
    if outcome.get("status") == "stopped":
        _say(
            f"the search {name!r} was cancelled before its end; `searchkit resume {state.get('experiment_dir')}` continues it"
        )
        return EXIT_CANCELLED
    return 0


class RemoteRunner:
    """Runs the search on a Ray cluster (``--runner remote``).

    Options: ``address`` (or ``RAY_ADDRESS``), ``storage_path`` (used by the
    CLI for the experiment directory), ``workers``, ``trial_resources``
    (custom Ray resources per trial), ``trial_timeout``, ``grace_period``,
    ``linger`` (seconds the search actor stays after the end), ``detach``
    (submit and return), ``plain`` (plain lines), ``connect_timeout``,
    ``ship_code`` (false: trials import from the model directory's path
    instead of a copy shipped by Ray).
    """

    def run(self, request: RunRequest) -> int:
        import ray

        info = open_experiment(request.experiment_dir)
        options = dict(request.options)
        model_dir = request.model_dir if request.model_dir is not None else info.model_dir
        check_entrypoint(model_dir, info.config.entrypoint)
        _custom_resources(options)
        address = resolve_address(options)
        try:
            connect(
                address,
                _number(options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
                runtime_env=code_runtime_env(model_dir, options),
            )
        except ClusterError as exc:
            if request.is_resume:
                raise
            # The experiment directory exists already: say how to start it once the cluster answers.
            raise ClusterError(
                f"{exc} (the experiment waits in {info.experiment_dir}: "
                f"`searchkit resume {info.experiment_dir} --address ADDRESS` starts it)"
            ) from None
        check_capacity(
            trial_resources(info, options), bounded(ray.cluster_resources, "reading the cluster's resources")
        )
        handle = submit(info, options)
        name = info.config.name
        # ``detach`` applies to the submission that asked for it; a resume (which reuses the
        # recorded options) follows the search unless asked again on its own command line.
        if options.get("detach") and not request.is_resume:
            _say(
                f"submitted {name!r} to the Ray cluster at {address}; follow it with "
                f"`searchkit attach {name} --address {address}`"
            )
            return 0
        _say(f"following {name!r} on the Ray cluster at {address} (Ctrl-C detaches; the search goes on)")
        return follow(handle, name, address, plain=bool(options.get("plain")))


def preflight(options: Mapping[str, Any]) -> None:
    """Before ``searchkit run`` stores anything: the address is well formed and something answers there."""
    _custom_resources(options)
    check_reachable(resolve_address(options), _number(options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT))


def code_runtime_env(model_dir: pathlib.Path | None, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """Ray's runtime environment that ships the model directory to every node (unless ``ship_code`` is false)."""
    if model_dir is None or options.get("ship_code", True) is False:
        return None
    return {
        "working_dir": str(model_dir),
        "excludes": [".git", "__pycache__", "*.pyc", ".venv", "experiments"],
    }


def submit(info: ExperimentInfo, options: Mapping[str, Any]) -> Any:
    """Start the search actor for ``info`` (or find the one already driving it) and return its handle."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from searchkit_runners.remote._search_actor import SearchActor

    name = actor_name(info.config.name)
    existing = find_search_actor(info.config.name)
    if existing is not None:
        state = json.loads(call(existing.state.remote(), timeout=CALL_TIMEOUT))
        if pathlib.Path(state["experiment_dir"]) != info.experiment_dir:
            raise ClusterError(
                f"an experiment named {info.config.name!r} already runs on this cluster from "
                f"{state['experiment_dir']}; wait for it, cancel it (`searchkit cancel {info.config.name}`) "
                "or give this one another name (--set name=...)"
            )
        if not state.get("is_done"):
            _say(f"{info.config.name!r} already runs on the cluster: following it")
            return existing
        call(existing.release.remote(), timeout=CALL_TIMEOUT)
        _wait_gone(info.config.name)
    head = _head_node_id()
    actor_options: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": 8,
        "num_cpus": 0,  # the search loop takes no trial's CPU
    }
    if head is not None:
        # The search loop belongs next to the head (the cluster's single point of failure anyway).
        actor_options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=head, soft=False)
    try:
        handle: Any = (
            ray.remote(SearchActor)
            .options(**actor_options)
            .remote(str(info.experiment_dir), json.dumps(_options_for_actor(options)))
        )
    except ValueError as exc:  # a concurrent submit took the name first
        raise ClusterError(f"cannot start the search actor {name!r}: {exc}") from None
    except Exception as exc:
        raise ClusterError(
            f"cannot start the search actor {name!r}: {' '.join(str(exc).split())[:300]}"
        ) from None
    # The first answer proves the actor started (runtime env shipped, store opened).
    call(handle.state.remote(), timeout=120.0, what=f"the new search actor {name!r}")
    return handle


def _wait_gone(experiment_name: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if find_search_actor(experiment_name) is None:
            return
        time.sleep(0.2)
    raise ClusterError(f"the finished search actor of {experiment_name!r} did not leave within {timeout:g} s")


def _head_node_id() -> str | None:
    import ray

    try:
        for node in bounded(ray.nodes, "listing the cluster's nodes"):
            if node.get("Alive") and "node:__internal_head__" in (node.get("Resources") or {}):
                return str(node["NodeID"])
    except Exception:
        return None
    return None


# -- commands by experiment name ------------------------------------------------------


def _connect_for(options: Mapping[str, Any]) -> str:
    address = resolve_address(options)
    connect(address, _number(options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    return address


def attach(name: str, options: Mapping[str, Any]) -> int:
    """``searchkit attach NAME --address``: follow a search running on the cluster until it ends."""
    address = _connect_for(options)
    handle = get_search_actor(name, address)
    _say(f"following {name!r} on the Ray cluster at {address} (Ctrl-C detaches; the search goes on)")
    return follow(handle, name, address, plain=bool(options.get("plain")))


def cancel(name: str, options: Mapping[str, Any]) -> int:
    """``searchkit cancel NAME --address``: stop the search and its trials; the experiment stays resumable."""
    address = _connect_for(options)
    handle = get_search_actor(name, address)
    grace = _number(options, "grace_period", DEFAULT_GRACE_PERIOD)
    state = json.loads(call(handle.cancel.remote(grace + 20.0), timeout=grace + 40.0))
    directory = state.get("experiment_dir")
    if not state.get("is_done"):
        raise ClusterError(f"the search {name!r} did not stop within {grace + 20.0:g} s")
    outcome = state.get("outcome") or {}
    if outcome.get("status") == "completed":
        _say(f"{name!r} had already finished ({directory})")
    else:
        _say(
            f"cancelled {name!r}; its experiment directory {directory} keeps every result: "
            f"`searchkit resume {directory} --address {address}` continues it"
        )
    return 0


def status_document(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``searchkit status --json`` document of the experiment ``name`` running on the cluster."""
    address = _connect_for(options)
    handle = get_search_actor(name, address)
    document: dict[str, Any] = json.loads(call(handle.status_document.remote(), timeout=CALL_TIMEOUT))
    return document
