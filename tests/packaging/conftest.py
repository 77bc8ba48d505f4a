"""The session's fresh virtualenv with the three searchkit wheels (see venv_helpers.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
from venv_helpers import DISTRIBUTIONS, REPO, FreshVenv, build_wheel, check_run


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshVenv]:
    base = tmp_path_factory.mktemp("fresh-venv")
    timings: dict[str, float] = {}
    started = time.monotonic()
    wheels = {name: build_wheel(REPO / name, base / "wheels", base) for name in DISTRIBUTIONS}
    timings["build three wheels"] = time.monotonic() - started

    started = time.monotonic()
    root = base / "venv"
    # The base interpreter, not the dev venv's: the new venv must not see the dev venv at all.
    check_run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(root)], cwd=base)
    timings["create venv"] = time.monotonic() - started

    workdir = base / "work"
    workdir.mkdir()
    venv = FreshVenv(root=root, wheels=wheels, workdir=workdir, timings=timings)
    started = time.monotonic()
    venv.pip("install", *(str(wheels[name]) for name in DISTRIBUTIONS))
    timings["pip install wheels + dependencies"] = time.monotonic() - started
    yield venv
    summary = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items())
    print(f"\nfresh venv timings: {summary}", file=sys.stderr)
