"""What a live display or a status reader sees of a running search."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs


@attrs.frozen
class SearchView:
    """A moment of a search, as the engine hands it to an observer (at most a few times a second)."""

    experiment: str
    method: str
    metric: str
    smaller_is_better: bool
    counts: Mapping[str, int]  # TrialState value -> number of trials in it
    best_trial_id: int | None
    best_metric: float | None
    progress: float  # the method's progress, in [0, 1]
    recent: tuple[str, ...]  # the latest events, oldest first, one line each
    elapsed: float  # wall seconds since this drive started
    events: int  # journal length
    is_finished: bool


class Observer(Protocol):
    """Receives views of a search while the engine drives it (the live display is one)."""

    def on_update(self, view: SearchView) -> None: ...
