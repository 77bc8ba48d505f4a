#!/usr/bin/env bash
# Install everything into .venv and run the main demo: a real ASHA search on the MNIST example
# with the local runner. Extra arguments go to `searchkit run` (e.g. --workers 2).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"

config=examples/mnist/config.yaml
experiment_dir="experiments/demo-$(date -u +%Y%m%dT%H%M%SZ)"
echo "+ searchkit run $config examples/mnist --runner local --experiment-dir $experiment_dir $*" >&2
.venv/bin/searchkit run "$config" examples/mnist --runner local --experiment-dir "$experiment_dir" "$@"
echo "+ searchkit status $experiment_dir" >&2
.venv/bin/searchkit status "$experiment_dir"
# The result: best hyperparameters and their validation accuracy, trials per rung, plots and logs.
.venv/bin/python examples/mnist/report.py "$experiment_dir"
