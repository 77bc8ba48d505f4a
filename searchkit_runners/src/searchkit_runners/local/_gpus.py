"""Which GPUs this machine has, found without importing torch in the searchkit process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPU ids trials may use: ``CUDA_VISIBLE_DEVICES`` if set, else the GPUs ``nvidia-smi -L`` lists.

    An empty ``CUDA_VISIBLE_DEVICES`` (or ``-1``) means no GPU, as for CUDA itself.
    """
    env = os.environ if environ is None else environ
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids: list[str] = []
        for item in listed.split(","):
            item = item.strip()
            if not item or item.startswith("-"):
                break  # CUDA ignores everything from the first invalid entry on
            ids.append(item)
        return ids
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    gpus = [line for line in result.stdout.splitlines() if line.startswith("GPU ")]
    return [str(i) for i in range(len(gpus))]


def device_groups(gpus: Sequence[str], slots_per_trial: int) -> list[str]:
    """Split ``gpus`` into groups of ``slots_per_trial``, one ``CUDA_VISIBLE_DEVICES`` value per group.

    Leftover GPUs that do not fill a group stay unused.
    """
    if slots_per_trial < 1:
        raise ValueError(f"slots_per_trial must be at least 1 to group GPUs, got {slots_per_trial}")
    count = len(gpus) // slots_per_trial
    return [",".join(gpus[i * slots_per_trial : (i + 1) * slots_per_trial]) for i in range(count)]
