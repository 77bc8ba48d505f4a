"""Helpers for the packaging tests: a fresh virtualenv with the three searchkit wheels.

The wheels are built with ``python -m build --wheel`` (isolated builds, as a release
would) from a copy of each distribution's folder, so that nothing left over in the
working tree (``build/``, ``*.egg-info``) can leak into them. The virtualenv is a clean
``python -m venv`` (no system site-packages); pip fetches core's dependencies through
its configured indexes (local mirrors on these machines). Tests that install extra
distributions into it uninstall them again, so it is shared by the whole session.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import attrs

REPO = pathlib.Path(__file__).resolve().parents[2]
DISTRIBUTIONS = ("searchkit_core", "searchkit_asha", "searchkit_runners")
COMMAND_TIMEOUT = 300


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus anything that would point a child process at the dev checkout."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
        and not key.startswith("SEARCHKIT_")
    }
    environment.update(extra or {})
    return environment


def check_run(
    argv: list[str], *, cwd: pathlib.Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure show its output in the assertion."""
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@attrs.frozen
class FreshVenv:
    """A clean virtualenv with the three wheels installed."""

    root: pathlib.Path
    wheels: dict[str, pathlib.Path]  # distribution folder name -> wheel file
    workdir: pathlib.Path  # an empty directory to run commands in (never the checkout)
    timings: dict[str, float]

    @property
    def python(self) -> pathlib.Path:
        return self.root / "bin" / "python"

    @property
    def searchkit(self) -> pathlib.Path:
        return self.root / "bin" / "searchkit"

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return check_run([str(self.python), "-m", "pip", *args], cwd=self.workdir)

    def plugins(self) -> tuple[dict[str, Any], str]:
        """``searchkit plugins --json`` in the venv: the document and stderr."""
        result = check_run([str(self.searchkit), "plugins", "--json"], cwd=self.workdir)
        return json.loads(result.stdout), result.stderr


def build_wheel(source: pathlib.Path, outdir: pathlib.Path, scratch: pathlib.Path) -> pathlib.Path:
    """``python -m build --wheel`` on a clean copy of ``source``; returns the wheel."""
    copy = scratch / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    before = set(outdir.glob("*.whl")) if outdir.exists() else set()
    check_run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(copy)], cwd=scratch)
    [wheel] = set(outdir.glob("*.whl")) - before
    return wheel
