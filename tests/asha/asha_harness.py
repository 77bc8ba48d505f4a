"""A checked run of ASHA: drives the method with :class:`MethodDriver` and a naive reference model.

The reference model keeps every rung as a plain sorted list (O(n) per step, fine
for a few dozen trials) and checks the issue's invariants after every event.
Scripts of actions are recorded so that the same run can be replayed with
transformed metrics, without save/load points, or with another seed.
"""

from __future__ import annotations

import itertools
import math
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import attrs

from searchkit_asha import AshaSearch
from searchkit_core import (
    Close,
    Create,
    ExitedReason,
    Operation,
    Shutdown,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    ValidateAfter,
    ValidationCompleted,
)
from searchkit_core._space import SearchSpace
from searchkit_core.testing import MethodDriver

SPACE = SearchSpace.from_config(
    {
        "lr": {"type": "log", "base": 10, "minval": -4.0, "maxval": 0.0},
        "width": {"type": "int", "minval": 8, "maxval": 64},
        "act": {"type": "categorical", "vals": ["relu", "tanh"]},
    }
)

WORST = (1, 0)


def rank_key(metric: Any, smaller_is_better: bool) -> tuple[int, Any]:
    """The documented ranking: finite metrics by value, NaN and infinities last."""
    if isinstance(metric, (int, float)) and math.isfinite(metric):
        return (0, metric if smaller_is_better else -metric)
    return WORST


def build(config: dict[str, Any], seed: int) -> AshaSearch:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AshaSearch(config, SPACE, seed)


@attrs.define
class RefTrial:
    rid: uuid.UUID
    bracket: int
    order: int
    lengths: list[int] = attrs.field(factory=list)
    status: str = "running"  # running, paused, closing, closed, exited
    is_acked: bool = False  # TrialCreated delivered


class InvariantError(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantError(message)


Action = tuple[str, int, Any]


class Harness:
    """ASHA under the driver, checked against the reference after every event."""

    def __init__(
        self, config: dict[str, Any], seed: int, *, metric_fn: Callable[[Any], Any] = lambda m: m
    ) -> None:
        self.config = config
        self.seed = seed
        self.metric_fn = metric_fn
        self.method = build(config, seed)
        self.driver = MethodDriver(self.method, method_name="asha", auto_acknowledge=False)
        self.plans = self.method.brackets
        self.divisor = self.method.config.divisor
        self.smaller = self.method.config.smaller_is_better
        self.stop_once = self.method.config.stop_once
        self.bound = self.method.config.invalid_replacement_bound
        nb = len(self.plans)
        # rungs[b][k]: list of (key, arrival, rid), kept sorted by (key, arrival).
        self.rungs: list[list[list[tuple[tuple[int, Any], int, uuid.UUID]]]] = [
            [[] for _ in p.budgets] for p in self.plans
        ]
        self.arrival = 0
        self.trials: dict[uuid.UUID, RefTrial] = {}
        self.order: list[uuid.UUID] = []
        self.created = [0] * nb
        self.budget = [p.max_trials for p in self.plans]
        self.outstanding: list[dict[uuid.UUID, None]] = [{} for _ in range(nb)]
        self.replaced = 0
        self.shutdowns = 0
        self.ops_log: list[list[Operation]] = []
        self.script: list[Action] = []
        self.closes_seen: set[uuid.UUID] = set()
        self._check_plans()

    # -- the plans (invariant 13: brackets share max_trials and max_concurrent_trials) --

    def _check_plans(self) -> None:
        cfg = self.method.config
        check(sum(p.max_trials for p in self.plans) == cfg.max_trials, "brackets must share max_trials")
        check(
            sum(p.max_concurrent_trials for p in self.plans) <= cfg.total_concurrent_trials,
            "brackets' slots exceed max_concurrent_trials",
        )
        for p in self.plans:
            check(1 <= p.max_concurrent_trials <= p.max_trials, f"bad bracket slots {p}")
            check(list(p.budgets) == sorted(set(p.budgets)), f"budgets not strictly increasing: {p.budgets}")
            check(p.budgets[-1] == cfg.max_length, "top budget must be max_length")

    # -- reference queries --------------------------------------------------------------

    def top_k(self, b: int, k: int) -> list[tuple[tuple[int, Any], int, uuid.UUID]]:
        rung = self.rungs[b][k]
        n = len(rung)
        size = max(1, n // self.divisor) if self.stop_once else n // self.divisor
        return rung[: min(size, n)]

    def promotable(self, b: int) -> list[uuid.UUID]:
        if self.stop_once:
            return []
        found = []
        for k in range(len(self.plans[b].budgets) - 1):
            for _, _, rid in self.top_k(b, k):
                t = self.trials[rid]
                if t.status == "paused" and len(t.lengths) == k + 1:
                    found.append(rid)
        return found

    def has_job(self, b: int) -> bool:
        return bool(self.promotable(b)) or self.created[b] < self.budget[b]

    def _insert(self, b: int, k: int, key: tuple[int, Any], rid: uuid.UUID) -> int:
        rung = self.rungs[b][k]
        check(all(r != rid for _, _, r in rung), f"two entries for trial {rid} in rung {k}")
        self.arrival += 1
        entry = (key, self.arrival, rid)
        rung.append(entry)
        rung.sort(key=lambda e: (e[0], e[1]))
        return rung.index(entry)

    # -- driving ------------------------------------------------------------------------

    def candidates(self, kind: str) -> list[uuid.UUID]:
        trials = [self.trials[r] for r in self.order]
        if kind == "outstanding":
            return [t.rid for t in trials if t.status == "running" and t.is_acked]
        if kind == "paused":
            return [t.rid for t in trials if t.status == "paused"]
        if kind == "closing":
            return [t.rid for t in trials if t.status == "closing"]
        if kind == "ended":
            return [t.rid for t in trials if t.status in ("closed", "exited", "paused", "closing")]
        raise ValueError(kind)

    def start(self) -> None:
        self._step(None)

    def act(self, action: str, index: int, metric: Any = 0) -> bool:
        """Perform one scripted action; False when it does not apply in this state (nothing happens)."""
        if action == "save":
            self.script.append((action, index, metric))
            self.method = self.driver.save_and_load(lambda: build(self.config, self.seed))  # type: ignore[assignment]
            return True
        if action == "ack":
            if not self.driver.pending:
                return False
            self.script.append((action, index, metric))
            self._step(self.driver.pending.popleft())
            return True
        kind = {
            "complete": "outstanding",
            "error": "outstanding",
            "cancel": "outstanding",
            "invalid": "outstanding",
            "cancel_paused": "paused",
            "invalid_paused": "paused",
            "exit_closing": "closing",
            "stale_validation": "ended",
            "stale_created": "ended",
        }[action]
        pool = self.candidates(kind)
        if not pool:
            return False
        self.script.append((action, index, metric))
        rid = pool[index % len(pool)]
        if action == "complete":
            t = self.trials[rid]
            event: Any = ValidationCompleted(rid, self.metric_fn(metric), t.lengths[-1])
        elif action in ("error", "exit_closing"):
            event = TrialExitedEarly(rid, ExitedReason.ERRORED)
        elif action in ("cancel", "cancel_paused"):
            event = TrialExitedEarly(rid, ExitedReason.USER_CANCELED)
        elif action in ("invalid", "invalid_paused"):
            event = TrialExitedEarly(rid, ExitedReason.INVALID_HP)
        elif action == "stale_validation":
            t = self.trials[rid]
            event = ValidationCompleted(rid, self.metric_fn(metric), t.lengths[-1] if t.lengths else 1)
        else:
            event = TrialCreated(rid)
        self._step(event)
        return True

    def replay(self, script: list[Action], *, skip_saves: bool = False) -> None:
        self.start()
        for action, index, metric in script:
            if skip_saves and action == "save":
                continue
            check(self.act(action, index, metric), f"replay diverged at {action}")

    def finish(self, max_steps: int = 5000) -> None:
        """Deliver everything pending and answer all work, first issued first, until Shutdown."""
        turn = 0
        while self.shutdowns == 0:
            turn += 1
            check(turn < max_steps, "the search did not end")
            if self.driver.pending:
                self.act("ack", 0)
            elif self.candidates("outstanding"):
                self.act("complete", 0, [3, 1, 2, 1, 0.5][turn % 5])
            else:
                raise InvariantError("stalled: no outstanding work, nothing pending, no Shutdown")
        self.final_checks()

    # -- one event ----------------------------------------------------------------------

    def _step(self, event: Any) -> None:
        check(self.shutdowns == 0, "event after Shutdown")
        before = [len(o) for o in self.outstanding]
        freed: set[int] = set()
        continuing: uuid.UUID | None = None
        expect_close: uuid.UUID | None = None
        stale = False
        if event is None:
            freed = set(range(len(self.plans)))
        elif isinstance(event, ValidationCompleted):
            t = self.trials.get(event.request_id)
            if t is None or t.status != "running":
                stale = True
            else:
                b, k = t.bracket, len(t.lengths) - 1
                position = self._insert(b, k, rank_key(event.metric, self.smaller), t.rid)
                del self.outstanding[b][t.rid]
                is_top = k == len(self.plans[b].budgets) - 1
                if self.stop_once:
                    n = len(self.rungs[b][k])
                    keep = max(1, n // self.divisor)
                    if position < keep and not is_top:
                        continuing = t.rid  # invariant 12: it continues exactly when in the top
                        self.outstanding[b][t.rid] = None
                    else:
                        expect_close = t.rid
                        freed.add(b)
                else:
                    t.status = "paused"
                    freed.add(b)
                    if is_top:
                        expect_close = t.rid
        elif isinstance(event, TrialExitedEarly):
            t = self.trials.get(event.request_id)
            if t is None or t.status in ("closed", "exited"):
                stale = True
            elif t.status == "closing":
                t.status = "closed"
            else:
                b = t.bracket
                was_running = t.status == "running"
                t.status = "exited"
                if event.exited_reason == ExitedReason.INVALID_HP:
                    for rung in self.rungs[b]:
                        rung[:] = [e for e in rung if e[2] != t.rid]
                    if self.replaced < self.bound:
                        self.replaced += 1
                        self.budget[b] += 1
                    if was_running:
                        del self.outstanding[b][t.rid]
                        freed.add(b)
                elif was_running:
                    self._insert(b, len(t.lengths) - 1, WORST, t.rid)
                    del self.outstanding[b][t.rid]
                    freed.add(b)
        elif isinstance(event, TrialCreated):
            t = self.trials.get(event.request_id)
            if t is None or t.is_acked:
                stale = True
            else:
                t.is_acked = True
        elif isinstance(event, TrialClosed):
            t = self.trials.get(event.request_id)
            if t is None or t.status != "closing":
                stale = True
            else:
                t.status = "closed"

        ops = self.driver.start() if event is None else self.driver.send(event)
        self.ops_log.append(ops)
        if stale:
            check(ops == [], f"a stale event {event!r} produced {ops!r}")
        self._check_ops(ops, event, continuing, expect_close)

        for b in range(len(self.plans)):
            # invariant 3: never more than the bracket's slots
            check(
                len(self.outstanding[b]) <= self.plans[b].max_concurrent_trials, f"bracket {b} over its slots"
            )
            work = [
                op
                for op in ops
                if isinstance(op, (Create, ValidateAfter))
                and self.trials[op.request_id].bracket == b
                and op.request_id != continuing
            ]
            if b in freed:
                # a freed slot gets a promotion or a new trial whenever either exists
                check(
                    len(self.outstanding[b]) == self.plans[b].max_concurrent_trials or not self.has_job(b),
                    f"bracket {b}: a free slot stayed idle while work existed",
                )
            elif work:
                # an event that frees no slot creates no work (except to restart a bracket with nothing in flight)
                check(before[b] == 0, f"bracket {b}: {event!r} freed no slot but created work {work!r}")
            if not self.outstanding[b]:
                check(not self.has_job(b), f"bracket {b} idle while work exists")
                self._check_quiescent(b)

    def _check_ops(
        self, ops: list[Operation], event: Any, continuing: uuid.UUID | None, expect_close: uuid.UUID | None
    ) -> None:
        closes = {op.request_id for op in ops if isinstance(op, Close)}
        if expect_close is not None:
            check(expect_close in closes, f"{expect_close} should have been closed after {event!r}")
        if continuing is not None:
            check(
                any(isinstance(op, ValidateAfter) and op.request_id == continuing for op in ops),
                f"stop-based: {continuing} ranks in the top and must continue",
            )
        for i, op in enumerate(ops):
            if isinstance(op, Create):
                check(op.request_id not in self.trials, "Create reused a request id")
                b = self.method.bracket_of(op.request_id)
                self.trials[op.request_id] = RefTrial(op.request_id, b, len(self.order))
                self.order.append(op.request_id)
                self.created[b] += 1
                check(self.created[b] <= self.budget[b], f"bracket {b} created more trials than its budget")
                # a new trial must get its first ValidateAfter in the same list
                check(
                    any(isinstance(o, ValidateAfter) and o.request_id == op.request_id for o in ops[i:]),
                    "Create without ValidateAfter",
                )
            elif isinstance(op, ValidateAfter):
                t = self.trials.get(op.request_id)
                check(t is not None, "ValidateAfter for an unknown trial")
                assert t is not None
                b = t.bracket
                budgets = self.plans[b].budgets
                # invariant 2: exactly b_0, b_1, ... strictly increasing
                check(len(t.lengths) < len(budgets), "ValidateAfter beyond the top rung")
                check(op.length == budgets[len(t.lengths)], f"length {op.length} is not b_{len(t.lengths)}")
                if t.rid == continuing:
                    t.lengths.append(op.length)
                    continue
                check(t.rid not in self.outstanding[b], "two outstanding ValidateAfter for one trial")
                check(t.status in ("running", "paused"), f"work for a {t.status} trial")
                if t.lengths:
                    # invariants 4 and 6: promoted from the rung below, from its top floor(n/divisor)
                    check(not self.stop_once, "stop-based ASHA never promotes a paused trial")
                    k = len(t.lengths) - 1
                    top = [rid for _, _, rid in self.top_k(b, k)]
                    check(t.rid in top, f"promoted {t.rid} from rung {k} outside its top {len(top)}")
                    # get_job: the best not-yet-promoted trial of the highest rung that has one
                    waiting = [
                        r
                        for r in top
                        if self.trials[r].status == "paused" and len(self.trials[r].lengths) == k + 1
                    ]
                    check(
                        waiting[:1] == [t.rid],
                        f"promoted {t.rid}, but the best promotable in rung {k} is {waiting[:1]}",
                    )
                    higher = [r for r in self.promotable(b) if len(self.trials[r].lengths) > k + 1]
                    check(not higher, f"promoted from rung {k} while a higher rung had {higher}")
                    check(t.status == "paused", "promoted a trial that is not paused")
                t.lengths.append(op.length)
                t.status = "running"
                self.outstanding[b][t.rid] = None
            elif isinstance(op, Close):
                # invariant 1: no duplicate Close, only known open trials, never one with work
                check(op.request_id not in self.closes_seen, "duplicate Close")
                self.closes_seen.add(op.request_id)
                t = self.trials[op.request_id]
                check(t.status == "paused" or t.rid == expect_close, f"Close of a {t.status} trial")
                check(t.rid not in self.outstanding[t.bracket], "Close of a trial with work")
                t.status = "closing"
            elif isinstance(op, Shutdown):
                # invariant 8: once, last, nothing left to do, every trial closed
                self.shutdowns += 1
                check(self.shutdowns == 1, "Shutdown twice")
                check(i == len(ops) - 1, "Shutdown is not the last operation")
                check(not op.cancel and not op.failure, "ASHA ends normally")
                for t in self.trials.values():
                    check(t.status in ("closed", "exited"), f"Shutdown while {t.rid} is {t.status}")
                for b in range(len(self.plans)):
                    check(not self.outstanding[b], "Shutdown with work outstanding")
                    check(not self.has_job(b), "Shutdown while work remains")

    def _check_quiescent(self, b: int) -> None:
        """Invariant 5: nothing in flight, so every open trial in a rung's top was promoted."""
        if self.stop_once:
            return
        for k in range(len(self.plans[b].budgets) - 1):
            for _, _, rid in self.top_k(b, k):
                t = self.trials[rid]
                check(
                    len(t.lengths) > k + 1 or t.status == "exited",
                    f"bracket {b} quiescent but {rid} in the top of rung {k} was never promoted",
                )

    def final_checks(self) -> None:
        # invariant 7: trials created = max_trials + replacements (bounded)
        check(self.replaced <= self.bound, "more replacements than the bound")
        check(sum(self.created) == self.method.config.max_trials + self.replaced, "wrong number of trials")
        for b in range(len(self.plans)):
            check(
                self.created[b] == self.budget[b],
                f"bracket {b} created {self.created[b]} of {self.budget[b]}",
            )
        # invariant 11: progress in [0, 1], monotone, 1.0 at shutdown
        progress = [step.progress for step in self.driver.steps]
        check(all(0.0 <= p <= 1.0 for p in progress), "progress outside [0, 1]")
        check(all(a <= b for a, b in itertools.pairwise(progress)), "progress decreased")
        check(progress[-1] == 1.0, "progress is not 1.0 at shutdown")
        check(self.method.progress(self.driver.ledger.searcher_state) == 1.0, "progress() after shutdown")
