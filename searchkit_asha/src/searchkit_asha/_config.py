"""ASHA's settings: validation of the ``searcher:`` section, rung budgets, and the bracket split."""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from searchkit_core.errors import ConfigError

MODES = ("aggressive", "standard", "conservative")
LENGTH_UNITS = ("batches", "records", "epochs")

DEFAULT_NUM_RUNGS = 5
DEFAULT_DIVISOR = 4

#: Every key the ``searcher:`` section of ASHA may hold (``name`` is the registry's).
KNOWN_KEYS = (
    "name",
    "metric",
    "smaller_is_better",
    "max_length",
    "max_trials",
    "num_rungs",
    "divisor",
    "max_concurrent_trials",
    "mode",
    "stop_once",
    "max_invalid_replacements",
)
REQUIRED_KEYS = ("metric", "max_length", "max_trials")


class RungsReducedWarning(UserWarning):
    """``max_length`` is too small for ``num_rungs`` distinct budgets, so fewer rungs are used."""


@attrs.frozen
class Bracket:
    """One successive-halving bracket: its rung budgets and its share of trials and slots."""

    budgets: tuple[int, ...]  # absolute lengths b_0 < b_1 < ... < b_K = max_length
    max_trials: int
    max_concurrent_trials: int

    @property
    def num_rungs(self) -> int:
        return len(self.budgets)


@attrs.frozen
class AshaConfig:
    """A validated ``searcher:`` section. Build it with :meth:`from_mapping`."""

    metric: str
    max_length: int
    length_unit: str
    max_trials: int
    smaller_is_better: bool = True
    num_rungs: int = DEFAULT_NUM_RUNGS
    divisor: int = DEFAULT_DIVISOR
    max_concurrent_trials: int = 0
    mode: str = "aggressive"
    stop_once: bool = False
    max_invalid_replacements: int | None = None  # None: as many as max_trials

    @property
    def invalid_replacement_bound(self) -> int:
        """How many trials that exit ``INVALID_HP`` are replaced, in all (default: ``max_trials``)."""
        return self.max_trials if self.max_invalid_replacements is None else self.max_invalid_replacements

    @property
    def total_concurrent_trials(self) -> int:
        """``max_concurrent_trials``, or when it is 0: min(divisor^(num_rungs-1), max_trials)."""
        if self.max_concurrent_trials > 0:
            return self.max_concurrent_trials
        return min(self.divisor ** (self.num_rungs - 1), self.max_trials)

    @classmethod
    def from_mapping(cls, searcher: Mapping[str, Any]) -> AshaConfig:
        """Validate ``searcher`` and build the config; raise :class:`ConfigError` listing every problem."""
        problems, values = _parse(searcher)
        if problems:
            raise ConfigError(problems)
        return cls(**values)


def validate_searcher(searcher: Mapping[str, Any]) -> list[str]:
    """One message per problem in the ``searcher:`` section, each naming its key."""
    return _parse(searcher)[0]


def _as_int(value: Any) -> int | None:
    """An int, or a float with an integer value (YAML ``4.0``); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _parse(searcher: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    problems: list[str] = []
    values: dict[str, Any] = {}
    if not isinstance(searcher, Mapping):
        return [f"searcher: must be a mapping, got {type(searcher).__name__}"], values

    for key in searcher:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(
                f"searcher.{key}: unknown key for the asha searcher{hint}; known keys: {', '.join(KNOWN_KEYS)}"
            )
    for key in REQUIRED_KEYS:
        if key not in searcher:
            problems.append(f"searcher.{key}: required by the asha searcher")

    def integer(key: str, minimum: int, what: str) -> None:
        if key not in searcher:
            return
        raw = searcher[key]
        value = _as_int(raw)
        if value is None or value < minimum:
            problems.append(f"searcher.{key}: must be an integer >= {minimum} ({what}), got {raw!r}")
        else:
            values[key] = value

    def boolean(key: str) -> None:
        if key not in searcher:
            return
        raw = searcher[key]
        if not isinstance(raw, bool):
            problems.append(f"searcher.{key}: must be true or false, got {raw!r}")
        else:
            values[key] = raw

    if "metric" in searcher:
        metric = searcher["metric"]
        if not isinstance(metric, str) or not metric.strip():
            problems.append(f"searcher.metric: must be a non-empty metric name, got {metric!r}")
        else:
            values["metric"] = metric
    boolean("smaller_is_better")
    boolean("stop_once")
    integer("max_trials", 1, "the number of trials to create")
    integer("num_rungs", 1, "the number of rungs")
    integer("divisor", 2, "the reduction factor")
    integer("max_concurrent_trials", 0, "0 means automatic")
    integer("max_invalid_replacements", 0, "trials replaced after INVALID_HP")

    if "max_length" in searcher:
        raw = searcher["max_length"]
        units = [u for u in LENGTH_UNITS if isinstance(raw, Mapping) and u in raw]
        if not isinstance(raw, Mapping) or len(raw) != 1 or len(units) != 1:
            problems.append(
                "searcher.max_length: must be a mapping with exactly one of "
                f"{', '.join(LENGTH_UNITS)} (e.g. {{batches: 1000}}), got {raw!r}"
            )
        else:
            unit = units[0]
            length = raw[unit]
            # An int, as the core's config check requires of every method's max_length.
            if type(length) is not int or length < 1:
                problems.append(f"searcher.max_length.{unit}: must be an integer >= 1, got {raw[unit]!r}")
            else:
                values["max_length"] = length
                values["length_unit"] = unit

    if "mode" in searcher:
        mode = searcher["mode"]
        if mode not in MODES:
            problems.append(f"searcher.mode: must be one of {', '.join(MODES)}, got {mode!r}")
        else:
            values["mode"] = mode

    if "name" in searcher and not isinstance(searcher["name"], str):
        problems.append(f"searcher.name: must be a string, got {searcher['name']!r}")
    return problems, values


def rung_budgets(max_length: int, num_rungs: int, divisor: int) -> tuple[int, ...]:
    """Absolute budgets b_k = max(1, floor(R / divisor^(K-k))) for k = 0..K, without repeats.

    b_K = R = ``max_length``. When R is too small for ``num_rungs`` distinct
    budgets, the repeated low budgets collapse into one rung, so the result is
    strictly increasing and may be shorter than ``num_rungs``.
    """
    top = num_rungs - 1
    budgets: list[int] = []
    for k in range(num_rungs):
        # Integer division keeps huge divisor powers exact (no float rounding).
        b = max(1, max_length // divisor ** (top - k))
        if not budgets or budgets[-1] != b:
            budgets.append(b)
    return tuple(budgets)


def bracket_rung_counts(num_rungs: int, mode: str) -> list[int]:
    """Rungs per bracket: aggressive one bracket; standard (num_rungs+1)//2 brackets; conservative num_rungs.

    Bracket i has ``num_rungs - i`` rungs: the later brackets start their trials
    at larger budgets and stop fewer of them early.
    """
    if mode == "aggressive":
        count = 1
    elif mode == "standard":
        count = (num_rungs + 1) // 2
    elif mode == "conservative":
        count = num_rungs
    else:
        raise ValueError(f"searcher.mode: unknown mode {mode!r}")
    return [num_rungs - i for i in range(count)]


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by at most one, larger shares first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def plan_brackets(config: AshaConfig) -> tuple[list[Bracket], str | None]:
    """The brackets of a search and, when fewer rungs than asked are used, a warning text.

    The split (documented in docs/asha.md):

    * brackets: see :func:`bracket_rung_counts`; a bracket whose rung budgets
      coincide with an earlier bracket's is dropped, and no more brackets are
      kept than ``max_trials`` or the total concurrency allow (each needs a trial
      and a slot);
    * ``max_trials`` is split in proportion to divisor^(r-1)/r for a bracket of
      r rungs (brackets that stop more trials early get more of them), floors
      first, at least one each, the remainder to the first brackets;
    * the total concurrency is split evenly (larger shares first), a bracket
      never gets more slots than trials, and slots it cannot use go to the
      other brackets in order.
    """
    d = config.divisor
    full = rung_budgets(config.max_length, config.num_rungs, d)
    warning = None
    if len(full) < config.num_rungs:
        warning = (
            f"searcher.num_rungs: max_length {config.max_length} is too small for {config.num_rungs} distinct "
            f"rung budgets with divisor {d}; using {len(full)} rungs with budgets {list(full)}"
        )
    ladders: list[tuple[int, ...]] = []
    for r in bracket_rung_counts(config.num_rungs, config.mode):
        ladder = rung_budgets(config.max_length, r, d)
        if ladder not in ladders:
            ladders.append(ladder)
    total_slots = config.total_concurrent_trials
    ladders = ladders[: max(1, min(len(ladders), config.max_trials, total_slots))]

    weights = [d ** (len(ladder) - 1) / len(ladder) for ladder in ladders]
    spare = config.max_trials - len(ladders)  # one trial each is guaranteed
    trials = [1 + math.floor(spare * w / sum(weights)) for w in weights]
    leftover = config.max_trials - sum(trials)
    for i in range(leftover):
        trials[i % len(trials)] += 1

    slots = [min(s, t) for s, t in zip(split_evenly(total_slots, len(ladders)), trials, strict=True)]
    unused = total_slots - sum(slots)
    for i in range(len(slots)):
        extra = min(unused, trials[i] - slots[i])
        slots[i] += extra
        unused -= extra
    brackets = [
        Bracket(budgets=ladder, max_trials=t, max_concurrent_trials=s)
        for ladder, t, s in zip(ladders, trials, slots, strict=True)
    ]
    return brackets, warning


def warn_if_reduced(warning: str | None) -> None:
    if warning is not None:
        warnings.warn(warning, RungsReducedWarning, stacklevel=3)
