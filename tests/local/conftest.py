"""Fixtures for the local runner's tests."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from local_helpers import MODEL_DIR

from searchkit_runners.local import LocalExecutor


@pytest.fixture
def make_executor(tmp_path: pathlib.Path) -> Iterator[Callable[..., LocalExecutor]]:
    made: list[LocalExecutor] = []

    def make(entrypoint: str = "toy:train", **kw: Any) -> LocalExecutor:
        kw.setdefault("workers", 2)
        kw.setdefault("metric", "loss")
        kw.setdefault("grace_period", 3.0)
        executor = LocalExecutor(tmp_path / "exp", entrypoint=entrypoint, model_dir=MODEL_DIR, **kw)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown(cancel=True)
