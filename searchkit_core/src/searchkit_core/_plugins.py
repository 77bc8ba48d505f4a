"""The plugin registry: finds search methods and runners through the ``searchkit`` entry points.

Plugins are modules (or objects) named by entry points in the ``searchkit`` group and
implement the hooks of :mod:`searchkit_core.hookspecs`. The registry loads each entry
point itself, rather than through ``pluggy.PluginManager.load_setuptools_entrypoints``,
so that one plugin that fails to import is recorded and skipped (with a warning) instead
of taking every command down, and so that every registered name remembers the
distribution and version it came from: that is what ``searchkit plugins`` shows and
what the error for two plugins claiming one name quotes.

Set ``SEARCHKIT_DISABLE_PLUGIN_AUTOLOAD=1`` to turn entry-point loading off (for tests
and for debugging a broken installation); plugins can then be registered explicitly
with :meth:`Registry.register`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import traceback
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs
import pluggy

from searchkit_core import hookspecs
from searchkit_core.errors import PluginError
from searchkit_core.hookspecs import RunnerPlugin, SearchMethodPlugin, TrialAdapterPlugin

ENTRY_POINT_GROUP = "searchkit"
AUTOLOAD_DISABLE_ENV = "SEARCHKIT_DISABLE_PLUGIN_AUTOLOAD"
RUNNERS_DISTRIBUTION = "searchkit-runners"

Kind = Literal["search_method", "runner", "trial_adapter"]
_KIND_ORDER: dict[Kind, int] = {"search_method": 0, "runner": 1, "trial_adapter": 2}
_KIND_TITLE: dict[Kind, str] = {
    "search_method": "search method",
    "runner": "runner",
    "trial_adapter": "trial adapter",
}
_HOOK_FOR_KIND: dict[Kind, str] = {
    "search_method": "searchkit_search_methods",
    "runner": "searchkit_runners",
    "trial_adapter": "searchkit_trial_adapters",
}
_RECORD_TYPE_FOR_KIND: dict[Kind, type] = {
    "search_method": SearchMethodPlugin,
    "runner": RunnerPlugin,
    "trial_adapter": TrialAdapterPlugin,
}


class PluginLoadWarning(UserWarning):
    """A plugin failed to load and was skipped; the other plugins still work."""


@attrs.frozen
class PluginSource:
    """Where a registered plugin came from."""

    plugin_name: str  # the entry point's name, or the name given to Registry.register
    distribution: str | None  # None: registered explicitly and not part of any installed distribution
    version: str | None
    entry_point: str | None = None  # "name = value" as declared, for entry-point plugins


@attrs.frozen
class PluginFailure:
    """A plugin that could not be used: its import or one of its hooks raised."""

    source: PluginSource
    error: str  # "ExceptionType: message", one line
    details: str  # the formatted traceback, for SEARCHKIT_DEBUG and bug reports


@attrs.frozen
class Registration:
    """One search method or runner, with the distribution that registered it."""

    kind: Kind
    name: str
    summary: str
    source: PluginSource
    record: SearchMethodPlugin | RunnerPlugin | TrialAdapterPlugin


def autoload_enabled() -> bool:
    """Whether entry-point autoloading is on (``SEARCHKIT_DISABLE_PLUGIN_AUTOLOAD`` unset or 0)."""
    return os.environ.get(AUTOLOAD_DISABLE_ENV, "").strip().lower() in ("", "0", "false", "no")


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _distribution_of_module(module_name: str) -> tuple[str | None, str | None]:
    """The installed distribution that provides a top-level package, if any."""
    top = module_name.split(".", 1)[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    if not names:
        return None, None
    name = names[0]
    try:
        return name, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return name, None


def _describe_source(source: PluginSource) -> str:
    if source.distribution is None:
        return f"plugin {source.plugin_name!r} (not from an installed distribution)"
    version = f" {source.version}" if source.version else ""
    return f"plugin {source.plugin_name!r} from distribution {source.distribution}{version}"


class Registry:
    """Search methods and runners registered by plugins, by name.

    ``Registry()`` loads every entry point of the ``searchkit`` group unless
    ``SEARCHKIT_DISABLE_PLUGIN_AUTOLOAD`` is set; ``Registry(autoload=False)`` starts empty.
    Lookups (:meth:`search_method`, :meth:`runner`) raise :class:`PluginError` for an
    unknown name (listing the names that exist) and for a name that two plugins claim
    (naming both distributions).
    """

    def __init__(self, *, autoload: bool | None = None) -> None:
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._sources: dict[str, PluginSource] = {}  # pluggy plugin name -> source
        self._failures: list[PluginFailure] = []
        self._registrations: list[Registration] | None = None  # collected lazily, reset on register
        if autoload if autoload is not None else autoload_enabled():
            self.load_entry_points()

    # -- loading -------------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import and register every entry point of ``group``; record and skip the broken ones."""
        for entry_point in sorted(importlib.metadata.entry_points(group=group), key=_entry_point_key):
            dist = getattr(entry_point, "dist", None)
            source = PluginSource(
                plugin_name=entry_point.name,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
                entry_point=f"{entry_point.name} = {entry_point.value}",
            )
            if any(
                s.entry_point == source.entry_point and s.distribution == source.distribution
                for s in self._sources.values()
            ):
                continue  # the same distribution seen twice on sys.path
            try:
                plugin = entry_point.load()
            except Exception as error:  # a broken plugin must not take searchkit down
                self._record_failure(source, error, during="import")
                continue
            try:
                self._register(plugin, source)
            except PluginError as error:
                self._record_failure(source, error, during="registration")

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Register a plugin module or object explicitly (tests, embedding, autoload off).

        Without ``distribution``, the installed distribution providing the plugin's
        module is looked up; a plugin defined outside any distribution has none.
        """
        module_name = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
        plugin_name = name or (
            module_name if isinstance(plugin, types.ModuleType) else f"{module_name}.{id(plugin):x}"
        )
        if distribution is None:
            distribution, found_version = _distribution_of_module(module_name)
            version = version or found_version
        self._register(plugin, PluginSource(plugin_name, distribution, version))

    def _register(self, plugin: object, source: PluginSource) -> None:
        plugin_name = source.plugin_name
        if plugin_name in self._sources:
            # Two distributions may use one entry-point name; pluggy needs unique names.
            plugin_name = f"{plugin_name}@{source.distribution}"
        if plugin_name in self._sources or self._manager.is_registered(plugin):
            other = self._source_of(plugin) or self._sources.get(plugin_name)
            raise PluginError(
                f"{_describe_source(source)} is already registered"
                + (f" by {_describe_source(other)}" if other is not None else "")
            )
        try:
            self._manager.register(plugin, name=plugin_name)
        except (ValueError, pluggy.PluginValidationError) as error:
            raise PluginError(f"cannot register {_describe_source(source)}: {error}") from error
        self._sources[plugin_name] = attrs.evolve(source, plugin_name=plugin_name)
        self._registrations = None

    def _source_of(self, plugin: object) -> PluginSource | None:
        name = self._manager.get_name(plugin)
        return self._sources.get(name) if name is not None else None

    def _record_failure(self, source: PluginSource, error: BaseException, *, during: str) -> None:
        failure = PluginFailure(
            source=source,
            error=_one_line(error),
            details="".join(traceback.format_exception(type(error), error, error.__traceback__)),
        )
        self._failures.append(failure)
        warnings.warn(
            f"searchkit {_describe_source(source)} failed during {during} and was skipped: {failure.error}",
            PluginLoadWarning,
            stacklevel=3,
        )

    # -- collecting the records -----------------------------------------------------------

    def _collect(self) -> list[Registration]:
        if self._registrations is not None:
            return self._registrations
        registrations: list[Registration] = []
        for kind, hook_name in _HOOK_FOR_KIND.items():
            hook_caller = getattr(self._manager.hook, hook_name)
            for impl in hook_caller.get_hookimpls():
                source = self._sources[impl.plugin_name]
                registrations.extend(self._call_hook(kind, hook_name, impl.function, source))
        # A plugin with any failing hook is skipped as a whole, so what it offers never half-works.
        failed = {failure.source for failure in self._failures}
        self._registrations = [r for r in registrations if r.source not in failed]
        return self._registrations

    def _call_hook(
        self, kind: Kind, hook_name: str, function: Callable[[], Any], source: PluginSource
    ) -> list[Registration]:
        # Each plugin's hook is called on its own so that every record keeps its
        # distribution, and one hook that raises costs only its own plugin's records.
        if any(f.source == source for f in self._failures):
            return []
        try:
            records = function()
            expected = _RECORD_TYPE_FOR_KIND[kind]
            if records is None:
                records = []
            if not isinstance(records, Sequence) or not all(isinstance(r, expected) for r in records):
                raise PluginError(
                    f"hook {hook_name} returned {records!r}; expected a list of {expected.__name__}"
                )
        except Exception as error:
            self._record_failure(source, error, during=f"its hook {hook_name}")
            return []
        return [Registration(kind, r.name, r.summary, source, r) for r in records]

    # -- queries ---------------------------------------------------------------------------

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins that failed to import or whose hooks raised, in load order."""
        self._collect()
        return list(self._failures)

    def registrations(self, kind: Kind | None = None) -> list[Registration]:
        """Every registered search method and runner (duplicates included): methods first, by name."""
        found = [r for r in self._collect() if kind is None or r.kind == kind]
        return sorted(
            found,
            key=lambda r: (_KIND_ORDER[r.kind], r.name, r.source.distribution or "", r.source.plugin_name),
        )

    def conflicts(self) -> dict[tuple[Kind, str], list[Registration]]:
        """Names claimed by more than one plugin (same kind), with every claimant."""
        by_name: dict[tuple[Kind, str], list[Registration]] = {}
        for registration in self.registrations():
            by_name.setdefault((registration.kind, registration.name), []).append(registration)
        return {key: claims for key, claims in by_name.items() if len(claims) > 1}

    def names(self, kind: Kind) -> list[str]:
        """The names registered for ``kind``, sorted, each once."""
        return sorted({r.name for r in self.registrations(kind)})

    def search_method(self, name: str) -> SearchMethodPlugin:
        """The search method registered as ``name``."""
        record = self._lookup("search_method", name)
        assert isinstance(record, SearchMethodPlugin)
        return record

    def runner(self, name: str) -> RunnerPlugin:
        """The runner registered as ``name``."""
        record = self._lookup("runner", name)
        assert isinstance(record, RunnerPlugin)
        return record

    def trial_adapters(self) -> list[TrialAdapterPlugin]:
        """Trial adapters (hook ``searchkit_trial_adapters``): what runs a class entrypoint.

        A hook that raises or returns something else is recorded as a failure of its plugin.
        """
        return [
            r.record for r in self.registrations("trial_adapter") if isinstance(r.record, TrialAdapterPlugin)
        ]

    def _lookup(self, kind: Kind, name: str) -> SearchMethodPlugin | RunnerPlugin | TrialAdapterPlugin:
        claims = [r for r in self.registrations(kind) if r.name == name]
        title = _KIND_TITLE[kind]
        if len(claims) > 1:
            raise PluginError(
                f"{title} {name!r} is registered by more than one plugin: "
                + " and ".join(_describe_source(c.source) for c in claims)
                + "; uninstall one of them"
            )
        if claims:
            return claims[0].record
        known = self.names(kind)
        message = f"unknown {title} {name!r}; "
        if known:
            message += f"installed {title}s: {', '.join(known)}"
        elif kind == "runner":
            message += f"no runner is installed; install one with `pip install {RUNNERS_DISTRIBUTION}`"
        else:
            message += f"no {title} is installed"
        broken = [f.source.plugin_name for f in self._failures]
        if broken:
            message += f" (plugins that failed to load: {', '.join(broken)}; see `searchkit plugins`)"
        raise PluginError(message)


def _entry_point_key(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    return (entry_point.name, dist.name if dist is not None else "")


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use (cached)."""
    return Registry()


__all__ = [
    "AUTOLOAD_DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginLoadWarning",
    "PluginSource",
    "Registration",
    "Registry",
    "autoload_enabled",
    "default_registry",
]
