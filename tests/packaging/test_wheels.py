"""Wheels and plugins for real: three wheels into a fresh virtualenv, a third-party plugin in and out.

Nothing here fakes entry points: every plugin is a real distribution that pip
installs into (and removes from) a clean virtualenv, and ``searchkit`` runs there
as a separate process.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import textwrap
import zipfile

from venv_helpers import REPO, FreshVenv, check_run, clean_environment

GUIDE = REPO / "docs" / "writing-a-plugin.md"
_FILE_BLOCK = re.compile(r"```[a-z]*\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.DOTALL)


def write_guide_plugin(target: pathlib.Path) -> pathlib.Path:
    """Write the plugin distribution of docs/writing-a-plugin.md, file by file, into ``target``."""
    blocks = {match["path"]: match["body"] for match in _FILE_BLOCK.finditer(GUIDE.read_text())}
    assert {
        "pyproject.toml",
        "src/searchkit_tinyrandom/__init__.py",
        "src/searchkit_tinyrandom/_method.py",
    } <= set(blocks), sorted(blocks)
    for relative, body in blocks.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return target


TINY_TRAIN = """\
def train(ctx):
    trained = 0
    for op in ctx.searcher.operations():
        while trained < op.length:
            trained += 1
            op.report_progress(trained)
        loss = (ctx.hparams["x"] - 0.5) ** 2
        ctx.train.report_validation_metrics(trained, {"loss": loss})
        op.report_completed(loss)
"""

TINY_CONFIG = """\
name: tiny
entrypoint: model_def:train
searcher:
  name: tiny-random
  metric: loss
  max_trials: 3
  max_concurrent_trials: 2
  max_length: {batches: 5}
hyperparameters:
  x: {type: double, minval: 0.0, maxval: 1.0}
seed: 4
"""


def write_broken_plugin(target: pathlib.Path) -> pathlib.Path:
    (target / "src" / "searchkit_broken").mkdir(parents=True)
    (target / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "searchkit-broken"
            version = "0.0.1"
            dependencies = ["searchkit-core>=0.1,<0.2"]

            [project.entry-points.searchkit]
            broken = "searchkit_broken"
            """
        )
    )
    (target / "src" / "searchkit_broken" / "__init__.py").write_text(
        'raise ImportError("searchkit_broken needs a library that is not installed")\n'
    )
    return target


def _by_name(document: dict[str, object]) -> dict[str, dict[str, object]]:
    return {entry["name"]: entry for entry in document["plugins"]}  # type: ignore[attr-defined,index]


def _declared_entry_points(wheel: pathlib.Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        return archive.read(name).decode()


def test_each_distribution_builds_its_own_wheel(fresh_venv: FreshVenv) -> None:
    core, asha, runners = (
        fresh_venv.wheels[n] for n in ("searchkit_core", "searchkit_asha", "searchkit_runners")
    )
    assert core.name.startswith("searchkit_core-") and asha.name.startswith("searchkit_asha-")
    assert runners.name.startswith("searchkit_runners-")
    with zipfile.ZipFile(core) as archive:
        files = archive.namelist()
        metadata = archive.read(next(n for n in files if n.endswith(".dist-info/METADATA"))).decode()
    # Core holds only core: the plugins are separate wheels, and core never depends on them.
    assert {f.split("/")[0] for f in files} == {
        "searchkit_core",
        next(f.split("/")[0] for f in files if ".dist-info" in f),
    }
    assert "searchkit_core/py.typed" in files and "searchkit_core/cli.py" in files
    assert "searchkit-asha" not in metadata and "searchkit-runners" not in metadata
    assert "[console_scripts]\nsearchkit = searchkit_core.cli:main" in _declared_entry_points(core)
    for plugin in (asha, runners):
        with zipfile.ZipFile(plugin) as archive:
            metadata = archive.read(
                next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            ).decode()
        assert "Requires-Dist: searchkit-core<0.2,>=0.1" in metadata
        assert "[searchkit]" in _declared_entry_points(plugin)


def test_fresh_venv_has_a_working_searchkit_plugins(fresh_venv: FreshVenv) -> None:
    # The venv is clean: nothing from the development environment leaks in.
    check_run(
        [
            str(fresh_venv.python),
            "-c",
            "import importlib.util as u; assert u.find_spec('torch') is None; assert u.find_spec('pytest') is None",
        ],
        cwd=fresh_venv.workdir,
    )
    document, stderr = fresh_venv.plugins()
    assert document["format_version"] == 1
    assert "searchkit: warning" not in stderr
    entries = document["plugins"]
    assert entries and all(entry["loaded"] for entry in entries), entries
    distributions = {entry["distribution"] for entry in entries}
    assert distributions == {"searchkit-asha", "searchkit-runners"}, entries
    assert {"asha"} <= {e["name"] for e in entries if e["kind"] == "search_method"}
    # Every runner loads without its optional dependencies (Ray, Determined) installed.
    assert {"local", "remote", "simulate"} <= {e["name"] for e in entries if e["kind"] == "runner"}, entries
    # Core imported on its own does not import either plugin distribution.
    check_run(
        [
            str(fresh_venv.python),
            "-c",
            "import sys, searchkit_core, searchkit_core.cli, searchkit_core.testing;"
            "assert not [m for m in sys.modules if m.startswith(('searchkit_asha', 'searchkit_runners'))]",
        ],
        cwd=fresh_venv.workdir,
    )


def test_the_guide_plugin_passes_its_own_tests(tmp_path: pathlib.Path) -> None:
    project = write_guide_plugin(tmp_path / "searchkit-tinyrandom")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=clean_environment({"PYTHONPATH": str(project / "src")}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_third_party_plugin_appears_when_installed_and_goes_when_uninstalled(
    fresh_venv: FreshVenv, tmp_path: pathlib.Path
) -> None:
    project = write_guide_plugin(tmp_path / "searchkit-tinyrandom")
    fresh_venv.pip("install", str(project))
    try:
        document, _ = fresh_venv.plugins()
        entry = _by_name(document)["tiny-random"]
        assert entry == {
            "name": "tiny-random",
            "kind": "search_method",
            "distribution": "searchkit-tinyrandom",
            "version": "0.1.0",
            "summary": "Random search: max_trials trials, each trained to max_length",
            "plugin": "tinyrandom",
            "entry_point": "tinyrandom = searchkit_tinyrandom",
            "loaded": True,
            "error": None,
        }
        assert "asha" in _by_name(document)
        # The installed method works through the registry, as the engine will use it.
        check_run(
            [
                str(fresh_venv.python),
                "-c",
                textwrap.dedent(
                    """\
                    from searchkit_core import SearchSpace
                    from searchkit_core._plugins import Registry
                    from searchkit_core.hookspecs import MethodContext
                    from searchkit_core.testing import run_search

                    plugin = Registry().search_method("tiny-random")
                    section = {"name": "tiny-random", "max_trials": 5, "max_length": {"batches": 10}}
                    assert plugin.validate(section) == []
                    assert plugin.validate({"max_trials": 0})[0].startswith("searcher.max_trials")
                    space = SearchSpace.from_config({"x": {"type": "double", "minval": 0, "maxval": 1}})
                    context = MethodContext(searcher=section, space=space, seed=3)
                    result = run_search(lambda: plugin.factory(context), lambda hp, length: hp["x"])
                    assert result.is_shut_down and len(result.trials) == 5
                    """
                ),
            ],
            cwd=fresh_venv.workdir,
        )
        # And a whole search with it, from the installed wheels only: the CLI, the local runner.
        model = tmp_path / "model"
        model.mkdir()
        (model / "model_def.py").write_text(TINY_TRAIN)
        (model / "config.yaml").write_text(TINY_CONFIG)
        experiment_dir = tmp_path / "experiment"
        check_run(
            [
                str(fresh_venv.searchkit),
                "run",
                str(model / "config.yaml"),
                "--runner",
                "local",
                "--workers",
                "2",
                "--experiment-dir",
                str(experiment_dir),
                "--plain",
            ],
            cwd=fresh_venv.workdir,
        )
        status = json.loads(
            check_run(
                [str(fresh_venv.searchkit), "status", str(experiment_dir), "--json"], cwd=fresh_venv.workdir
            ).stdout
        )
        assert status["searcher"] == "tiny-random" and status["status"] == "completed"
        assert [t["state"] for t in status["trials"]] == ["CLOSED"] * 3
        assert all(t["trained"] == 5 for t in status["trials"])
    finally:
        fresh_venv.pip("uninstall", "-y", "searchkit-tinyrandom")
    document, _ = fresh_venv.plugins()
    assert "tiny-random" not in _by_name(document)
    assert "searchkit-tinyrandom" not in {e["distribution"] for e in document["plugins"]}


def test_broken_plugin_is_reported_and_the_others_still_work(
    fresh_venv: FreshVenv, tmp_path: pathlib.Path
) -> None:
    broken = write_broken_plugin(tmp_path / "searchkit-broken")
    fresh_venv.pip("install", str(broken))
    try:
        document, stderr = fresh_venv.plugins()
        entries = _by_name(document)
        assert entries["broken"]["loaded"] is False
        assert entries["broken"]["kind"] == "plugin"
        assert entries["broken"]["distribution"] == "searchkit-broken"
        assert entries["broken"]["version"] == "0.0.1"
        assert (
            entries["broken"]["error"]
            == "ImportError: searchkit_broken needs a library that is not installed"
        )
        others = [e for e in document["plugins"] if e["name"] != "broken"]
        assert others and all(e["loaded"] for e in others)
        warnings = [line for line in stderr.splitlines() if line.startswith("searchkit: warning: ")]
        assert len(warnings) == 1 and "searchkit-broken 0.0.1" in warnings[0]
        assert "Traceback" not in stderr
        # The table names the problem too, and every other plugin is still usable by name.
        table = check_run(
            [str(fresh_venv.searchkit), "plugins"], cwd=fresh_venv.workdir, env={"COLUMNS": "200"}
        )
        assert "NOT LOADED" in table.stdout and "needs a library that is not installed" in table.stdout
        check_run(
            [
                str(fresh_venv.python),
                "-W",
                "ignore",
                "-c",
                "from searchkit_core._plugins import Registry; r = Registry(); r.search_method('asha');"
                "[r.runner(n) for n in r.names('runner')]",
            ],
            cwd=fresh_venv.workdir,
        )
    finally:
        fresh_venv.pip("uninstall", "-y", "searchkit-broken")
    document, stderr = fresh_venv.plugins()
    assert "broken" not in _by_name(document) and "searchkit: warning" not in stderr
