"""The remote runner's options and the by-name commands' plumbing (no cluster needed)."""

from __future__ import annotations

import pytest

from searchkit_core.cli import main
from searchkit_core.errors import ConfigError
from searchkit_runners.remote._cluster import actor_name, resolve_address
from searchkit_runners.remote._runner import _custom_resources, _number


def test_address_comes_from_the_option_or_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert resolve_address({}) == "10.0.0.5:6379"
    assert resolve_address({"address": "10.0.0.6:7000"}) == "10.0.0.6:7000"
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ConfigError, match="needs the Ray cluster's address"):
        resolve_address({})
    for bad in ("auto", "local", "ray://10.0.0.5:10001"):
        with pytest.raises(ConfigError, match="connects only to the address it is given"):
            resolve_address({"address": bad})
    for bad in ("10.0.0.5", "10.0.0.5:0", "10.0.0.5:99999", "host:port"):
        with pytest.raises(ConfigError, match="must be HOST:PORT"):
            resolve_address({"address": bad})


def test_trial_resources_and_numbers_are_checked() -> None:
    assert _custom_resources({"trial_resources": {"node2": 0.5}}) == {"node2": 0.5}
    assert _custom_resources({"trial_resources": '{"accelerator_type:A100": 1}'}) == {
        "accelerator_type:A100": 1.0
    }
    with pytest.raises(ConfigError, match=r"trial_resources\['node2'\] must be a number > 0"):
        _custom_resources({"trial_resources": {"node2": 0}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        _custom_resources({"trial_resources": "[1, 2]"})
    assert _number({"workers": 3}, "workers", None, is_int=True) == 3
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        _number({"workers": "2.5"}, "workers", None, is_int=True)
    with pytest.raises(ConfigError, match="linger must be a positive number"):
        _number({"linger": -1}, "linger", 300.0)


def test_search_actors_are_named_after_the_experiment() -> None:
    assert actor_name("mnist-asha") == "searchkit-experiment:mnist-asha"


@pytest.mark.parametrize("command", ["attach", "cancel", "status"])
def test_runners_without_searches_by_name_refuse_by_name_commands(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "some-name", "--runner", "local"]) == 3
    err = capsys.readouterr().err
    assert "runner 'local' does not keep searches by experiment name" in err


def test_capacity_check_names_what_the_cluster_lacks() -> None:
    from searchkit_runners.remote._executor import TrialResources, check_capacity

    cluster = {"CPU": 4.0, "node2": 1.0}
    check_capacity(TrialResources(num_cpus=2.0, custom={"node2": 0.5}), cluster)
    with pytest.raises(ConfigError, match=r"1 GPU \(the cluster has 0\)"):
        check_capacity(TrialResources(num_gpus=1.0), cluster)
    with pytest.raises(ConfigError, match=r"8 CPU \(the cluster has 4\), 1 tpu \(the cluster has 0\)"):
        check_capacity(TrialResources(num_cpus=8.0, custom={"tpu": 1.0}), cluster)
