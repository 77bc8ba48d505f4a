"""The live display of a running search: a rich panel on a terminal, plain lines elsewhere.

The engine hands an observer a :class:`~searchkit_core._view.SearchView` a few
times a second (``observer.on_update(view)``). :func:`make_display` picks:

- :class:`LiveDisplay` when the output is a terminal: a panel redrawn in place
  with the trials running / paused / closed / errored, the best metric so far
  and its trial, the method's progress with an estimate of the time left, and
  the recent events.
- :class:`PlainDisplay` otherwise (CI logs, ``| tee``): each new event on its
  own line, and a one-line summary at most every ``summary_interval`` seconds
  and at the end. Nothing is redrawn, so logs stay readable.

Both are context managers; leaving one prints the final state.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from searchkit_core._view import SearchView

STATE_ORDER = ("RUNNING", "PAUSED", "CLOSED", "ERRORED", "INVALID_HP", "USER_CANCELED")


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12s``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class EtaEstimator:
    """Time left from the progress made since this process started watching (a resumed search starts midway)."""

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None  # (elapsed, progress) at the first view

    def estimate(self, view: SearchView) -> float | None:
        if view.is_finished:
            return 0.0
        if self._start is None:
            self._start = (view.elapsed, view.progress)
            return None
        elapsed0, progress0 = self._start
        done = view.progress - progress0
        spent = view.elapsed - elapsed0
        if done <= 1e-9 or spent <= 0:
            return None
        return spent * (1.0 - view.progress) / done


def counts_text(counts: Mapping[str, int]) -> str:
    """``running 2, paused 5, closed 3`` in a fixed order, zero counts left out."""
    names = [s for s in STATE_ORDER if counts.get(s)] + sorted(
        k for k in counts if k not in STATE_ORDER and counts[k]
    )
    return ", ".join(f"{name.lower()} {counts[name]}" for name in names) or "no trials yet"


def best_text(view: SearchView) -> str:
    if view.best_metric is None:
        return f"best {view.metric}: -"
    return f"best {view.metric}: {view.best_metric:.6g} (trial {view.best_trial_id})"


def summary_line(view: SearchView, eta: float | None) -> str:
    """One line: progress, time, counts, best."""
    left = "done" if view.is_finished else f"~{format_duration(eta)} left"
    return (
        f"[{view.experiment or view.method}] {view.progress * 100:5.1f}% {left} "
        f"({format_duration(view.elapsed)} elapsed) | {counts_text(view.counts)} | {best_text(view)}"
    )


class PlainDisplay:
    """Plain lines for logs: new events as they happen, a summary every ``summary_interval`` seconds."""

    def __init__(self, stream: TextIO | None = None, *, summary_interval: float = 10.0) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.summary_interval = summary_interval
        self._eta = EtaEstimator()
        self._seen: tuple[str, ...] = ()
        self._last_summary = -math.inf
        self._unsummarized: SearchView | None = None

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_update(self, view: SearchView) -> None:
        eta = self._eta.estimate(view)
        for line in _new_lines(self._seen, view.recent):
            self._write(f"searchkit: {line}")
        self._seen = view.recent
        now = time.monotonic()
        if now - self._last_summary >= self.summary_interval or view.is_finished:
            self._last_summary = now
            self._write(f"searchkit: {summary_line(view, eta)}")
            self._unsummarized = None
        else:
            self._unsummarized = view

    def close(self) -> None:
        """Print the summary of the last view if it was not printed yet."""
        view = self._unsummarized
        if view is not None:
            self._unsummarized = None
            self._write(f"searchkit: {summary_line(view, self._eta.estimate(view))}")

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe must not stop the search


def _new_lines(seen: tuple[str, ...], recent: tuple[str, ...]) -> list[str]:
    """The lines of ``recent`` that came after ``seen`` (both are windows over one event stream)."""
    if not seen:
        return list(recent)
    # Find the longest suffix of ``seen`` that is a prefix of ``recent``.
    for overlap in range(min(len(seen), len(recent)), 0, -1):
        if seen[-overlap:] == recent[:overlap]:
            return list(recent[overlap:])
    return list(recent)


class LiveDisplay:
    """A rich panel redrawn in place (about four times a second) while the search runs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream if stream is not None else sys.stdout)
        self._eta = EtaEstimator()
        self._live = Live(console=self.console, refresh_per_second=4, transient=False, auto_refresh=False)
        self._is_started = False

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        self._is_started = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._is_started:
            self._live.stop()
            self._is_started = False

    def on_update(self, view: SearchView) -> None:
        self._live.update(self.render(view), refresh=True)

    def render(self, view: SearchView) -> Any:
        """The panel for ``view`` (a rich renderable)."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        eta = self._eta.estimate(view)
        head = Table.grid(padding=(0, 2))
        head.add_column(justify="right", style="bold")
        head.add_column()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=1.0, completed=view.progress, width=40),
            Text(f"{view.progress * 100:.1f}%"),
            Text("done" if view.is_finished else f"~{format_duration(eta)} left", style="cyan"),
        )
        head.add_row("progress", bar)
        head.add_row("elapsed", format_duration(view.elapsed))
        head.add_row("trials", counts_text(view.counts))
        head.add_row("best", best_text(view).removeprefix("best "))
        recent = Text("\n".join(view.recent[-6:]) or "-", style="dim")
        title = f"searchkit · {view.experiment or 'experiment'} · {view.method}"
        return Panel(Group(head, Text("recent events", style="bold"), recent), title=title, expand=False)


def make_display(stream: TextIO | None = None, *, force_plain: bool = False) -> PlainDisplay | LiveDisplay:
    """A live panel when ``stream`` (default stdout) is a terminal, plain lines otherwise."""
    out = stream if stream is not None else sys.stdout
    is_terminal = bool(getattr(out, "isatty", lambda: False)())
    if is_terminal and not force_plain:
        return LiveDisplay(out)
    return PlainDisplay(out)
