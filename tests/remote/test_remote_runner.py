"""The remote runner against a real two-node Ray cluster on loopback (see conftest.py and ray_cluster.py).

Tests run in file order and share the cluster; the test that stops the second
node comes last. Each search uses its own experiment name (one search actor per
name on a cluster).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from ray_cluster import HEAD_IP, NODE2_IP, RayCluster, free_port, is_alive, stop_node
from remote_helpers import (
    MODEL_DIR,
    meta_status,
    open_store,
    placements,
    read_until,
    results,
    run_cli,
    start_cli,
    wait_for,
    write_config,
)

from searchkit_core.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

LINGER = "--linger=20"  # search actors leave soon after the end (tests also remove them)


@pytest.fixture
def driver(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """This test process connected to the cluster as a plain driver; search actors removed afterwards."""
    from searchkit_runners.remote._cluster import connect

    connect(ray_cluster.address, timeout=30)
    yield ray_cluster
    _remove_search_actors()


def _remove_search_actors() -> None:
    import ray

    from searchkit_runners.remote._cluster import NAMESPACE, actor_name, running_experiments

    for name in running_experiments():
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(actor_name(name), namespace=NAMESPACE), no_restart=True)


def _state(name: str) -> dict[str, object] | None:
    """The search actor's state, or None while it does not answer (restarting)."""
    import ray

    from searchkit_runners.remote._cluster import NAMESPACE, ClusterError, actor_name, call

    try:
        handle = ray.get_actor(actor_name(name), namespace=NAMESPACE)
        return dict(json.loads(call(handle.state.remote(), timeout=5)))
    except (ValueError, ClusterError):
        return None


def _events(name: str) -> int:
    state = _state(name)
    view = state.get("view") if state else None
    return int(view["events"]) if isinstance(view, dict) else 0


# -- addresses ---------------------------------------------------------------------------


def test_unreachable_address_fails_within_seconds(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "remote-unreachable")
    address = f"{HEAD_IP}:{free_port(HEAD_IP)}"  # nothing listens there
    started = time.monotonic()
    code = main(
        [
            "run",
            str(config),
            str(MODEL_DIR),
            "--runner",
            "remote",
            "--address",
            address,
            "--storage-path",
            str(tmp_path),
        ]
    )
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 9
    assert elapsed < 5
    errors = [line for line in err if line.startswith("searchkit: error:")]
    assert len(errors) == 1 and f"cannot reach a Ray cluster at {address}" in errors[0]
    assert not (tmp_path / "remote-unreachable").exists()  # a mistake leaves nothing behind
    assert not any("Traceback" in line for line in err)
    for command in (["attach", "x"], ["cancel", "x"], ["status", "x"]):
        started = time.monotonic()
        assert main([*command, "--address", address]) == 9
        assert time.monotonic() - started < 5
        assert "cannot reach a Ray cluster" in capsys.readouterr().err


def test_malformed_or_missing_address_is_a_config_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["attach", "x", "--address", "no-port-here"]) == 2
    assert "must be HOST:PORT" in capsys.readouterr().err
    assert main(["cancel", "x"]) == 2
    assert "needs the Ray cluster's address" in capsys.readouterr().err
    assert main(["status", "x", "--address", "ray://10.0.0.1:10001"]) == 2
    assert "connects only to the address it is given" in capsys.readouterr().err


def test_an_address_that_is_not_ray_fails_within_the_connect_timeout() -> None:
    with socket.socket() as listener:
        listener.bind((HEAD_IP, 0))
        listener.listen(8)
        address = f"{HEAD_IP}:{listener.getsockname()[1]}"
        started = time.monotonic()
        done = run_cli("attach", "x", "--address", address, "--connect-timeout=4", timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 9, done.stderr
    assert elapsed < 20  # interpreter start + imports + the 4 s bound
    assert "searchkit: error:" in done.stderr and address in done.stderr
    assert "Traceback" not in done.stderr


# -- searches ---------------------------------------------------------------------------


def test_search_completes_with_trials_on_both_nodes(driver: RayCluster, tmp_path: pathlib.Path) -> None:
    # Segments long enough (4 units x 0.25 s) that the head's two actors are busy while the second
    # node's actors start: trials then land on both nodes.
    config = write_config(
        tmp_path, "remote-both", **{"searcher.max_trials": 8, "hyperparameters.unit_seconds": 0.25}
    )
    done = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--plain", LINGER,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100.0% done" in done.stdout
    experiment = tmp_path / "storage" / "remote-both"
    outcome = results(experiment)
    assert outcome["status"] == "completed"
    assert len(outcome["trials"]) == 8 and all(t[2] == "CLOSED" for t in outcome["trials"])
    where = placements(experiment)
    assert set(where) == {t[0] for t in outcome["trials"]}  # every trial's node is recorded
    ips = {run["node_ip"] for runs in where.values() for run in runs}
    node_ids = {run["node_id"] for runs in where.values() for run in runs}
    assert ips == {HEAD_IP, NODE2_IP}
    assert len(node_ids) == 2
    # status by name answers while the actor lingers, with the same document as the directory
    status = run_cli("status", "remote-both", "--address", driver.address, "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["name"] == "remote-both" and document["status"] == "completed"


def test_trials_asking_for_a_custom_resource_run_only_where_it_is(
    driver: RayCluster, tmp_path: pathlib.Path
) -> None:
    # Only the second node has the resource "node2" (1 unit): trials asking for half of it
    # all run there, two at a time, whatever the head has free.
    assert not driver.node2.is_stopped
    config = write_config(tmp_path, "remote-custom", **{"searcher.max_trials": 4})
    done = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--plain", "--trial-resources={node2: 0.5}", LINGER,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    experiment = tmp_path / "storage" / "remote-custom"
    assert results(experiment)["status"] == "completed"
    where = placements(experiment)
    assert len(where) == 4
    assert {run["node_ip"] for runs in where.values() for run in runs} == {NODE2_IP}


def test_killing_the_search_actor_process_loses_and_repeats_nothing(
    driver: RayCluster, tmp_path: pathlib.Path
) -> None:
    changes = {
        "searcher.max_trials": 6,
        "searcher.max_concurrent_trials": 1,
        "hyperparameters.unit_seconds": 0.05,
    }
    reference_config = write_config(tmp_path, "remote-reference", **changes)
    code = main(
        ["run", str(reference_config), str(MODEL_DIR), "--runner", "local", "--workers", "1",
         "--experiment-dir", str(tmp_path / "reference"), "--plain"]
    )  # fmt: skip
    assert code == 0
    reference = results(tmp_path / "reference")

    config = write_config(tmp_path, "remote-kill", **changes)
    client = start_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--plain", LINGER,
    )  # fmt: skip
    try:
        read_until(client, "following")
        wait_for(lambda: _events("remote-kill") >= 6, 60, "the search to be under way")
        before = _state("remote-kill")
        assert before is not None and not before["is_done"]
        os.kill(int(before["pid"]), signal.SIGKILL)  # the search actor's process, on the head node
        after = wait_for(
            lambda: (s := _state("remote-kill")) is not None and s["is_done"] and s,
            90,
            "the search to finish",
        )
        out, _ = client.communicate(timeout=60)  # the client followed the search through the restart
    finally:
        client.kill()
    assert after["pid"] != before["pid"]  # Ray restarted the actor; it resumed from the store
    assert after["error"] is None
    assert client.returncode == 0, out
    assert "100.0% done" in out
    outcome = results(tmp_path / "storage" / "remote-kill")
    assert outcome == reference


def test_a_client_detaches_and_reattaches(driver: RayCluster, tmp_path: pathlib.Path) -> None:
    config = write_config(
        tmp_path, "remote-attach", **{"searcher.max_trials": 8, "hyperparameters.unit_seconds": 0.5}
    )
    client = start_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--plain", LINGER,
    )  # fmt: skip
    try:
        read_until(client, "created")
        client.send_signal(signal.SIGINT)  # Ctrl-C: detach, the search goes on
        out, _ = client.communicate(timeout=30)
    finally:
        client.kill()
    assert client.returncode == 0, out
    assert "detached: the search 'remote-attach' goes on on the cluster" in out
    assert f"searchkit attach remote-attach --address {driver.address}" in out
    experiment = tmp_path / "storage" / "remote-attach"
    assert meta_status(experiment) == "running"  # the client left, the search did not

    status = run_cli("status", "remote-attach", "--address", driver.address, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["name"] == "remote-attach"

    second = start_cli("attach", "remote-attach", "--address", driver.address, "--plain")
    try:
        read_until(second, "following")
    finally:
        second.kill()  # a client that dies stops nothing
        second.wait()

    third = run_cli("attach", "remote-attach", "--address", driver.address, "--plain")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "100.0% done" in third.stdout
    assert meta_status(experiment) == "completed"


def test_cancel_stops_the_search_and_resume_finishes_it(driver: RayCluster, tmp_path: pathlib.Path) -> None:
    config = write_config(
        # about 15 s of training: still running when the cancel comes (after two more CLI calls)
        tmp_path,
        "remote-cancel",
        **{"searcher.max_trials": 6, "hyperparameters.unit_seconds": 1.5},
    )
    submitted = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--detach", LINGER,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    wait_for(lambda: _events("remote-cancel") >= 3, 60, "the search to be under way")
    # One running search per experiment name on a cluster.
    twin = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "elsewhere"), "--detach",
    )  # fmt: skip
    assert twin.returncode == 9
    assert "an experiment named 'remote-cancel' already runs on this cluster" in twin.stderr
    cancelled = run_cli("cancel", "remote-cancel", "--address", driver.address)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled 'remote-cancel'" in cancelled.stderr
    experiment = tmp_path / "storage" / "remote-cancel"
    assert meta_status(experiment) == "stopped"
    wait_for(lambda: _state("remote-cancel") is None, 20, "the cancelled search actor to leave")
    # Its trials stopped too: every trial actor's process is gone (all nodes are on this machine).
    actor_pids = {run["pid"] for runs in placements(experiment).values() for run in runs}
    assert actor_pids
    wait_for(lambda: not any(is_alive(pid) for pid in actor_pids), 30, "the trial actors to stop")
    missing = run_cli("attach", "remote-cancel", "--address", driver.address)
    assert missing.returncode == 9 and "no experiment named 'remote-cancel'" in missing.stderr

    resumed = run_cli("resume", str(experiment), "--address", driver.address, "--plain")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert results(experiment)["status"] == "completed"


def test_trials_the_cluster_cannot_hold_are_refused_before_starting(
    driver: RayCluster, tmp_path: pathlib.Path
) -> None:
    config = write_config(tmp_path, "remote-gpus", **{"resources.slots_per_trial": 1})
    done = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "each trial asks for 1 GPU (the cluster has 0) on the Ray cluster" in done.stderr
    assert _state("remote-gpus") is None  # nothing was started


def test_training_code_that_fails_to_import_on_the_cluster_is_a_user_error(
    driver: RayCluster, tmp_path: pathlib.Path
) -> None:
    config = write_config(tmp_path, "remote-broken", entrypoint="broken_import:train")
    done = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--plain", LINGER,
    )  # fmt: skip
    assert done.returncode == 8, done.stdout + done.stderr
    assert "searchkit: error: entrypoint broken_import:train: importing 'broken_import' failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_stopping_the_second_node_retries_its_trials_on_the_head(
    driver: RayCluster, tmp_path: pathlib.Path
) -> None:
    config = write_config(
        tmp_path,
        "remote-node-loss",
        **{
            "searcher.max_trials": 4,
            "searcher.num_rungs": 2,
            "searcher.max_length": {"batches": 8},
            "hyperparameters.unit_seconds": 1.0,  # 4 s segments: the node dies mid-segment
            "hyperparameters.checkpoint_every_unit": True,  # ... after a checkpoint in that segment
        },
    )
    submitted = run_cli(
        "run", str(config), str(MODEL_DIR), "--runner", "remote", "--address", driver.address,
        "--storage-path", str(tmp_path / "storage"), "--detach", LINGER,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    experiment = tmp_path / "storage" / "remote-node-loss"

    def on_node2() -> set[int]:
        return {tid for tid, runs in placements(experiment).items() if runs[-1]["node_ip"] == NODE2_IP}

    def checkpointed_on_node2() -> dict[int, int]:
        """Trials running on the second node with a checkpoint taken there: trial id -> its steps."""
        running = on_node2()
        store = open_store(experiment)
        try:
            ids = {row.request_id: row.trial_id for row in store.trials() if row.state == "RUNNING"}
            latest = store.latest_checkpoints()
        finally:
            store.close()
        return {ids[rid]: steps for rid, (_, steps, _) in latest.items() if ids.get(rid) in running}

    victims = wait_for(checkpointed_on_node2, 60, "a trial to checkpoint on the second node")
    before = _state("remote-node-loss")
    assert before is not None and before["node_ip"] == HEAD_IP  # the search loop runs on the head
    stop_node(driver.node2, grace=0)  # the node dies: its raylet, agents and trial actors at once
    final = wait_for(
        lambda: (s := _state("remote-node-loss")) is not None and s["is_done"] and s,
        120,
        "the search to finish",
    )
    assert final["error"] is None
    assert final["pid"] == before["pid"]  # the search loop itself was not disturbed
    outcome = results(experiment)
    assert outcome["status"] == "completed"
    assert all(t[2] == "CLOSED" for t in outcome["trials"])  # none ERRORED
    where = placements(experiment)
    restarted = [t for t in outcome["trials"] if t[0] in victims and t[5] >= 1]
    assert restarted, (victims, outcome["trials"])
    for trial in restarted:
        runs = where[trial[0]]
        assert runs[0]["node_ip"] == NODE2_IP
        assert runs[-1]["node_ip"] == HEAD_IP
        # Retried from its latest checkpoint (taken on the lost node, at least as late as the
        # one seen before the kill), not from zero.
        assert runs[-1]["steps"] >= victims.get(trial[0], 1) >= 1, (trial, runs)
