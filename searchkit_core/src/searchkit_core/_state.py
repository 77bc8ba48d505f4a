"""Searcher state: what the engine knows about the trials, read-only for the method."""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterable, Iterator, Mapping, Set


class _ReadOnlySet(Set[uuid.UUID]):
    """A live, read-only view of a set: O(1) to hand out, impossible to mutate."""

    __slots__ = ("_data",)

    def __init__(self, data: set[uuid.UUID]) -> None:
        self._data = data

    @classmethod
    def _from_iterable(cls, iterable: Iterable[uuid.UUID]) -> frozenset[uuid.UUID]:  # type: ignore[override]
        # Set operations (``a | b``, ``a - b``) build their result here: a plain frozenset.
        return frozenset(iterable)

    def __contains__(self, item: object) -> bool:
        return item in self._data

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{{{', '.join(map(str, self._data))}}}"


class SearcherState:
    """Determined's ``SearcherState``: trials created, closed and failed, and their progress.

    The engine owns and updates it; a method sees read-only views.
    ``trial_progress`` maps a trial to the units it has trained so far.
    """

    __slots__ = (
        "_failures",
        "_trial_progress",
        "_trials_closed",
        "_trials_created",
        "experiment_completed",
        "experiment_failed",
    )

    def __init__(self) -> None:
        self._failures: set[uuid.UUID] = set()
        self._trial_progress: dict[uuid.UUID, float] = {}
        self._trials_closed: set[uuid.UUID] = set()
        self._trials_created: set[uuid.UUID] = set()
        self.experiment_completed = False
        self.experiment_failed = False

    @property
    def failures(self) -> Set[uuid.UUID]:
        """Trials that exited early (errored, cancelled or invalid)."""
        return _ReadOnlySet(self._failures)

    @property
    def trial_progress(self) -> Mapping[uuid.UUID, float]:
        """Units trained so far by each trial."""
        return types.MappingProxyType(self._trial_progress)

    @property
    def trials_closed(self) -> Set[uuid.UUID]:
        """Trials closed by the method."""
        return _ReadOnlySet(self._trials_closed)

    @property
    def trials_created(self) -> Set[uuid.UUID]:
        """Trials that exist."""
        return _ReadOnlySet(self._trials_created)
