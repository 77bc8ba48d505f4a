"""Determined ``PyTorchTrial`` classes as searchkit trials (the ``searchkit-runners[determined]`` extra).

With ``entrypoint: model_def:MNistTrial`` naming a subclass of
``determined.pytorch.PyTorchTrial``, every runner trains it through
:func:`run_pytorch_trial`: each ``ValidateAfter(length)`` trains to ``length``
batches, validates, and stores a checkpoint that is a searchkit checkpoint, so a
promoted trial resumes from it. ``trial_function(MNistTrial)`` gives the same as a
plain training function, for code that wants ``entrypoint: model_def:train``.

Importing this package does not import ``determined`` (or torch): that happens
only when a PyTorchTrial runs, so the runners work without the extra installed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

#: Lengths of a PyTorchTrial search are batches (``max_length: {batches: N}``).
SUPPORTED_UNIT = "batches"

_EXTRA_HINT = "install it with `pip install 'searchkit-runners[determined]'`"


def is_pytorch_trial_class(obj: object) -> bool:
    """Whether ``obj`` is a subclass of ``determined.pytorch.PyTorchTrial`` (checked without importing determined)."""
    if not inspect.isclass(obj):
        return False
    return any(
        base.__name__ == "PyTorchTrial" and base.__module__.startswith("determined.pytorch")
        for base in inspect.getmro(obj)[1:]
    )


def run_pytorch_trial(trial_class: type, ctx: Any) -> None:
    """Train the PyTorchTrial ``trial_class`` for every operation the trial context ``ctx`` hands out."""
    try:
        from searchkit_runners.determined._bridge import run_pytorch_trial as run
    except ImportError as exc:
        raise ImportError(
            f"running a Determined PyTorchTrial needs the determined package ({exc}); {_EXTRA_HINT}"
        ) from exc
    run(trial_class, ctx)


def trial_function(trial_class: type) -> Callable[[Any], None]:
    """A searchkit training function ``train(ctx)`` that runs the PyTorchTrial ``trial_class``."""
    if not is_pytorch_trial_class(trial_class):
        raise TypeError(f"{trial_class!r} is not a subclass of determined.pytorch.PyTorchTrial")

    def train(ctx: Any) -> None:
        run_pytorch_trial(trial_class, ctx)

    train.__name__ = train.__qualname__ = f"train_{trial_class.__name__}"
    train.__doc__ = f"Runs the Determined PyTorchTrial {trial_class.__module__}.{trial_class.__qualname__}."
    return train


def adapt_trial_class(obj: object) -> Callable[[Any], None] | None:
    """The trial-adapter hook: a training function for a PyTorchTrial class, ``None`` for anything else."""
    return trial_function(obj) if is_pytorch_trial_class(obj) else None  # type: ignore[arg-type]


__all__ = ["adapt_trial_class", "is_pytorch_trial_class", "run_pytorch_trial", "trial_function"]
