"""A method that raises or returns an invalid operation stops the search clearly; fixed, it resumes exactly."""

from __future__ import annotations

import pathlib

import engine_helpers as eh
import pytest
from store_dump import dump

from searchkit_core._store import DB_NAME, Store
from searchkit_core.errors import InvalidOperationError, SearchMethodError


@pytest.fixture
def reference(tmp_path: pathlib.Path) -> dict[str, object]:
    experiment = eh.create(tmp_path / "reference", eh.flaky())
    assert eh.run(experiment).status == "completed"
    return dump(experiment)


def _assert_consistent(experiment: pathlib.Path) -> int:
    """Every committed journal row passes its checksum and the trials view matches the journal."""
    store = Store.open(experiment / DB_NAME, is_readonly=True)
    try:
        # With the simulate executor the engine commits in large batches, so the store may
        # still be at its start; either way it is exactly at a commit.
        rows = list(store.journal())  # raises on a gap or a checksum failure
        last = rows[-1].seq if rows else 0
        assert all(t.updated_seq <= last for t in store.trials())
        assert store.meta()["status"] != "completed"
        return len(rows)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("mode", "error", "expected"),
    [
        (
            "raise",
            SearchMethodError,
            r"flaky raised RuntimeError: flaky failure on event 10 while handling \w+\(",
        ),
        (
            "invalid",
            InvalidOperationError,
            r"flaky returned ValidateAfter\(request_id=UUID\('00000000-0000-0000-0000-000000003039'\), "
            r"length=10\) in answer to \w+\(.*\): unknown trial",
        ),
    ],
)
def test_a_failing_method_stops_the_search_and_the_fixed_method_resumes_it(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: dict[str, object],
    mode: str,
    error: type[Exception],
    expected: str,
) -> None:
    experiment = eh.create(tmp_path / "broken", eh.flaky())
    monkeypatch.setenv("SEARCHKIT_TEST_FLAKY_AT", "10")
    monkeypatch.setenv("SEARCHKIT_TEST_FLAKY_MODE", mode)
    with pytest.raises(error, match=expected):
        eh.run(experiment)
    committed = _assert_consistent(experiment)
    # The failing event and everything after it were not committed.
    assert committed < 10

    # Still broken: the same failure again, and the store does not move.
    with pytest.raises(error, match=expected):
        eh.run(experiment)
    assert _assert_consistent(experiment) == committed

    monkeypatch.delenv("SEARCHKIT_TEST_FLAKY_AT")
    assert eh.run(experiment).status == "completed"
    assert dump(experiment) == reference
