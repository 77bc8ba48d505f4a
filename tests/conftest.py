"""Shared test fixtures. Keep this file small: area-specific fixtures live in tests/<area>/."""

from __future__ import annotations

import importlib
import os
import pathlib
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles for every property test. ``ci`` (the default) is derandomized, so a
# run fails or passes the same way each time, and sized for two loaded cores; ``thorough``
# draws many more examples for local runs: HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Two cores shared by everything: keep numeric libraries single-threaded in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

MakeDistribution = Callable[..., pathlib.Path]


@pytest.fixture
def make_distribution(tmp_path: pathlib.Path) -> Iterator[MakeDistribution]:
    """Write an installed distribution (modules + ``.dist-info`` with entry points) onto ``sys.path``.

    This is the layout pip leaves in site-packages, so ``importlib.metadata`` finds
    it for real: nothing about entry points is faked. ``modules`` maps a module
    file name (``"my_plugin.py"``) to its source. Everything is removed afterwards.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    sys.path.insert(0, str(site))
    added_modules: set[str] = set()

    def make(
        name: str,
        version: str = "1.0",
        *,
        modules: dict[str, str],
        entry_points: dict[str, str],
        group: str = "searchkit",
    ) -> pathlib.Path:
        for filename, source in modules.items():
            (site / filename).write_text(textwrap.dedent(source))
        names = sorted(filename.removesuffix(".py") for filename in modules)
        added_modules.update(names)
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
        (dist_info / "entry_points.txt").write_text(f"[{group}]\n{lines}")
        (dist_info / "top_level.txt").write_text("".join(f"{m}\n" for m in names))
        importlib.invalidate_caches()
        return site

    yield make
    sys.path.remove(str(site))
    for module in added_modules:
        sys.modules.pop(module, None)
