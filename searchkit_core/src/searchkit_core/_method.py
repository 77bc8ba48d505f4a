"""The search method protocol, compatible with Determined's ``SearchMethod``."""

from __future__ import annotations

import abc
import pathlib
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from searchkit_core._operations import ExitedReason, Operation
    from searchkit_core._state import SearcherState


class SearchMethod(abc.ABC):
    """A search algorithm: it answers events with lists of operations.

    A method decides; it never runs trials. The engine records every event and
    the operations it produced, and a runner carries them out.

    Crash recovery depends on :attr:`replayable`. A replayable method gives the
    same operations for the same events when started from the same saved state
    (it draws randomness only from generators it saves); the engine then saves
    it only every so often and replays the journal tail after a crash. A method
    that is not replayable (it calls ``uuid.uuid4()`` or the global ``random``
    module, as Determined's own methods do) is saved after every event instead.
    The default is ``False``: safe for any method, slower for large searches.
    """

    #: Whether the method's decisions are a pure function of its saved state and the events.
    replayable: ClassVar[bool] = False

    @abc.abstractmethod
    def initial_operations(self, searcher_state: SearcherState) -> list[Operation]:
        """Operations to start the search with (usually ``Create``s and ``ValidateAfter``s)."""

    @abc.abstractmethod
    def on_trial_created(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        """A trial asked for by ``Create`` exists."""

    @abc.abstractmethod
    def on_validation_completed(
        self, searcher_state: SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[Operation]:
        """A trial trained to ``train_length`` units in total and reported ``metric``."""

    @abc.abstractmethod
    def on_trial_closed(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        """A trial closed after the method's ``Close``."""

    @abc.abstractmethod
    def on_trial_exited_early(
        self, searcher_state: SearcherState, request_id: uuid.UUID, exited_reason: ExitedReason
    ) -> list[Operation]:
        """A trial ended on its own (error, cancellation or invalid hyperparameters)."""

    @abc.abstractmethod
    def progress(self, searcher_state: SearcherState) -> float:
        """The search's progress, a fraction in [0, 1]."""

    def save_method_state(self, path: pathlib.Path) -> None:  # noqa: B027 - optional hook
        """Write whatever the method needs to continue into the directory ``path``."""

    def load_method_state(self, path: pathlib.Path) -> None:  # noqa: B027 - optional hook
        """Read back what :meth:`save_method_state` wrote into the directory ``path``."""
