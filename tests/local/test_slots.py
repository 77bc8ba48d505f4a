"""How many trials run at once, and which GPUs each worker gets, without importing torch."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from searchkit_core.errors import ConfigError
from searchkit_runners.local import plan_slots
from searchkit_runners.local._gpus import device_groups, visible_gpus
from searchkit_runners.local._runner import _positive_float, _positive_int


def test_cuda_visible_devices_decides_which_gpus_exist() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,3"}) == ["0", "1", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}) == ["GPU-aa", "GPU-bb"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,-1,3"}) == ["2"]  # CUDA stops at the first invalid id


def test_nvidia_smi_is_asked_when_cuda_visible_devices_is_unset(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real executable named nvidia-smi on PATH, printing what the real one prints for 3 GPUs with MIG.
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\n"
        "echo '  MIG 1g.10gb Device 0: (UUID: MIG-x)'\n"
        "echo 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n"
        "echo 'GPU 2: NVIDIA H100 (UUID: GPU-c)'\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert visible_gpus({}) == ["0", "1", "2"]
    smi.write_text("#!/bin/sh\nexit 9\n")
    assert visible_gpus({}) == []  # a failing nvidia-smi means no usable GPU


def test_device_groups_split_gpus_per_trial() -> None:
    assert device_groups(["0", "1", "2", "3"], 2) == ["0,1", "2,3"]
    assert device_groups(["0", "1", "2"], 2) == ["0,1"]  # the leftover GPU stays unused
    assert device_groups(["0", "1", "2"], 1) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="at least 1"):
        device_groups(["0"], 0)


def test_plan_slots() -> None:
    assert plan_slots(0, 3) == (3, None)
    assert plan_slots(0, None) == (os.cpu_count() or 1, None)
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert plan_slots(1, None, env) == (4, ["0", "1", "2", "3"])
    assert plan_slots(2, None, env) == (2, ["0,1", "2,3"])
    assert plan_slots(1, 3, env) == (3, ["0", "1", "2"])  # --workers caps the GPU workers
    with pytest.raises(ConfigError, match="slots_per_trial is 4 but this machine shows 2 GPU"):
        plan_slots(4, None, {"CUDA_VISIBLE_DEVICES": "0,1"})


def test_runner_options_are_checked() -> None:
    assert _positive_int({"workers": "3"}, "workers") == 3
    assert _positive_int({}, "workers") is None
    for bad in ("0", "-2", "two", "2.5"):
        with pytest.raises(ConfigError, match="workers must be a positive integer"):
            _positive_int({"workers": bad}, "workers")
    assert _positive_float({"trial_timeout": "2.5"}, "trial_timeout", None) == 2.5
    assert _positive_float({}, "trial_timeout", 7.0) == 7.0
    with pytest.raises(ConfigError, match="trial_timeout must be a positive number"):
        _positive_float({"trial_timeout": "0"}, "trial_timeout", None)
