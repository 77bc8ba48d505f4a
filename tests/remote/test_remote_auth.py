"""Ray 2.60 token authentication: a client with the cluster's token connects, one without gets one clear line."""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator

import pytest
from ray_cluster import start_token_head, stop_process_group
from remote_helpers import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def token_cluster() -> Iterator[tuple[str, pathlib.Path]]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="skt", dir="/tmp"))  # short: Ray's socket paths
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    address, pgid = start_token_head(root / "ray", token)
    try:
        yield address, token
    finally:
        stop_process_group(pgid)
        shutil.rmtree(root, ignore_errors=True)


def _env(tmp_path: pathlib.Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    env.update(values)
    return env


def test_a_client_with_the_token_connects(
    token_cluster: tuple[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    address, token = token_cluster
    env = _env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    done = run_cli("attach", "nothing-here", "--address", address, env=env)
    # Connected and asked the cluster: it runs no such experiment.
    assert done.returncode == 9, done.stderr
    assert "no experiment named 'nothing-here' runs on the Ray cluster" in done.stderr


@pytest.mark.parametrize("mode", ["token", None])
def test_a_client_without_the_token_gets_one_clear_line(
    token_cluster: tuple[str, pathlib.Path], tmp_path: pathlib.Path, mode: str | None
) -> None:
    address, _ = token_cluster
    env = _env(tmp_path, **({"RAY_AUTH_MODE": mode} if mode else {}))
    started = time.monotonic()
    done = run_cli("cancel", "x", "--address", address, "--connect-timeout=6", env=env)
    assert time.monotonic() - started < 30
    assert done.returncode == 9, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("searchkit: error:"), done.stderr
    assert "RAY_AUTH_TOKEN_PATH" in lines[0] and "token" in lines[0]
