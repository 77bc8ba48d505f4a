"""The ``searchkit`` command line: plugins, run, resume, status (and attach, cancel for remote searches).

Every command finds search methods and runners through the plugin registry
(entry-point group ``searchkit``). A user error (any :class:`SearchkitError`) prints
one line, ``searchkit: error: <message>``, to stderr and exits with the error's
exit code (docs/cli.md); set ``SEARCHKIT_DEBUG=1`` to see the traceback instead.
Ctrl-C exits with 130.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, TextIO

import attrs
import typer
import yaml

from searchkit_core._plugins import PluginLoadWarning, Registry, default_registry
from searchkit_core.errors import ConfigError, PluginError, SearchkitError, UserCodeError
from searchkit_core.hookspecs import RunnerPlugin, RunRequest

DEBUG_ENV = "SEARCHKIT_DEBUG"
EXIT_INTERRUPTED = 130
#: The version of the ``searchkit plugins --json`` document (docs/cli.md).
PLUGINS_FORMAT_VERSION = 1
DEFAULT_RUNNER = "local"
DEFAULT_EXPERIMENTS_DIR = pathlib.Path("experiments")

app = typer.Typer(
    name="searchkit",
    help="Run hyperparameter search methods (ASHA, or your own) against your training code.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@attrs.define
class _CliState:
    """What the commands share: the registry (injected by tests, else the cached default)."""

    registry: Registry | None = None

    def get_registry(self) -> Registry:
        if self.registry is None:
            self.registry = default_registry()
        return self.registry


def _state(ctx: typer.Context) -> _CliState:
    state = ctx.find_root().obj
    if not isinstance(state, _CliState):
        state = _CliState()
        ctx.find_root().obj = state
    return state


def _version_callback(value: bool) -> None:
    if value:
        from searchkit_core import __version__

        typer.echo(f"searchkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print searchkit's version and exit.", callback=_version_callback, is_eager=True
        ),
    ] = False,
) -> None:
    """searchkit: hyperparameter search with promotion-based ASHA and custom search methods."""


# -- plugins -------------------------------------------------------------------------------


def plugins_document(registry: Registry) -> dict[str, Any]:
    """The ``searchkit plugins --json`` document (format documented in docs/cli.md)."""
    conflicts = registry.conflicts()
    entries: list[dict[str, Any]] = []
    for registration in registry.registrations():
        claimants = conflicts.get((registration.kind, registration.name), [])
        others = [c for c in claimants if c is not registration]
        error = None
        if others:
            error = "name also registered by " + ", ".join(
                f"{c.source.distribution or c.source.plugin_name}" for c in others
            )
        entries.append(
            {
                "name": registration.name,
                "kind": registration.kind,
                "distribution": registration.source.distribution,
                "version": registration.source.version,
                "summary": registration.summary,
                "plugin": registration.source.plugin_name,
                "entry_point": registration.source.entry_point,
                "loaded": error is None,
                "error": error,
            }
        )
    for failure in registry.failures:
        entries.append(
            {
                "name": failure.source.plugin_name,
                "kind": "plugin",
                "distribution": failure.source.distribution,
                "version": failure.source.version,
                "summary": None,
                "plugin": failure.source.plugin_name,
                "entry_point": failure.source.entry_point,
                "loaded": False,
                "error": failure.error,
            }
        )
    return {"format_version": PLUGINS_FORMAT_VERSION, "type": "PluginList", "plugins": entries}


@app.command()
def plugins(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document for scripts.")] = False,
) -> int:
    """List every search method and runner: name, kind, distribution, version, and whether it loaded."""
    registry = _state(ctx).get_registry()
    document = plugins_document(registry)
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        for failure in registry.failures:  # the whole story, for plugin authors
            print(f"searchkit: plugin {failure.source.plugin_name!r}:\n{failure.details}", file=sys.stderr)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal:
        # Piped or captured output has no width to respect: never cut a name to fit 80 columns.
        console = Console(soft_wrap=False, highlight=False, width=200)
    if not document["plugins"]:
        console.print("no searchkit plugins are installed (pip install searchkit-asha searchkit-runners)")
        return 0
    # On a narrow terminal the summaries go below the table, so that no column is ever cut.
    is_wide = console.width >= 110
    table = Table(title="searchkit plugins", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("name", "kind", "distribution", "version", "status"):
        table.add_column(column, no_wrap=True)
    if is_wide:
        table.add_column("summary", overflow="fold")
    problems: list[str] = []
    summaries: list[str] = []
    for entry in document["plugins"]:
        status = "loaded"
        if not entry["loaded"]:
            status = "NOT LOADED"
            origin = entry["distribution"] or "no distribution"
            if entry["version"]:
                origin += f" {entry['version']}"
            problems.append(f"{entry['name']} ({origin}): {entry['error']}")
        elif entry["summary"]:
            summaries.append(f"{entry['name']}: {entry['summary']}")
        cells = [entry["name"], entry["kind"].replace("_", " "), entry["distribution"] or "-"]
        cells += [entry["version"] or "-", status]
        # Text, not markup: "[remote]" in a summary is an extra's name, not a style.
        table.add_row(*(Text(cell) for cell in [*cells, *([entry["summary"] or ""] if is_wide else [])]))
    console.print(table)
    for line in [] if is_wide else summaries:
        console.print(line, markup=False, soft_wrap=True)
    for problem in problems:
        console.print(f"not loaded: {problem}", markup=False, soft_wrap=True)
    return 0


# -- run / resume --------------------------------------------------------------------------

_RUNNER_OPTIONS_HELP = (
    "Options this command does not know are passed to the runner as --name=value "
    "(value read as a YAML scalar), e.g. --gpus-per-trial=1."
)


def _parse_assignment(text: str, *, what: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise typer.BadParameter(f"{what} {text!r} must be written NAME=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _extra_runner_options(extra: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for token in extra:
        if not token.startswith("--") or token == "--":
            raise typer.BadParameter(
                f"unexpected argument {token!r}; options for the runner must be written --name=value"
            )
        body = token[2:]
        if "=" in body:
            key, value = _parse_assignment(body, what="runner option")
        else:
            key, value = body, True
        options[key.replace("-", "_")] = value
    return options


def _runner_options(
    extra: Sequence[str],
    *,
    workers: int | None = None,
    address: str | None = None,
    storage_path: pathlib.Path | None = None,
) -> dict[str, Any]:
    options = _extra_runner_options(extra)
    known = {
        "workers": workers,
        "address": address,
        "storage_path": str(storage_path) if storage_path is not None else None,
    }
    options.update({key: value for key, value in known.items() if value is not None})
    return options


def _resolve_runner(registry: Registry, name: str) -> RunnerPlugin:
    if not registry.names("runner"):
        raise PluginError(
            f"no runner is installed, so runner {name!r} cannot run this experiment; "
            "install the standard runners with `pip install searchkit-runners`"
        )
    return registry.runner(name)


def _method_validator(
    registry: Registry, config: pathlib.Path, searcher_override: str | None
) -> Callable[[Mapping[str, Any]], list[str]] | None:
    """The chosen method's ``validate``, so that its problems come with the config's own.

    An unknown method name is a PluginError listing the installed methods; a
    missing or malformed name is left to the config check, which names the key.
    """
    from searchkit_core import _config

    name = searcher_override
    if name is None:
        raw = _config.parse_yaml(_config.read_config_text(config), str(config))
        section = raw.get("searcher") if isinstance(raw, Mapping) else None
        name = section.get("name") if isinstance(section, Mapping) else None
    if not isinstance(name, str) or not name:
        return None
    return registry.search_method(name).validate


# Options that `run` and `resume` share.
_WorkersOption = Annotated[
    int | None, typer.Option("--workers", metavar="N", min=1, help="Trials run at a time.")
]
_AddressOption = Annotated[
    str | None, typer.Option("--address", metavar="ADDRESS", help="Cluster address (remote runner).")
]
_StoragePathOption = Annotated[
    pathlib.Path | None,
    typer.Option("--storage-path", metavar="PATH", help="Storage every node reaches (remote runner)."),
]
_TrialTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--trial-timeout",
        metavar="SECONDS",
        help="Seconds a trial segment may run; overrides the config's trial_timeout.",
    ),
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=_RUNNER_OPTIONS_HELP,
)
def run(
    ctx: typer.Context,
    config: Annotated[pathlib.Path, typer.Argument(help="The experiment config (YAML).", metavar="CONFIG")],
    model_dir: Annotated[
        pathlib.Path | None,
        typer.Argument(
            help="The directory holding the training code (default: the config's directory).",
            metavar="MODEL_DIR",
        ),
    ] = None,
    searcher: Annotated[
        str | None,
        typer.Option("--searcher", metavar="NAME", help="Search method name; overrides searcher.name."),
    ] = None,
    runner: Annotated[
        str, typer.Option("--runner", metavar="NAME", help="Runner name (see `searchkit plugins`).")
    ] = DEFAULT_RUNNER,
    workers: _WorkersOption = None,
    experiment_dir: Annotated[
        pathlib.Path | None,
        typer.Option(
            "--experiment-dir",
            metavar="DIR",
            help="Where the experiment lives (default: ./experiments/<config name>).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="S", help="Experiment seed; overrides the config's seed.")
    ] = None,
    address: _AddressOption = None,
    storage_path: _StoragePathOption = None,
    trial_timeout: _TrialTimeoutOption = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config key: --set searcher.max_trials=8 (repeatable).",
        ),
    ] = None,
) -> int:
    """Start a new experiment from CONFIG and run it to its end with the chosen runner."""
    registry = _state(ctx).get_registry()
    extra = list(ctx.args)
    if model_dir is not None and str(model_dir).startswith("-"):
        # click hands an unknown --name=value to the optional MODEL_DIR argument first.
        extra.insert(0, str(model_dir))
        model_dir = None
    if not config.is_file():
        problem = "is not a file" if config.exists() else "does not exist"
        raise ConfigError(f"config file {str(config)!r} {problem}")
    if model_dir is not None and not model_dir.is_dir():
        raise UserCodeError(f"model directory {str(model_dir)!r} does not exist or is not a directory")
    runner_options = _runner_options(extra, workers=workers, address=address, storage_path=storage_path)
    config_overrides: dict[str, Any] = dict(_parse_assignment(item, what="--set") for item in overrides or [])
    for key, value in (("searcher.name", searcher), ("seed", seed), ("trial_timeout", trial_timeout)):
        if value is not None:
            config_overrides[key] = value
    # The runner first: it needs no config, and "none installed" is the commonest first-run problem.
    runner_plugin = _resolve_runner(registry, runner)
    from searchkit_core import _config, _session

    named = config_overrides.get("searcher.name")
    validate = _method_validator(registry, config, named if isinstance(named, str) else None)
    loaded = _config.load_config(config, config_overrides, validate)
    resolved_model_dir = (model_dir if model_dir is not None else config.parent).resolve()
    from searchkit_core._usercode import check_entrypoint

    if runner_plugin.needs_user_code:
        check_entrypoint(resolved_model_dir, loaded.entrypoint)  # before anything is stored
    if runner_plugin.preflight is not None:
        runner_plugin.preflight(runner_options)
    # --storage-path (remote runner): experiments live where every cluster node reaches them.
    experiments_root = storage_path if storage_path is not None else DEFAULT_EXPERIMENTS_DIR
    target = experiment_dir if experiment_dir is not None else experiments_root / loaded.name
    existed = target.exists()
    created = _session.create_experiment(
        loaded,
        experiment_dir=target,
        model_dir=resolved_model_dir,
        runner=runner,
        runner_options=runner_options,
        config_text=_config.read_config_text(config),
    )
    _note(f"experiment {loaded.name!r} in {created} (searcher {loaded.searcher['name']}, runner {runner})")
    request = RunRequest(
        experiment_dir=target.resolve(),
        model_dir=resolved_model_dir,
        is_resume=False,
        options=runner_options,
    )
    try:
        code = runner_plugin.factory().run(request)
    except SearchkitError:
        # A mistake found once the runner started (training code that does not import, say):
        # an experiment in which nothing was decided is not kept, so fixing it and running the
        # same command again works.
        _session.discard_unstarted(created, existed=existed)
        raise
    return _finish(code)


def _note(message: str) -> None:
    """A progress line for people, on stderr so that stdout stays clean for scripts."""
    print(f"searchkit: {message}", file=sys.stderr, flush=True)


def _recorded_runner_options(meta: Mapping[str, str]) -> dict[str, Any]:
    try:
        recorded = json.loads(meta.get("runner_options") or "{}")
    except json.JSONDecodeError:
        return {}
    return dict(recorded) if isinstance(recorded, dict) else {}


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=_RUNNER_OPTIONS_HELP,
)
def resume(
    ctx: typer.Context,
    experiment_dir: Annotated[
        pathlib.Path, typer.Argument(help="The experiment directory to resume.", metavar="EXPERIMENT_DIR")
    ],
    runner: Annotated[
        str | None,
        typer.Option(
            "--runner", metavar="NAME", help="Runner name (default: the one the experiment ran with)."
        ),
    ] = None,
    workers: _WorkersOption = None,
    address: _AddressOption = None,
    storage_path: _StoragePathOption = None,
    trial_timeout: _TrialTimeoutOption = None,
) -> int:
    """Continue a stopped or crashed experiment where it left off; no decision is repeated."""
    from searchkit_core import _session

    registry = _state(ctx).get_registry()
    runner_options = _runner_options(ctx.args, workers=workers, address=address, storage_path=storage_path)
    if trial_timeout is not None:
        runner_options["trial_timeout"] = trial_timeout
    experiment = _session.open_experiment(experiment_dir)
    runner_name = runner or experiment.runner or DEFAULT_RUNNER
    runner_plugin = _resolve_runner(registry, runner_name)
    # The options the experiment was started with, then what this command line changes.
    options = _recorded_runner_options(experiment.meta)
    options.update(runner_options)
    _note(f"resuming {experiment.experiment_dir} (runner {runner_name})")
    request = RunRequest(
        experiment_dir=experiment.experiment_dir,
        model_dir=experiment.model_dir,
        is_resume=True,
        options=options,
    )
    return _finish(runner_plugin.factory().run(request))


def _finish(exit_code: int) -> int:
    if exit_code:
        raise typer.Exit(int(exit_code))
    return 0


# -- status --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def render_status(status: Mapping[str, Any], out: TextIO | None = None) -> None:
    """Print a status document (``_status.collect``): a summary, a table of trials, the best trial."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out or sys.stdout, soft_wrap=False, highlight=False)

    def say(text: str) -> None:
        console.print(text, markup=False)

    metric = str(status.get("metric", "metric"))
    direction = "smaller is better" if status.get("smaller_is_better", True) else "larger is better"
    say(f"experiment: {status.get('name', '')}  ({status.get('experiment_dir', '')})")
    say(
        f"searcher: {status.get('searcher', '')}  runner: {status.get('runner', '')}  "
        f"status: {status.get('status', '')}  metric: {metric} ({direction})"
    )
    driver = status.get("driver")
    if isinstance(driver, Mapping):
        alive = {True: "running", False: "not running", None: "unknown"}[driver.get("is_alive")]
        say(f"driven by: pid {driver.get('pid')} on {driver.get('host')} ({alive})")
    counts = status.get("counts") or {}
    if isinstance(counts, Mapping):
        nonzero = ", ".join(f"{state.lower()} {n}" for state, n in counts.items() if n)
        say(f"trials: {nonzero or 'none yet'}; events: {status.get('events', 0)}")

    trials = status.get("trials") or []
    if trials:
        # Narrow enough for 80 columns: the target shares a cell with what was trained
        # ("32>128" while training towards 128), restarts appear only when there were any.
        has_restarts = any(trial.get("restarts") for trial in trials)
        columns = ["trial", "request", "state", "rung", "trained", "metric"] + (
            ["restarts"] if has_restarts else []
        )
        table = Table(
            title=Text(f"trials (metric: {metric})"), box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False
        )
        for column in columns:
            table.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
        # Hyperparameters every trial shares are said once, above the table.
        hparams = [
            trial.get("hparams") if isinstance(trial.get("hparams"), Mapping) else {} for trial in trials
        ]
        names = list(dict.fromkeys(name for h in hparams for name in h))
        shared = {
            n: hparams[0][n] for n in names if all(n in h and h[n] == hparams[0].get(n) for h in hparams)
        }
        if shared and len(trials) > 1:
            say(f"hyperparameters of every trial: {_cell(shared)}")
        else:
            shared = {}
        table.add_column("hyperparameters", min_width=24, overflow="fold")
        for trial, trial_hparams in zip(trials, hparams, strict=True):
            trained = _cell(trial.get("trained"))
            if trial.get("target") is not None:
                trained += f">{_cell(trial.get('target'))}"
            cells = {
                "trial": _cell(trial.get("trial_id")),
                # The request id's first 8 characters, as in trial logs; --json has it whole.
                "request": _cell(trial.get("request_id"))[:8],
                "state": _cell(trial.get("state")),
                "rung": _cell(trial.get("rung")),
                "trained": trained,
                "metric": _cell(trial.get("last_metric")),
                "restarts": _cell(trial.get("restarts")),
            }
            varying = {name: value for name, value in trial_hparams.items() if name not in shared}
            table.add_row(*(Text(cells[column]) for column in columns), Text(_cell(varying)))
        console.print(table)
        for trial in trials:
            if trial.get("error"):
                say(f"trial {trial.get('trial_id')}: {trial['error']}")
    best = status.get("best_trial")
    if isinstance(best, Mapping):
        say(
            f"best trial: {best.get('trial_id')}  {metric}={_cell(best.get('metric'))} "
            f"at length {best.get('length')}  hyperparameters: {_cell(best.get('hparams'))}"
        )
    else:
        say("best trial: none yet (no validation reported)")


@app.command()
def status(
    ctx: typer.Context,
    experiment_dir: Annotated[
        pathlib.Path,
        typer.Argument(
            help="The experiment directory (with --address: the experiment's name on the cluster).",
            metavar="EXPERIMENT_DIR",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status document (docs/cli.md).")] = False,
    address: Annotated[
        str | None,
        typer.Option("--address", metavar="ADDRESS", help="Ask the cluster at ADDRESS by experiment name."),
    ] = None,
    runner: Annotated[
        str | None,
        typer.Option("--runner", metavar="NAME", help="The runner that knows the name (default: remote)."),
    ] = None,
) -> int:
    """Show an experiment's trials, their rungs and metrics, and the best trial (safe while it runs)."""
    from searchkit_core import _status

    if address is not None or runner is not None:
        plugin = _by_name_runner(ctx, runner, "status")
        assert plugin.status is not None
        document = plugin.status(str(experiment_dir), _by_name_options(address))
    else:
        document = _status.collect(experiment_dir)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        render_status(document)
    return 0


# -- searches that outlive the client (remote runner): by experiment name ---------------------

DEFAULT_BY_NAME_RUNNER = "remote"


def _by_name_runner(ctx: typer.Context, name: str | None, what: str) -> RunnerPlugin:
    plugin = _resolve_runner(_state(ctx).get_registry(), name or DEFAULT_BY_NAME_RUNNER)
    if getattr(plugin, what, None) is None:
        raise PluginError(
            f"runner {plugin.name!r} does not keep searches by experiment name, so `{what}` by name "
            "is not available with it (use the experiment directory)"
        )
    return plugin


def _by_name_options(address: str | None, extra: Sequence[str] = ()) -> dict[str, Any]:
    options = _extra_runner_options(extra)
    if address is not None:
        options["address"] = address
    return options


_NAME_ARGUMENT = typer.Argument(help="The experiment's name (config `name:`).", metavar="NAME")
_ADDRESS_OPTION = typer.Option(
    "--address", metavar="ADDRESS", help="The cluster's address (default: RAY_ADDRESS)."
)
_BY_NAME_RUNNER_OPTION = typer.Option("--runner", metavar="NAME", help="The runner (default: remote).")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def attach(
    ctx: typer.Context,
    name: Annotated[str, _NAME_ARGUMENT],
    address: Annotated[str | None, _ADDRESS_OPTION] = None,
    runner: Annotated[str | None, _BY_NAME_RUNNER_OPTION] = None,
) -> int:
    """Follow a search that runs on a cluster until it ends (Ctrl-C detaches again)."""
    plugin = _by_name_runner(ctx, runner, "attach")
    assert plugin.attach is not None
    return _finish(plugin.attach(name, _by_name_options(address, ctx.args)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def cancel(
    ctx: typer.Context,
    name: Annotated[str, _NAME_ARGUMENT],
    address: Annotated[str | None, _ADDRESS_OPTION] = None,
    runner: Annotated[str | None, _BY_NAME_RUNNER_OPTION] = None,
) -> int:
    """Stop a search that runs on a cluster; its experiment directory stays resumable."""
    plugin = _by_name_runner(ctx, runner, "cancel")
    assert plugin.cancel is not None
    return _finish(plugin.cancel(name, _by_name_options(address, ctx.args)))


# -- entry point ---------------------------------------------------------------------------


def _error_line(message: str) -> str:
    return "searchkit: error: " + " ".join(message.split())


@contextlib.contextmanager
def _plugin_warnings_as_lines() -> Iterator[None]:
    """Show plugin warnings as ``searchkit: warning: ...`` lines, not Python warning blocks.

    Plugin load failures, and the ``UserWarning`` subclasses a plugin's own code
    issues (ASHA using fewer rungs than asked, say): each once per command.
    """
    with warnings.catch_warnings():
        original = warnings.showwarning
        shown: set[str] = set()

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            is_plugins = issubclass(category, UserWarning) and category.__module__.startswith("searchkit")
            if issubclass(category, PluginLoadWarning) or is_plugins:
                if str(message) not in shown:
                    shown.add(str(message))
                    print(f"searchkit: warning: {message}", file=sys.stderr)
            else:
                original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") convention
    return 1


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it).

    ``registry`` replaces the entry-point registry (tests register plugins explicitly).
    """
    is_debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        with _plugin_warnings_as_lines():
            # standalone mode: typer reports usage errors (exit 2) and turns Ctrl-C into exit 130
            app(
                args=list(argv) if argv is not None else None,
                prog_name="searchkit",
                standalone_mode=True,
                obj=_CliState(registry),
            )
    except SystemExit as exit_:
        return _exit_code(exit_.code)
    except SearchkitError as error:
        if is_debug:
            raise
        print(_error_line(str(error) or type(error).__name__), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("searchkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
