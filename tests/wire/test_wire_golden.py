"""Golden files for wire format 1: they must load, and today's writer must produce them byte for byte."""

from __future__ import annotations

import json
import pathlib

import pytest
from wire_examples import EXAMPLES, GOLDEN_DIR, golden_path, golden_text

from searchkit_core import _wire

IDS = [type(example).__name__ for example in EXAMPLES]


def test_every_core_wire_type_has_one_golden_file() -> None:
    assert sorted(type(e).__name__ for e in EXAMPLES) == sorted(t.__name__ for t in _wire.CORE_TYPES)
    on_disk = sorted(p.stem for p in GOLDEN_DIR.glob("*.json"))
    assert on_disk == sorted(IDS)


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_golden_file_loads_to_the_example(example: object) -> None:
    loaded = _wire.from_json(golden_path(example).read_text(), type(example))
    assert type(loaded) is type(example)
    # SearcherState has no __eq__: compare its wire form, which is canonical (sorted).
    assert _wire.unstructure(loaded) == _wire.unstructure(example)
    if type(example).__eq__ is not object.__eq__:
        assert loaded == example


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_writer_produces_the_golden_file(example: object) -> None:
    assert golden_text(example) == golden_path(example).read_text()


@pytest.mark.parametrize("path", sorted(GOLDEN_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_golden_files_are_strict_json_documents(path: pathlib.Path) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path.name} holds the non-JSON constant {name}")

    doc = json.loads(path.read_text(), parse_constant=refuse)
    assert doc["format_version"] == 1
    assert doc["type"] == path.stem
    assert list(doc)[:2] == ["format_version", "type"]


def test_unions_read_their_members_golden_files() -> None:
    from searchkit_core._events import Event
    from searchkit_core._executor import Report
    from searchkit_core._operations import Operation

    for union, names in [
        (Operation, ["Create", "ValidateAfter", "Close", "Shutdown", "Progress"]),
        (Event, ["SearchStarted", "TrialCreated", "ValidationCompleted", "TrialClosed", "TrialExitedEarly"]),
        (
            Report,
            [
                "ValidationReported",
                "MetricsReported",
                "CheckpointReported",
                "ProgressReported",
                "TrialCrashed",
                "TrialExited",
            ],
        ),
    ]:
        for name in names:
            loaded = _wire.from_json((GOLDEN_DIR / f"{name}.json").read_text(), union)
            assert type(loaded).__name__ == name
