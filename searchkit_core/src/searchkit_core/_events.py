"""Events: what happened, in the past tense. The engine feeds them to the method.

Each event maps to one handler of :class:`~searchkit_core.SearchMethod`.
"""

from __future__ import annotations

import uuid

import attrs

from searchkit_core._operations import ExitedReason, to_request_id


@attrs.frozen
class SearchStarted:
    """The experiment began; answered by ``initial_operations``."""


@attrs.frozen
class TrialCreated:
    """The engine created the trial asked for by a ``Create``."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)


@attrs.frozen
class ValidationCompleted:
    """The trial trained to ``train_length`` and reported ``metric`` (the searcher metric)."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    metric: float
    train_length: int


@attrs.frozen
class TrialClosed:
    """The trial closed after a ``Close``."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)


@attrs.frozen
class TrialExitedEarly:
    """The trial ended without being closed by the method."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    exited_reason: ExitedReason


Event = SearchStarted | TrialCreated | ValidationCompleted | TrialClosed | TrialExitedEarly
EVENT_TYPES: tuple[type, ...] = (
    SearchStarted,
    TrialCreated,
    ValidationCompleted,
    TrialClosed,
    TrialExitedEarly,
)


@attrs.frozen
class TrialRestarted:
    """Engine-internal journal entry: a crashed trial is restarted from its latest checkpoint.

    Journaled so that restart counts survive a crash; never fed to the method.
    """

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    error: str


JournalEvent = Event | TrialRestarted
JOURNAL_EVENT_TYPES: tuple[type, ...] = (*EVENT_TYPES, TrialRestarted)
