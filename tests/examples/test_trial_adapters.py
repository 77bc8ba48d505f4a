"""The trial-adapter hook: how a class entrypoint (a Determined PyTorchTrial) becomes a training function."""

from __future__ import annotations

import warnings

from searchkit_core._plugins import PluginLoadWarning, Registry
from searchkit_runners.determined import adapt_trial_class, is_pytorch_trial_class

ADAPTER_PLUGIN = """
from searchkit_core import hookimpl
from searchkit_core.hookspecs import TrialAdapterPlugin


def train_with(cls):
    def train(ctx):
        return cls
    return train


@hookimpl
def searchkit_trial_adapters():
    return [TrialAdapterPlugin(name="mine", summary="my classes", base_classes=("MyTrial",),
                               adapt=lambda cls: train_with(cls) if cls.__name__.startswith("My") else None)]
"""

BROKEN_ADAPTER_PLUGIN = """
from searchkit_core import hookimpl


@hookimpl
def searchkit_trial_adapters():
    raise RuntimeError("adapter hook exploded")
"""


def test_runners_register_the_determined_adapter() -> None:
    adapters = Registry().trial_adapters()
    determined = [a for a in adapters if a.name == "determined-pytorch"]
    assert len(determined) == 1 and determined[0].base_classes == ("PyTorchTrial",)


def test_a_plugin_adapter_is_found_and_a_broken_one_is_recorded(make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "searchkit-myadapter", modules={"my_adapter.py": ADAPTER_PLUGIN}, entry_points={"mine": "my_adapter"}
    )
    make_distribution(
        "searchkit-brokenadapter",
        modules={"broken_adapter.py": BROKEN_ADAPTER_PLUGIN},
        entry_points={"broken": "broken_adapter"},
    )
    registry = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapters = registry.trial_adapters()
    mine = [a for a in adapters if a.name == "mine"]
    assert len(mine) == 1
    my_class = type("MyTrial", (), {})
    train = mine[0].adapt(my_class)
    assert train is not None and train(None) is my_class
    assert mine[0].adapt(type("Other", (), {})) is None
    assert any("adapter hook exploded" in f.error for f in registry.failures)
    assert any(issubclass(w.category, PluginLoadWarning) for w in caught)


def test_only_pytorchtrial_subclasses_are_adapted() -> None:
    from determined import pytorch

    class NotATrial:
        pass

    assert not is_pytorch_trial_class(NotATrial) and adapt_trial_class(NotATrial) is None
    assert not is_pytorch_trial_class(pytorch.PyTorchTrial)  # the base class itself is not a trial
    assert not is_pytorch_trial_class(len)
    subclass = type("Sub", (pytorch.PyTorchTrial,), {})
    assert is_pytorch_trial_class(subclass) and callable(adapt_trial_class(subclass))
