"""Finding and loading the user's training function, ``entrypoint: module:function``.

Two entry points with one set of messages:

- :func:`check_entrypoint` runs in the ``searchkit`` process before anything is
  stored. It reads the module's source without importing it, so a bad
  entrypoint is one clear line, and the user's imports (torch takes seconds) and
  module-level side effects never run in the search process.
- :func:`load_entrypoint` imports the module and returns the function. Trial
  worker processes call it once per process.

Both raise :class:`~searchkit_core.errors.UserCodeError` naming the entrypoint,
the model directory and what is wrong.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import attrs

from searchkit_core.errors import UserCodeError


@attrs.frozen
class Entrypoint:
    """A parsed ``module:function`` (the function may be a dotted attribute path)."""

    module: str
    function: str

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"


def parse_entrypoint(entrypoint: object) -> Entrypoint:
    """Split ``module:function``; raise UserCodeError for anything else."""
    if not isinstance(entrypoint, str):
        raise UserCodeError(f"entrypoint must be a string like 'model_def:train', got {entrypoint!r}")
    module, sep, function = entrypoint.strip().partition(":")
    parts_ok = all(p.isidentifier() for p in module.split(".")) and all(
        p.isidentifier() for p in function.split(".")
    )
    if not sep or not module or not function or not parts_ok:
        raise UserCodeError(
            f"entrypoint {entrypoint!r} must look like 'module:function' (for example 'model_def:train')"
        )
    return Entrypoint(module, function)


def _check_model_dir(model_dir: pathlib.Path | str | None) -> pathlib.Path | None:
    if model_dir is None:
        return None
    path = pathlib.Path(model_dir).resolve()
    if not path.exists():
        raise UserCodeError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise UserCodeError(f"model directory {path} is not a directory")
    return path


def _module_file(model_dir: pathlib.Path | None, module: str) -> pathlib.Path | None:
    """The source file of ``module``: inside the model directory first, else wherever Python finds it."""
    if model_dir is not None:
        base = model_dir.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    if "." not in module:
        # Only top-level names: find_spec on a dotted name imports the parent packages.
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            return pathlib.Path(spec.origin)
    return None


def check_entrypoint(model_dir: pathlib.Path | str | None, entrypoint: str) -> Entrypoint:
    """Check, without importing anything, that ``entrypoint`` names a function in ``model_dir``.

    Catches a missing directory, a missing module, a syntax error, a missing
    name and a name bound to a class. A name bound by assignment or import
    cannot be checked without running the module; it is accepted here and
    checked again by :func:`load_entrypoint` in the worker.
    """
    ep = parse_entrypoint(entrypoint)
    directory = _check_model_dir(model_dir)
    where = f"model directory {directory}" if directory is not None else "the Python path"
    source_file = _module_file(directory, ep.module)
    if source_file is None:
        raise UserCodeError(f"entrypoint {ep}: module '{ep.module}' not found in {where}")
    try:
        tree = ast.parse(source_file.read_text(encoding="utf-8"), filename=str(source_file))
    except SyntaxError as exc:
        raise UserCodeError(f"entrypoint {ep}: {source_file}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserCodeError(f"entrypoint {ep}: cannot read {source_file}: {exc}") from None
    name = ep.function.split(".")[0]
    binding = _top_level_binding(tree, name)
    if binding is None:
        raise UserCodeError(f"entrypoint {ep}: {source_file} defines no function '{name}'")
    if binding == "class" and "." not in ep.function and not _is_adapted_class(tree, name):
        raise UserCodeError(
            f"entrypoint {ep}: '{name}' in {source_file} is a class, not a function taking the trial context"
            + _class_hint(_class_bases(tree, name))
        )
    if binding == "async":
        raise UserCodeError(
            f"entrypoint {ep}: '{name}' in {source_file} is an async function; searchkit calls train(ctx) synchronously"
        )
    if binding == "def" and "." not in ep.function:
        problem = _signature_problem(_function_args(tree, name))
        if problem:
            raise UserCodeError(f"entrypoint {ep}: '{name}' in {source_file} {problem}")
    return ep


def _function_args(tree: ast.Module, name: str) -> ast.arguments:
    """The arguments of the last top-level ``def name`` (the one a later definition leaves bound)."""
    found = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == name and _is_top(tree, node)
    ]
    return max(found, key=lambda node: node.lineno).args


def _signature_problem(args: ast.arguments) -> str | None:
    """Why a function with these arguments cannot be called as ``train(ctx)``, or None."""
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    if not positional and args.vararg is None:
        return "takes no argument; searchkit calls it with the trial context: def train(ctx)"
    if required > 1:
        names = ", ".join(a.arg for a in positional[:required])
        return f"needs {required} arguments ({names}); searchkit calls it with the trial context alone"
    missing = [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
    if missing:
        return f"needs keyword-only argument(s) {', '.join(missing)} that searchkit does not pass"
    return None


def _top_level_binding(tree: ast.Module, name: str) -> str | None:
    """How ``name`` is bound at the top level: 'def', 'async', 'class', 'other', or None."""
    found: str | None = None
    for node in ast.walk(tree):
        # Only module-level statements and those nested in if/try blocks bind module names.
        if isinstance(node, ast.FunctionDef) and node.name == name and _is_top(tree, node):
            found = "def"
        elif isinstance(node, ast.AsyncFunctionDef) and node.name == name and _is_top(tree, node):
            found = "async"
        elif isinstance(node, ast.ClassDef) and node.name == name and _is_top(tree, node):
            found = "class"
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and _is_top(tree, node):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound == name or alias.name == "*":
                    found = found or "other"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and _is_top(tree, node):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and sub.id == name:
                        found = found or "other"
    return found


# Class entrypoints (a Determined PyTorchTrial, say) run through a trial adapter that a plugin
# registers (hook searchkit_trial_adapters); the adapter turns the class into a train(ctx).
_KNOWN_CLASS_EXTRAS = {"PyTorchTrial": "searchkit-runners[determined]"}


def _trial_adapters() -> list[Any]:
    from searchkit_core._plugins import default_registry

    return default_registry().trial_adapters()


def _class_bases(tree: ast.Module, name: str) -> list[str]:
    """The last dotted part of each base class of the top-level class ``name``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name and _is_top(tree, node):
            return [
                base.attr if isinstance(base, ast.Attribute) else base.id
                for base in node.bases
                if isinstance(base, (ast.Attribute, ast.Name))
            ]
    return []


def _is_adapted_class(tree: ast.Module, name: str) -> bool:
    bases = set(_class_bases(tree, name))
    return bool(bases) and any(bases & set(adapter.base_classes) for adapter in _trial_adapters())


def _class_hint(bases: list[str]) -> str:
    extras = sorted({_KNOWN_CLASS_EXTRAS[b] for b in bases if b in _KNOWN_CLASS_EXTRAS})
    if extras:
        return f"; to run it as a trial, install {' or '.join(repr(e) for e in extras)}"
    return ""


def _is_top(tree: ast.Module, node: ast.AST) -> bool:
    """Whether ``node`` runs at module level (directly, or inside if/try/with blocks)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        stmt = pending.pop()
        if stmt is node:
            return True
        if isinstance(stmt, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                pending.extend(getattr(stmt, field, []) or [])
        elif isinstance(stmt, ast.ExceptHandler):
            pending.extend(stmt.body)
    return False


def load_entrypoint(model_dir: pathlib.Path | str | None, entrypoint: str) -> Callable[[Any], Any]:
    """Import ``entrypoint`` from ``model_dir`` (put first on ``sys.path``) and return the function."""
    ep = parse_entrypoint(entrypoint)
    directory = _check_model_dir(model_dir)
    where = f"model directory {directory}" if directory is not None else "the Python path"
    if directory is not None and str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    try:
        module = importlib.import_module(ep.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if ep.module == missing or ep.module.startswith(missing + "."):
            raise UserCodeError(f"entrypoint {ep}: module '{ep.module}' not found in {where}") from None
        raise UserCodeError(
            f"entrypoint {ep}: importing '{ep.module}' failed: {type(exc).__name__}: {exc}"
        ) from exc
    except SyntaxError as exc:
        raise UserCodeError(
            f"entrypoint {ep}: {exc.filename}:{exc.lineno}: syntax error: {exc.msg}"
        ) from None
    except (Exception, SystemExit) as exc:  # any failure of user code at import time is the user's
        raise UserCodeError(
            f"entrypoint {ep}: importing '{ep.module}' failed: {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in ep.function.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UserCodeError(
                f"entrypoint {ep}: module '{ep.module}' ({getattr(module, '__file__', '?')}) has no attribute '{ep.function}'"
            ) from None
    if inspect.isclass(target):
        for adapter in _trial_adapters():
            adapted = adapter.adapt(target)
            if adapted is not None:
                return adapted
        bases = [base.__name__ for base in inspect.getmro(target)[1:]]
        raise UserCodeError(
            f"entrypoint {ep}: '{ep.function}' is a class, not a function taking the trial context"
            + _class_hint(bases)
        )
    if not callable(target):
        kind = type(target).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise UserCodeError(
            f"entrypoint {ep}: '{ep.function}' is {article} {kind}, not a function taking the trial context"
        )
    if inspect.iscoroutinefunction(target):
        raise UserCodeError(
            f"entrypoint {ep}: '{ep.function}' is an async function; searchkit calls train(ctx) synchronously"
        )
    try:
        inspect.signature(target).bind(None)
    except TypeError as exc:
        raise UserCodeError(
            f"entrypoint {ep}: '{ep.function}' cannot be called as train(ctx): {exc}"
        ) from None
    except ValueError:
        pass  # no signature to inspect (some builtins): the call itself will tell
    return target
