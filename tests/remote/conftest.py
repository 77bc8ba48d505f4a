"""The remote runner's fixtures: one real two-node Ray cluster on loopback per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from ray_cluster import RAY_ENV, RayCluster, start_cluster, stop_cluster

# Every Ray process these tests start (drivers included) runs without token authentication.
for _key, _value in RAY_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """Head on 127.0.0.2, second node on 127.0.0.3; stopped (only these processes) at the end."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        from searchkit_runners.remote._cluster import disconnect

        try:
            disconnect()
        finally:
            stop_cluster(cluster)
