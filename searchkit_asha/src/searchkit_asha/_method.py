"""ASHA (Li et al., MLSys 2020) as a searchkit search method: promotions by default, stopping on request."""

from __future__ import annotations

import logging
import math
import pathlib
import random
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from searchkit_asha._config import AshaConfig, Bracket, plan_brackets, warn_if_reduced
from searchkit_asha._rungs import REAL, WORST, Rung
from searchkit_core import (
    Close,
    Create,
    ExitedReason,
    Operation,
    SearcherState,
    SearchMethod,
    Shutdown,
    ValidateAfter,
    _wire,
)
from searchkit_core.errors import SearchMethodError, WireFormatError

logger = logging.getLogger("searchkit_asha")

STATE_FILE = "asha_state.json"

# Trial status codes (ints keep a million trials small and the state file flat).
RUNNING = 0  # has unanswered work (a ValidateAfter, possibly with its Create)
PAUSED = 1  # reported its latest rung; may be promoted later
CLOSING = 2  # the method issued Close; waiting for TrialClosed
CLOSED = 3  # closed by the method
EXITED = 4  # exited early (errored, cancelled, invalid hyperparameters)


class Space(Protocol):
    """What ASHA needs of a search space: draw one configuration from a ``random.Random``."""

    def sample(self, rng: random.Random) -> dict[str, Any]: ...


class _Trial:
    __slots__ = ("bracket", "entries", "is_created", "request_id", "status", "target_rung")

    def __init__(self, request_id: uuid.UUID, bracket: int) -> None:
        self.request_id = request_id
        self.bracket = bracket
        self.status = RUNNING
        self.target_rung = 0  # rung its outstanding (or latest) work is heading for
        self.entries: list[int] = []  # entry id in rung k at index k
        self.is_created = False  # TrialCreated arrived


class _BracketState:
    __slots__ = ("budget", "created", "outstanding", "plan", "rungs", "swept", "trials")

    def __init__(self, plan: Bracket, divisor: int, stop_based: bool) -> None:
        self.plan = plan
        self.rungs = [Rung(divisor, stop_based=stop_based) for _ in plan.budgets]
        self.outstanding = 0
        self.created = 0
        self.budget = plan.max_trials  # grows by one per replaced INVALID_HP trial
        self.swept = False  # the final Closes were issued
        self.trials: list[int] = []


@attrs.frozen
class AshaSnapshot:
    """Everything ASHA needs to continue, as plain JSON values (written through the wire format)."""

    config: dict[str, Any]
    seed: int
    rng_state: list[Any]
    request_ids: list[str]
    trial_bracket: list[int]
    trial_status: list[int]
    trial_target_rung: list[int]
    trial_entries: list[list[int]]
    trial_is_created: list[bool]
    brackets: list[dict[str, Any]]
    pending_closes: int
    is_shut_down: bool
    invalid_replaced: int
    progress: float
    done_units: int


def _rank_key(metric: Any, smaller_is_better: bool) -> tuple[int, Any]:
    """(class, value): finite metrics in class 0 (negated when larger is better), anything else last."""
    if type(metric) is int:
        return REAL, (metric if smaller_is_better else -metric)
    try:
        value = float(metric)
    except (TypeError, ValueError):
        logger.warning("asha: metric %r is not a number; it ranks last", metric)
        return WORST, 0
    if not math.isfinite(value):
        return WORST, 0
    return REAL, (value if smaller_is_better else -value)


class AshaSearch(SearchMethod):
    """Asynchronous successive halving with promotions (or stopping, with ``stop_once``).

    Decisions are a pure function of the config, the seed and the events, so the
    method is replayable: the engine snapshots it rarely and replays the journal.
    Every event costs O(log n) in the number of results in a rung.
    """

    replayable = True

    def __init__(self, config: AshaConfig | Mapping[str, Any], space: Space, seed: int) -> None:
        if not isinstance(config, AshaConfig):
            config = AshaConfig.from_mapping(config)
        self.config = config
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        plans, warning = plan_brackets(config)
        warn_if_reduced(warning)  # a warning, not also a log line: the CLI shows it once
        self._brackets = [_BracketState(p, config.divisor, config.stop_once) for p in plans]
        self._trials: list[_Trial] = []
        self._by_id: dict[uuid.UUID, int] = {}
        self._pending_closes = 0
        self._is_shut_down = False
        self._invalid_replaced = 0
        self._progress = 0.0
        self._done_units = 0
        self._expected_units = self._expected_work()

    # -- introspection (read-only; for tests, status displays and docs) ----------------

    @property
    def brackets(self) -> list[Bracket]:
        """The brackets' plans: budgets, trials and slots of each."""
        return [b.plan for b in self._brackets]

    def bracket_of(self, request_id: uuid.UUID) -> int:
        """The index of the bracket a trial belongs to."""
        return self._trials[self._by_id[request_id]].bracket

    def outstanding(self, bracket: int) -> int:
        """Trials of the bracket with unanswered work."""
        return self._brackets[bracket].outstanding

    def trials_budget(self, bracket: int) -> int:
        """Trials the bracket may create: its share of ``max_trials`` plus replacements."""
        return self._brackets[bracket].budget

    @property
    def invalid_replaced(self) -> int:
        """How many INVALID_HP trials were replaced so far."""
        return self._invalid_replaced

    @property
    def is_shut_down(self) -> bool:
        return self._is_shut_down

    # -- handlers ------------------------------------------------------------------

    def initial_operations(self, searcher_state: SearcherState) -> list[Operation]:
        ops: list[Operation] = []
        if self._trials or self._is_shut_down:
            logger.warning("asha: initial_operations called again; ignored")
            return ops
        for index in range(len(self._brackets)):
            self._fill(index, ops)
        self._finish_if_done(ops)
        return ops

    def on_trial_created(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        index = self._by_id.get(request_id)
        if index is None:
            logger.warning("asha: TrialCreated for unknown trial %s; ignored", request_id)
        elif self._trials[index].is_created:
            logger.warning("asha: duplicate TrialCreated for %s; ignored", request_id)
        else:
            self._trials[index].is_created = True
        return []

    def on_validation_completed(
        self, searcher_state: SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[Operation]:
        ops: list[Operation] = []
        index = self._by_id.get(request_id)
        trial = self._trials[index] if index is not None else None
        if trial is None or trial.status != RUNNING:
            logger.warning("asha: validation of %s with no outstanding work; ignored", request_id)
            return ops
        assert index is not None
        b = self._brackets[trial.bracket]
        k = trial.target_rung
        budgets = b.plan.budgets
        if train_length != budgets[k]:
            logger.warning(
                "asha: trial %s validated at length %s, expected %s; counted for rung %s",
                request_id,
                train_length,
                budgets[k],
                k,
            )
        cls, value = _rank_key(metric, self.config.smaller_is_better)
        rung = b.rungs[k]
        is_top = k == len(budgets) - 1
        eid = rung.add(cls, value, index, eligible=not is_top and not self.config.stop_once)
        trial.entries.append(eid)
        self._done_units += self._increment(b, k)
        if self.config.stop_once and not is_top and rung.in_top[eid]:
            # Stop-based: a trial in the top of its rung continues at once, in its slot.
            trial.target_rung = k + 1
            ops.append(ValidateAfter(trial.request_id, budgets[k + 1]))
        else:
            b.outstanding -= 1
            if is_top or self.config.stop_once:
                self._close(trial, ops)
            else:
                trial.status = PAUSED
            self._fill(trial.bracket, ops)
        self._finish_if_done(ops)
        return ops

    def on_trial_closed(self, searcher_state: SearcherState, request_id: uuid.UUID) -> list[Operation]:
        ops: list[Operation] = []
        index = self._by_id.get(request_id)
        if index is None or self._trials[index].status != CLOSING:
            logger.warning("asha: TrialClosed for %s, which was not being closed; ignored", request_id)
            return ops
        self._trials[index].status = CLOSED
        self._pending_closes -= 1
        self._finish_if_done(ops)
        return ops

    def on_trial_exited_early(
        self, searcher_state: SearcherState, request_id: uuid.UUID, exited_reason: ExitedReason
    ) -> list[Operation]:
        ops: list[Operation] = []
        index = self._by_id.get(request_id)
        if index is None:
            logger.warning("asha: %s exit of unknown trial %s; ignored", exited_reason, request_id)
            return ops
        trial = self._trials[index]
        b = self._brackets[trial.bracket]
        if trial.status == CLOSING:
            # It ended while its Close was on the way: as good as closed.
            trial.status = EXITED
            self._pending_closes -= 1
            self._finish_if_done(ops)
            return ops
        if trial.status in (CLOSED, EXITED):
            logger.warning("asha: %s exit of ended trial %s; ignored", exited_reason, request_id)
            return ops
        was_running = trial.status == RUNNING
        trial.status = EXITED
        if exited_reason == ExitedReason.INVALID_HP:
            # As if it had never existed: out of every rung, and replaced while the bound allows.
            for k, eid in enumerate(trial.entries):
                if b.rungs[k].live[eid]:
                    b.rungs[k].remove(eid)
                    self._done_units -= self._increment(b, k)
            if self._invalid_replaced < self.config.invalid_replacement_bound:
                self._invalid_replaced += 1
                b.budget += 1
            if was_running:
                b.outstanding -= 1
                self._fill(trial.bracket, ops)
        elif was_running:
            # Errored or cancelled on its way to a rung: the worst result there, and its slot is free.
            k = trial.target_rung
            eid = b.rungs[k].add(WORST, 0, index, eligible=False)
            trial.entries.append(eid)
            self._done_units += self._increment(b, k)
            b.outstanding -= 1
            self._fill(trial.bracket, ops)
        else:
            # A paused trial that is cancelled keeps its result but can never be promoted.
            b.rungs[len(trial.entries) - 1].eligible[trial.entries[-1]] = 0
        self._finish_if_done(ops)
        return ops

    def progress(self, searcher_state: SearcherState) -> float:
        """Work done over the work ASHA expects; monotone, below 1.0 until shutdown, 1.0 at shutdown."""
        try:
            return 1.0 if self._is_shut_down else min(1.0, max(0.0, float(self._progress)))
        except Exception:  # progress must never take the search down
            return 0.0

    # -- decisions -----------------------------------------------------------------

    def _fill(self, bi: int, ops: list[Operation]) -> None:
        """Give every free slot of the bracket the paper's get_job: a promotion, else a new trial."""
        b = self._brackets[bi]
        while b.outstanding < b.plan.max_concurrent_trials:
            if not self._promote(b, ops) and not self._create(bi, ops):
                return

    def _promote(self, b: _BracketState, ops: list[Operation]) -> bool:
        if self.config.stop_once:
            return False
        for k in range(len(b.rungs) - 2, -1, -1):
            rung = b.rungs[k]
            eid = rung.best_candidate()
            if eid is None:
                continue
            rung.eligible[eid] = 0
            trial = self._trials[rung.owner[eid]]
            trial.status = RUNNING
            trial.target_rung = k + 1
            b.outstanding += 1
            ops.append(ValidateAfter(trial.request_id, b.plan.budgets[k + 1]))
            return True
        return False

    def _create(self, bi: int, ops: list[Operation]) -> bool:
        b = self._brackets[bi]
        if b.created >= b.budget:
            return False
        request_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        while request_id in self._by_id:  # never in practice; keeps ids unique regardless
            request_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        hparams = self.space.sample(self.rng)
        index = len(self._trials)
        self._trials.append(_Trial(request_id, bi))
        self._by_id[request_id] = index
        b.trials.append(index)
        b.created += 1
        b.outstanding += 1
        ops.append(Create(request_id, hparams))
        ops.append(ValidateAfter(request_id, b.plan.budgets[0]))
        return True

    def _close(self, trial: _Trial, ops: list[Operation]) -> None:
        trial.status = CLOSING
        self._pending_closes += 1
        ops.append(Close(trial.request_id))

    def _finish_if_done(self, ops: list[Operation]) -> None:
        """Close the trials that will never be promoted, then shut down once everything is closed."""
        if self._is_shut_down:
            return
        all_swept = True
        for bi, b in enumerate(self._brackets):
            if b.swept:
                continue
            if b.outstanding == 0:
                # Nothing in flight: fill idle slots so that the search can never stall
                # (only an INVALID_HP exit of a paused trial can leave work behind idle slots).
                self._fill(bi, ops)
            if b.outstanding == 0:
                b.swept = True
                for index in b.trials:
                    if self._trials[index].status == PAUSED:
                        self._close(self._trials[index], ops)
            else:
                all_swept = False
        if all_swept and self._pending_closes == 0:
            self._is_shut_down = True
            self._progress = 1.0
            ops.append(Shutdown())
            return
        if self._expected_units:
            self._progress = max(self._progress, min(0.99, self._done_units / self._expected_units))

    # -- progress bookkeeping -------------------------------------------------------

    @staticmethod
    def _increment(b: _BracketState, k: int) -> int:
        budgets = b.plan.budgets
        return budgets[k] - (budgets[k - 1] if k else 0)

    def _expected_work(self) -> int:
        """Units ASHA trains if floor(T / divisor^k) trials reach rung k (at least one)."""
        total = 0
        d = self.config.divisor
        for b in self._brackets:
            for k in range(len(b.plan.budgets)):
                total += max(1, b.plan.max_trials // d**k) * self._increment(b, k)
        return total

    # -- persistence ---------------------------------------------------------------

    def snapshot(self) -> AshaSnapshot:
        """The method's whole state as plain values."""
        version, internal, gauss = self.rng.getstate()
        return AshaSnapshot(
            config=attrs.asdict(self.config),
            seed=self.seed,
            rng_state=[version, list(internal), gauss],
            request_ids=[str(t.request_id) for t in self._trials],
            trial_bracket=[t.bracket for t in self._trials],
            trial_status=[t.status for t in self._trials],
            trial_target_rung=[t.target_rung for t in self._trials],
            trial_entries=[list(t.entries) for t in self._trials],
            trial_is_created=[t.is_created for t in self._trials],
            brackets=[
                {
                    "outstanding": b.outstanding,
                    "created": b.created,
                    "budget": b.budget,
                    "swept": b.swept,
                    "rungs": [r.to_columns() for r in b.rungs],
                }
                for b in self._brackets
            ],
            pending_closes=self._pending_closes,
            is_shut_down=self._is_shut_down,
            invalid_replaced=self._invalid_replaced,
            progress=self._progress,
            done_units=self._done_units,
        )

    def restore(self, snap: AshaSnapshot) -> None:
        """Continue from a snapshot taken by a method with the same config and seed."""
        if snap.config != attrs.asdict(self.config) or snap.seed != self.seed:
            raise SearchMethodError(
                "asha: the saved state was made with another searcher config or seed; "
                f"saved {snap.config} seed {snap.seed}, now {attrs.asdict(self.config)} seed {self.seed}"
            )
        if len(snap.brackets) != len(self._brackets):
            raise WireFormatError("asha state: brackets do not match the config")
        try:
            self._restore(snap)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise WireFormatError(
                f"asha state: inconsistent saved state ({type(exc).__name__}: {exc})"
            ) from None

    def _restore(self, snap: AshaSnapshot) -> None:
        version, internal, gauss = snap.rng_state
        self.rng.setstate((int(version), tuple(int(x) for x in internal), gauss))
        self._trials = []
        self._by_id = {}
        columns = zip(
            snap.request_ids,
            snap.trial_bracket,
            snap.trial_status,
            snap.trial_target_rung,
            snap.trial_entries,
            snap.trial_is_created,
            strict=True,
        )
        for index, (rid, bracket, status, target, entries, is_created) in enumerate(columns):
            trial = _Trial(uuid.UUID(rid), int(bracket))
            trial.status = int(status)
            trial.target_rung = int(target)
            trial.entries = [int(e) for e in entries]
            trial.is_created = bool(is_created)
            self._trials.append(trial)
            self._by_id[trial.request_id] = index
        for b in self._brackets:
            b.trials = []
        for index, trial in enumerate(self._trials):
            self._brackets[trial.bracket].trials.append(index)
        for b, saved in zip(self._brackets, snap.brackets, strict=True):
            b.outstanding = int(saved["outstanding"])
            b.created = int(saved["created"])
            b.budget = int(saved["budget"])
            b.swept = bool(saved["swept"])
            b.rungs = [
                Rung.from_columns(self.config.divisor, self.config.stop_once, c) for c in saved["rungs"]
            ]
        self._pending_closes = snap.pending_closes
        self._is_shut_down = snap.is_shut_down
        self._invalid_replaced = snap.invalid_replaced
        self._progress = snap.progress
        self._done_units = snap.done_units

    def save_method_state(self, path: pathlib.Path) -> None:
        """Write the state as versioned JSON into the directory ``path`` (no pickle)."""
        path = pathlib.Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / STATE_FILE).write_text(_dump(self.snapshot()), encoding="utf-8")

    def load_method_state(self, path: pathlib.Path) -> None:
        """Read what :meth:`save_method_state` wrote into the directory ``path``."""
        text = (pathlib.Path(path) / STATE_FILE).read_text(encoding="utf-8")
        self.restore(_load(text))


def _snapshot_to_dict(snap: AshaSnapshot) -> dict[str, Any]:
    # The fields are plain JSON values by construction (finite numbers, strings, lists),
    # so a shallow dict is the wire form; cattrs' per-element checks would cost minutes
    # for a million trials.
    return {f.name: getattr(snap, f.name) for f in attrs.fields(AshaSnapshot)}


#: Each field's JSON type. Lists are checked as lists; their elements are converted (and
#: checked) one by one when the state is restored, not here twice.
_SNAPSHOT_TYPES: dict[str, tuple[type, ...]] = {
    "config": (dict,),
    "seed": (int,),
    "rng_state": (list,),
    "request_ids": (list,),
    "trial_bracket": (list,),
    "trial_status": (list,),
    "trial_target_rung": (list,),
    "trial_entries": (list,),
    "trial_is_created": (list,),
    "brackets": (list,),
    "pending_closes": (int,),
    "is_shut_down": (bool,),
    "invalid_replaced": (int,),
    "progress": (int, float),
    "done_units": (int,),
}


def _snapshot_from_dict(data: dict[str, Any]) -> AshaSnapshot:
    fields = [f.name for f in attrs.fields(AshaSnapshot)]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} in AshaSnapshot")
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"missing field {missing[0]!r} in AshaSnapshot")
    for name, types in _SNAPSHOT_TYPES.items():
        value = data[name]
        is_bool = isinstance(value, bool)
        if not isinstance(value, types) or (is_bool and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise ValueError(f"field {name!r} of AshaSnapshot must be {expected}, got {value!r:.40}")
    lengths = {len(data[name]) for name in fields if name.startswith("trial_") or name == "request_ids"}
    if len(lengths) > 1:
        raise ValueError("the per-trial columns of AshaSnapshot have different lengths")
    return AshaSnapshot(**data)


_wire.register_type(AshaSnapshot, unstructure_fn=_snapshot_to_dict, structure_fn=_snapshot_from_dict)


def _dump(snap: AshaSnapshot) -> str:
    return _wire.to_json(snap)


def _load(text: str) -> AshaSnapshot:
    snap = _wire.from_json(text, AshaSnapshot)
    assert isinstance(snap, AshaSnapshot)
    return snap
