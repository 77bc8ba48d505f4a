"""Catching SIGINT/SIGTERM for the length of a ``with`` block, shared by the local and the remote runner."""

from __future__ import annotations

import signal
import threading
import types
from typing import Any, TypeVar

_C = TypeVar("_C", bound="SignalCatcher")


class SignalCatcher:
    """Routes SIGINT and SIGTERM to :meth:`_handle` inside ``with``; ``received`` is the first one caught.

    Handlers are installed only in the main thread (Python allows no other) and
    restored on exit. Subclasses decide what a signal means in :meth:`_handle`.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        self.received = signal.Signals(signum)

    def __enter__(self: _C) -> _C:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
