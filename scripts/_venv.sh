# Sourced by demo.sh and test.sh: create .venv with the standard library's venv and install
# everything with pip. pip (not uv) on purpose: on these machines pip reads the local package
# mirrors and the torch constraint; uv would download a multi-GB CUDA torch (docs/README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "searchkit: error: Python 3.10 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

if [ ! -x .venv/bin/python ]; then
    python_bin="$(pick_python)"
    echo "+ $python_bin -m venv .venv" >&2
    "$python_bin" -m venv .venv
fi
echo "+ .venv/bin/python -m pip install -r requirements-dev.txt" >&2
.venv/bin/python -m pip install --quiet -r requirements-dev.txt
