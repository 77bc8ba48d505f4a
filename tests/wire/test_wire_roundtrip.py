"""Hypothesis round-trips for every core wire type: value -> JSON -> equal value, and stable text."""

from __future__ import annotations

import functools
import json
import math
import string
import uuid
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from searchkit_core import _wire
from searchkit_core._config import ExperimentConfig, Resources
from searchkit_core._events import (
    SearchStarted,
    TrialClosed,
    TrialCreated,
    TrialExitedEarly,
    ValidationCompleted,
)
from searchkit_core._executor import (
    CheckpointRef,
    CheckpointReported,
    MetricsReported,
    ProgressReported,
    Segment,
    TrialCrashed,
    TrialExited,
    ValidationReported,
)
from searchkit_core._ledger import TrialRecord
from searchkit_core._operations import Close, Create, ExitedReason, Progress, Shutdown, ValidateAfter
from searchkit_core._space import (
    CategoricalHyperparameter,
    ConstHyperparameter,
    DoubleHyperparameter,
    IntHyperparameter,
    LogHyperparameter,
    SearchSpace,
)
from searchkit_core._state import SearcherState
from searchkit_core.errors import WireFormatError

ids = st.uuids()
names = st.text(min_size=0, max_size=8)
# Plain JSON values: what hyperparameters, metadata and data hold (finite floats only:
# non-finite floats in free-form values come back as strings, by design).
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(names, json_values, max_size=4)
any_float = st.floats()  # NaN and infinities included: float fields carry them
times = st.floats(min_value=0, max_value=1e9)
counts = st.integers(min_value=0, max_value=10**12)
reasons = st.sampled_from(ExitedReason)
checkpoints = st.builds(
    CheckpointRef, uuid=st.text(max_size=36), steps_completed=counts, metadata=json_objects
)
# Metric maps read the strings "NaN"/"Infinity"/"-Infinity" back as floats; a user's string
# metric cannot be one of those three.
metric_values = (
    any_float
    | st.integers()
    | st.text(max_size=8).filter(lambda s: s not in ("NaN", "Infinity", "-Infinity"))
)


@st.composite
def searcher_states(draw: st.DrawFn) -> SearcherState:
    state = SearcherState()
    created = draw(st.sets(ids, max_size=6))
    state._trials_created.update(created)
    state._trials_closed.update(
        draw(st.sets(st.sampled_from(sorted(created)), max_size=3)) if created else set()
    )
    state._failures.update(draw(st.sets(ids, max_size=2)))
    state._trial_progress.update(
        draw(st.dictionaries(st.sampled_from(sorted(created)), any_float)) if created else {}
    )
    state.experiment_completed = draw(st.booleans())
    state.experiment_failed = draw(st.booleans())
    return state


@st.composite
def trial_records(draw: st.DrawFn) -> TrialRecord:
    record = TrialRecord(
        request_id=draw(ids),
        trial_id=draw(st.integers(min_value=1, max_value=10**6)),
        hparams=draw(json_objects),
        checkpoint=draw(st.none() | checkpoints | st.text(max_size=5)),
        trained=draw(counts),
        closed=draw(st.booleans()),
        exited_reason=draw(st.none() | reasons),
        restarts=draw(st.integers(min_value=0, max_value=10)),
        last_metric=draw(st.none() | any_float),
    )
    record.targets.extend(draw(st.lists(counts, max_size=4)))
    return record


@st.composite
def hyperparameters(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["const", "int", "double", "log", "categorical"]))
    count = draw(st.none() | st.integers(min_value=1, max_value=20))
    if kind == "const":
        return ConstHyperparameter(draw(json_values))
    if kind == "int":
        ends = sorted(draw(st.lists(st.integers(-(10**9), 10**9), min_size=2, max_size=2)))
        return IntHyperparameter(ends[0], ends[1], count)
    if kind == "double":
        finite = st.floats(min_value=-1e12, max_value=1e12)
        bounds = sorted(draw(st.lists(finite, min_size=2, max_size=2)))
        return DoubleHyperparameter(bounds[0], bounds[1], count)
    if kind == "log":
        base = draw(st.floats(min_value=1.01, max_value=100.0))
        exponents = sorted(draw(st.lists(st.floats(min_value=-30, max_value=30), min_size=2, max_size=2)))
        return LogHyperparameter(base, exponents[0], exponents[1], count)
    return CategoricalHyperparameter(draw(st.lists(json_values, min_size=1, max_size=4)))


spaces = st.recursive(
    st.dictionaries(names, hyperparameters(), max_size=4).map(SearchSpace),
    lambda inner: st.dictionaries(names, hyperparameters() | inner, max_size=3).map(SearchSpace),
    max_leaves=8,
)
resources = st.builds(
    Resources,
    slots_per_trial=st.integers(min_value=0, max_value=8),
    cpus_per_trial=st.floats(min_value=0.01, max_value=64),
)
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
searchers = st.fixed_dictionaries(
    {"name": identifiers, "metric": identifiers, "smaller_is_better": st.booleans()},
    optional={
        "max_length": st.fixed_dictionaries({"batches": st.integers(1, 10**6)}),
        "max_trials": st.integers(1, 100),
    },
)
configs = st.builds(
    ExperimentConfig,
    name=st.text(alphabet=string.ascii_letters + string.digits + "-_ ", min_size=1, max_size=20),
    entrypoint=st.builds(lambda m, f: f"{m}:{f}", identifiers, identifiers),
    searcher=searchers,
    hyperparameters=spaces,
    resources=resources,
    max_restarts=st.integers(min_value=0, max_value=10),
    data=json_objects,
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    trial_timeout=st.none() | st.floats(min_value=0.1, max_value=1e6),
    description=st.none() | st.text(max_size=30),
)

STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Create: st.builds(
        Create, request_id=ids, hparams=json_objects, checkpoint=st.none() | checkpoints | json_values
    ),
    ValidateAfter: st.builds(ValidateAfter, request_id=ids, length=counts),
    Close: st.builds(Close, request_id=ids),
    Shutdown: st.builds(Shutdown, cancel=st.booleans(), failure=st.booleans()),
    Progress: st.builds(Progress, progress=any_float),
    SearchStarted: st.just(SearchStarted()),
    TrialCreated: st.builds(TrialCreated, request_id=ids),
    ValidationCompleted: st.builds(
        ValidationCompleted, request_id=ids, metric=any_float, train_length=counts
    ),
    TrialClosed: st.builds(TrialClosed, request_id=ids),
    TrialExitedEarly: st.builds(TrialExitedEarly, request_id=ids, exited_reason=reasons),
    CheckpointRef: checkpoints,
    Segment: st.builds(
        Segment,
        request_id=ids,
        trial_id=counts,
        hparams=json_objects,
        length=counts,
        checkpoint=st.none() | checkpoints,
        restarts=counts,
        issued_at=times,
    ),
    ValidationReported: st.builds(
        ValidationReported, request_id=ids, length=counts, metric=any_float, time=times
    ),
    MetricsReported: st.builds(
        MetricsReported,
        request_id=ids,
        group=st.sampled_from(["training", "validation"]),
        steps=counts,
        metrics=st.dictionaries(names, metric_values, max_size=4),
        time=times,
    ),
    CheckpointReported: st.builds(CheckpointReported, request_id=ids, checkpoint=checkpoints, time=times),
    ProgressReported: st.builds(ProgressReported, request_id=ids, units=any_float, time=times),
    TrialCrashed: st.builds(TrialCrashed, request_id=ids, error=st.text(max_size=40), time=times),
    TrialExited: st.builds(
        TrialExited, request_id=ids, reason=reasons, error=st.text(max_size=40), time=times
    ),
    SearcherState: searcher_states(),
    TrialRecord: trial_records(),
    SearchSpace: spaces,
    Resources: resources,
    ExperimentConfig: configs,
}


def test_every_core_wire_type_has_a_strategy() -> None:
    missing = [t.__name__ for t in _wire.CORE_TYPES if t not in STRATEGIES]
    assert not missing, f"add hypothesis strategies for: {missing}"


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (compare the canonical wire forms)."""
    return bool(_wire.dumps_fragment(a) == _wire.dumps_fragment(b))


def _has_nan(value: Any) -> bool:
    return "NaN" in _wire.dumps_fragment(value)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_documents_round_trip(cls: type, data: st.DataObject) -> None:
    value = data.draw(STRATEGIES[cls])
    text = _wire.to_json(value)
    json.loads(text, parse_constant=lambda name: pytest.fail(f"wrote the non-JSON constant {name}"))
    back: Any = _wire.from_json(text, cls)
    assert type(back) is cls
    assert _wire.to_json(back) == text
    if cls.__eq__ is not object.__eq__ and not _has_nan(value):
        assert back == value


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fragments_round_trip(cls: type, data: st.DataObject) -> None:
    value = data.draw(STRATEGIES[cls])
    fragment = _wire.unstructure(value)
    assert fragment["type"] == cls.__name__
    assert "format_version" not in fragment
    assert _same(_wire.structure(fragment, cls), value)
    assert _same(_wire.loads_fragment(_wire.dumps_fragment(value), cls), value)


@settings(max_examples=100, deadline=None)
@given(value=st.one_of(*(STRATEGIES[c] for c in (Create, ValidateAfter, Close, Shutdown, Progress))))
def test_operations_round_trip_through_the_union(value: Any) -> None:
    from searchkit_core._operations import Operation

    assert _same(_wire.from_json(_wire.to_json(value), Operation), value)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            *(
                STRATEGIES[c]
                for c in (SearchStarted, TrialCreated, ValidationCompleted, TrialClosed, TrialExitedEarly)
            )
        ),
        max_size=5,
    )
)
def test_event_lists_round_trip(values: list[Any]) -> None:
    from searchkit_core._events import Event

    back = _wire.structure(json.loads(json.dumps(_wire.unstructure(values))), list[Event])
    assert [_wire.dumps_fragment(v) for v in back] == [_wire.dumps_fragment(v) for v in values]


def test_non_finite_floats_are_strings_in_float_fields_and_metrics() -> None:
    rid = uuid.uuid4()
    for value, text in [(math.inf, '"Infinity"'), (-math.inf, '"-Infinity"'), (math.nan, '"NaN"')]:
        doc = _wire.to_json(ValidationCompleted(rid, value, 3))
        assert f'"metric":{text}' in doc
        back = _wire.from_json(doc, ValidationCompleted).metric
        assert (math.isnan(back) and math.isnan(value)) or back == value
        metrics = _wire.from_json(
            _wire.to_json(MetricsReported(rid, "training", 1, {"m": value}, 0.0)), MetricsReported
        )
        assert str(metrics.metrics["m"]) == str(value)
    # In other free-form values they are written the same way and read back as strings.
    create = _wire.from_json(_wire.to_json(Create(rid, {"x": math.inf})), Create)
    assert create.hparams == {"x": "Infinity"}


def test_numpy_scalars_in_free_form_values_become_numbers() -> None:
    import numpy

    rid = uuid.uuid4()
    report = MetricsReported(
        rid, "training", 1, {"loss": numpy.float32(0.5), "n": numpy.int64(3), "t": (1, 2)}, 0.0
    )
    back = _wire.from_json(_wire.to_json(report), MetricsReported)
    assert back.metrics == {"loss": 0.5, "n": 3, "t": [1, 2]}
    assert type(back.metrics["n"]) is int
    report = MetricsReported(rid, "training", 1, {"ok": numpy.bool_(True), "zero_d": numpy.array(2.5)}, 0.0)
    assert _wire.from_json(_wire.to_json(report), MetricsReported).metrics == {"ok": True, "zero_d": 2.5}
    import torch

    report = MetricsReported(rid, "training", 1, {"loss": torch.tensor(0.25), "step": torch.tensor(7)}, 0.0)
    assert _wire.from_json(_wire.to_json(report), MetricsReported).metrics == {"loss": 0.25, "step": 7}
    with pytest.raises(WireFormatError, match=r"MetricsReported.metrics\['vector'\]: Tensor"):
        _wire.to_json(MetricsReported(rid, "training", 1, {"vector": torch.zeros(3)}, 0.0))


def test_searcher_state_is_written_sorted() -> None:
    a, b = uuid.UUID(int=2), uuid.UUID(int=1)
    state = SearcherState()
    state._trials_created.update({a, b})
    doc = json.loads(_wire.to_json(state))
    assert doc["trials_created"] == [str(b), str(a)]


def test_unstructure_of_a_small_operation_is_fast() -> None:
    import timeit

    op = ValidateAfter(uuid.uuid4(), 100)
    create = Create(uuid.uuid4(), {"lr": 0.1, "layers": 3, "activation": "relu"})
    values: list[Any] = [op, create, TrialCreated(uuid.uuid4())]
    for value in values:
        per_call = (
            min(timeit.repeat(functools.partial(_wire.unstructure, value), number=2000, repeat=5)) / 2000
        )
        # A few microseconds here; the bound is loose for a loaded 2-core CI machine.
        assert per_call < 50e-6, f"{type(value).__name__}: {per_call * 1e6:.1f} us"
