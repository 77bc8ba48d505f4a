"""The ``local`` runner: the search loop in this process, trials in warm worker processes on this machine."""

from __future__ import annotations

import os
import signal
import sys
import types
from collections.abc import Mapping
from typing import Any

from searchkit_core._display import make_display
from searchkit_core._session import drive, open_experiment
from searchkit_core._usercode import check_entrypoint
from searchkit_core.errors import ConfigError
from searchkit_core.hookspecs import RunRequest
from searchkit_runners._signals import SignalCatcher
from searchkit_runners.local._executor import DEFAULT_GRACE_PERIOD, LocalExecutor
from searchkit_runners.local._gpus import device_groups, visible_gpus

#: Exit codes of a search stopped by a signal (the shell's 128 + signal number).
EXIT_STOPPED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopSignals(SignalCatcher):
    """SIGINT/SIGTERM ask the search to stop cleanly; a second one stops at once (KeyboardInterrupt).

    Handlers are installed only in the main thread (Python allows no other) and
    restored on exit.
    """

    def is_set(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        print(
            f"\nsearchkit: {self.received.name} received: stopping trials at their next report "
            "(again to stop at once); `searchkit resume` continues the search",
            file=sys.stderr,
            flush=True,
        )


def _positive_int(options: Mapping[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"runner option {key} must be a positive integer, got {value!r}") from None
    if number < 1 or str(number) != str(value).strip():
        raise ConfigError(f"runner option {key} must be a positive integer, got {value!r}")
    return number


def _positive_float(options: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = options.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"runner option {key} must be a number of seconds, got {value!r}") from None
    if not number > 0:
        raise ConfigError(f"runner option {key} must be a positive number of seconds, got {value!r}")
    return number


#: The local runner's options (``searchkit run --runner local --NAME=VALUE``); see docs/cli.md.
KNOWN_OPTIONS = ("workers", "trial_timeout", "grace_period", "plain", "storage_path")


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse unknown or malformed runner options, naming the option (``searchkit run`` preflight)."""
    unknown = sorted(set(options) - set(KNOWN_OPTIONS))
    if unknown:
        hint = " (--address is for --runner remote)" if "address" in unknown else ""
        raise ConfigError(
            f"unknown option(s) for the local runner: {', '.join(unknown)}{hint} "
            f"(known: {', '.join(KNOWN_OPTIONS)})"
        )
    _positive_int(options, "workers")
    _positive_float(options, "trial_timeout", None)
    _positive_float(options, "grace_period", None)
    if not isinstance(options.get("plain", False), bool):
        raise ConfigError(f"runner option plain is a flag (--plain), got {options['plain']!r}")


def plan_slots(
    slots_per_trial: int, workers: int | None, environ: Mapping[str, str] | None = None
) -> tuple[int, list[str] | None]:
    """How many trials run at once, and each one's ``CUDA_VISIBLE_DEVICES`` when trials use GPUs.

    Without GPUs (``slots_per_trial: 0``): ``workers`` or one per CPU core.
    With ``slots_per_trial: N``: one trial per N visible GPUs (at most
    ``workers``); no GPU, or fewer than N, is a configuration error.
    """
    if slots_per_trial <= 0:
        return (workers or os.cpu_count() or 1), None
    gpus = visible_gpus(environ)
    groups = device_groups(gpus, slots_per_trial)
    if not groups:
        raise ConfigError(
            f"resources.slots_per_trial is {slots_per_trial} but this machine shows {len(gpus)} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES / nvidia-smi -L); set slots_per_trial: 0 to train on the CPU"
        )
    if workers is not None:
        groups = groups[:workers]
    return len(groups), groups


class LocalRunner:
    """Runs an experiment's trials in worker processes on this machine (``--runner local``).

    Options (``RunRequest.options``): ``workers`` (trials at once; default one
    per CPU core, or one per ``slots_per_trial`` GPUs), ``trial_timeout``
    (seconds one segment may take; overrides the config), ``grace_period``
    (seconds a stopping trial gets before it is killed, default 10).
    """

    def run(self, request: RunRequest) -> int:
        info = open_experiment(request.experiment_dir)
        config = info.config
        model_dir = request.model_dir if request.model_dir is not None else info.model_dir
        options = dict(request.options)
        check_options(options)
        check_entrypoint(model_dir, config.entrypoint)
        workers = _positive_int(options, "workers")
        count, groups = plan_slots(int(config.resources.slots_per_trial), workers)
        executor = LocalExecutor(
            info.experiment_dir,
            entrypoint=config.entrypoint,
            model_dir=model_dir,
            metric=str(config.searcher.get("metric", "metric")),
            data=config.data,
            workers=count if groups is None else None,
            device_groups=groups,
            trial_timeout=_positive_float(options, "trial_timeout", config.trial_timeout),
            grace_period=_positive_float(options, "grace_period", DEFAULT_GRACE_PERIOD)
            or DEFAULT_GRACE_PERIOD,
        )
        stop = StopSignals()
        display = make_display(force_plain=bool(options.get("plain")))
        try:
            if not request.is_resume:
                executor.warm_up()  # training code that cannot be imported: an error before any decision
            with stop, display:
                outcome = drive(info.experiment_dir, executor, observer=display, should_stop=stop.is_set)
        except KeyboardInterrupt:
            executor.grace_period = 0.0  # a second Ctrl-C: stop now, trials resume from their checkpoints
            raise
        finally:
            executor.shutdown(cancel=True)
        if outcome.status == "stopped" and stop.received is not None:
            return EXIT_STOPPED.get(stop.received, 130)
        return 0
