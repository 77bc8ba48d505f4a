"""ASHA's decision cost per event, from a thousand to a million trials (a benchmark, not a test).

Feeds the method alone (no engine, no store, no ledger checks) every event of a
whole search: each Create is acknowledged with TrialCreated, each Close with
TrialClosed, and every ValidateAfter is answered by one of the outstanding
trials, chosen at random, with a random metric. Prints events per second; the
figure should stay roughly flat as the number of trials grows, because each
decision is O(log n) in the size of a rung.

    .venv/bin/python benchmarks/asha_events.py                  # 1k, 10k, 100k, 1M trials
    .venv/bin/python benchmarks/asha_events.py --trials 1000 10000
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import uuid
from typing import Any

from searchkit_asha import AshaSearch
from searchkit_core import Close, Create, ExitedReason, SearcherState, Shutdown, ValidateAfter
from searchkit_core._space import SearchSpace


def run(
    trials: int, *, concurrency: int, num_rungs: int, divisor: int, seed: int
) -> tuple[int, float, float, int]:
    """Drive one search to Shutdown; return (events, wall seconds, CPU seconds, trials created)."""
    space = SearchSpace.from_config({"lr": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0}})
    config: dict[str, Any] = {
        "metric": "loss",
        "max_length": {"batches": divisor ** (num_rungs - 1)},
        "max_trials": trials,
        "num_rungs": num_rungs,
        "divisor": divisor,
        "max_concurrent_trials": concurrency,
    }
    method = AshaSearch(config, space, seed)
    state = SearcherState()  # the method never reads it
    rng = random.Random(seed + 1)
    busy: list[tuple[uuid.UUID, int]] = []  # trials with outstanding work, and its target
    acks: list[Any] = []
    events = 0
    created = 0
    is_shut_down = False
    invalid = ExitedReason.ERRORED

    def take(ops: list[Any]) -> None:
        nonlocal created, is_shut_down
        for op in ops:
            cls = type(op)
            if cls is ValidateAfter:
                busy.append((op.request_id, op.length))
            elif cls is Create:
                created += 1
                acks.append(("created", op.request_id))
            elif cls is Close:
                acks.append(("closed", op.request_id))
            elif cls is Shutdown:
                is_shut_down = True

    gc.collect()
    gc.disable()  # the method allocates many small long-lived objects; cyclic GC passes only add noise
    start = time.perf_counter()
    cpu_start = time.process_time()
    take(method.initial_operations(state))
    events += 1
    while not is_shut_down:
        while acks:
            kind, rid = acks.pop()
            events += 1
            take(
                method.on_trial_created(state, rid)
                if kind == "created"
                else method.on_trial_closed(state, rid)
            )
        if is_shut_down:
            break
        i = rng.randrange(len(busy))
        busy[i], busy[-1] = busy[-1], busy[i]
        rid, length = busy.pop()
        events += 1
        if rng.random() < 0.001:
            take(method.on_trial_exited_early(state, rid, invalid))
        else:
            take(method.on_validation_completed(state, rid, rng.random(), length))
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    gc.enable()
    return events, seconds, cpu, created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--num-rungs", type=int, default=4)
    parser.add_argument("--divisor", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"ASHA, promotions, num_rungs={args.num_rungs}, divisor={args.divisor}, "
        f"max_concurrent_trials={args.concurrency}, random completion order, 0.1% errors"
    )
    # CPU time is the fairer measure on a shared machine; wall time is shown too.
    print(f"{'trials':>10} {'events':>10} {'wall s':>8} {'CPU s':>8} {'events/CPU s':>13}")
    for trials in args.trials:
        events, seconds, cpu, created = run(
            trials,
            concurrency=args.concurrency,
            num_rungs=args.num_rungs,
            divisor=args.divisor,
            seed=args.seed,
        )
        assert created == trials, (created, trials)
        print(f"{trials:>10,} {events:>10,} {seconds:>8.2f} {cpu:>8.2f} {events / cpu:>13,.0f}")


if __name__ == "__main__":
    main()
