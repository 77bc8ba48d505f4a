"""SearcherState is read-only for methods and behaves like Determined's sets and dicts."""

from __future__ import annotations

import uuid

import pytest

from searchkit_core import SearcherState


def _state() -> tuple[SearcherState, list[uuid.UUID]]:
    state = SearcherState()
    ids = [uuid.UUID(int=i, version=4) for i in range(4)]
    state._trials_created.update(ids)
    state._trials_closed.update(ids[:2])
    state._failures.add(ids[3])
    state._trial_progress[ids[0]] = 10
    return state, ids


def test_views_support_set_operations() -> None:
    state, ids = _state()
    ended = state.trials_closed | state.failures
    assert len(ended) == 3
    assert set(state.trials_created - ended) == {ids[2]}
    assert ids[0] in state.trials_closed
    assert state.trial_progress[ids[0]] == 10


def test_views_cannot_be_changed_by_a_method() -> None:
    state, ids = _state()
    with pytest.raises(AttributeError):
        state.trials_created.add(uuid.uuid4())  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        state.trial_progress[ids[1]] = 3  # type: ignore[index]


def test_views_are_live() -> None:
    state, ids = _state()
    view = state.trials_closed
    state._trials_closed.add(ids[2])
    assert len(view) == 3
