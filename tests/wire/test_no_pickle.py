"""Nothing searchkit ships may unpickle, eval or unsafely load what it reads.

Reading an experiment directory from someone else must never run their code, so
no module under searchkit_core, searchkit_asha or searchkit_runners may import a
pickle-family module, call eval/exec, or use a YAML loader that builds Python objects.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = sorted(
    path
    for package in ("searchkit_core", "searchkit_asha", "searchkit_runners")
    for path in (ROOT / package / "src").rglob("*.py")
)
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
FORBIDDEN_CALLS = {"eval", "exec"}
FORBIDDEN_ATTRIBUTES = {"unsafe_load", "full_load", "UnsafeLoader", "FullLoader"}


def _problems(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"line {node.lineno}: {node.func.id}(...)")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "yaml"
            and not any(k.arg == "Loader" for k in node.keywords)
        ):
            found.append(f"line {node.lineno}: yaml.load without a safe Loader")
    return found


def test_the_source_tree_is_found() -> None:
    assert len(SOURCES) > 10
    assert any(p.name == "_wire.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle_eval_or_unsafe_yaml(path: pathlib.Path) -> None:
    assert not _problems(path), f"{path.relative_to(ROOT)}: {_problems(path)}"


def test_the_checker_catches_what_it_forbids(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom dill import loads\nimport yaml\n"
        "eval('1')\nyaml.unsafe_load('a')\nyaml.load('a')\nexec('x = 1')\n"
    )
    assert len(_problems(bad)) == 6
