"""ASHA written for Determined's custom-searcher API, as Determined's own example wrote it.

The only change from the Determined version is the import line::

    from determined import searcher          # Determined (removed in 0.38)
    import searchkit_core as searcher        # searchkit

Everything else is Determined style on purpose: request ids from ``uuid.uuid4()``,
hyperparameters sampled with the global ``random`` module, and the state saved
with ``pickle`` inside ``save_method_state``. Such a method cannot be replayed
from its events, so it keeps ``replayable = False`` (the default) and searchkit
saves it after every event: a crash loses no decision and repeats none.
(searchkit never unpickles anything itself; ``load_method_state`` is this
method's own code reading the file its own ``save_method_state`` wrote.)
"""

from __future__ import annotations

import logging
import pathlib
import pickle
import random
import sys
import uuid
from collections.abc import Callable
from typing import Any

import searchkit_core as searcher

log = logging.getLogger(__name__)


def search_space() -> dict[str, Any]:
    """The seed's MNIST hyperparameters, drawn with the global ``random`` module (as in Determined's example)."""
    return {
        "global_batch_size": 64,
        "learning_rate": 10 ** random.uniform(-4.0, 0.0),
        "n_filters1": random.randint(8, 64),
        "n_filters2": random.randint(8, 72),
        "dropout1": random.uniform(0.2, 0.8),
        "dropout2": random.uniform(0.2, 0.8),
    }


class TrialMetric:
    def __init__(self, request_id: uuid.UUID, metric: float, promoted: bool = False) -> None:
        self.request_id = request_id
        self.metric = metric
        self.promoted = promoted


class Rung:
    def __init__(self, units_needed: int, idx: int) -> None:
        self.units_needed = units_needed
        self.idx = idx
        self.metrics: list[TrialMetric] = []  # sorted, best first
        self.outstanding_trials = 0

    def promotions_async(self, request_id: uuid.UUID, metric: float, divisor: int) -> list[uuid.UUID]:
        """Insert the trial's metric; return the trials that the top 1/divisor of this rung now promotes."""
        old_num_promote = len(self.metrics) // divisor
        num_promote = (len(self.metrics) + 1) // divisor
        index = self._search_metric_index(metric)
        promote_now = index < num_promote
        self.metrics.insert(index, TrialMetric(request_id, metric, promote_now))
        if promote_now:
            return [request_id]
        if num_promote != old_num_promote and not self.metrics[old_num_promote].promoted:
            self.metrics[old_num_promote].promoted = True
            return [self.metrics[old_num_promote].request_id]
        return []

    def _search_metric_index(self, metric: float) -> int:
        i, j = 0, len(self.metrics)
        while i < j:
            mid = (i + j) >> 1
            if self.metrics[mid].metric <= metric:
                i = mid + 1
            else:
                j = mid
        return i


class ASHASearchMethodState:
    """Everything the method decides from; pickled whole by ``save_method_state``."""

    def __init__(
        self,
        max_length: int,
        max_trials: int,
        num_rungs: int,
        divisor: int,
        max_concurrent_trials: int = 16,
        smaller_is_better: bool = True,
    ) -> None:
        self.max_length = max_length
        self.max_trials = max_trials
        self.num_rungs = num_rungs
        self.divisor = divisor
        self.max_concurrent_trials = max_concurrent_trials
        self.is_smaller_better = smaller_is_better
        self.rungs = [
            Rung(max(1, max_length // divisor ** (num_rungs - idx - 1)), idx) for idx in range(num_rungs)
        ]
        self.trial_rungs: dict[uuid.UUID, int] = {}
        self.closed_trials: set[uuid.UUID] = set()
        self.early_exit_trials: set[uuid.UUID] = set()
        self.invalid_trials = 0
        self.pending_trials = 0
        self.completed_trials = 0


class ASHASearchMethod(searcher.SearchMethod):
    """Asynchronous successive halving with promotions (Determined's custom-searcher ASHA example)."""

    def __init__(
        self,
        search_space: Callable[[], dict[str, Any]],
        max_length: int,
        max_trials: int,
        num_rungs: int,
        divisor: int,
        max_concurrent_trials: int = 16,
        smaller_is_better: bool = True,
    ) -> None:
        self.search_space = search_space
        self.asha_search_state = ASHASearchMethodState(
            max_length, max_trials, num_rungs, divisor, max_concurrent_trials, smaller_is_better
        )

    def initial_operations(self, _: searcher.SearcherState) -> list[searcher.Operation]:
        state = self.asha_search_state
        if state.max_concurrent_trials > 0:
            concurrent = min(state.max_concurrent_trials, state.max_trials)
        else:
            concurrent = max(1, min(int(pow(state.divisor, state.num_rungs - 1)), state.max_trials))
        ops: list[searcher.Operation] = []
        for _ in range(concurrent):
            ops.extend(self._create_trial())
        return ops

    def on_trial_created(self, _: searcher.SearcherState, request_id: uuid.UUID) -> list[searcher.Operation]:
        return []

    def on_validation_completed(
        self, _: searcher.SearcherState, request_id: uuid.UUID, metric: Any, train_length: int
    ) -> list[searcher.Operation]:
        self.asha_search_state.pending_trials -= 1
        value = float(metric)
        if not self.asha_search_state.is_smaller_better:
            value *= -1
        return self.promote_async(request_id, value)

    def on_trial_closed(self, _: searcher.SearcherState, request_id: uuid.UUID) -> list[searcher.Operation]:
        state = self.asha_search_state
        state.completed_trials += 1
        state.closed_trials.add(request_id)
        return self._shutdown_if_done()

    def on_trial_exited_early(
        self, _: searcher.SearcherState, request_id: uuid.UUID, exited_reason: searcher.ExitedReason
    ) -> list[searcher.Operation]:
        state = self.asha_search_state
        state.pending_trials -= 1
        state.early_exit_trials.add(request_id)
        if exited_reason == searcher.ExitedReason.INVALID_HP:
            # Forget the trial entirely and draw a replacement.
            state.closed_trials.add(request_id)
            state.invalid_trials += 1
            highest = state.trial_rungs[request_id]
            state.rungs[highest].outstanding_trials -= 1
            for rung in state.rungs[: highest + 1]:
                rung.metrics = [m for m in rung.metrics if m.request_id != request_id]
            state.completed_trials += 1  # it will never be closed by a Close
            return self._create_trial()
        # An errored trial counts as the worst result in its rung.
        state.completed_trials += 1
        state.closed_trials.add(request_id)
        return self.promote_async(request_id, sys.float_info.max) + self._shutdown_if_done()

    def promote_async(self, request_id: uuid.UUID, metric: float) -> list[searcher.Operation]:
        state = self.asha_search_state
        rung_index = state.trial_rungs[request_id]
        rung = state.rungs[rung_index]
        rung.outstanding_trials -= 1
        added_train_workload = False
        ops: list[searcher.Operation] = []
        if rung_index == state.num_rungs - 1:
            rung.metrics.append(TrialMetric(request_id, metric))
            if request_id not in state.early_exit_trials:
                ops.append(searcher.Close(request_id))
                log.info("closing trial %s", request_id)
                state.closed_trials.add(request_id)
        else:
            next_rung = state.rungs[rung_index + 1]
            for promoted in rung.promotions_async(request_id, metric, state.divisor):
                if promoted in state.closed_trials and promoted not in state.early_exit_trials:
                    # Closed when its rung looked finished; a replacement for an invalid trial
                    # reopened the rung since. A closed trial stays closed.
                    continue
                state.trial_rungs[promoted] = rung_index + 1
                next_rung.outstanding_trials += 1
                if promoted not in state.early_exit_trials:
                    log.info("promoting trial %s to rung %d", promoted, rung_index + 1)
                    ops.append(searcher.ValidateAfter(promoted, next_rung.units_needed))
                    added_train_workload = True
                    state.pending_trials += 1
                else:
                    # As if the exited trial had trained to the next rung with the worst result.
                    return ops + self.promote_async(promoted, sys.float_info.max)

        all_trials = len(state.trial_rungs) - state.invalid_trials
        if not added_train_workload and all_trials < state.max_trials:
            ops.extend(self._create_trial())
        if all_trials >= state.max_trials:
            ops.extend(self._get_close_rungs_ops())
        return ops

    def _shutdown_if_done(self) -> list[searcher.Operation]:
        """Shut down once every trial that will ever exist has closed or exited."""
        state = self.asha_search_state
        all_trials = len(state.trial_rungs) - state.invalid_trials
        if (
            state.pending_trials == 0
            and all_trials >= state.max_trials
            and state.completed_trials == len(state.trial_rungs)
        ):
            return [searcher.Shutdown()]
        return []

    def _create_trial(self) -> list[searcher.Operation]:
        state = self.asha_search_state
        create = searcher.Create(request_id=uuid.uuid4(), hparams=self.search_space(), checkpoint=None)
        state.trial_rungs[create.request_id] = 0
        state.rungs[0].outstanding_trials += 1
        state.pending_trials += 1
        return [create, searcher.ValidateAfter(create.request_id, state.rungs[0].units_needed)]

    def _get_close_rungs_ops(self) -> list[searcher.Operation]:
        """Close the trials that no finished rung will promote any more."""
        state = self.asha_search_state
        ops: list[searcher.Operation] = []
        for rung in state.rungs:
            if rung.outstanding_trials > 0:
                break
            for trial_metric in rung.metrics:
                rid = trial_metric.request_id
                # A promoted trial's Close comes from a higher rung; this one stops here.
                if (
                    not trial_metric.promoted
                    and rid not in state.closed_trials
                    and rid not in state.early_exit_trials
                    and state.trial_rungs[rid] == rung.idx
                ):
                    log.info("closing trial %s", rid)
                    ops.append(searcher.Close(rid))
                    state.closed_trials.add(rid)
        return ops

    def progress(self, _: searcher.SearcherState) -> float:
        state = self.asha_search_state
        # Half for trials through the first rung, half for trials done.
        first_rung = len(state.rungs[0].metrics) / state.max_trials
        done = (state.completed_trials - state.invalid_trials) / state.max_trials
        return max(0.0, min(1.0, 0.5 * first_rung + 0.5 * done))

    def save_method_state(self, path: pathlib.Path) -> None:
        with path.joinpath("method_state").open("wb") as f:
            pickle.dump(self.asha_search_state, f)

    def load_method_state(self, path: pathlib.Path) -> None:
        with path.joinpath("method_state").open("rb") as f:
            self.asha_search_state = pickle.load(f)
