"""The wire format: every value searchkit persists or sends, as versioned JSON (format 1).

One private cattrs converter turns searchkit's frozen attrs values into plain JSON
values and back. Nothing is ever pickled, so reading an experiment directory
written by someone else cannot run their code. The format is specified in
``docs/wire-format.md``; this docstring is the API.

Documents (a whole file or row that stands alone)::

    to_json(obj, indent=None) -> str
        '{"format_version": 1, "type": "ValidateAfter", "request_id": "...", "length": 10}'
    from_json(text, cls) -> obj
        ``cls`` is a class (``ValidateAfter``) or a union (``Operation``, ``Event``,
        ``Report``); the ``type`` tag picks the member.

Fragments (values inside a container that records the format version itself,
such as journal rows in a store whose metadata holds ``format_version``)::

    unstructure(obj) -> JSON value        # a wire object gets its "type" tag first
    structure(data, cls) -> obj           # cls: a class, a union, list[Event], ...
    dumps_fragment(obj) -> str            # json text of unstructure(obj)
    loads_fragment(text, cls) -> obj

Every refusal is a :class:`~searchkit_core.errors.WireFormatError` with one line
that names the problem and the field path: a newer ``format_version``, an
unknown ``type`` tag (the known ones are listed), an unknown field, a missing
field, a value of the wrong type.

Rules, in short (the spec has the long form):

- A wire object is a JSON object of its fields in declaration order. A ``type``
  tag (the class name) comes first at the top of a document or fragment and
  wherever the declared type is a union of wire types or ``Any``.
- UUIDs are strings, enums are their values, tuples and sets are arrays (sets sorted).
- Non-finite floats, which JSON cannot hold, are the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"``. Float fields and metric maps read them
  back as floats; other free-form values (hyperparameters, checkpoint metadata,
  ``data``) keep them as strings.
- Free-form values (``dict[str, Any]`` fields) must be JSON values: numpy
  scalars and 0-d arrays/tensors become numbers, anything else is refused.

Other modules add their own attrs types with :func:`register_type`.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import numbers
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, overload

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from searchkit_core import _events, _executor, _ledger, _operations
from searchkit_core._config import ExperimentConfig, Resources
from searchkit_core._space import SearchSpace, parse_space_problems
from searchkit_core._state import SearcherState
from searchkit_core.errors import WireFormatError

__all__ = [
    "CORE_TYPES",
    "FORMAT_VERSION",
    "check_format_version",
    "dumps_fragment",
    "from_json",
    "loads_fragment",
    "register_type",
    "registered_types",
    "structure",
    "to_json",
    "type_tag",
    "unstructure",
]

_T = TypeVar("_T")

FORMAT_VERSION = 1
"""The wire format this searchkit writes, and the newest it reads."""

_TAG = "type"
_VERSION_KEY = "format_version"

_NONFINITE_TO_STR = {math.inf: "Infinity", -math.inf: "-Infinity"}
_STR_TO_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Problem(ValueError):  # noqa: N818 - internal, never escapes this module
    """A readable problem found while structuring; its text goes into the WireFormatError.

    ``items`` holds several (sub-path, message) problems found at once (a search space).
    """

    def __init__(self, message: str, items: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.items = items or []


_conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

# tag -> class, class -> tag, for every registered wire type.
_CLASS_OF: dict[str, type] = {}
_TAG_OF: dict[type, str] = {}
# class -> function returning the tagged unstructured form.
_TAGGED_UNSTRUCTURE: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _describe(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) else None
    if text is not None and len(text) <= 40:
        return f"{_json_type_name(value)} {text}"
    return _json_type_name(value)


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__


# -- primitives: strict, so that a wrong type is an error rather than a silent conversion


def _structure_int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _Problem(f"expected an integer, got {_describe(value)}")


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in _STR_TO_NONFINITE:
        return _STR_TO_NONFINITE[value]
    raise _Problem(f"expected a number, got {_describe(value)}")


def _unstructure_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else _NONFINITE_TO_STR[value]


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Problem(f"expected a string, got {_describe(value)}")


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Problem(f"expected true or false, got {_describe(value)}")


def _structure_uuid(value: Any, _: Any) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _Problem(f"expected a UUID string, got {_describe(value)}")


_conv.register_structure_hook(int, _structure_int)
_conv.register_structure_hook(float, _structure_float)
_conv.register_unstructure_hook(float, _unstructure_float)
_conv.register_structure_hook(str, _structure_str)
_conv.register_structure_hook(bool, _structure_bool)
_conv.register_structure_hook(uuid.UUID, _structure_uuid)
_conv.register_unstructure_hook(uuid.UUID, str)


def _is_enum(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, enum.Enum)


def _enum_structure_factory(cls: type[enum.Enum]) -> Callable[[Any, Any], enum.Enum]:
    by_value = {member.value: member for member in cls}
    known = ", ".join(repr(v) for v in by_value)

    def structure_enum(value: Any, _: Any) -> enum.Enum:
        try:
            return by_value[value]
        except (KeyError, TypeError):
            raise _Problem(f"expected one of {known}, got {_describe(value)}") from None

    return structure_enum


_conv.register_structure_hook_factory(_is_enum, _enum_structure_factory)
_conv.register_unstructure_hook_factory(_is_enum, lambda cls: lambda member: member.value)


def _structure_deque(value: Any, cls: Any) -> collections.deque[Any]:
    (item,) = get_args(cls) or (Any,)
    if not isinstance(value, list):
        raise _Problem(f"expected an array, got {_describe(value)}")
    return collections.deque(_conv.structure(value, list[item]))  # type: ignore[valid-type]


_conv.register_structure_hook_factory(
    lambda t: t is collections.deque or get_origin(t) is collections.deque,
    lambda t: _structure_deque,
)
_conv.register_unstructure_hook_factory(
    lambda t: t is collections.deque or get_origin(t) is collections.deque,
    lambda t: lambda value: [_conv.unstructure(v) for v in value],
)
_conv.register_unstructure_hook_factory(
    lambda t: t in (set, frozenset) or get_origin(t) in (set, frozenset),
    lambda t: lambda value: sorted((_conv.unstructure(v) for v in value), key=str),
)
_conv.register_unstructure_hook_factory(
    lambda t: t is tuple or get_origin(t) is tuple,
    lambda t: lambda value: [_conv.unstructure(v) for v in value],
)


# -- free-form values (hyperparameters, metrics, metadata): plain JSON, checked on the way out


class _NotJSON(Exception):  # noqa: N818 - internal, never escapes this module
    def __init__(self, value: Any) -> None:
        self.value = value
        self.path: list[str] = []


def _plain(value: Any) -> Any:
    """``value`` as plain JSON; non-finite floats become strings; wire objects get tags."""
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is float:
        return value if math.isfinite(value) else _unstructure_float(value)
    if cls is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                error = _NotJSON(key)
                error.path.append(f"[{key!r}] (a key)")
                raise error
            try:
                out[key] = _plain(item)
            except _NotJSON as error:
                error.path.append(f"[{key!r}]")
                raise
        return out
    if cls is list or cls is tuple:
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_plain(item))
            except _NotJSON as error:
                error.path.append(f"[{index}]")
                raise
        return items
    tagged = _TAGGED_UNSTRUCTURE.get(cls)
    if tagged is not None:
        return tagged(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    # numpy / torch scalars register with the numbers ABCs.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _plain(float(value))
    if isinstance(value, Mapping):
        return _plain(dict(value))
    if isinstance(value, (list, tuple)):
        return _plain(list(value))
    # numpy booleans, 0-d arrays and 0-d torch tensors: a scalar with .item().
    if getattr(value, "shape", None) == () and hasattr(value, "item") and hasattr(value, "dtype"):
        return _plain(value.item())
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=str)
    raise _NotJSON(value)


def _unstructure_free(value: Any, where: str = "a value") -> Any:
    try:
        return _plain(value)
    except _NotJSON as error:
        path = "".join(reversed(error.path))
        raise WireFormatError(
            f"cannot write {where}{path}: {type(error.value).__name__} {error.value!r:.40} is not a JSON value "
            "(use dicts, lists, str, finite or non-finite floats, ints, booleans and None)"
        ) from None


def _free_field_unstructure(owner: str, field: str) -> Callable[[Any], Any]:
    where = f"{owner}.{field}"
    return lambda value: _unstructure_free(value, where)


def _structure_free(value: Any, _: Any) -> Any:
    return value


def _structure_free_mapping(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Problem(f"expected an object, got {_describe(value)}")
    return value


def _decode_nonfinite(value: Any) -> Any:
    if isinstance(value, str):
        return _STR_TO_NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _decode_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_nonfinite(v) for v in value]
    return value


def _structure_metrics(value: Any, _: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = _decode_nonfinite(_structure_free_mapping(value, _))
    return decoded


def _structure_any(value: Any, _: Any) -> Any:
    """A field declared ``Any`` (e.g. ``Create.checkpoint``): a tagged wire object, or free JSON."""
    if isinstance(value, dict):
        tag = value.get(_TAG)
        cls = _CLASS_OF.get(tag) if isinstance(tag, str) else None
        if cls is not None:
            return _conv.structure(value, cls)
    return value


_FREE_MAPPINGS = (dict[str, Any], Mapping[str, Any])
_conv.register_unstructure_hook_func(lambda t: t in _FREE_MAPPINGS, _unstructure_free)
_conv.register_structure_hook_func(lambda t: t in _FREE_MAPPINGS, _structure_free_mapping)
_conv.register_unstructure_hook_func(lambda t: t is Any, _unstructure_free)
_conv.register_structure_hook_func(lambda t: t is Any, _structure_any)


# -- unions of wire types: tagged with the class name


def _union_members(cls: Any) -> tuple[list[type], bool] | None:
    """The wire classes of a union of two or more of them (and whether None is allowed)."""
    if get_origin(cls) is not Union and type(cls).__name__ != "UnionType":
        return None
    args = get_args(cls)
    members = [a for a in args if a is not type(None)]
    if len(members) < 2 or not all(a in _TAG_OF for a in members):
        return None
    return members, len(members) != len(args)


def _union_structure_factory(cls: Any) -> Callable[[Any, Any], Any]:
    found = _union_members(cls)
    assert found is not None
    members, allows_none = found
    table = {_TAG_OF[m]: m for m in members}
    known = ", ".join(table)

    def structure_union(value: Any, _: Any) -> Any:
        if value is None and allows_none:
            return None
        if not isinstance(value, dict):
            raise _Problem(f"expected an object with a {_TAG!r} tag, got {_describe(value)}")
        tag = value.get(_TAG)
        member = table.get(tag)  # type: ignore[arg-type]
        if member is None:
            if tag is None:
                raise _Problem(f"missing the {_TAG!r} tag (one of: {known})")
            raise _Problem(f"unknown type tag {tag!r} (known: {known})")
        return _conv.structure(value, member)

    return structure_union


def _union_unstructure(value: Any) -> Any:
    if value is None:
        return None
    return _TAGGED_UNSTRUCTURE[type(value)](value)


_conv.register_structure_hook_factory(lambda t: _union_members(t) is not None, _union_structure_factory)
_conv.register_unstructure_hook_factory(lambda t: _union_members(t) is not None, lambda t: _union_unstructure)


# -- registration


def register_type(
    cls: type,
    *,
    unstructure_fn: Callable[[Any], dict[str, Any]] | None = None,
    structure_fn: Callable[[dict[str, Any]], Any] | None = None,
    **overrides: Any,
) -> None:
    """Make ``cls`` a wire type whose tag is its class name.

    An attrs class needs nothing more: its fields are written in order, unknown
    fields are refused. Other classes (or attrs classes with a custom form) give
    ``unstructure_fn`` (value -> dict of JSON values, no tag) and ``structure_fn``
    (that dict -> value; raise ``ValueError`` with a readable message on bad input).
    ``overrides`` are cattrs ``override(...)`` objects for single fields.
    """
    tag = cls.__name__
    if _CLASS_OF.get(tag, cls) is not cls:
        raise ValueError(f"two wire types named {tag}: {_CLASS_OF[tag]!r} and {cls!r}")
    if attrs.has(cls) and any(f.name in (_TAG, _VERSION_KEY) for f in attrs.fields(cls)):
        raise ValueError(
            f"{tag} has a field named {_TAG!r} or {_VERSION_KEY!r}, which the wire format reserves"
        )
    _CLASS_OF[tag] = cls
    _TAG_OF[cls] = tag

    if unstructure_fn is None:
        # Free-form fields name themselves when they hold something that is not JSON.
        attrs.resolve_types(cls)
        for field in attrs.fields(cls):
            if not (field.type in _FREE_MAPPINGS or field.type is Any):
                continue
            if field.name not in overrides:
                overrides[field.name] = override(unstruct_hook=_free_field_unstructure(tag, field.name))
            elif overrides[field.name].unstruct_hook is None:
                overrides[field.name] = attrs.evolve(
                    overrides[field.name], unstruct_hook=_free_field_unstructure(tag, field.name)
                )
        unstructure_fn = make_dict_unstructure_fn(cls, _conv, **overrides)
    inner_unstructure = unstructure_fn
    inner_structure: Callable[[dict[str, Any]], Any]
    if structure_fn is None:
        generated: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, _conv, **overrides)

        def inner_structure(data: dict[str, Any]) -> Any:
            return generated(data, cls)

    else:
        inner_structure = structure_fn

    def structure_tagged(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise _Problem(f"expected an object (a {tag}), got {_describe(value)}")
        if _TAG in value:
            found = value[_TAG]
            if found != tag:
                if isinstance(found, str) and found not in _CLASS_OF:
                    raise _Problem(f"unknown type tag {found!r} (expected {tag!r})")
                raise _Problem(f"the type tag is {found!r}, not {tag!r}")
            value = {k: v for k, v in value.items() if k != _TAG}
        return inner_structure(value)

    def unstructure_tagged(value: Any) -> dict[str, Any]:
        out = {_TAG: tag}
        out.update(inner_unstructure(value))
        return out

    _TAGGED_UNSTRUCTURE[cls] = unstructure_tagged
    _conv.register_structure_hook(cls, structure_tagged)
    _conv.register_unstructure_hook(cls, inner_unstructure)


def type_tag(cls: type) -> str:
    """The ``type`` tag of a registered wire type."""
    try:
        return _TAG_OF[cls]
    except KeyError:
        raise TypeError(f"{cls!r} is not a wire type") from None


def registered_types() -> dict[str, type]:
    """Every wire type by tag (a copy)."""
    return dict(_CLASS_OF)


# SearcherState is a plain class with read-only views; its wire form is explicit.


@attrs.frozen
class _SearcherStateForm:
    failures: list[uuid.UUID]
    trial_progress: dict[uuid.UUID, float]
    trials_closed: list[uuid.UUID]
    trials_created: list[uuid.UUID]
    experiment_completed: bool = False
    experiment_failed: bool = False


_conv.register_structure_hook(_SearcherStateForm, make_dict_structure_fn(_SearcherStateForm, _conv))


def _sorted_ids(ids: Any) -> list[str]:
    return sorted(str(i) for i in ids)


def _unstructure_searcher_state(state: SearcherState) -> dict[str, Any]:
    return {
        "failures": _sorted_ids(state.failures),
        "trial_progress": {
            str(k): _unstructure_float(float(v)) for k, v in sorted(state.trial_progress.items(), key=str)
        },
        "trials_closed": _sorted_ids(state.trials_closed),
        "trials_created": _sorted_ids(state.trials_created),
        "experiment_completed": state.experiment_completed,
        "experiment_failed": state.experiment_failed,
    }


def _structure_searcher_state(data: dict[str, Any]) -> SearcherState:
    form = _conv.structure(data, _SearcherStateForm)
    state = SearcherState()
    state._failures.update(form.failures)
    state._trial_progress.update(form.trial_progress)
    state._trials_closed.update(form.trials_closed)
    state._trials_created.update(form.trials_created)
    state.experiment_completed = form.experiment_completed
    state.experiment_failed = form.experiment_failed
    return state


for _cls in (*_operations.OPERATION_TYPES, *_events.EVENT_TYPES):
    register_type(_cls)
register_type(_executor.CheckpointRef)
register_type(_executor.Segment)
for _cls in get_args(_executor.Report):
    if _cls is not _executor.MetricsReported:
        register_type(_cls)
register_type(
    _executor.MetricsReported,
    metrics=override(struct_hook=_structure_metrics),
)
register_type(
    SearcherState,
    unstructure_fn=_unstructure_searcher_state,
    structure_fn=_structure_searcher_state,
)
register_type(_ledger.TrialRecord)


def _unstructure_space(space: SearchSpace) -> dict[str, Any]:
    return {"hyperparameters": _unstructure_free(space.to_config(), "SearchSpace.hyperparameters")}


def _space_from_config(config: Any, path: str) -> SearchSpace:
    space, problems = parse_space_problems(config, path)
    if problems:
        raise _Problem("; ".join(f"{p}: {m}" for p, m in problems), problems)
    assert space is not None
    return space


def _structure_space(data: dict[str, Any]) -> SearchSpace:
    extra = sorted(set(data) - {"hyperparameters"})
    if extra:
        raise _Problem(f"unknown field {extra[0]!r} (a SearchSpace has: hyperparameters)")
    if "hyperparameters" not in data:
        raise _Problem("hyperparameters: required field missing")
    return _space_from_config(data["hyperparameters"], "hyperparameters")


register_type(SearchSpace, unstructure_fn=_unstructure_space, structure_fn=_structure_space)
register_type(Resources)
register_type(
    ExperimentConfig,
    # In a config the space is its canonical ``hyperparameters:`` mapping, as a user writes it.
    hyperparameters=override(
        unstruct_hook=lambda space: _unstructure_free(space.to_config(), "ExperimentConfig.hyperparameters"),
        struct_hook=lambda data, _: _space_from_config(data, ""),
    ),
)


CORE_TYPES: tuple[type, ...] = tuple(_CLASS_OF.values())
"""The wire types this module registers itself (others add theirs with :func:`register_type`)."""


# -- the public functions


def _error_lines(exc: BaseException, path: str) -> list[tuple[str, str]]:
    """(path, problem) pairs from a cattrs validation error tree."""
    out: list[tuple[str, str]] = []
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                sub_path = f"{path}.{note.name}" if path else note.name
            else:
                sub_path = f"{path}[{note.index!r}]"
            out.extend(_error_lines(sub, sub_path))
        for sub in without:
            out.extend(_error_lines(sub, path))
    elif isinstance(exc, BaseValidationError):
        for sub in exc.exceptions:
            out.extend(_error_lines(sub, path))
    elif isinstance(exc, _Problem) and exc.items:
        for sub_path, message in exc.items:
            out.append((f"{path}.{sub_path}" if path and sub_path else path or sub_path, message))
    else:
        out.append((path, _problem_text(exc)))
    return out


def _problem_text(exc: BaseException) -> str:
    if isinstance(exc, (_Problem, WireFormatError)):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        names = ", ".join(repr(n) for n in sorted(exc.extra_fields))
        known = ", ".join(a.name for a in attrs.fields(exc.cl)) if attrs.has(exc.cl) else ""
        plural = "s" if len(exc.extra_fields) > 1 else ""
        return f"unknown field{plural} {names}" + (f" (a {exc.cl.__name__} has: {known})" if known else "")
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, AttributeError) and "items" in str(exc):
        return "expected an object"
    if isinstance(exc, (ValueError, TypeError)):
        return f"invalid value ({exc})"
    return f"{type(exc).__name__}: {exc}"


_UNION_NAMES: dict[Any, str] = {
    _operations.Operation: "Operation",
    _events.Event: "Event",
    _executor.Report: "Report",
}


def _what(cls: Any) -> str:
    if cls in _UNION_NAMES:
        return _UNION_NAMES[cls]
    name = getattr(cls, "__name__", None)
    if name is None or get_origin(cls) is not None:
        found = _union_members(cls)
        if found is not None:
            return " or ".join(_TAG_OF[m] for m in found[0])
        return repr(cls)
    return str(name)


def _refuse(exc: BaseException, cls: Any, data: Any) -> WireFormatError:
    what = _what(cls)
    members = _union_members(cls)
    if members is not None and isinstance(data, dict):
        tag = data.get(_TAG)
        if any(_TAG_OF[m] == tag for m in members[0]):
            what = str(tag)
    lines = _error_lines(exc, "")
    text = "; ".join(f"{path}: {problem}" if path else problem for path, problem in lines)
    return WireFormatError(f"cannot read {what}: {text}")


@overload
def structure(data: Any, cls: type[_T]) -> _T: ...
@overload
def structure(data: Any, cls: Any) -> Any: ...
def structure(data: Any, cls: Any) -> Any:
    """Build a value of ``cls`` (a class, a union, ``list[Event]``, ...) from JSON data."""
    try:
        return _conv.structure(data, cls)
    except WireFormatError:
        raise
    except (BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _refuse(exc, cls, data) from None


def unstructure(obj: Any) -> Any:
    """JSON data for ``obj``; a wire object carries its ``type`` tag first. No format version.

    ``obj`` may also be a plain value (a dict of metrics, a list of events): wire
    objects inside it are tagged, numpy-style scalars become numbers, and anything
    that is not JSON is refused with a WireFormatError naming where it is.
    """
    tagged = _TAGGED_UNSTRUCTURE.get(type(obj))
    if tagged is not None:
        return tagged(obj)
    return _unstructure_free(obj)


# One encoder for compact text: json.dumps with options builds a new encoder per call,
# which costs more than the encoding of a journal row itself.
_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _dumps(data: Any, indent: int | None) -> str:
    if indent is None:
        return _COMPACT.encode(data)
    return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=indent)


def _refuse_constant(name: str) -> Any:
    raise WireFormatError(f"not valid JSON: {name} is not a JSON value (write it as the string {name!r})")


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except WireFormatError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"not valid JSON: {exc}") from None


def dumps_fragment(obj: Any) -> str:
    """Compact JSON text of :func:`unstructure` (``obj``)."""
    return _dumps(unstructure(obj), None)


@overload
def loads_fragment(text: str | bytes, cls: type[_T]) -> _T: ...
@overload
def loads_fragment(text: str | bytes, cls: Any) -> Any: ...
def loads_fragment(text: str | bytes, cls: Any) -> Any:
    """The value of ``cls`` in JSON text written by :func:`dumps_fragment`."""
    return structure(_loads(text), cls)


def to_json(obj: Any, indent: int | None = None) -> str:
    """A versioned document: ``{"format_version": 1, "type": "<Tag>", ...fields}``."""
    tagged = _TAGGED_UNSTRUCTURE.get(type(obj))
    if tagged is None:
        raise TypeError(f"{type(obj).__name__} is not a wire type; known: {', '.join(sorted(_CLASS_OF))}")
    doc: dict[str, Any] = {_VERSION_KEY: FORMAT_VERSION}
    doc.update(tagged(obj))
    return _dumps(doc, indent)


def check_format_version(version: Any, what: str = "document") -> None:
    """Refuse a format version this searchkit cannot read (newer, or not a positive integer)."""
    if type(version) is not int or version < 1:
        raise WireFormatError(
            f"cannot read {what}: {_VERSION_KEY} must be a positive integer, got {_describe(version)}"
        )
    if version > FORMAT_VERSION:
        raise WireFormatError(
            f"cannot read {what}: it was written by a newer searchkit (format {version}); "
            f"this searchkit reads format {FORMAT_VERSION}. Upgrade searchkit to read it."
        )


@overload
def from_json(text: str | bytes, cls: type[_T]) -> _T: ...
@overload
def from_json(text: str | bytes, cls: Any) -> Any: ...
def from_json(text: str | bytes, cls: Any) -> Any:
    """Read a document written by :func:`to_json`; ``cls`` is a wire class or a union of them."""
    doc = _loads(text)
    what = _what(cls)
    if not isinstance(doc, dict):
        raise WireFormatError(f"cannot read {what}: a document must be a JSON object, got {_describe(doc)}")
    if _VERSION_KEY not in doc:
        raise WireFormatError(f"cannot read {what}: the document has no {_VERSION_KEY!r}")
    check_format_version(doc[_VERSION_KEY], what)
    if _TAG not in doc:
        raise WireFormatError(f"cannot read {what}: the document has no {_TAG!r} tag")
    body = {k: v for k, v in doc.items() if k != _VERSION_KEY}
    return structure(body, cls)
