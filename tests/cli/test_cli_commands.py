"""The ``searchkit`` CLI: plugins, run, resume, errors as one line with documented exit codes."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest
import typer
from plugin_sources import BROKEN_ON_IMPORT, method_plugin, runner_plugin

from searchkit_core._plugins import AUTOLOAD_DISABLE_ENV, PluginLoadWarning, Registry
from searchkit_core.cli import _runner_options, main

PLUGIN_ENTRY_KEYS = {
    "name",
    "kind",
    "distribution",
    "version",
    "summary",
    "plugin",
    "entry_point",
    "loaded",
    "error",
}


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_DISABLE_ENV, raising=False)
    monkeypatch.delenv("SEARCHKIT_DEBUG", raising=False)
    monkeypatch.delenv("TEST_RUNNER_BEHAVIOUR", raising=False)


@pytest.fixture
def site(make_distribution) -> pathlib.Path:  # type: ignore[no-untyped-def]
    """A site-packages with a search method ``tiny-random`` and a runner ``recording``."""
    make_distribution(
        "tiny-method",
        "0.3.0",
        modules={"tiny_method_mod.py": method_plugin("tiny_method_mod", "tiny-random", "tiny random search")},
        entry_points={"tiny": "tiny_method_mod"},
    )
    return make_distribution(  # type: ignore[no-any-return]
        "recording-runner",
        "0.2.0",
        modules={
            "recording_runner_mod.py": runner_plugin("recording_runner_mod", "recording", "records requests")
        },
        entry_points={"recording": "recording_runner_mod"},
    )


def _run(
    argv: list[str], registry: Registry | None, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = main(argv, registry=registry)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_error_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("searchkit: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- plugins ---------------------------------------------------------------------------------


def test_plugins_json_lists_methods_runners_and_broken_plugins(  # type: ignore[no-untyped-def]
    site, make_distribution, capsys
) -> None:
    make_distribution(
        "broken-dist",
        "6.6",
        modules={"broken_cli_mod.py": BROKEN_ON_IMPORT},
        entry_points={"broken": "broken_cli_mod"},
    )
    with pytest.warns(PluginLoadWarning):
        registry = Registry()
    code, out, _ = _run(["plugins", "--json"], registry, capsys)
    assert code == 0
    document = json.loads(out)
    assert document["format_version"] == 1 and document["type"] == "PluginList"
    for entry in document["plugins"]:
        assert set(entry) == PLUGIN_ENTRY_KEYS
    by_name = {entry["name"]: entry for entry in document["plugins"]}
    assert by_name["tiny-random"] == {
        "name": "tiny-random",
        "kind": "search_method",
        "distribution": "tiny-method",
        "version": "0.3.0",
        "summary": "tiny random search",
        "plugin": "tiny",
        "entry_point": "tiny = tiny_method_mod",
        "loaded": True,
        "error": None,
    }
    assert by_name["recording"]["kind"] == "runner" and by_name["recording"]["loaded"] is True
    broken = by_name["broken"]
    assert broken["kind"] == "plugin" and broken["loaded"] is False
    assert broken["distribution"] == "broken-dist" and broken["version"] == "6.6"
    assert broken["error"] == "RuntimeError: this plugin is broken on purpose"


def test_plugins_table_shows_load_errors(site, make_distribution, capsys) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "broken-table",
        modules={"broken_table_mod.py": BROKEN_ON_IMPORT},
        entry_points={"brokentable": "broken_table_mod"},
    )
    with pytest.warns(PluginLoadWarning):
        registry = Registry()
    code, out, _ = _run(["plugins"], registry, capsys)
    assert code == 0
    assert "tiny-random" in out and "recording" in out and "tiny-method" in out
    assert "NOT LOADED" in out and "broken on purpose" in out


def test_plugins_json_marks_both_sides_of_a_name_conflict(make_distribution, capsys) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "left-dist",
        modules={"left_mod.py": method_plugin("left_mod", "clash")},
        entry_points={"l": "left_mod"},
    )
    make_distribution(
        "right-dist",
        modules={"right_mod.py": method_plugin("right_mod", "clash")},
        entry_points={"r": "right_mod"},
    )
    code, out, _ = _run(["plugins", "--json"], Registry(), capsys)
    assert code == 0
    clashes = [e for e in json.loads(out)["plugins"] if e["name"] == "clash"]
    assert sorted(e["distribution"] for e in clashes) == ["left-dist", "right-dist"]
    assert all(e["loaded"] is False for e in clashes)
    assert {e["error"] for e in clashes} == {
        "name also registered by left-dist",
        "name also registered by right-dist",
    }


def test_plugins_with_nothing_installed(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _run(["plugins", "--json"], Registry(autoload=False), capsys)
    assert code == 0
    assert json.loads(out)["plugins"] == []
    code, out, _ = _run(["plugins"], Registry(autoload=False), capsys)
    assert code == 0 and "no searchkit plugins are installed" in out


# -- run: errors before anything starts ------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: pathlib.Path) -> pathlib.Path:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model_def.py").write_text("def train(ctx):\n    pass\n")
    path = model_dir / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: cli-test
            entrypoint: model_def:train
            searcher:
              name: tiny-random
              metric: validation_loss
              smaller_is_better: true
              max_length: {batches: 4}
              budget: 2
            hyperparameters:
              x: {type: double, minval: 0.0, maxval: 1.0}
            """
        )
    )
    return path


def test_run_with_no_runner_installed_says_how_to_get_one(config_file, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(["run", str(config_file)], Registry(autoload=False), capsys)
    assert code == 3
    _assert_one_error_line(err, "no runner is installed", "pip install searchkit-runners")


def test_run_with_an_unknown_runner_lists_the_runners(site, config_file, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(["run", str(config_file), "--runner", "nope"], Registry(), capsys)
    assert code == 3
    _assert_one_error_line(err, "unknown runner 'nope'", "recording")


def test_run_with_a_missing_config_file(site, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(["run", str(tmp_path / "absent.yaml"), "--runner", "recording"], Registry(), capsys)
    assert code == 2
    _assert_one_error_line(err, "absent.yaml", "does not exist")


def test_run_with_a_missing_model_dir(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["run", str(config_file), str(tmp_path / "no-such-dir"), "--runner", "recording"]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 8
    _assert_one_error_line(err, "no-such-dir")


@pytest.mark.parametrize(
    "argv",
    [["run"], ["no-such-command"], ["run", "x.yaml", "--workers", "0"], ["status"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(argv, Registry(autoload=False), capsys)
    assert code == 2
    assert "Traceback" not in err and err.strip()


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _run(["--version"], Registry(autoload=False), capsys)
    assert code == 0 and out.startswith("searchkit 0.")


def test_runner_options_pass_unknown_options_through() -> None:
    options = _runner_options(
        ["--gpus-per-trial=2", "--verbose", "--name=abc", "--ratio=0.5"], workers=3, address="ray://x"
    )
    assert options == {
        "gpus_per_trial": 2,
        "verbose": True,
        "name": "abc",
        "ratio": 0.5,
        "workers": 3,
        "address": "ray://x",
    }
    with pytest.raises(typer.BadParameter, match="--name=value"):
        _runner_options(["stray"])


# -- as a real process -----------------------------------------------------------------------


def _subprocess(argv: list[str], site: pathlib.Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("SEARCHKIT_DEBUG", AUTOLOAD_DISABLE_ENV)}
    environment["PYTHONPATH"] = str(site)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "searchkit_core", *argv],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_broken_plugin_is_a_warning_line_not_a_crash(site, make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "broken-proc",
        "1.2",
        modules={"broken_proc_mod.py": BROKEN_ON_IMPORT},
        entry_points={"bp": "broken_proc_mod"},
    )
    result = _subprocess(["plugins", "--json"], site)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warning_lines = [line for line in result.stderr.splitlines() if line.startswith("searchkit: warning: ")]
    # One line for the broken plugin, however many times the registry is consulted.
    assert len([line for line in warning_lines if "broken-proc 1.2" in line]) == 1, warning_lines
    names = {entry["name"]: entry["loaded"] for entry in json.loads(result.stdout)["plugins"]}
    assert names["bp"] is False and names["tiny-random"] is True and names["recording"] is True


def test_debug_shows_a_broken_plugins_traceback(site, make_distribution) -> None:  # type: ignore[no-untyped-def]
    make_distribution(
        "broken-debug",
        modules={"broken_debug_mod.py": BROKEN_ON_IMPORT},
        entry_points={"bd": "broken_debug_mod"},
    )
    quiet = _subprocess(["plugins", "--json"], site)
    assert "Traceback" not in quiet.stderr
    loud = _subprocess(["plugins", "--json"], site, SEARCHKIT_DEBUG="1")
    assert loud.returncode == 0
    assert "Traceback" in loud.stderr and 'broken_debug_mod.py", line 2' in loud.stderr


def test_autoload_off_in_a_real_process(site) -> None:  # type: ignore[no-untyped-def]
    result = _subprocess(["plugins", "--json"], site, **{AUTOLOAD_DISABLE_ENV: "1"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plugins"] == []


def test_debug_shows_the_traceback(site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    quiet = _subprocess(["run", str(tmp_path / "missing.yaml"), "--runner", "recording"], site)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    loud = _subprocess(
        ["run", str(tmp_path / "missing.yaml"), "--runner", "recording"], site, SEARCHKIT_DEBUG="1"
    )
    assert loud.returncode != 0
    assert "Traceback" in loud.stderr and "ConfigError" in loud.stderr


# -- run and resume through a runner ---------------------------------------------------------


def _request(experiment_dir: pathlib.Path) -> dict[str, object]:
    return json.loads((experiment_dir / "request.json").read_text())  # type: ignore[no-any-return]


def test_run_hands_the_runner_its_request_and_resume_reuses_it(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    experiment_dir = tmp_path / "exp"
    argv = [
        "run",
        str(config_file),
        "--runner",
        "recording",
        "--workers",
        "3",
        "--seed",
        "5",
        "--experiment-dir",
        str(experiment_dir),
        "--gpus-per-trial=2",
    ]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 0, err
    request = _request(experiment_dir)
    assert request == {
        "experiment_dir": str(experiment_dir.resolve()),
        "model_dir": str(config_file.parent.resolve()),
        "is_resume": False,
        "options": {"workers": 3, "gpus_per_trial": 2},
    }
    assert (experiment_dir / "config.yaml").read_text() == config_file.read_text()

    from searchkit_core import _session

    info = _session.open_experiment(experiment_dir)
    assert info.runner == "recording"
    assert info.config.seed == 5
    assert info.config.searcher["name"] == "tiny-random"

    code, _, err = _run(["resume", str(experiment_dir), "--workers", "5"], Registry(), capsys)
    assert code == 0, err
    request = _request(experiment_dir)
    assert request["is_resume"] is True
    assert request["options"] == {"workers": 5, "gpus_per_trial": 2}


def test_run_defaults_to_experiments_under_the_working_directory(  # type: ignore[no-untyped-def]
    site, config_file, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["run", str(config_file), "--runner", "recording"], Registry(), capsys)
    assert code == 0, err
    assert (tmp_path / "experiments" / "cli-test" / "request.json").is_file()
    # A second run into the same directory is refused: it already holds an experiment.
    code, _, err = _run(["run", str(config_file), "--runner", "recording"], Registry(), capsys)
    assert code == 5
    _assert_one_error_line(err, "already holds an experiment", "searchkit resume")


def test_run_exits_with_the_runners_exit_code(site, config_file, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEST_RUNNER_BEHAVIOUR", "7")
    argv = ["run", str(config_file), "--runner", "recording", "--experiment-dir", str(tmp_path / "e7")]
    code, _, _ = _run(argv, Registry(), capsys)
    assert code == 7


def test_ctrl_c_in_the_runner_exits_130(site, config_file, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEST_RUNNER_BEHAVIOUR", "interrupt")
    argv = ["run", str(config_file), "--runner", "recording", "--experiment-dir", str(tmp_path / "ei")]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 130
    assert "Traceback" not in err


def test_sigint_to_a_running_searchkit_exits_130(site, config_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    environment = {k: v for k, v in os.environ.items() if k != AUTOLOAD_DISABLE_ENV}
    environment.update(PYTHONPATH=str(site), TEST_RUNNER_BEHAVIOUR="sleep")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "searchkit_core",
            "run",
            str(config_file),
            "--runner",
            "recording",
            "--experiment-dir",
            str(tmp_path / "es"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "runner started"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err


def test_searcher_validation_problems_are_config_errors(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    config_file.write_text(config_file.read_text().replace("budget: 2", "budget: lots"))
    argv = ["run", str(config_file), "--runner", "recording", "--experiment-dir", str(tmp_path / "bad")]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 2
    _assert_one_error_line(err, "searcher.budget: must be an integer")
    assert not (tmp_path / "bad").exists()  # nothing created for a bad config


def test_unknown_searcher_lists_the_methods(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = [
        "run",
        str(config_file),
        "--runner",
        "recording",
        "--searcher",
        "nosuch",
        "--experiment-dir",
        str(tmp_path / "u"),
    ]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 3
    _assert_one_error_line(err, "unknown search method 'nosuch'", "tiny-random")
    assert not (tmp_path / "u").exists()


def test_resume_of_a_directory_that_is_not_an_experiment(site, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(["resume", str(tmp_path / "nothing-here")], Registry(), capsys)
    assert code == 5
    _assert_one_error_line(err, "nothing-here")


def test_set_overrides_reach_the_method_validator(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["run", str(config_file), "--runner", "recording", "--experiment-dir", str(tmp_path / "s")]
    code, _, err = _run([*base, "--set", "searcher.budget=lots"], Registry(), capsys)
    assert code == 2
    _assert_one_error_line(err, "searcher.budget: must be an integer")
    code, _, err = _run([*base, "--set", "searcher.name=elsewhere"], Registry(), capsys)
    assert code == 3
    _assert_one_error_line(err, "unknown search method 'elsewhere'")
    code, _, err = _run([*base, "--set", "searcher.budget=5", "--set", "max_restarts=1"], Registry(), capsys)
    assert code == 0, err
    from searchkit_core import _session

    config = _session.open_experiment(tmp_path / "s").config
    assert config.searcher["budget"] == 5 and config.max_restarts == 1


def test_config_and_method_problems_are_reported_together(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    text = (
        config_file.read_text()
        .replace("budget: 2", "budget: lots")
        .replace("  metric: validation_loss\n", "")
    )
    config_file.write_text(text)
    argv = ["run", str(config_file), "--runner", "recording", "--experiment-dir", str(tmp_path / "both")]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 2
    _assert_one_error_line(err, "searcher.metric", "searcher.budget: must be an integer")


def test_runner_options_after_an_explicit_model_dir(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = [
        "run",
        str(config_file),
        str(config_file.parent),
        "--runner",
        "recording",
        "--experiment-dir",
        str(tmp_path / "m"),
        "--gpus-per-trial=2",
        "--plain",
    ]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 0, err
    assert _request(tmp_path / "m")["options"] == {"gpus_per_trial": 2, "plain": True}


def test_a_runner_option_without_equals_is_a_usage_error(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = [
        "run",
        str(config_file),
        "--runner",
        "recording",
        "--experiment-dir",
        str(tmp_path / "g"),
        "--gpus",
        "2",
    ]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 2
    assert "--name=value" in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()


def test_a_config_path_that_is_a_directory(site, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(["run", str(tmp_path), "--runner", "recording"], Registry(), capsys)
    assert code == 2
    _assert_one_error_line(err, "is not a file")


def test_a_config_file_that_is_not_utf8(site, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "binary.yaml"
    config.write_bytes(b"\xff\xfe\x00bad")
    code, _, err = _run(["run", str(config), "--runner", "recording"], Registry(), capsys)
    assert code == 2
    _assert_one_error_line(err, "cannot read config file", "binary.yaml", "utf-8")


def test_an_experiment_dir_that_cannot_be_created(site, config_file, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a-file").write_text("")
    argv = [
        "run",
        str(config_file),
        "--runner",
        "recording",
        "--experiment-dir",
        str(tmp_path / "a-file" / "sub"),
    ]
    code, _, err = _run(argv, Registry(), capsys)
    assert code == 5
    _assert_one_error_line(err, "cannot create the experiment directory", "a-file/sub", "Not a directory")


@pytest.mark.parametrize("columns", ["80", "200"])
def test_plugins_table_prints_summaries_verbatim_at_any_width(columns: str, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import types

    from searchkit_core import hookimpl
    from searchkit_core.hookspecs import RunnerPlugin

    module = types.ModuleType("bracket_runner")

    @hookimpl
    def searchkit_runners() -> list[RunnerPlugin]:
        return [
            RunnerPlugin(name="bracketed", summary="needs searchkit-runners[remote] [bold]x", factory=object)
        ]  # type: ignore[arg-type]

    module.searchkit_runners = searchkit_runners  # type: ignore[attr-defined]
    registry = Registry(autoload=False)
    registry.register(module, distribution="a-rather-long-distribution-name", version="10.20.30")
    monkeypatch.setenv("COLUMNS", columns)
    code, out, _ = _run(["plugins"], registry, capsys)
    assert code == 0
    assert "a-rather-long-distribution-name" in out and "10.20.30" in out and "loaded" in out
    assert "needs searchkit-runners[remote] [bold]x" in " ".join(out.split())
