"""Operations: what a search method asks the engine to do.

Names, fields and argument order match Determined's ``determined.searcher`` so
that a method written for Determined runs with ``import searchkit_core as
searcher``. Operations are imperatives; they are frozen values.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

import attrs

RequestID = uuid.UUID


def to_request_id(value: uuid.UUID | str) -> uuid.UUID:
    """Accept a UUID or its string form; Determined methods pass ``uuid.UUID``."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ValueError(f"request_id {value!r} is not a UUID") from None
    raise TypeError(f"request_id must be a uuid.UUID or a UUID string, got {type(value).__name__}")


class ExitedReason(enum.Enum):
    """Why a trial ended before the method closed it (Determined's values)."""

    ERRORED = "ERRORED"
    USER_CANCELED = "USER_CANCELED"
    INVALID_HP = "INVALID_HP"


@attrs.frozen
class Create:
    """Create a trial with these hyperparameters; it trains nothing until a ``ValidateAfter``."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    hparams: dict[str, Any]
    checkpoint: Any = None


@attrs.frozen
class ValidateAfter:
    """Train the trial until its *total* units trained equal ``length``, then validate.

    ``length`` is absolute, never an increment, in the unit of ``max_length``.
    """

    request_id: uuid.UUID = attrs.field(converter=to_request_id)
    length: int


@attrs.frozen
class Close:
    """The trial gets no more work; any unfinished work of it is cancelled."""

    request_id: uuid.UUID = attrs.field(converter=to_request_id)


@attrs.frozen
class Shutdown:
    """End the search. ``cancel``: stop running trials; ``failure``: the search failed."""

    cancel: bool = False
    failure: bool = False


@attrs.frozen
class Progress:
    """Report the search's progress, a fraction in [0, 1]."""

    progress: float


Operation = Create | ValidateAfter | Close | Shutdown | Progress
OPERATION_TYPES: tuple[type, ...] = (Create, ValidateAfter, Close, Shutdown, Progress)
