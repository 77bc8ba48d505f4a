"""Helpers for the local runner's tests: real worker processes running tests/local/model/toy.py."""

from __future__ import annotations

import os
import pathlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from searchkit_core._executor import Report, Segment, TrialCrashed, TrialExited, ValidationReported
from searchkit_runners.local import LocalExecutor

MODEL_DIR = pathlib.Path(__file__).parent / "model"


def segment(
    rid: uuid.UUID, trial_id: int, length: int, hparams: dict[str, Any] | None = None, **kw: Any
) -> Segment:
    return Segment(
        request_id=rid,
        trial_id=trial_id,
        hparams=hparams if hparams is not None else {"x": 0.5},
        length=length,
        checkpoint=kw.get("checkpoint"),
        restarts=kw.get("restarts", 0),
        issued_at=0.0,
    )


def collect_until(
    executor: LocalExecutor, done: Callable[[list[Report]], bool], timeout: float = 60.0
) -> list[Report]:
    """Wait for reports until ``done(all_reports_so_far)``; fail the test after ``timeout`` seconds."""
    reports: list[Report] = []
    end = time.monotonic() + timeout
    while not done(reports):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting; reports so far: {reports}")
        reports.extend(executor.wait(0.5))
    return reports


def validated(rid: uuid.UUID, length: int) -> Callable[[list[Report]], bool]:
    return lambda reports: any(
        isinstance(r, ValidationReported) and r.request_id == rid and r.length == length for r in reports
    )


def ended(rid: uuid.UUID) -> Callable[[list[Report]], bool]:
    return lambda reports: any(
        isinstance(r, (TrialCrashed, TrialExited)) and r.request_id == rid for r in reports
    )


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
