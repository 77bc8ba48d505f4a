"""The live display: plain lines for logs, a rich panel for terminals."""

from __future__ import annotations

import io
from typing import Any

from searchkit_core._display import (
    EtaEstimator,
    LiveDisplay,
    PlainDisplay,
    counts_text,
    format_duration,
    make_display,
)
from searchkit_core._view import SearchView


def view(**kw: Any) -> SearchView:
    base: dict[str, Any] = {
        "experiment": "demo",
        "method": "asha",
        "metric": "loss",
        "smaller_is_better": True,
        "counts": {"RUNNING": 2, "PAUSED": 1},
        "best_trial_id": None,
        "best_metric": None,
        "progress": 0.0,
        "recent": (),
        "elapsed": 0.0,
        "events": 0,
        "is_finished": False,
    }
    base.update(kw)
    return SearchView(**base)


def test_plain_display_prints_each_event_once_and_summaries() -> None:
    out = io.StringIO()
    display = PlainDisplay(out, summary_interval=3600)
    with display:
        display.on_update(view(recent=("trial 1 created", "trial 2 created")))
        display.on_update(
            view(
                recent=("trial 1 created", "trial 2 created", "trial 1 validated at 4: 0.5"),
                best_trial_id=1,
                best_metric=0.5,
                progress=0.25,
                elapsed=10.0,
            )
        )
        display.on_update(
            view(
                recent=("trial 2 created", "trial 1 validated at 4: 0.5", "the method shut down"),
                counts={"CLOSED": 2},
                best_trial_id=1,
                best_metric=0.5,
                progress=1.0,
                elapsed=20.0,
                is_finished=True,
            )
        )
    lines = out.getvalue().splitlines()
    events = [line for line in lines if "trial" in line and "|" not in line]
    assert events == [
        "searchkit: trial 1 created",
        "searchkit: trial 2 created",
        "searchkit: trial 1 validated at 4: 0.5",
    ]
    assert "searchkit: the method shut down" in lines
    summaries = [line for line in lines if "|" in line]
    assert summaries[0].startswith("searchkit: [demo]   0.0% ~? left")
    assert (
        summaries[-1] == "searchkit: [demo] 100.0% done (20s elapsed) | closed 2 | best loss: 0.5 (trial 1)"
    )
    assert "\x1b" not in out.getvalue()  # no terminal control codes in logs


def test_plain_display_prints_the_last_state_when_closed() -> None:
    out = io.StringIO()
    with PlainDisplay(out, summary_interval=3600) as display:
        display.on_update(view())
        display.on_update(view(progress=0.5, counts={"RUNNING": 1, "ERRORED": 1}, elapsed=5.0))
    assert out.getvalue().splitlines()[-1].endswith("| running 1, errored 1 | best loss: -")


def test_eta_uses_progress_since_the_first_view() -> None:
    eta = EtaEstimator()
    assert eta.estimate(view(progress=0.5, elapsed=100.0)) is None  # a resumed search starts midway
    assert eta.estimate(view(progress=0.75, elapsed=110.0)) == 10.0
    assert eta.estimate(view(progress=1.0, is_finished=True)) == 0.0


def test_formatting_helpers() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m05s"
    assert format_duration(3725) == "1h02m"
    assert format_duration(None) == "?"
    assert counts_text({"CLOSED": 3, "RUNNING": 1, "PAUSED": 0}) == "running 1, closed 3"
    assert counts_text({}) == "no trials yet"


def test_live_display_draws_a_panel_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    display = make_display(out)
    assert isinstance(display, LiveDisplay)
    display.console.width = 100
    with display:
        display.on_update(
            view(
                recent=("trial 7 validated at 16: 0.0589",),
                best_trial_id=7,
                best_metric=0.0589,
                progress=0.4,
                elapsed=30.0,
            )
        )
    text = out.getvalue()
    for expected in (
        "searchkit · demo · asha",
        "running 2, paused 1",
        "0.0589 (trial 7)",
        "40.0%",
        "trial 7 validated at 16",
    ):
        assert expected in text
    assert isinstance(make_display(io.StringIO()), PlainDisplay)
