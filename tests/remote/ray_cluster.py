"""A real two-node Ray cluster on loopback addresses, for the remote runner's tests.

Each node is started with ``ray start`` in a new session, so all of its daemons
(GCS, raylet, agents) share one process group; its worker processes are the
raylet's children. A node is stopped by ending exactly that process tree, never
with ``ray stop`` (which ends every Ray process on the machine, other people's
included). Addresses follow docs/remote.md: never 127.0.0.1 or localhost.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import attrs

HEAD_IP = "127.0.0.2"
NODE2_IP = "127.0.0.3"
RAY = str(pathlib.Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 100 * 1024 * 1024

#: Every Ray process in these tests runs without token authentication (loopback only).
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Notice a lost node within a few seconds rather than the default ~30 s.
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    "OMP_NUM_THREADS": "1",
}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@attrs.define
class Node:
    ip: str
    pgid: int
    node_id: str = ""
    is_stopped: bool = False


@attrs.define
class RayCluster:
    address: str
    temp_dir: pathlib.Path
    head: Node
    node2: Node

    @property
    def nodes(self) -> list[Node]:
        return [self.head, self.node2]


def _environ() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_ENV)
    return env


def _ray_start(args: list[str], timeout: float = 120.0, env: dict[str, str] | None = None) -> int:
    """Run ``ray start ARGS`` in its own session; return that session's process group id."""
    proc = subprocess.Popen(
        [RAY, "start", "--disable-usage-stats", *args],
        env=env if env is not None else _environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(proc.pid)
        raise
    if proc.returncode != 0:
        stop_process_group(proc.pid)
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out.decode(errors='replace')[-3000:]}")
    return proc.pid


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process we can see."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def process_tree(pgid: int) -> set[int]:
    """Every process in group ``pgid`` and every descendant of those (Ray workers have their own groups)."""
    table = _processes()
    members = {pid for pid, (_, group) in table.items() if group == pgid}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in table.items():
            if ppid in members and pid not in members:
                members.add(pid)
                changed = True
    return members


def stop_process_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the node's process tree (as `ray stop` would, but only this node), SIGKILL what remains."""
    members = process_tree(pgid)
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    end = time.monotonic() + grace
    while time.monotonic() < end and any(is_alive(pid) for pid in members):
        time.sleep(0.1)
    for pid in members | process_tree(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_cluster() -> RayCluster:
    """Head on 127.0.0.2 (2 CPUs) and a second node on 127.0.0.3 (2 CPUs, resource ``node2``)."""
    temp_dir = pathlib.Path(tempfile.mkdtemp(prefix="skr", dir="/tmp"))  # short: Ray's socket paths
    port = free_port(HEAD_IP)
    head_pgid = _ray_start(
        [
            "--head",
            f"--node-ip-address={HEAD_IP}",
            f"--port={port}",
            "--num-cpus=2",
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port(HEAD_IP)}",
            f"--ray-client-server-port={free_port(HEAD_IP)}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ]
    )
    cluster = RayCluster(
        address=f"{HEAD_IP}:{port}",
        temp_dir=temp_dir,
        head=Node(HEAD_IP, head_pgid),
        node2=Node(NODE2_IP, 0, is_stopped=True),
    )
    try:
        cluster.node2 = Node(NODE2_IP, start_node2(cluster))
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def start_node2(cluster: RayCluster) -> int:
    return _ray_start(
        [
            f"--address={cluster.address}",
            f"--node-ip-address={NODE2_IP}",
            "--num-cpus=2",
            "--resources=" + json.dumps({"node2": 1}),
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ]
    )


def stop_node(node: Node, *, grace: float = 5.0) -> None:
    """Stop one node's processes; ``grace=0``: SIGKILL at once, as if the machine died."""
    if not node.is_stopped:
        stop_process_group(node.pgid, grace=grace)
        node.is_stopped = True


def stop_cluster(cluster: RayCluster) -> None:
    """Stop both nodes (second node first) and remove the temp dir with its ray_current_cluster file."""
    stop_node(cluster.node2)
    stop_node(cluster.head)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def start_token_head(temp_dir: pathlib.Path, token_path: pathlib.Path) -> tuple[str, int]:
    """A one-node cluster on 127.0.0.4 with token authentication; returns (address, process group)."""
    env = _environ()
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)})
    port = free_port("127.0.0.4")
    pgid = _ray_start(
        [
            "--head",
            "--node-ip-address=127.0.0.4",
            f"--port={port}",
            "--num-cpus=1",
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port('127.0.0.4')}",
            f"--ray-client-server-port={free_port('127.0.0.4')}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ],
        env=env,
    )
    return f"127.0.0.4:{port}", pgid
