"""Synthetic and tabulated learning curves."""

from __future__ import annotations

import itertools
import json
import pathlib

import pytest

from searchkit_core.errors import ConfigError
from searchkit_runners.simulate import SyntheticCurves, TableCurves


def test_synthetic_curves_are_reproducible_and_fall_toward_their_final_value() -> None:
    curves = SyntheticCurves(seed=3, max_length=100)
    hp = {"lr": 0.01, "width": 32, "act": "relu"}
    values = [curves.metric(1, hp, length) for length in (0, 1, 10, 100, 1000)]
    assert values == [
        SyntheticCurves(seed=3, max_length=100).metric(9, dict(hp), n) for n in (0, 1, 10, 100, 1000)
    ]
    assert values[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(values))  # decreasing
    assert 0.05 <= values[-1] <= 0.6


def test_synthetic_curves_depend_smoothly_on_numeric_hyperparameters() -> None:
    curves = SyntheticCurves(seed=3, max_length=100)
    base = curves.metric(1, {"lr": 0.01, "width": 32}, 100)
    near = curves.metric(1, {"lr": 0.0101, "width": 32}, 100)
    finals = {curves.metric(1, {"lr": 10 ** (-4 + k / 5), "width": 32}, 100) for k in range(20)}
    assert abs(base - near) < 1e-3
    assert max(finals) - min(finals) > 0.05  # hyperparameters matter
    assert curves.metric(1, {"lr": 0.01, "width": 32}, 100) != curves.metric(
        1, {"lr": 0.01, "width": 48}, 100
    )
    assert SyntheticCurves(seed=4).metric(1, {"lr": 0.01}, 50) != SyntheticCurves(seed=3).metric(
        1, {"lr": 0.01}, 50
    )


def test_noise_is_a_function_of_the_trial_and_length_not_of_call_order() -> None:
    curves = SyntheticCurves(seed=3, noise=0.05)
    clean = SyntheticCurves(seed=3)
    hp = {"lr": 0.01}
    a = [curves.metric(1, hp, n) for n in range(1, 50)]
    b = [curves.metric(1, hp, n) for n in reversed(range(1, 50))][::-1]
    assert a == b
    deltas = [x - clean.metric(1, hp, n) for n, x in zip(range(1, 50), a, strict=False)]
    assert 0.01 < max(abs(d) for d in deltas) < 0.3


def test_cost_per_unit() -> None:
    assert SyntheticCurves(base_seconds_per_unit=2.5).seconds_per_unit(1, {"lr": 0.1}) == 2.5
    varied = SyntheticCurves(base_seconds_per_unit=2.0, vary_cost=True)
    costs = {varied.seconds_per_unit(1, {"lr": 10**-k}) for k in range(5)}
    assert len(costs) > 1 and all(1.0 <= c <= 3.0 for c in costs)


def _table(tmp_path: pathlib.Path, rows: list[str]) -> pathlib.Path:
    path = tmp_path / "curves.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _row(config_id: str, hparams: dict[str, object], step: int, metric: float, sps: float = 1.5) -> str:
    return f'{config_id},"{json.dumps(hparams).replace(chr(34), chr(34) * 2)}",{step},{metric},{sps}'


def test_a_table_gives_each_trial_a_tabulated_curve(tmp_path: pathlib.Path) -> None:
    header = "config_id,hparams,step,metric,seconds_per_step"
    path = _table(
        tmp_path,
        [
            header,
            _row("a", {"lr": 0.1}, 10, 0.9),
            _row("a", {"lr": 0.1}, 30, 0.5),
            _row("b", {"lr": 0.01}, 10, 0.8, 3.0),
            _row("b", {"lr": 0.01}, 30, 0.2, 3.0),
        ],
    )
    curves = TableCurves.from_csv(path)
    assert curves.configurations == [{"lr": 0.1}, {"lr": 0.01}]
    # Matched by hyperparameters first...
    assert curves.metric(7, {"lr": 0.01}, 30) == 0.2
    assert curves.seconds_per_unit(7, {"lr": 0.01}) == 3.0
    # ... else trial N takes configuration (N - 1) mod count.
    assert curves.metric(1, {"lr": 0.5}, 30) == 0.5
    assert curves.metric(2, {"lr": 0.5}, 30) == 0.2
    assert curves.metric(3, {"lr": 0.5}, 30) == 0.5
    # The last tabulated step at or below the length; the first one before it.
    assert curves.metric(1, {"lr": 0.1}, 29) == 0.9
    assert curves.metric(1, {"lr": 0.1}, 5) == 0.9
    assert curves.metric(1, {"lr": 0.1}, 500) == 0.5
    assert "2 configurations" in curves.describe()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["config_id,hparams,step"], "lacks column\\(s\\) metric, seconds_per_step"),
        (["config_id,hparams,step,metric,seconds_per_step"], "no rows"),
        (["config_id,hparams,step,metric,seconds_per_step", 'a,"{",1,0.5,1'], ":2: hparams is not JSON"),
        (
            ["config_id,hparams,step,metric,seconds_per_step", "a,{},x,0.5,1"],
            ":2: step, metric and seconds_per_step",
        ),
        (["config_id,hparams,step,metric,seconds_per_step", "a,{},1,0.5,0"], ":2: step must be >= 0"),
        (
            ["config_id,hparams,step,metric,seconds_per_step", "a,{},1,0.5,1", 'a,"{""x"": 1}",2,0.5,1'],
            ":3: hparams differ",
        ),
    ],
)
def test_a_bad_table_is_a_config_error_naming_the_row(
    tmp_path: pathlib.Path, rows: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        TableCurves.from_csv(_table(tmp_path, rows))


def test_a_missing_table_is_a_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        TableCurves.from_csv(tmp_path / "nope.csv")
