"""The smaller promises of the wire API: fragments, registration, and what other modules rely on."""

from __future__ import annotations

import json
import uuid

import attrs
import pytest

from searchkit_core import _wire
from searchkit_core._events import Event, TrialCreated
from searchkit_core._executor import CheckpointRef, Segment
from searchkit_core._operations import Close, Create, Operation


def test_a_fragment_in_a_concrete_position_needs_no_tag() -> None:
    rid = uuid.uuid4()
    assert _wire.structure({"request_id": str(rid)}, Close) == Close(rid)
    assert _wire.structure({"type": "Close", "request_id": str(rid)}, Close) == Close(rid)


def test_nested_objects_are_tagged_only_where_the_type_does_not_say() -> None:
    ref = CheckpointRef("c1", 3)
    segment = _wire.unstructure(Segment(uuid.uuid4(), 1, {}, 10, ref, 0, 0.0))
    assert "type" not in segment["checkpoint"]  # declared CheckpointRef | None
    create = _wire.unstructure(Create(uuid.uuid4(), {}, ref))
    assert create["checkpoint"]["type"] == "CheckpointRef"  # declared Any
    assert _wire.structure(create, Operation).checkpoint == ref


def test_plain_containers_of_wire_objects_unstructure_with_tags() -> None:
    rid = uuid.uuid4()
    data = _wire.unstructure({"ops": [Close(rid)], "ids": {rid}})
    assert data == {"ops": [{"type": "Close", "request_id": str(rid)}], "ids": [str(rid)]}
    assert json.loads(_wire.dumps_fragment([TrialCreated(rid)])) == [
        {"type": "TrialCreated", "request_id": str(rid)}
    ]
    assert _wire.loads_fragment(_wire.dumps_fragment([TrialCreated(rid)]), list[Event]) == [TrialCreated(rid)]


def test_check_format_version() -> None:
    _wire.check_format_version(1)
    with pytest.raises(
        _wire.WireFormatError, match=r"store: it was written by a newer searchkit \(format 3\)"
    ):
        _wire.check_format_version(3, "store")


def test_register_type_adds_a_tagged_type() -> None:
    @attrs.frozen
    class PluginNote:
        text: str
        weight: float = 1.0

    _wire.register_type(PluginNote)
    assert _wire.type_tag(PluginNote) == "PluginNote"
    text = _wire.to_json(PluginNote("hi"))
    assert text == '{"format_version":1,"type":"PluginNote","text":"hi","weight":1.0}'
    assert _wire.from_json(text, PluginNote) == PluginNote("hi")
    with pytest.raises(_wire.WireFormatError, match="unknown field 'colour'"):
        _wire.from_json(text.replace('"weight"', '"colour"'), PluginNote)


def test_register_type_refuses_clashes_and_reserved_names() -> None:
    @attrs.frozen
    class Close:  # same name as the operation
        x: int

    with pytest.raises(ValueError, match="two wire types named Close"):
        _wire.register_type(Close)

    @attrs.frozen
    class Tagged:
        type: str

    with pytest.raises(ValueError, match="reserves"):
        _wire.register_type(Tagged)
    with pytest.raises(TypeError, match="is not a wire type"):
        _wire.type_tag(dict)
