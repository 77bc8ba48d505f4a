"""The simulator's executor: virtual time, W workers, FIFO queueing, idempotent launches, crash injection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from searchkit_core._executor import (
    Executor,
    MetricsReported,
    Report,
    Segment,
    TrialCrashed,
    ValidationReported,
)
from searchkit_runners.simulate import SIMULATE_GROUP, SimulateExecutor, SyntheticCurves


def _rid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n, version=4)


def _segment(n: int, length: int, issued_at: float = 0.0, restarts: int = 0) -> Segment:
    return Segment(
        request_id=_rid(n),
        trial_id=n,
        hparams={"x": float(n)},
        length=length,
        checkpoint=None,
        restarts=restarts,
        issued_at=issued_at,
    )


def _executor(workers: int, **kwargs: Any) -> SimulateExecutor:
    return SimulateExecutor(SyntheticCurves(seed=1, base_seconds_per_unit=2.0), workers=workers, **kwargs)


def _validations(reports: list[Report]) -> list[tuple[int, int, float]]:
    return [
        (r.request_id.int & 0xFFFF, r.length, r.time) for r in reports if isinstance(r, ValidationReported)
    ]


def test_it_is_an_executor() -> None:
    assert isinstance(_executor(1), Executor)


def test_without_queueing_a_segment_completes_at_issue_time_plus_its_duration() -> None:
    ex = _executor(4)
    ex.launch(_segment(1, 10))
    ex.launch(_segment(2, 5))
    assert ex.now() == 0.0
    assert _validations(ex.wait(None)) == [(2, 5, 10.0)]  # 5 units * 2 s
    assert ex.now() == 10.0
    ex.launch(_segment(2, 8, issued_at=10.0))  # continues from 5: 3 more units
    assert _validations(ex.wait(None)) == [(2, 8, 16.0)]
    assert _validations(ex.wait(None)) == [(1, 10, 20.0)]


def test_reports_of_one_instant_come_in_trial_order_metrics_first() -> None:
    ex = _executor(4)
    for n in (3, 1, 2):
        ex.launch(_segment(n, 4))
    reports = ex.wait(None)
    assert _validations(reports) == [(1, 4, 8.0), (2, 4, 8.0), (3, 4, 8.0)]
    kinds = [type(r).__name__ for r in reports]
    # Three starts (at 0), then each completion as metrics + validation.
    assert kinds == ["MetricsReported"] * 3 + ["MetricsReported", "ValidationReported"] * 3
    assert [r.metrics for r in reports[:3]] == [{"started": 0.0, "restarts": 0}] * 3  # type: ignore[union-attr]
    metrics = reports[3]
    assert isinstance(metrics, MetricsReported) and metrics.group == "validation"
    assert metrics.metrics["segment_start"] == 0.0 and metrics.metrics["segment_end"] == 8.0
    assert metrics.metrics["units"] == 4


def _started(reports: list[Report]) -> list[tuple[int, float]]:
    return [
        (r.request_id.int & 0xFFFF, r.metrics["started"])
        for r in reports
        if isinstance(r, MetricsReported) and r.group == SIMULATE_GROUP
    ]


def test_with_all_workers_busy_segments_queue_first_come_first_served() -> None:
    ex = _executor(1)
    # Launched at one instant in any order: workers go by (issued_at, trial_id).
    ex.launch(_segment(2, 3))
    ex.launch(_segment(3, 1))
    ex.launch(_segment(1, 2))
    first = ex.wait(None)
    assert _started(first) == [(1, 0.0)]
    assert _validations(first) == [(1, 2, 4.0)]
    ex.launch(_segment(1, 5, issued_at=4.0))  # issued later: behind trials 2 and 3
    second = ex.wait(None)
    assert _started(second) == [(2, 4.0)]  # the start comes before anything later
    assert _validations(second) == [(2, 3, 10.0)]
    assert _validations(ex.wait(None)) == [(3, 1, 12.0)]
    assert _validations(ex.wait(None)) == [(1, 5, 18.0)]


def test_a_second_launch_of_the_same_segment_is_the_same_launch() -> None:
    ex = _executor(2)
    ex.launch(_segment(1, 5))
    ex.launch(_segment(1, 5))
    ex.launch(_segment(1, 5, issued_at=0.0, restarts=0))
    assert _validations(ex.wait(None)) == [(1, 5, 10.0)]
    assert ex.active == 0
    with pytest.raises(RuntimeError, match="no segment is running"):
        ex.wait(None)


def test_close_frees_the_worker_for_the_next_in_line() -> None:
    ex = _executor(2)
    ex.launch(_segment(1, 100))
    for n in (2, 3, 4):
        ex.launch(_segment(n, 1))
    first = ex.wait(None)
    assert _started(first) == [(1, 0.0), (2, 0.0)]
    assert _validations(first) == [(2, 1, 2.0)]
    ex.close(_rid(1))  # at 2 s: its worker and trial 2's go to trials 3 and 4
    second = ex.wait(None)
    assert _started(second) == [(3, 2.0), (4, 2.0)]
    assert _validations(second) == [(3, 1, 4.0), (4, 1, 4.0)]


def test_crash_injection_is_deterministic_and_restarts_go_on() -> None:
    def run() -> list[tuple[str, int, float]]:
        ex = _executor(50, crash_fraction=0.3, seed=7)
        for n in range(1, 41):
            ex.launch(_segment(n, 10))
        out: list[tuple[str, int, float]] = []
        while ex.active:
            for r in ex.wait(None):
                if isinstance(r, TrialCrashed):
                    n = r.request_id.int & 0xFFFF
                    out.append(("crashed", n, r.time))
                    if sum(1 for e in out if e[:2] == ("crashed", n)) < 2:
                        ex.launch(_segment(n, 10, issued_at=r.time, restarts=1))
                elif isinstance(r, ValidationReported):
                    out.append(("validated", r.request_id.int & 0xFFFF, r.time))
        return out

    first = run()
    assert first == run()
    crashed = [e for e in first if e[0] == "crashed"]
    assert 4 <= len(crashed) <= 25
    firsts = {n: t for _, n, t in reversed(crashed)}
    assert all(2.0 <= t <= 18.0 for t in firsts.values())  # part-way through a 20 s segment
    # Each trial validates unless both of its attempts crashed (the test relaunches once).
    assert sorted(n for kind, n, _ in first if kind == "validated") == [
        n for n in range(1, 41) if sum(1 for e in crashed if e[1] == n) < 2
    ]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        _executor(0)
    with pytest.raises(ValueError, match="crash_fraction"):
        _executor(1, crash_fraction=1.0)
