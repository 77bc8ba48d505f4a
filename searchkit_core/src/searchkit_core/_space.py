"""The search space: Determined's hyperparameter language, validated and sampled reproducibly.

A config's ``hyperparameters:`` mapping holds, for each name, one of::

    64                                              a plain constant
    {type: const, val: 64}                          a constant (any JSON value, mappings too)
    {type: int, minval: 8, maxval: 64}              an integer, both ends included
    {type: double, minval: 0.2, maxval: 0.8}        a float in [minval, maxval)
    {type: log, base: 10, minval: -4, maxval: 0}    base ** u, u a float in [minval, maxval)
    {type: categorical, vals: [relu, tanh]}         one of the values
    {optimizer: {lr: ..., momentum: ...}}           a nested mapping (no ``type`` key)

``int``, ``double`` and ``log`` also take Determined's ``count`` (grid points),
kept for grid-style methods and ignored by sampling.

Sampling is reproducible on every machine and Python version: every draw
comes from ``rng.random()`` alone (whose sequence for a given integer seed
Python guarantees), one draw per non-constant hyperparameter, in sorted name
order at each level. See docs/config.md.
"""

from __future__ import annotations

import copy
import math
import random
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from searchkit_core.errors import ConfigError

__all__ = [
    "CategoricalHyperparameter",
    "ConstHyperparameter",
    "DoubleHyperparameter",
    "Hyperparameter",
    "IntHyperparameter",
    "LogHyperparameter",
    "SearchSpace",
]


def _copy_json(value: Any) -> Any:
    # Constants and categorical values may be lists or dicts: hand out copies so a
    # trial that mutates its hparams cannot change the space or another trial.
    if isinstance(value, (list, dict)):
        return copy.deepcopy(value)
    return value


def _to_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen
class ConstHyperparameter:
    """A value that never changes (``64`` or ``{type: const, val: 64}``)."""

    val: Any

    def sample(self, rng: random.Random) -> Any:
        """The constant; draws nothing from ``rng``."""
        return _copy_json(self.val)

    def to_config(self) -> dict[str, Any]:
        return {"type": "const", "val": self.val}


@attrs.frozen
class IntHyperparameter:
    """An integer drawn uniformly from ``[minval, maxval]``, both ends included."""

    minval: int
    maxval: int
    count: int | None = None

    def sample(self, rng: random.Random) -> int:
        span = self.maxval - self.minval + 1
        # min(): guards the last float step of a span near 2**53.
        return self.minval + min(int(rng.random() * span), span - 1)

    def to_config(self) -> dict[str, Any]:
        return _with_count({"type": "int", "minval": self.minval, "maxval": self.maxval}, self.count)


@attrs.frozen
class DoubleHyperparameter:
    """A float drawn uniformly from ``[minval, maxval)`` (``minval`` when they are equal)."""

    minval: float
    maxval: float
    count: int | None = None

    def sample(self, rng: random.Random) -> float:
        return self.minval + rng.random() * (self.maxval - self.minval)

    def to_config(self) -> dict[str, Any]:
        return _with_count({"type": "double", "minval": self.minval, "maxval": self.maxval}, self.count)


@attrs.frozen
class LogHyperparameter:
    """``base ** u`` with ``u`` drawn uniformly from ``[minval, maxval)``: a log-uniform value."""

    base: float
    minval: float
    maxval: float
    count: int | None = None

    def sample(self, rng: random.Random) -> float:
        exponent = self.minval + rng.random() * (self.maxval - self.minval)
        return float(self.base**exponent)

    def to_config(self) -> dict[str, Any]:
        return _with_count(
            {"type": "log", "base": self.base, "minval": self.minval, "maxval": self.maxval}, self.count
        )


@attrs.frozen
class CategoricalHyperparameter:
    """One of ``vals``, each equally likely."""

    vals: tuple[Any, ...] = attrs.field(converter=_to_tuple)

    def sample(self, rng: random.Random) -> Any:
        n = len(self.vals)
        return _copy_json(self.vals[min(int(rng.random() * n), n - 1)])

    def to_config(self) -> dict[str, Any]:
        return {"type": "categorical", "vals": list(self.vals)}


Hyperparameter = (
    ConstHyperparameter
    | IntHyperparameter
    | DoubleHyperparameter
    | LogHyperparameter
    | CategoricalHyperparameter
)


def _with_count(config: dict[str, Any], count: int | None) -> dict[str, Any]:
    if count is not None:
        config["count"] = count
    return config


def _freeze(entries: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(entries))


@attrs.frozen
class SearchSpace:
    """The hyperparameters of an experiment: name -> hyperparameter or nested space.

    Build one with :meth:`from_config`; draw a trial's hyperparameters with
    :meth:`sample`; get the canonical config form back with :meth:`to_config`.
    Behaves as a read-only mapping (``space["lr"]``, ``for name in space``).
    """

    entries: Mapping[str, Hyperparameter | SearchSpace] = attrs.field(converter=_freeze, factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, path: str = "hyperparameters") -> SearchSpace:
        """Validate a ``hyperparameters:`` mapping; raise ConfigError with one message per problem."""
        space, problems = parse_space(config, path)
        if problems:
            raise ConfigError(problems)  # one message per problem, each naming its key path
        assert space is not None
        return space

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """One draw of every hyperparameter, in the config's key order; nested spaces are dicts.

        Draws in sorted name order, so reordering keys in the config does not
        change what a seed samples.
        """
        drawn = {name: self.entries[name].sample(rng) for name in sorted(self.entries)}
        return {name: drawn[name] for name in self.entries}

    def to_config(self) -> dict[str, Any]:
        """The canonical ``hyperparameters:`` mapping (every value in its typed form)."""
        return {name: entry.to_config() for name, entry in self.entries.items()}

    def __getitem__(self, name: str) -> Hyperparameter | SearchSpace:
        return self.entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def items(self) -> Iterator[tuple[str, Hyperparameter | SearchSpace]]:
        return iter(self.entries.items())


# -- validation


_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (required keys, optional keys); ``type`` itself is always present
    "const": (("val",), ()),
    "int": (("minval", "maxval"), ("count",)),
    "double": (("minval", "maxval"), ("count",)),
    "log": (("base", "minval", "maxval"), ("count",)),
    "categorical": (("vals",), ()),
}


def json_problem(value: Any) -> tuple[str, str] | None:
    """Why ``value`` is not a plain JSON value, as (sub-path, message); None if it is.

    YAML can produce dates, timestamps, sets and NaN, which JSON cannot hold.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", f"{value} is not a finite number")
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = json_problem(item)
            if problem is not None:
                return f"[{index}]{problem[0]}", problem[1]
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "", f"the key {key!r} is not a string"
            problem = json_problem(item)
            if problem is not None:
                return f".{key}{problem[0]}", problem[1]
        return None
    return "", f"{value!r} is a {type(value).__name__}, not a JSON value (quote it to make it a string)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


Problems = list[tuple[str, str]]
"""(key path, message) pairs."""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_space(config: Any, path: str = "hyperparameters") -> tuple[SearchSpace | None, list[str]]:
    """The space for ``config`` and the problems found, each ``"<key path>: <message>"``."""
    space, problems = parse_space_problems(config, path)
    return space, [f"{where}: {message}" if where else message for where, message in problems]


def parse_space_problems(config: Any, path: str = "hyperparameters") -> tuple[SearchSpace | None, Problems]:
    """The space for ``config`` (None if it has problems) and the problems as (key path, message)."""
    problems: Problems = []
    if config is None:
        return SearchSpace(), problems
    if not isinstance(config, Mapping):
        return None, [(path, f"must be a mapping of names to hyperparameters, got {_describe(config)}")]
    space = _parse_nested(config, path, problems)
    return (space if not problems else None), problems


def _parse_nested(config: Mapping[Any, Any], path: str, problems: Problems) -> SearchSpace:
    entries: dict[str, Hyperparameter | SearchSpace] = {}
    for name, value in config.items():
        if not isinstance(name, str):
            problems.append((path, f"the name {name!r} must be a string"))
            continue
        entry = _parse_entry(value, _join(path, name), problems)
        if entry is not None:
            entries[name] = entry
    return SearchSpace(entries)


def _parse_entry(value: Any, path: str, problems: Problems) -> Hyperparameter | SearchSpace | None:
    if isinstance(value, Mapping):
        if "type" not in value:
            return _parse_nested(value, path, problems)
        return _parse_typed(value, path, problems)
    problem = json_problem(value)
    if problem is not None:
        problems.append((path + problem[0], problem[1]))
        return None
    return ConstHyperparameter(value)


def _parse_typed(spec: Mapping[Any, Any], path: str, problems: Problems) -> Hyperparameter | None:
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in _KINDS:
        problems.append((path, f"unknown type {kind!r} (known: {', '.join(_KINDS)})"))
        return None
    required, optional = _KINDS[kind]
    allowed = {"type", *required, *optional}
    before = len(problems)
    for key in spec:
        if key not in allowed:
            known = ", ".join(sorted(allowed - {"type"}))
            problems.append((path, f"unknown key {key!r} for type {kind} (allowed: {known})"))
    for key in required:
        if key not in spec:
            problems.append((path, f"missing key {key!r} (type {kind} needs {', '.join(required)})"))
    if len(problems) != before:
        return None
    count = spec.get("count")
    if count is not None and (type(count) is not int or count < 1):
        problems.append((f"{path}.count", f"must be a positive integer, got {_describe(count)}"))
    if kind == "const":
        problem = json_problem(spec["val"])
        if problem is not None:
            problems.append((f"{path}.val{problem[0]}", problem[1]))
            return None
        return ConstHyperparameter(spec["val"])
    if kind == "categorical":
        return _parse_categorical(spec["vals"], path, problems)
    minval, maxval = spec["minval"], spec["maxval"]
    for key, bound in (("minval", minval), ("maxval", maxval)):
        if kind == "int" and type(bound) is not int:
            problems.append((f"{path}.{key}", f"must be an integer, got {_describe(bound)}"))
        elif kind != "int" and (not _is_number(bound) or not math.isfinite(bound)):
            problems.append((f"{path}.{key}", f"must be a finite number, got {_describe(bound)}"))
    if len(problems) == before and minval > maxval:
        problems.append((path, f"minval {minval} > maxval {maxval}"))
    if kind == "log":
        base = spec["base"]
        if not _is_number(base) or not math.isfinite(base) or base <= 0 or base == 1:
            problems.append((f"{path}.base", f"must be a finite number > 0 and != 1, got {_describe(base)}"))
        elif len(problems) == before:
            for bound in (minval, maxval):
                try:
                    float(base) ** float(bound)
                except OverflowError:
                    problems.append((path, f"base {base} ** {bound} overflows a float"))
                    break
    if len(problems) != before:
        return None
    if kind == "int":
        return IntHyperparameter(minval, maxval, count)
    if kind == "double":
        return DoubleHyperparameter(float(minval), float(maxval), count)
    return LogHyperparameter(float(spec["base"]), float(minval), float(maxval), count)


def _parse_categorical(vals: Any, path: str, problems: Problems) -> CategoricalHyperparameter | None:
    if not isinstance(vals, list):
        problems.append((f"{path}.vals", f"must be a list of values, got {_describe(vals)}"))
        return None
    if not vals:
        problems.append((f"{path}.vals", "must hold at least one value"))
        return None
    problem = json_problem(vals)
    if problem is not None:
        problems.append((f"{path}.vals{problem[0]}", problem[1]))
        return None
    return CategoricalHyperparameter(vals)
