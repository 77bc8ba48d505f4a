"""searchkit's errors. Each user-facing error carries the CLI exit code documented in docs/cli.md."""

from __future__ import annotations


class SearchkitError(Exception):
    """Base class for errors searchkit reports to users as one line."""

    exit_code: int = 1


class ConfigError(SearchkitError, ValueError):
    """The experiment config (or a search space, or a method's settings) is invalid."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class PluginError(SearchkitError):
    """A plugin is unknown, broken, or two plugins claim one name."""

    exit_code = 3


class WireFormatError(SearchkitError, ValueError):
    """A persisted document cannot be read (newer version, unknown tag or field, wrong type)."""

    exit_code = 4


class StoreError(SearchkitError):
    """The experiment store is missing, corrupt, newer than this searchkit, or locked."""

    exit_code = 5


class ExperimentLockedError(StoreError):
    """Another searchkit process is driving this experiment."""

    exit_code = 6


class InvalidOperationError(SearchkitError, ValueError):
    """A search method returned an operation the engine cannot carry out."""

    exit_code = 7


class SearchMethodError(SearchkitError):
    """A search method raised while handling an event."""

    exit_code = 7


class UserCodeError(SearchkitError):
    """The model directory or the entrypoint cannot be found or is not callable."""

    exit_code = 8


class InvalidHP(Exception):  # noqa: N818 - Determined's name
    """Raise from training code: these hyperparameters are invalid (the trial exits INVALID_HP)."""
