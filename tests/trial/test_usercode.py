"""Finding the training function: check_entrypoint (no import) and load_entrypoint (import), with clear errors."""

from __future__ import annotations

import pathlib
import sys
import textwrap
import uuid

import pytest

from searchkit_core._usercode import check_entrypoint, load_entrypoint, parse_entrypoint
from searchkit_core.errors import UserCodeError


@pytest.fixture
def model(tmp_path: pathlib.Path) -> pathlib.Path:
    """A model directory with a uniquely named module (modules are cached per process)."""
    name = f"m_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import os

            def train(ctx):
                return "trained"

            class Trial:
                pass

            async def atrain(ctx):
                pass

            made = (lambda ctx: "made")

            def noarg():
                pass

            def two(ctx, other):
                pass

            def keyword(ctx, *, key):
                pass

            def with_default(ctx, extra=1):
                return "default"

            def star(*args, **kwargs):
                return "star"

            no_arg_lambda = lambda: None
            NUMBER = 3
            if os.environ.get("NEVER_SET_X"):
                def conditional(ctx):
                    pass
            """
        )
    )
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / f"{name}.py").write_text("def train(ctx):\n    return 'pkg'\n")
    (tmp_path / f"{name}_broken.py").write_text("def train(ctx:\n")
    (tmp_path / f"{name}_raises.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / f"{name}_imports.py").write_text("import no_such_dependency_xyz\ndef train(ctx): pass\n")
    (tmp_path / ".name").write_text(name)
    yield tmp_path
    for key in [k for k in sys.modules if name in k]:
        del sys.modules[key]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def _name(model: pathlib.Path) -> str:
    return (model / ".name").read_text()


@pytest.mark.parametrize("text", ["model_def", "model_def:", ":train", "a b:train", "mod:1x", 3])
def test_entrypoint_must_look_like_module_colon_function(text: object) -> None:
    with pytest.raises(UserCodeError, match=r"must (look like 'module:function'|be a string)"):
        parse_entrypoint(text)


def test_good_entrypoints_pass_both_checks(model: pathlib.Path) -> None:
    name = _name(model)
    for function in ("train", "made", "conditional", "with_default", "star"):
        check_entrypoint(model, f"{name}:{function}")
    check_entrypoint(model, f"pkg.{name}:train")
    assert load_entrypoint(model, f"{name}:train")(None) == "trained"
    assert load_entrypoint(model, f"{name}:made")(None) == "made"
    assert load_entrypoint(model, f"pkg.{name}:train")(None) == "pkg"
    assert load_entrypoint(model, f"{name}:with_default")(None) == "default"
    assert load_entrypoint(model, f"{name}:star")(None) == "star"


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":nope", "defines no function 'nope'"),
        (":Trial", "'Trial' in .* is a class, not a function"),
        (":atrain", "is an async function"),
        (":noarg", r"'noarg' in .* takes no argument; searchkit calls it with the trial context"),
        (":two", r"'two' in .* needs 2 arguments \(ctx, other\)"),
        (":keyword", "needs keyword-only argument.* key that searchkit does not pass"),
        ("_missing:train", "module '.*_missing' not found in model directory"),
        ("_broken:train", r"_broken.py:1: syntax error"),
    ],
)
def test_check_entrypoint_errors_without_importing(model: pathlib.Path, suffix: str, message: str) -> None:
    entrypoint = _name(model) + suffix
    with pytest.raises(UserCodeError, match=message):
        check_entrypoint(model, entrypoint)
    assert not any(_name(model) in k for k in sys.modules)  # nothing was imported


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":nope", "has no attribute 'nope'"),
        (":Trial", "'Trial' is a class, not a function"),
        (":NUMBER", "'NUMBER' is an int, not a function"),
        (":atrain", "is an async function"),
        (":noarg", r"'noarg' cannot be called as train\(ctx\): too many positional arguments"),
        (":no_arg_lambda", r"cannot be called as train\(ctx\)"),
        (":two", r"cannot be called as train\(ctx\): missing a required argument: 'other'"),
        ("_missing:train", "not found in model directory"),
        ("_raises:train", "importing '.*_raises' failed: RuntimeError: no GPU here"),
        ("_imports:train", "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"),
        ("_broken:train", "syntax error"),
    ],
)
def test_load_entrypoint_errors(model: pathlib.Path, suffix: str, message: str) -> None:
    with pytest.raises(UserCodeError, match=message):
        load_entrypoint(model, _name(model) + suffix)


def test_a_missing_model_directory_is_named(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UserCodeError, match=r"model directory .*nowhere does not exist"):
        check_entrypoint(tmp_path / "nowhere", "m:train")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserCodeError, match="is not a directory"):
        load_entrypoint(tmp_path / "file", "m:train")
