"""Learning curves for the simulator: a seeded synthetic family, or a table read from a CSV file.

A curve answers two questions about a trial: its metric after ``length``
units in total, and how many virtual seconds one unit of training costs. Both
are pure functions of the trial's hyperparameters (and the seed), never of a
random stream, so a search resumed after a crash sees exactly the same values.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import math
import pathlib
import struct
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from searchkit_core.errors import ConfigError

#: The columns a curve table must have, in any order.
TABLE_COLUMNS = ("config_id", "hparams", "step", "metric", "seconds_per_step")


class Curves(Protocol):
    """What the simulator needs to know about a trial."""

    def metric(self, trial_id: int, hparams: Mapping[str, Any], length: int) -> float:
        """The validation metric after ``length`` units of training in total."""
        ...

    def seconds_per_unit(self, trial_id: int, hparams: Mapping[str, Any]) -> float:
        """Virtual seconds one unit of training takes."""
        ...

    def describe(self) -> str:
        """One line for the summary."""
        ...


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on ``parts`` (stable across processes and Pythons)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0] / 2.0**64


def _features(hparams: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float | None, str]]:
    """Flatten hyperparameters to (key, numeric value or None, text) triples, nested keys dotted."""
    out: list[tuple[str, float | None, str]] = []
    for key in sorted(hparams):
        value = hparams[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_features(value, name + "."))
        elif isinstance(value, bool):
            out.append((name, float(value), ""))
        elif isinstance(value, (int, float)):
            number = float(value)
            # Positive floats are usually scale parameters (learning rates): use their log.
            if isinstance(value, float) and number > 0:
                number = math.log10(number)
            out.append((name, number, ""))
        else:
            out.append((name, None, json.dumps(value, sort_keys=True)))
    return out


@attrs.frozen
class SyntheticCurves:
    """``metric(L) = final + (start - final) * (1 + L / scale) ** (-rate)``, plus optional noise.

    ``final`` (in [0.05, 0.55]) and ``rate`` (in [0.5, 2.0]) are smooth functions
    of the numeric hyperparameters (a sum of seeded sines of each value, the log
    of positive floats) and a seeded offset per categorical value, so nearby
    configurations have nearby curves and some configurations are clearly
    better. ``start`` is 1.0 and ``scale`` is ``max_length / 10``. ``noise`` is
    the standard deviation of a Gaussian added to each reported value, drawn
    from a hash of (seed, hyperparameters, length): the same trial validated at
    the same length always reports the same number. Each unit costs
    ``seconds_per_unit`` virtual seconds (times a factor in [0.5, 1.5] from the
    hyperparameters when ``vary_cost`` is set).
    """

    seed: int = 0
    max_length: int = 100
    noise: float = 0.0
    base_seconds_per_unit: float = 1.0
    vary_cost: bool = False
    # Shapes by hyperparameters (JSON text): a trial validates several times.
    _shapes: dict[str, tuple[float, float, float]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )
    # The sines' frequencies and phases of each hyperparameter name: they depend on the seed
    # and the name only, and hashing them again for every trial was most of a shape's cost.
    _waves: dict[str, tuple[float, float, float, float]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )

    def _shape(self, hparams: Mapping[str, Any]) -> tuple[float, float, float]:
        key = json.dumps(hparams, sort_keys=True)
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) > 4096:
                self._shapes.clear()
            shape = self._shapes[key] = self._compute_shape(hparams)
        return shape

    def _compute_shape(self, hparams: Mapping[str, Any]) -> tuple[float, float, float]:
        feats = _features(hparams)
        quality = 0.0
        speed = 0.0
        cost = 0.0
        for name, number, text in feats:
            w1, p1, w2, p2 = self._wave(name)
            if number is not None:
                quality += math.sin(w1 * number + p1)
                speed += math.sin(w2 * number + p2)
                cost += math.sin(w1 * number + p2)
            else:
                quality += 2 * _unit(self.seed, name, text, "q") - 1
                speed += 2 * _unit(self.seed, name, text, "s") - 1
                cost += 2 * _unit(self.seed, name, text, "c") - 1
        n = max(1, len(feats))
        # Average of values in [-1, 1], squashed to (0, 1).
        q = 0.5 + 0.5 * math.tanh(2 * quality / n)
        s = 0.5 + 0.5 * math.tanh(2 * speed / n)
        c = 0.5 + 0.5 * math.tanh(2 * cost / n)
        return 0.05 + 0.5 * q, 0.5 + 1.5 * s, c

    def _wave(self, name: str) -> tuple[float, float, float, float]:
        wave = self._waves.get(name)
        if wave is None:
            wave = self._waves[name] = (
                0.5 + 2.0 * _unit(self.seed, name, "w1"),
                2 * math.pi * _unit(self.seed, name, "p1"),
                0.5 + 2.0 * _unit(self.seed, name, "w2"),
                2 * math.pi * _unit(self.seed, name, "p2"),
            )
        return wave

    def metric(self, trial_id: int, hparams: Mapping[str, Any], length: int) -> float:
        final, rate, _ = self._shape(hparams)
        scale = max(1.0, self.max_length / 10)
        value = final + (1.0 - final) * (1.0 + length / scale) ** (-rate)
        if self.noise > 0:
            u1 = max(_unit(self.seed, "noise1", json.dumps(hparams, sort_keys=True), length), 1e-300)
            u2 = _unit(self.seed, "noise2", json.dumps(hparams, sort_keys=True), length)
            value += self.noise * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        return value

    def seconds_per_unit(self, trial_id: int, hparams: Mapping[str, Any]) -> float:
        if not self.vary_cost:
            return self.base_seconds_per_unit
        return self.base_seconds_per_unit * (0.5 + self._shape(hparams)[2])

    def describe(self) -> str:
        noise = f", noise {self.noise:g}" if self.noise else ""
        return f"synthetic curves (seed {self.seed}{noise}), {self.base_seconds_per_unit:g} s per unit"


@attrs.frozen
class _TableCurve:
    config_id: str
    hparams: dict[str, Any]
    steps: tuple[int, ...]
    metrics: tuple[float, ...]
    seconds_per_step: float


class TableCurves:
    """Curves read from a CSV table, one row per (configuration, step).

    Columns (a header row names them, in any order): ``config_id``,
    ``hparams`` (a JSON object, the same on every row of a configuration),
    ``step`` (units trained), ``metric`` (the validation metric at that step),
    ``seconds_per_step`` (virtual seconds one unit costs; the configuration's
    first row counts).

    A trial is matched to a configuration by its hyperparameters: a
    configuration whose ``hparams`` equal the trial's (as JSON) is used;
    otherwise trial N uses configuration ``(N - 1) mod count`` in the order
    the table first lists them, so any method works with any table. The metric
    after ``length`` units is the one of the last step at or below ``length``
    (the first step's before it): the curve as tabulated, never extrapolated.
    """

    def __init__(self, curves: list[_TableCurve], *, source: str = "table") -> None:
        if not curves:
            raise ConfigError(f"{source}: the curve table has no rows")
        self._curves = curves
        self._by_hparams = {json.dumps(c.hparams, sort_keys=True): c for c in curves}
        self._source = source

    @classmethod
    def from_csv(cls, path: pathlib.Path) -> TableCurves:
        """Read a table; every problem is a :class:`ConfigError` naming the file, the row and the column."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigError(f"curves: the curve table {str(path)!r} does not exist")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in TABLE_COLUMNS if c not in header]
            if missing:
                raise ConfigError(
                    f"{path}: the curve table lacks column(s) {', '.join(missing)} "
                    f"(needs {', '.join(TABLE_COLUMNS)})"
                )
            rows: dict[str, dict[str, Any]] = {}
            for number, row in enumerate(reader, start=2):
                where = f"{path}:{number}"
                config_id = (row["config_id"] or "").strip()
                if not config_id:
                    raise ConfigError(f"{where}: config_id is empty")
                try:
                    hparams = json.loads(row["hparams"] or "")
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{where}: hparams is not JSON ({exc.msg})") from None
                if not isinstance(hparams, dict):
                    raise ConfigError(f"{where}: hparams must be a JSON object")
                try:
                    step = int(row["step"])
                    metric = float(row["metric"])
                    seconds = float(row["seconds_per_step"])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(
                        f"{where}: step, metric and seconds_per_step must be numbers ({exc})"
                    ) from None
                if step < 0 or not math.isfinite(seconds) or seconds <= 0:
                    raise ConfigError(f"{where}: step must be >= 0 and seconds_per_step > 0")
                entry = rows.setdefault(config_id, {"hparams": hparams, "points": {}, "seconds": seconds})
                if entry["hparams"] != hparams:
                    raise ConfigError(
                        f"{where}: hparams differ from the earlier rows of config {config_id!r}"
                    )
                entry["points"][step] = metric
        curves = []
        for config_id, entry in rows.items():
            points = sorted(entry["points"].items())
            curves.append(
                _TableCurve(
                    config_id=config_id,
                    hparams=entry["hparams"],
                    steps=tuple(s for s, _ in points),
                    metrics=tuple(m for _, m in points),
                    seconds_per_step=entry["seconds"],
                )
            )
        return cls(curves, source=str(path))

    @property
    def configurations(self) -> list[dict[str, Any]]:
        """The table's hyperparameter configurations, in table order."""
        return [dict(c.hparams) for c in self._curves]

    def _curve(self, trial_id: int, hparams: Mapping[str, Any]) -> _TableCurve:
        match = self._by_hparams.get(json.dumps(dict(hparams), sort_keys=True))
        if match is not None:
            return match
        return self._curves[(trial_id - 1) % len(self._curves)]

    def metric(self, trial_id: int, hparams: Mapping[str, Any], length: int) -> float:
        curve = self._curve(trial_id, hparams)
        index = bisect.bisect_right(curve.steps, length) - 1
        return curve.metrics[max(0, index)]

    def seconds_per_unit(self, trial_id: int, hparams: Mapping[str, Any]) -> float:
        return self._curve(trial_id, hparams).seconds_per_step

    def describe(self) -> str:
        return f"curve table {self._source} ({len(self._curves)} configurations)"
