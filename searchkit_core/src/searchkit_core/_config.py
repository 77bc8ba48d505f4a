"""The experiment config: YAML in Determined's shape, validated before anything starts.

:func:`load_config` reads a file, :func:`validate_config` checks a mapping. Both
collect every problem and raise one :class:`~searchkit_core.errors.ConfigError`
whose ``problems`` hold one message per problem, each starting with the key it
is about (``"searcher.metric: required key missing"``). The core checks the
keys every search method shares; the chosen method's plugin checks the rest of
``searcher:`` (pass its ``validate`` as ``method_validate``). Every key is
documented in docs/config.md.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import pathlib
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import yaml

from searchkit_core._space import SearchSpace, json_problem, parse_space_problems
from searchkit_core.errors import ConfigError

__all__ = [
    "UNITS",
    "ExperimentConfig",
    "Resources",
    "load_config",
    "validate_config",
]

UNITS = ("batches", "records", "epochs")
"""The units of ``max_length`` and of ``ValidateAfter.length``."""

DEFAULT_MAX_RESTARTS = 5  # Determined's default
SEED_LIMIT = 2**32  # seeds are in [0, 2**32): numpy and torch accept them too

_ENTRYPOINT = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# Determined settings searchkit has no use for; naming them turns "unknown key" into advice.
_DETERMINED_ONLY = {
    "bind_mounts": "searchkit runs trials as local processes or Ray actors",
    "checkpoint_policy": "searchkit keeps every trial's latest checkpoint",
    "checkpoint_storage": "checkpoints live in the experiment directory (checkpoints/<uuid>/)",
    "debug": "",
    "environment": "trials run in the Python environment searchkit runs in",
    "integrations": "",
    "labels": "",
    "log_policies": "",
    "min_checkpoint_period": "the trial code decides when to checkpoint",
    "min_validation_period": "the search method decides when trials validate",
    "optimizations": "",
    "perform_initial_validation": "",
    "profiling": "",
    "project": "",
    "records_per_epoch": "",
    "scheduling_unit": "",
    "workspace": "",
}

_TOP_KEYS = (
    "name",
    "description",
    "entrypoint",
    "searcher",
    "hyperparameters",
    "resources",
    "max_restarts",
    "data",
    "seed",
    "reproducibility",
    "trial_timeout",
)
_SEARCHER_COMMON = ("name", "metric", "smaller_is_better", "max_length")
_RESOURCE_KEYS = ("slots_per_trial", "cpus_per_trial")


@attrs.frozen
class Resources:
    """What each trial needs. ``slots_per_trial`` is GPUs (0: CPU only), as in Determined."""

    slots_per_trial: int = 0
    cpus_per_trial: float = 1.0


def _plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


@attrs.frozen
class ExperimentConfig:
    """A validated experiment config. Build it with :func:`load_config` or :func:`validate_config`.

    ``searcher`` is the ``searcher:`` section with the common defaults filled in
    (``smaller_is_better``); its method-specific keys are the method's business.
    ``seed`` is always set: when the config has none, one is chosen at
    validation and recorded with the experiment, so a resume reuses it.
    """

    name: str
    entrypoint: str
    searcher: dict[str, Any] = attrs.field(converter=_plain_dict)
    hyperparameters: SearchSpace = attrs.field(factory=SearchSpace)
    resources: Resources = attrs.field(factory=Resources)
    max_restarts: int = DEFAULT_MAX_RESTARTS
    data: dict[str, Any] = attrs.field(factory=dict, converter=_plain_dict)
    seed: int = 0
    trial_timeout: float | None = None
    description: str | None = None

    @property
    def metric(self) -> str:
        """The validation metric the search method optimizes."""
        return str(self.searcher["metric"])

    @property
    def smaller_is_better(self) -> bool:
        return bool(self.searcher.get("smaller_is_better", True))

    @property
    def unit(self) -> str:
        """The unit of lengths: the key of ``searcher.max_length``, or ``batches``."""
        max_length = self.searcher.get("max_length")
        if isinstance(max_length, Mapping) and len(max_length) == 1:
            return str(next(iter(max_length)))
        return "batches"

    @property
    def max_length(self) -> int | None:
        """``searcher.max_length`` in :attr:`unit`, if the config gives one."""
        max_length = self.searcher.get("max_length")
        if isinstance(max_length, Mapping) and len(max_length) == 1:
            return int(next(iter(max_length.values())))
        return None


# -- validation helpers


class _Collector:
    """Gathers (key, message) problems; keys are dotted paths into the config."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}" if key else message)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unknown_key_message(key: Any, known: tuple[str, ...], determined_hints: Mapping[str, str]) -> str:
    if key in determined_hints:
        why = determined_hints[key]
        return (
            f"unknown key (a Determined setting searchkit does not use{': ' + why if why else ''}; remove it)"
        )
    message = "unknown key"
    close = difflib.get_close_matches(str(key), known, n=1) or [k for k in known if str(key) in k][:1]
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + f"; known keys: {', '.join(known)}"


def _check_unknown(
    mapping: Mapping[Any, Any],
    known: tuple[str, ...],
    prefix: str,
    out: _Collector,
    determined_hints: Mapping[str, str] | None = None,
) -> None:
    for key in mapping:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            out.add(path, _unknown_key_message(key, known, determined_hints or {}))


def _check_name(raw: Mapping[str, Any], out: _Collector) -> str:
    if "name" not in raw:
        out.add("name", "required key missing (the experiment's name, e.g. name: mnist-asha)")
        return ""
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        out.add("name", f"must be a non-empty string, got {_describe(name)}")
        return ""
    # The name becomes a directory name under the default experiments directory.
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\0" in name:
        out.add("name", f"{name!r} cannot be a directory name (no '/', '\\' or leading '.')")
    elif any(ord(c) < 32 for c in name) or len(name) > 128:
        out.add("name", "must be at most 128 printable characters")
    return name


def _check_entrypoint(raw: Mapping[str, Any], out: _Collector) -> str:
    if "entrypoint" not in raw:
        out.add("entrypoint", "required key missing (module:function inside the model directory)")
        return ""
    entrypoint = raw["entrypoint"]
    if not isinstance(entrypoint, str) or not _ENTRYPOINT.match(entrypoint):
        out.add(
            "entrypoint",
            f"must be 'module:function' or 'module:Class' (e.g. model_def:train), got {_describe(entrypoint)}",
        )
        return ""
    return entrypoint


def _check_searcher(raw: Mapping[str, Any], out: _Collector) -> dict[str, Any] | None:
    if "searcher" not in raw:
        out.add("searcher", "required key missing (a mapping with at least name and metric)")
        return None
    searcher = raw["searcher"]
    if not isinstance(searcher, Mapping):
        out.add("searcher", f"must be a mapping, got {_describe(searcher)}")
        return None
    searcher = dict(searcher)
    for key in searcher:
        if not isinstance(key, str):
            out.add("searcher", f"the key {key!r} must be a string")
    name = searcher.get("name")
    if "name" not in searcher:
        out.add("searcher.name", "required key missing (the search method, e.g. asha)")
    elif not isinstance(name, str) or not name:
        out.add("searcher.name", f"must be a non-empty string, got {_describe(name)}")
    metric = searcher.get("metric")
    if "metric" not in searcher:
        out.add("searcher.metric", "required key missing (the validation metric to optimize)")
    elif not isinstance(metric, str) or not metric:
        out.add("searcher.metric", f"must be a non-empty string, got {_describe(metric)}")
    smaller = searcher.setdefault("smaller_is_better", True)
    if not isinstance(smaller, bool):
        out.add("searcher.smaller_is_better", f"must be true or false, got {_describe(smaller)}")
    if "max_length" in searcher:
        max_length = searcher["max_length"]
        if not isinstance(max_length, Mapping) or len(max_length) != 1:
            out.add(
                "searcher.max_length",
                f"must be a mapping with one of {', '.join(UNITS)} (e.g. {{batches: 1000}}), got "
                f"{_describe(max_length)}",
            )
        else:
            ((unit, length),) = max_length.items()
            if unit not in UNITS:
                out.add("searcher.max_length", f"unknown unit {unit!r} (use one of {', '.join(UNITS)})")
            elif not _is_int(length) or length < 1:
                out.add(f"searcher.max_length.{unit}", f"must be a positive integer, got {_describe(length)}")
    for key, value in searcher.items():
        if key not in _SEARCHER_COMMON and isinstance(key, str):
            problem = json_problem(value)
            if problem is not None:
                out.add(f"searcher.{key}{problem[0]}", problem[1])
    return searcher


def _check_resources(raw: Mapping[str, Any], out: _Collector) -> Resources:
    resources = raw.get("resources")
    if resources is None:
        return Resources()
    if not isinstance(resources, Mapping):
        out.add("resources", f"must be a mapping, got {_describe(resources)}")
        return Resources()
    hints = {
        "max_slots": "",
        "resource_pool": "",
        "priority": "",
        "weight": "",
        "shm_size": "",
        "devices": "",
        "native_parallel": "",
        "agent_label": "",
    }
    _check_unknown(resources, _RESOURCE_KEYS, "resources", out, hints)
    slots = resources.get("slots_per_trial", 0)
    if not _is_int(slots) or slots < 0:
        out.add(
            "resources.slots_per_trial", f"must be an integer >= 0 (GPUs per trial), got {_describe(slots)}"
        )
        slots = 0
    cpus = resources.get("cpus_per_trial", 1.0)
    if not _is_number(cpus) or cpus <= 0:
        out.add("resources.cpus_per_trial", f"must be a number > 0, got {_describe(cpus)}")
        cpus = 1.0
    return Resources(slots_per_trial=slots, cpus_per_trial=float(cpus))


def _check_seed(raw: Mapping[str, Any], out: _Collector) -> int | None:
    seed = raw.get("seed")
    reproducibility = raw.get("reproducibility")
    if reproducibility is not None:
        # Determined's spelling: reproducibility: {experiment_seed: N}
        if not isinstance(reproducibility, Mapping):
            out.add("reproducibility", f"must be a mapping, got {_describe(reproducibility)}")
        else:
            _check_unknown(reproducibility, ("experiment_seed",), "reproducibility", out)
            legacy = reproducibility.get("experiment_seed")
            if legacy is not None:
                if seed is not None and seed != legacy:
                    out.add("seed", f"{seed!r} disagrees with reproducibility.experiment_seed {legacy!r}")
                seed = legacy
    if seed is None:
        return None
    if not _is_int(seed) or not 0 <= seed < SEED_LIMIT:
        out.add("seed", f"must be an integer in [0, 2**32), got {_describe(seed)}")
        return None
    return int(seed)


def _check_optional_int(raw: Mapping[str, Any], key: str, default: int, out: _Collector) -> int:
    value = raw.get(key, default)
    if value is None:
        return default
    if not _is_int(value) or value < 0:
        out.add(key, f"must be an integer >= 0, got {_describe(value)}")
        return default
    return int(value)


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any], out: _Collector) -> None:
    """Set ``a.b.c``-style keys; ``None`` values mean "not given" (CLI options left unset)."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        parts = str(dotted).split(".")
        if not all(parts):
            out.add(str(dotted), "an override key must be a dotted path like searcher.max_trials")
            continue
        target: Any = raw
        for depth, part in enumerate(parts[:-1]):
            child = target.get(part)
            if child is None:
                child = target[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                out.add(str(dotted), f"cannot override inside {where}, which is not a mapping")
                break
            target = child
        else:
            target[parts[-1]] = value


MethodValidate = Callable[[Mapping[str, Any]], list[str]]


def validate_config(
    raw: Any,
    method_validate: MethodValidate | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """Check a config mapping and build the :class:`ExperimentConfig`; raise ConfigError with every problem.

    ``method_validate`` is the chosen method plugin's ``validate``: it gets the
    ``searcher:`` section and returns one message per problem; a message that
    does not start with ``searcher.`` gets that prefix. ``overrides`` set dotted
    keys (``{"searcher.max_trials": 8, "seed": 3}``) before checking.
    """
    out = _Collector()
    if raw is None:
        raise ConfigError(["the config is empty (it needs at least name, entrypoint and searcher)"])
    if not isinstance(raw, Mapping):
        raise ConfigError([f"the config must be a mapping of keys to values, got {_describe(raw)}"])
    config: dict[str, Any] = copy.deepcopy(dict(raw))
    if overrides:
        _apply_overrides(config, overrides, out)
    for key in config:
        if not isinstance(key, str):
            out.add("", f"the key {key!r} must be a string")
    _check_unknown(
        {k: v for k, v in config.items() if isinstance(k, str)}, _TOP_KEYS, "", out, _DETERMINED_ONLY
    )

    name = _check_name(config, out)
    entrypoint = _check_entrypoint(config, out)
    searcher = _check_searcher(config, out)
    space, space_problems = parse_space_problems(config.get("hyperparameters"), "hyperparameters")
    for key, message in space_problems:
        out.add(key, message)
    resources = _check_resources(config, out)
    max_restarts = _check_optional_int(config, "max_restarts", DEFAULT_MAX_RESTARTS, out)

    data = config.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, Mapping):
        out.add("data", f"must be a mapping (handed to every trial as ctx.data), got {_describe(data)}")
        data = {}
    else:
        problem = json_problem(dict(data))
        if problem is not None:
            out.add(f"data{problem[0]}", problem[1])

    seed = _check_seed(config, out)

    trial_timeout = config.get("trial_timeout")
    if trial_timeout is not None and (not _is_number(trial_timeout) or trial_timeout <= 0):
        out.add("trial_timeout", f"must be a number of seconds > 0, got {_describe(trial_timeout)}")
        trial_timeout = None

    description = config.get("description")
    if description is not None and not isinstance(description, str):
        out.add("description", f"must be a string, got {_describe(description)}")
        description = None

    if method_validate is not None and searcher is not None:
        try:
            method_problems = list(method_validate(searcher))
        except Exception as exc:  # a broken plugin must not hide the config's other problems
            method_problems = [f"searcher: the method's validate raised {type(exc).__name__}: {exc}"]
        # Core already checked the common searcher keys: one message per key is enough.
        reported = {problem.split(":", 1)[0] for problem in out.problems}
        for message in method_problems:
            text = str(message)
            text = text if text.startswith("searcher") else f"searcher.{text}"
            if text.split(":", 1)[0] not in reported:
                out.problems.append(text)

    if out.problems:
        raise ConfigError(out.problems)
    assert searcher is not None and space is not None
    return ExperimentConfig(
        name=name,
        entrypoint=entrypoint,
        searcher=searcher,
        hyperparameters=space,
        resources=resources,
        max_restarts=max_restarts,
        data=dict(data),
        seed=seed if seed is not None else random.SystemRandom().randrange(SEED_LIMIT),
        trial_timeout=float(trial_timeout) if trial_timeout is not None else None,
        description=description,
    )


# -- YAML


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys (the last one would silently win)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            is_duplicate = key in mapping
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if is_duplicate:
            raise _DuplicateKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str = "config") -> Any:
    """Parse YAML safely (no Python objects, no duplicate keys); problems are ConfigErrors."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        if isinstance(exc, _DuplicateKeyError):
            raise ConfigError(f"{source}: {exc.problem}{where} (each key may appear once)") from None
        raise ConfigError(f"{source}: not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None


def read_config_text(path: str | pathlib.Path) -> str:
    """The text of a config file, or a :class:`ConfigError` that says why it cannot be read."""
    file = pathlib.Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(file)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(file)!r} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc}") from None


def load_config(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    method_validate: MethodValidate | None = None,
) -> ExperimentConfig:
    """Read and validate a YAML config file; see :func:`validate_config` for the rest."""
    file = pathlib.Path(path)
    text = read_config_text(file)
    return validate_config(parse_yaml(text, str(file)), method_validate, overrides)
