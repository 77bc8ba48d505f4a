"""Tampered documents are refused with a WireFormatError whose one line names the problem."""

from __future__ import annotations

import json
import typing
import uuid
from typing import Any

import attrs
import pytest
from wire_examples import EXAMPLES, golden_path

from searchkit_core import _wire
from searchkit_core._events import Event
from searchkit_core._executor import CheckpointRef, MetricsReported, Segment
from searchkit_core._operations import Create, Operation, ValidateAfter
from searchkit_core._state import SearcherState
from searchkit_core.errors import WireFormatError

IDS = [type(example).__name__ for example in EXAMPLES]
RID = "0b1e7a5c-3f29-4d6e-9a51-2c8f0d4b7e13"


def _doc(example: object) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(golden_path(example).read_text())
    return doc


def _refused(doc: Any, cls: Any) -> str:
    with pytest.raises(WireFormatError) as caught:
        _wire.from_json(json.dumps(doc), cls)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_a_newer_format_version_is_refused(example: object) -> None:
    doc = _doc(example)
    doc["format_version"] = 2
    message = _refused(doc, type(example))
    assert "written by a newer searchkit (format 2)" in message
    assert "this searchkit reads format 1" in message


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, None, True])
def test_a_format_version_that_is_not_a_positive_integer_is_refused(version: Any) -> None:
    doc = {"format_version": version, "type": "Close", "request_id": RID}
    assert "format_version must be a positive integer" in _refused(doc, Operation)


def test_a_document_without_format_version_or_type_is_refused() -> None:
    assert "no 'format_version'" in _refused({"type": "Close", "request_id": RID}, Operation)
    assert "no 'type' tag" in _refused({"format_version": 1, "request_id": RID}, Operation)


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_an_unknown_field_is_refused_and_named(example: object) -> None:
    doc = _doc(example)
    doc["surprise_field"] = 1
    message = _refused(doc, type(example))
    assert "unknown field 'surprise_field'" in message


def test_an_unknown_nested_field_is_named_with_its_path() -> None:
    doc = _doc(EXAMPLES[IDS.index("Segment")])
    doc["checkpoint"]["extra"] = True
    message = _refused(doc, Segment)
    assert "checkpoint: unknown field 'extra'" in message
    assert "a CheckpointRef has: uuid, steps_completed, metadata" in message


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_an_unknown_type_tag_is_refused(example: object) -> None:
    doc = _doc(example)
    doc["type"] = "Teleport"
    assert "unknown type tag 'Teleport'" in _refused(doc, type(example))


@pytest.mark.parametrize(
    ("union", "known"),
    [
        (Operation, "Create, ValidateAfter, Close, Shutdown, Progress"),
        (Event, "SearchStarted, TrialCreated, ValidationCompleted, TrialClosed, TrialExitedEarly"),
    ],
)
def test_an_unknown_tag_in_a_union_lists_the_known_tags(union: Any, known: str) -> None:
    message = _refused({"format_version": 1, "type": "Teleport", "request_id": RID}, union)
    assert f"unknown type tag 'Teleport' (known: {known})" in message


def test_a_member_of_another_union_is_refused() -> None:
    doc = {"format_version": 1, "type": "TrialCreated", "request_id": RID}
    assert "unknown type tag 'TrialCreated'" in _refused(doc, Operation)
    assert "the type tag is 'TrialCreated', not 'Close'" in _refused(doc, _wire.registered_types()["Close"])


def _field_types(cls: type) -> dict[str, Any]:
    if cls is SearcherState:
        return {f.name: f.type for f in attrs.fields(_wire._SearcherStateForm)}
    if cls.__name__ == "SearchSpace":
        return {"hyperparameters": dict}
    return {f.name: f.type for f in attrs.fields(attrs.resolve_types(cls))}


def _wrong_cases() -> list[tuple[str, str, Any]]:
    cases: list[tuple[str, str, Any]] = []
    for example in EXAMPLES:
        for name, annotation in _field_types(type(example)).items():
            if annotation is Any:
                continue  # free-form: any JSON value is right
            # A list of lists is wrong for every typed field: no field is a list of lists.
            cases.append((type(example).__name__, name, [[1]]))
            if annotation in (int, float) or typing.get_args(annotation) in ((float, type(None)),):
                cases.append((type(example).__name__, name, "twelve"))
    return cases


@pytest.mark.parametrize(("tag", "field", "bad"), _wrong_cases())
def test_a_wrong_type_is_refused_and_the_field_named(tag: str, field: str, bad: Any) -> None:
    example = EXAMPLES[IDS.index(tag)]
    doc = _doc(example)
    doc[field] = bad
    message = _refused(doc, type(example))
    assert f"cannot read {tag}: {field}" in message, message


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"type": "ValidateAfter", "request_id": RID, "length": "ten"},
            'length: expected an integer, got string "ten"',
        ),
        (
            {"type": "ValidateAfter", "request_id": RID, "length": True},
            "length: expected an integer, got boolean true",
        ),
        (
            {"type": "ValidateAfter", "request_id": RID, "length": 2.5},
            "length: expected an integer, got number 2.5",
        ),
        (
            {"type": "ValidateAfter", "request_id": "not-a-uuid", "length": 3},
            "request_id: expected a UUID string",
        ),
        ({"type": "ValidateAfter", "request_id": RID}, "length: required field missing"),
        ({"type": "Shutdown", "cancel": "yes"}, 'cancel: expected true or false, got string "yes"'),
        ({"type": "Progress", "progress": "half"}, 'progress: expected a number, got string "half"'),
        ({"type": "Create", "request_id": RID, "hparams": [1]}, "hparams: expected an object, got array"),
        (
            {"type": "TrialExitedEarly", "request_id": RID, "exited_reason": "BORED"},
            "exited_reason: expected one of 'ERRORED', 'USER_CANCELED', 'INVALID_HP', got string \"BORED\"",
        ),
    ],
)
def test_wrong_values_get_precise_messages(doc: dict[str, Any], expected: str) -> None:
    message = _refused({"format_version": 1, **doc}, Operation | Event)
    assert expected in message, message


def test_nested_wrong_type_names_the_path() -> None:
    doc = _doc(EXAMPLES[IDS.index("Segment")])
    doc["checkpoint"]["steps_completed"] = "many"
    assert "checkpoint.steps_completed: expected an integer" in _refused(doc, Segment)
    doc = _doc(EXAMPLES[IDS.index("SearcherState")])
    doc["trials_created"] = [RID, 7]
    assert "trials_created[1]: expected a UUID string, got number 7" in _refused(doc, SearcherState)


def test_several_problems_are_all_named() -> None:
    doc = {"format_version": 1, "type": "ValidateAfter", "request_id": 5, "length": None, "x": 1}
    message = _refused(doc, ValidateAfter)
    assert "request_id: expected a UUID string" in message
    assert "length: expected an integer" in message


def test_a_space_with_bad_hyperparameters_is_refused_with_key_paths() -> None:
    doc = _doc(EXAMPLES[IDS.index("ExperimentConfig")])
    doc["hyperparameters"]["n_filters1"]["minval"] = 100
    message = _refused(doc, type(EXAMPLES[IDS.index("ExperimentConfig")]))
    assert "hyperparameters.n_filters1: minval 100 > maxval 64" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[1, 2]", "a document must be a JSON object, got array"),
        ('{"format_version": 1, "type": "Progress", "progress": NaN}', "NaN is not a JSON value"),
        ('{"format_version": 1, "type": "Progress", "progress": Infinity}', "Infinity is not a JSON value"),
    ],
)
def test_text_that_is_not_a_json_document_is_refused(text: str | bytes, expected: str) -> None:
    with pytest.raises(WireFormatError, match=expected):
        _wire.from_json(text, Operation)


def test_fragments_refuse_like_documents() -> None:
    with pytest.raises(WireFormatError, match="unknown field 'z'"):
        _wire.loads_fragment(f'{{"type": "Close", "request_id": "{RID}", "z": 0}}', Operation)
    with pytest.raises(WireFormatError, match=r"\[1\]: unknown type tag 'Nope'"):
        _wire.structure([{"type": "SearchStarted"}, {"type": "Nope"}], list[Event])


def test_values_that_are_not_json_are_refused_on_write_naming_where() -> None:
    with pytest.raises(WireFormatError, match=r"Create.hparams\['model'\]\['layer'\]: object"):
        _wire.to_json(Create(uuid.uuid4(), {"model": {"layer": object()}}))
    with pytest.raises(WireFormatError, match=r"MetricsReported.metrics\['loss'\]"):
        _wire.dumps_fragment(MetricsReported(uuid.uuid4(), "training", 1, {"loss": 1j}, 0.0))
    with pytest.raises(WireFormatError, match=r"CheckpointRef.metadata\[3\] \(a key\)"):
        _wire.to_json(CheckpointRef("c", 1, {3: "x"}))  # type: ignore[dict-item]


def test_to_json_refuses_what_is_not_a_wire_type() -> None:
    with pytest.raises(TypeError, match="not a wire type"):
        _wire.to_json({"a": 1})
