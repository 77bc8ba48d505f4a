"""``python -m searchkit_core``: the ``searchkit`` command line."""

import sys

from searchkit_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
