"""Connecting to a Ray cluster with bounded waits, and finding a search actor by experiment name.

Ray tends to hang rather than fail on a wrong address, so every call here has
a deadline: the address is first probed with a plain TCP connection (nothing
listening fails at once), then ``ray.init`` runs in a helper thread that is
abandoned after ``timeout`` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

from searchkit_core.errors import ConfigError, SearchkitError

NAMESPACE = "searchkit"
ACTOR_PREFIX = "searchkit-experiment:"
DEFAULT_CONNECT_TIMEOUT = 15.0
CALL_TIMEOUT = 30.0


class ClusterError(SearchkitError):
    """The Ray cluster cannot be reached, refused us, or has no such experiment (exit code 9)."""

    exit_code = 9


def actor_name(experiment_name: str) -> str:
    """The search actor's name on the cluster (namespace ``searchkit``): one running search per name."""
    return ACTOR_PREFIX + experiment_name


def resolve_address(options: Mapping[str, Any]) -> str:
    """``--address`` or ``RAY_ADDRESS``, checked to be ``HOST:PORT`` (the head's GCS address)."""
    address = options.get("address") or os.environ.get("RAY_ADDRESS") or ""
    address = str(address).strip()
    if not address:
        raise ConfigError(
            "the remote runner needs the Ray cluster's address: --address HOST:PORT (the head node's "
            "`ray start --head --port`), or set RAY_ADDRESS"
        )
    if address in ("auto", "local") or address.startswith("ray://"):
        raise ConfigError(
            f"--address {address!r}: give the head node's GCS address HOST:PORT (for example "
            "10.0.0.5:6379); searchkit connects only to the address it is given"
        )
    host_port = _split(address)
    if host_port is None:
        raise ConfigError(f"--address {address!r} must be HOST:PORT, for example 10.0.0.5:6379")
    return address


def _split(address: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"\[?([^\]\s]+?)\]?:(\d{1,5})", address)
    if match is None or not 0 < int(match.group(2)) < 65536:
        return None
    return match.group(1), int(match.group(2))


def _auth_hint() -> str:
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if mode == "disabled":
        return ""
    return (
        " If the cluster uses token authentication (Ray's default since 2.60), set RAY_AUTH_MODE=token and "
        "RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) to the cluster's token; see docs/remote.md."
    )


def check_reachable(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Raise ClusterError unless something listens at ``address`` (seconds, never a Ray hang)."""
    host_port = _split(address)
    if host_port is None:
        raise ConfigError(f"--address {address!r} must be HOST:PORT, for example 10.0.0.5:6379")
    host, port = host_port
    try:
        with socket.create_connection((host, port), timeout=min(5.0, timeout)):
            pass
    except OSError as exc:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address}: {exc.strerror or exc} (is `ray start --head "
            "--port=PORT` running there, and is the address the head's --node-ip-address and port?)"
        ) from None


def connect(
    address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT, *, runtime_env: Mapping[str, Any] | None = None
) -> None:
    """Connect this process to the Ray cluster at ``address`` within ``timeout`` seconds, or raise ClusterError.

    ``runtime_env`` becomes the job's runtime environment (Ray uploads a local
    ``working_dir`` only at the job level); actors this process starts inherit it.
    """
    import ray

    key = (address, json.dumps(dict(runtime_env or {}), sort_keys=True))
    if ray.is_initialized():
        if _connected[0] == key:
            return
        ray.shutdown()  # another cluster or another code directory (or a Ray we did not start): a new job
        _connected[0] = None
    check_reachable(address, timeout)
    outcome: dict[str, BaseException | None] = {"error": None}
    done = threading.Event()

    def init() -> None:
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                runtime_env=dict(runtime_env) if runtime_env else None,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=True,
            )
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    # ray.init in a helper thread (so that it can be abandoned) warns that it cannot set a SIGTERM handler.
    logging.getLogger("ray._private.worker").addFilter(_drop_sigterm_warning)
    with _StderrCapture() as capture:
        threading.Thread(target=init, name="searchkit-ray-connect", daemon=True).start()
        capture.is_done = done.wait(timeout)
    noise = capture.text
    if not capture.is_done:
        if "InvalidAuthToken" in noise or "Unauthenticated" in noise:
            raise ClusterError(
                f"the Ray cluster at {address} requires an authentication token and this client has none "
                "that it accepts: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) to the "
                "cluster's token; see docs/remote.md"
            )
        raise ClusterError(
            f"{address} accepts connections but no Ray cluster answered within {timeout:g} s (is it the "
            "head node's GCS port? Do not use 127.0.0.1 or localhost as a node address, see docs/remote.md)."
            + _auth_hint()
        )
    error = outcome["error"]
    if error is not None:
        text = " ".join(str(error).split())
        hint = _auth_hint() if "auth" in text.lower() or "token" in text.lower() else ""
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {text}{hint}") from None
    _connected[0] = key


class _StderrCapture:
    """Route file descriptor 2 to a file while Ray connects: its C++ client retries noisily on stderr.

    If the connection attempt is abandoned (``is_done`` false), the stuck
    thread keeps writing to descriptor 2, so that stays on the file and
    Python's ``sys.stderr`` moves to a copy of the original descriptor.
    """

    def __init__(self) -> None:
        self.is_done = True
        self.text = ""

    def __enter__(self) -> _StderrCapture:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.is_done:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        else:
            sys.stderr = open(self._saved, "w", buffering=1, closefd=True)  # noqa: SIM115 - lives on
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()
        if self.is_done and self.text.strip():
            # Keep what Ray said on success or failure (warnings a user should see), minus the retries.
            kept = [line for line in self.text.splitlines() if "gcs_client.cc" not in line]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _drop_sigterm_warning(record: logging.LogRecord) -> bool:
    return "SIGTERM handler is not set" not in record.getMessage()


_connected: list[tuple[str, str] | None] = [None]


def disconnect() -> None:
    """Leave the cluster (the search goes on there)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _connected[0] = None


def bounded(function: Callable[[], Any], what: str, timeout: float = CALL_TIMEOUT) -> Any:
    """Run a blocking Ray call in a helper thread; ClusterError if it does not return within ``timeout``."""
    result: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            result["value"] = function()
        except BaseException as exc:
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="searchkit-ray-call", daemon=True).start()
    if not done.wait(timeout):
        raise ClusterError(f"the Ray cluster did not answer within {timeout:g} s ({what})")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def find_search_actor(experiment_name: str) -> Any | None:
    """The search actor's handle, or None when no search of that name runs (bounded)."""
    import ray

    def lookup() -> Any | None:
        try:
            return ray.get_actor(actor_name(experiment_name), namespace=NAMESPACE)
        except ValueError:
            return None

    return bounded(lookup, f"looking up the search actor of {experiment_name!r}")


def get_search_actor(experiment_name: str, address: str) -> Any:
    """The handle of the search actor driving ``experiment_name``, or ClusterError naming what runs instead."""
    handle = find_search_actor(experiment_name)
    if handle is not None:
        return handle
    running = running_experiments()
    listed = ", ".join(repr(n) for n in running) if running else "none"
    raise ClusterError(
        f"no experiment named {experiment_name!r} runs on the Ray cluster at {address} (running: {listed}); "
        "a finished experiment stays readable with `searchkit status EXPERIMENT_DIR`"
    )


def running_experiments() -> list[str]:
    """Names of the experiments whose search actors live on the connected cluster."""
    import ray

    try:
        actors = bounded(lambda: ray.util.list_named_actors(all_namespaces=True), "listing named actors")
    except Exception:
        return []
    names = []
    for entry in actors:
        if isinstance(entry, dict) and entry.get("namespace") == NAMESPACE:
            name = str(entry.get("name", ""))
            if name.startswith(ACTOR_PREFIX):
                names.append(name[len(ACTOR_PREFIX) :])
    return sorted(names)


def call(ref: Any, timeout: float = CALL_TIMEOUT, what: str = "the search actor") -> Any:
    """``ray.get`` with a deadline; a timeout or a lost actor becomes ClusterError."""
    import ray

    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise ClusterError(f"{what} did not answer within {timeout:g} s") from None
    except ray.exceptions.RayActorError as exc:
        raise ClusterError(f"{what} is gone: {' '.join(str(exc).split())[:300]}") from None
