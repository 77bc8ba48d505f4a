"""Run searchkit with the Determined-style ASHA registered, like Determined's ``run_experiment.py``.

Every argument goes to the ``searchkit`` command line::

    python examples/determined_asha/run_search.py run examples/determined_asha/config.yaml examples/mnist --workers 2
    python examples/determined_asha/run_search.py resume experiments/mnist-determined-asha
    python examples/determined_asha/run_search.py status experiments/mnist-determined-asha

``resume`` needs the method registered too (it rebuilds the method and loads its
saved state), so resume through this script as well.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import asha_plugin

from searchkit_core import cli
from searchkit_core._plugins import default_registry


def main(argv: list[str] | None = None) -> int:
    # The CLI and the engine both use the process-wide registry: register the method there.
    default_registry().register(asha_plugin, name="determined-asha-example")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
