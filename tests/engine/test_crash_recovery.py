"""SIGKILL a simulated search at many moments, resume it each time, and compare with an uninterrupted run.

The search runs in child processes of ``crash_driver.py`` (real processes,
real SQLite, real SIGKILL). Kill points are chosen at random, at least 50 of
them landing before the search ends: most by counting passes through hook points (inside a store transaction before its COMMIT,
right after a COMMIT, at a launch, at a wait), the rest by wall-clock timers
that land anywhere, SQLite's own COMMIT included. Workers are fewer than the
method's concurrency, so segments queue, and some segments crash on purpose,
so restarts and ERRORED trials are part of what must come out the same.
"""

from __future__ import annotations

import json
import pathlib
import random
import subprocess
import sys
from typing import Any

import pytest
from store_dump import closing_order, dump, duplicates

DRIVER = pathlib.Path(__file__).with_name("crash_driver.py")

SPACE = {
    "lr": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0},
    "width": {"type": "int", "minval": 8, "maxval": 64},
    "act": {"type": "categorical", "vals": ["relu", "tanh"]},
}

SEARCHERS = {
    # ASHA declares itself replayable: snapshots now and then, the journal tail replayed.
    "asha": {
        "name": "asha",
        "metric": "loss",
        "max_length": {"batches": 64},
        "max_trials": 120,
        "num_rungs": 3,
        "divisor": 4,
        "max_concurrent_trials": 8,
    },
    # uuid4 + global random: not replayable, snapshotted at every commit.
    "uuid-random": {
        "name": "uuid-random",
        "metric": "loss",
        "max_length": {"batches": 64},
        "max_trials": 100,
        "max_concurrent_trials": 6,
    },
}

HOOK_KILLS = 60
TIMER_KILLS = 10
#: The part of the search (by journal rows) the random hook kills walk through: most of it, but
#: not so much that the search ends before they have landed (tail kills do the rest).
WALK = 0.9


def _drive(
    tmp: pathlib.Path,
    name: str,
    searcher: dict[str, Any],
    engine: dict[str, Any],
    kills: list[dict[str, Any]],
    tail_kill: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec = {
        "experiment_dir": str(tmp / name),
        "count_file": str(tmp / f"{name}.count"),
        "sites_file": str(tmp / f"{name}.sites"),
        "config": {
            "name": f"crash-{searcher['name']}",
            "entrypoint": "model_def:train",
            "searcher": searcher,
            "hyperparameters": SPACE,
            "max_restarts": 1,
            "seed": 11,
        },
        "options": {"workers": 4, "crash_fraction": 0.08, "noise": 0.01},
        "engine": engine,
        "kills": kills,
        "tail_kill": tail_kill,
    }
    spec_path = tmp / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(spec_path)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["errors"], (report, result.stderr)
    report["hook_calls"] = json.loads((tmp / f"{name}.count").read_text())
    return report


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["asha", "uuid-random"])
@pytest.mark.parametrize(
    "engine",
    [
        # The simulate executor is volatile: the engine acts first and commits every few rows.
        {"max_batch": 16},
        # As with a real runner: commit after every wait, act only on committed decisions.
        {"is_volatile": False},
        # The defaults (512-row batches) on a search ten times larger: batches end mid-instant.
        # Its search moves on only eight batches at a time, so fewer kills can land in it.
        {"max_trials_factor": 10, "min_kills": 20},
    ],
    ids=["batched", "commit-per-wait", "large"],
)
def test_sigkill_at_random_moments_resumes_to_the_uninterrupted_result(
    tmp_path: pathlib.Path, method: str, engine: dict[str, Any]
) -> None:
    searcher = dict(SEARCHERS[method])
    engine = dict(engine)
    searcher["max_trials"] *= engine.pop("max_trials_factor", 1)
    min_kills = engine.pop("min_kills", 50)
    reference = _drive(tmp_path, "reference", searcher, engine, [])
    expected = dump(tmp_path / "reference")
    assert expected["status"] == "completed"
    assert any('"TrialRestarted"' in ev for _, _, ev, _ in expected["journal"]), "no crash was injected"

    rng = random.Random(f"kills-{method}-{sorted(engine.items())}")
    # Spread the kills over the hook sites, each plan at a random pass through its site,
    # so that together they walk through the whole search.
    calls = reference["hook_calls"]
    sites = ["append_journal", "put_trials", "put_metrics", "put_snapshot", "__exit__", "launch", "wait"]
    # A site passed only a few times (a replayable method's snapshot, taken at the end) would end the search.
    sites = [site for site in sites if calls.get(site, 0) >= 10]
    kills: list[dict[str, Any]] = []
    # A search moves on only through commits (with a volatile executor a batch holds many
    # events), so the kills walk through the search by journal position: each is armed once
    # the store holds a random number of rows (in increasing order, over most of the search),
    # then lands at a random pass through its site within the next commit or two.
    rows = len(expected["journal"])
    commits = calls["__exit__"]
    for index, at_row in enumerate(sorted(rng.randint(0, int(WALK * rows)) for _ in range(HOOK_KILLS))):
        site = sites[index % len(sites)]
        per_commit = max(1, round(calls[site] / commits))
        kills.append({"at_row": at_row, "hook": rng.randint(1, 2 * per_commit), "site": site})
    for _ in range(TIMER_KILLS):  # anywhere, recovery included
        kills.insert(rng.randrange(len(kills) + 1), {"timer": rng.uniform(0.0, 0.02)})
    # Then a kill after every third commit until the search ends: its last closings, its
    # shutdown and its final snapshot are killed too.
    report = _drive(tmp_path, "crashed", searcher, engine, kills, tail_kill={"hook": 3, "site": "__exit__"})
    assert report["killed"] >= min_kills, report  # kills landed at this many moments before the end
    positions = report["journal_at_kills"]
    assert max(positions) >= 0.95 * len(expected["journal"]), (positions, len(expected["journal"]))
    plan_sites = {k["site"] for k in kills if "site" in k}
    sites = (tmp_path / "crashed.sites").read_text().split()
    inside_commit = {"append_journal", "put_trials", "put_metrics", "put_snapshot", "put_files"}
    eligible = inside_commit & set(plan_sites)
    assert len(set(sites) & inside_commit) >= min(2, len(eligible)), sites  # killed inside transactions
    assert "__exit__" in sites or "launch" in sites, sites  # killed between a commit and acting on it

    actual = dump(tmp_path / "crashed")
    assert actual["status"] == "completed"
    assert duplicates(actual) == []
    assert [t[:2] for t in actual["trials"]] == [t[:2] for t in expected["trials"]]  # trials, hparams
    assert actual["trials"] == expected["trials"]  # states, lengths, restarts, metrics, errors
    assert closing_order(actual) == closing_order(expected)
    assert actual["journal"] == expected["journal"]  # every event, its operations and its virtual time
    assert actual["metrics"] == expected["metrics"]
