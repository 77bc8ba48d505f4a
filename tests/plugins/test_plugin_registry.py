"""The plugin registry: entry points, broken plugins, name conflicts, unknown names, autoload off."""

from __future__ import annotations

import types
import warnings

import pytest
from plugin_sources import (
    BROKEN_ON_IMPORT,
    HOOK_RAISES,
    HOOK_RETURNS_GARBAGE,
    method_plugin,
    runner_plugin,
)

from searchkit_core import SearcherState, hookimpl
from searchkit_core._plugins import (
    AUTOLOAD_DISABLE_ENV,
    PluginLoadWarning,
    Registry,
    autoload_enabled,
    default_registry,
)
from searchkit_core.errors import PluginError
from searchkit_core.hookspecs import MethodContext, RunnerPlugin, SearchMethodPlugin


def _module(name: str, *, methods: list[str] = (), runners: list[str] = ()) -> types.ModuleType:  # type: ignore[assignment]
    """A plugin module object with hook implementations, for explicit registration."""
    module = types.ModuleType(name)

    @hookimpl
    def searchkit_search_methods() -> list[SearchMethodPlugin]:
        return [
            SearchMethodPlugin(name=m, summary=f"{m} from {name}", factory=lambda ctx: None) for m in methods
        ]  # type: ignore[arg-type,return-value]

    @hookimpl
    def searchkit_runners() -> list[RunnerPlugin]:
        return [RunnerPlugin(name=r, summary=f"{r} from {name}", factory=object) for r in runners]  # type: ignore[arg-type]

    module.searchkit_search_methods = searchkit_search_methods  # type: ignore[attr-defined]
    module.searchkit_runners = searchkit_runners  # type: ignore[attr-defined]
    return module


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_DISABLE_ENV, raising=False)


def test_explicit_registration_records_distribution_and_version() -> None:
    registry = Registry(autoload=False)
    registry.register(
        _module("alpha", methods=["grid"], runners=["inline"]), distribution="alpha-dist", version="2.3"
    )
    method = registry.search_method("grid")
    assert method.name == "grid" and method.summary == "grid from alpha"
    assert registry.runner("inline").name == "inline"
    [grid] = registry.registrations("search_method")
    assert (grid.source.distribution, grid.source.version, grid.kind) == (
        "alpha-dist",
        "2.3",
        "search_method",
    )
    assert registry.names("runner") == ["inline"]


def test_entry_point_plugin_is_loaded_with_its_distribution(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "tiny-random",
        "0.4.1",
        modules={"tiny_random_ep.py": method_plugin("tiny_random_ep", "tiny-random")},
        entry_points={"tiny": "tiny_random_ep"},
    )
    registry = Registry()
    [registration] = [r for r in registry.registrations() if r.name == "tiny-random"]
    assert registration.source.distribution == "tiny-random"
    assert registration.source.version == "0.4.1"
    assert registration.source.entry_point == "tiny = tiny_random_ep"
    # The method it registers really works through the protocol.
    plugin = registry.search_method("tiny-random")
    method = plugin.factory(MethodContext(searcher={"name": "tiny-random", "budget": 3}, space=None, seed=7))  # type: ignore[arg-type]
    operations = method.initial_operations(SearcherState())
    assert [type(op).__name__ for op in operations] == ["Create", "ValidateAfter"]
    assert plugin.validate({"budget": "x"}) == ["searcher.budget: must be an integer"]


def test_entry_point_naming_an_object_inside_a_module(make_distribution) -> None:  # type: ignore[no-untyped-def]
    source = (
        runner_plugin("obj_runner_mod", "obj-runner")
        .replace(
            "@hookimpl\ndef searchkit_runners():",
            "class Plugin:\n    @hookimpl\n    def searchkit_runners(self):",
        )
        .replace("    return [RunnerPlugin(", "        return [RunnerPlugin(")
        + "\n\nplugin = Plugin()\n"
    )
    make_distribution(
        "obj-runner", modules={"obj_runner_mod.py": source}, entry_points={"objr": "obj_runner_mod:plugin"}
    )
    registry = Registry()
    assert registry.runner("obj-runner").summary == "a test runner"


def test_broken_plugin_is_recorded_and_skipped_with_a_warning(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "broken-plugin",
        "9.9",
        modules={"broken_plugin_mod.py": BROKEN_ON_IMPORT},
        entry_points={"broken": "broken_plugin_mod"},
    )
    make_distribution(
        "good-plugin",
        "1.0",
        modules={"good_plugin_mod.py": method_plugin("good_plugin_mod", "good")},
        entry_points={"good": "good_plugin_mod"},
    )
    with pytest.warns(
        PluginLoadWarning, match=r"'broken' from distribution broken-plugin 9\.9.*broken on purpose"
    ):
        registry = Registry()
    [failure] = [f for f in registry.failures if f.source.plugin_name == "broken"]
    assert failure.source.distribution == "broken-plugin"
    assert failure.source.version == "9.9"
    assert failure.error == "RuntimeError: this plugin is broken on purpose"
    assert "Traceback" in failure.details
    # Every other plugin still works.
    assert registry.search_method("good").summary == "a test method"


def test_hook_that_raises_costs_only_its_own_plugin(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "raising-hook",
        modules={"raising_hook_mod.py": HOOK_RAISES},
        entry_points={"raising": "raising_hook_mod"},
    )
    make_distribution(
        "garbage-hook",
        modules={"garbage_hook_mod.py": HOOK_RETURNS_GARBAGE},
        entry_points={"garbage": "garbage_hook_mod"},
    )
    make_distribution(
        "fine-runner",
        modules={"fine_runner_mod.py": runner_plugin("fine_runner_mod", "fine")},
        entry_points={"fine": "fine_runner_mod"},
    )
    registry = Registry()
    with pytest.warns(PluginLoadWarning) as caught:
        failures = {f.source.plugin_name: f.error for f in registry.failures}
    assert len([w for w in caught if "raising" in str(w.message) or "garbage" in str(w.message)]) == 2
    assert failures["raising"] == "ValueError: hook blew up"
    assert "expected a list of RunnerPlugin" in failures["garbage"]
    assert registry.runner("fine").name == "fine"


def test_two_distributions_claiming_one_name_is_an_error_naming_both(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "first-dist",
        "1.0",
        modules={"first_mod.py": method_plugin("first_mod", "same-name")},
        entry_points={"first": "first_mod"},
    )
    make_distribution(
        "second-dist",
        "2.0",
        modules={"second_mod.py": method_plugin("second_mod", "same-name")},
        entry_points={"second": "second_mod"},
    )
    registry = Registry()
    with pytest.raises(PluginError) as raised:
        registry.search_method("same-name")
    message = str(raised.value)
    assert "search method 'same-name'" in message
    assert "first-dist 1.0" in message and "second-dist 2.0" in message
    assert raised.value.exit_code == 3
    assert list(registry.conflicts()) == [("search_method", "same-name")]


def test_same_entry_point_name_in_two_distributions_both_register(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "dist-a",
        modules={"dist_a_mod.py": method_plugin("dist_a_mod", "method-a")},
        entry_points={"plugin": "dist_a_mod"},
    )
    make_distribution(
        "dist-b",
        modules={"dist_b_mod.py": method_plugin("dist_b_mod", "method-b")},
        entry_points={"plugin": "dist_b_mod"},
    )
    registry = Registry()
    assert registry.search_method("method-a").name == "method-a"
    assert registry.search_method("method-b").name == "method-b"
    assert not registry.failures


def test_explicit_duplicate_names_both_distributions() -> None:
    registry = Registry(autoload=False)
    registry.register(_module("one", runners=["dup"]), distribution="one-dist", version="1")
    registry.register(_module("two", runners=["dup"]), distribution="two-dist", version="2")
    with pytest.raises(
        PluginError, match=r"runner 'dup' is registered by more than one plugin.*one-dist 1.*two-dist 2"
    ):
        registry.runner("dup")


def test_a_method_and_a_runner_may_share_a_name() -> None:
    registry = Registry(autoload=False)
    registry.register(_module("both", methods=["same"], runners=["same"]), distribution="both-dist")
    assert registry.search_method("same").name == "same"
    assert registry.runner("same").name == "same"
    assert registry.conflicts() == {}


def test_unknown_name_lists_the_names_that_exist() -> None:
    registry = Registry(autoload=False)
    registry.register(
        _module("m", methods=["asha", "grid"], runners=["local", "simulate"]), distribution="m-dist"
    )
    with pytest.raises(
        PluginError, match=r"unknown search method 'ashaa'; installed search methods: asha, grid"
    ):
        registry.search_method("ashaa")
    with pytest.raises(PluginError, match=r"unknown runner 'remote'; installed runners: local, simulate"):
        registry.runner("remote")


def test_unknown_runner_with_no_runners_installed_says_how_to_get_one() -> None:
    registry = Registry(autoload=False)
    with pytest.raises(PluginError, match=r"no runner is installed.*pip install searchkit-runners"):
        registry.runner("local")
    with pytest.raises(PluginError, match=r"unknown search method 'asha'; no search method is installed"):
        registry.search_method("asha")


def test_unknown_name_mentions_plugins_that_failed(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "half-broken",
        modules={"half_broken_mod.py": BROKEN_ON_IMPORT},
        entry_points={"halfbroken": "half_broken_mod"},
    )
    with pytest.warns(PluginLoadWarning):
        registry = Registry()
    with pytest.raises(PluginError, match=r"plugins that failed to load: halfbroken"):
        registry.search_method("whatever")


def test_environment_variable_turns_autoload_off(make_distribution, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "autoload-probe",
        modules={"autoload_probe_mod.py": method_plugin("autoload_probe_mod", "probe")},
        entry_points={"probe": "autoload_probe_mod"},
    )
    assert autoload_enabled()
    assert "probe" in Registry().names("search_method")
    monkeypatch.setenv(AUTOLOAD_DISABLE_ENV, "1")
    assert not autoload_enabled()
    registry = Registry()
    assert registry.registrations() == []
    # Explicit registration still works with autoload off.
    import autoload_probe_mod  # type: ignore[import-not-found]

    registry.register(autoload_probe_mod, name="probe-explicit")
    [registration] = registry.registrations()
    assert registration.source.distribution == "autoload-probe"  # found from the module's distribution
    monkeypatch.setenv(AUTOLOAD_DISABLE_ENV, "0")
    assert autoload_enabled()


def test_registering_the_same_plugin_twice_is_refused() -> None:
    registry = Registry(autoload=False)
    module = _module("twice", methods=["x"])
    registry.register(module, distribution="twice-dist")
    with pytest.raises(PluginError, match="already registered"):
        registry.register(module, name="again", distribution="twice-dist")


def test_hookimpl_with_a_wrong_signature_is_a_failure_not_a_crash(make_distribution) -> None:  # type: ignore[no-untyped-def]
    source = """
from searchkit_core import hookimpl

@hookimpl
def searchkit_runners(unexpected_argument):
    return []
"""
    make_distribution(
        "bad-signature",
        modules={"bad_signature_mod.py": source},
        entry_points={"badsig": "bad_signature_mod"},
    )
    with pytest.warns(PluginLoadWarning, match="badsig"):
        registry = Registry()
    [failure] = [f for f in registry.failures if f.source.plugin_name == "badsig"]
    assert "unexpected_argument" in failure.error


def test_default_registry_is_cached() -> None:
    default_registry.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginLoadWarning)
            assert default_registry() is default_registry()
    finally:
        default_registry.cache_clear()


def test_a_plugin_with_one_failing_hook_is_skipped_as_a_whole() -> None:
    module = _module("half", methods=["half-method"])

    @hookimpl
    def searchkit_runners() -> list[RunnerPlugin]:
        raise RuntimeError("runner hook broken")

    module.searchkit_runners = searchkit_runners  # type: ignore[attr-defined]
    registry = Registry(autoload=False)
    registry.register(module, distribution="half-dist", version="0.1")
    registry.register(_module("whole", methods=["whole-method"]), distribution="whole-dist")
    with pytest.warns(PluginLoadWarning, match="runner hook broken"):
        assert registry.names("search_method") == ["whole-method"]
    [failure] = registry.failures
    assert failure.source.distribution == "half-dist"
    with pytest.raises(PluginError, match="plugins that failed to load: half"):
        registry.search_method("half-method")


def test_trial_adapters_are_registrations_listed_with_their_distribution() -> None:
    from searchkit_core.cli import plugins_document
    from searchkit_core.hookspecs import TrialAdapterPlugin

    module = types.ModuleType("adapters")

    @hookimpl
    def searchkit_trial_adapters() -> list[TrialAdapterPlugin]:
        return [
            TrialAdapterPlugin(
                name="keras", summary="Keras models", base_classes=("Model",), adapt=lambda cls: None
            )
        ]

    module.searchkit_trial_adapters = searchkit_trial_adapters  # type: ignore[attr-defined]
    registry = Registry(autoload=False)
    registry.register(module, distribution="adapter-dist", version="3.1")
    [adapter] = registry.trial_adapters()
    assert adapter.name == "keras"
    [entry] = plugins_document(registry)["plugins"]
    assert (entry["name"], entry["kind"], entry["distribution"], entry["version"], entry["loaded"]) == (
        "keras",
        "trial_adapter",
        "adapter-dist",
        "3.1",
        True,
    )
