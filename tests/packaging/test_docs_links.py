"""The set-up entry points are real: links resolve, the scripts use pip and fail on any failure."""

from __future__ import annotations

import os
import re
import stat

from venv_helpers import REPO

_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
OWN_PAGES = ["README.md", "docs/README.md", "docs/cli.md", "docs/writing-a-plugin.md"]


def test_relative_links_resolve() -> None:
    for page in OWN_PAGES:
        path = REPO / page
        for target in _LINK.findall(path.read_text()):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{page} links to missing {target}"


def test_docs_index_lists_every_page() -> None:
    index = (REPO / "docs" / "README.md").read_text()
    for page in sorted((REPO / "docs").glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/README.md does not list {page.name}"


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```bash\n(.*?)```", setup, re.DOTALL)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = REPO / ".ci" / "run"
    assert os.stat(ci).st_mode & stat.S_IXUSR, ".ci/run must be executable"
    lines = [
        line.strip() for line in ci.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "bash scripts/test.sh"]


def test_scripts_use_pip_and_let_every_failure_through() -> None:
    for name in ("_venv.sh", "test.sh", "demo.sh"):
        text = (REPO / "scripts" / name).read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "set -euo pipefail" in code, name
        assert "|| true" not in code and "uv " not in code and "poetry" not in code, name
    venv = (REPO / "scripts" / "_venv.sh").read_text()
    assert "-m venv .venv" in venv and "-m pip install" in venv and "-r requirements-dev.txt" in venv
    test = (REPO / "scripts" / "test.sh").read_text()
    for step in ("ruff check .", "ruff format --check .", "mypy", 'pytest "$@"'):
        assert step in test, step
