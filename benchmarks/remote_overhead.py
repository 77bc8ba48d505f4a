"""The remote runner's overhead per trial segment, against the local runner's, for the same short segments.

Usage::

    .venv/bin/python benchmarks/remote_overhead.py [--segments 60] [--segment-seconds 0.2] [--workers 2]
                                                  [--address HOST:PORT]

Without ``--address`` it starts a two-node Ray cluster on loopback addresses
(head 127.0.0.2, second node 127.0.0.3, 2 CPUs each; tests/remote/ray_cluster.py)
and stops exactly those processes at the end.

Both runners run the same engine, store, search method and training function
as ``benchmarks/local_overhead.py`` (each segment sleeps ``--segment-seconds``,
reports metrics, stores a checkpoint and completes). Times are taken inside the
trial's process; the *gap* is the time from the end of one segment's training
to the start of the next one's in the same process: metrics, checkpoint,
report, the engine's decision and SQLite commit, and the messages between
engine and trial (pipes for ``local``; Ray actor calls for ``remote``). The
engine runs in this process, next to the head node, as the search actor does
on a cluster; ``search actor start`` measures the part this leaves out: how long
``searchkit run --runner remote`` takes from the submission to the first answer
of the search actor (runtime environment shipped, store opened).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests" / "remote"))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback only; see docs/remote.md for tokens

import local_overhead  # noqa: E402

from searchkit_runners.local import LocalExecutor  # noqa: E402
from searchkit_runners.remote._cluster import connect, disconnect  # noqa: E402
from searchkit_runners.remote._executor import RayExecutor  # noqa: E402


def run(
    root: pathlib.Path, model: pathlib.Path, args: argparse.Namespace, *, runner: str, resume: bool
) -> dict[str, Any]:
    name = f"{runner}-{'resume' if resume else 'inplace'}"
    experiment = local_overhead.create_benchmark_experiment(root, model, name, runner)
    executor: LocalExecutor | RayExecutor
    if runner == "local":
        executor = LocalExecutor(
            experiment, entrypoint="bench:train", model_dir=model, metric="loss", workers=args.workers
        )
    else:
        executor = RayExecutor(experiment, entrypoint="bench:train", metric="loss", workers=args.workers)
    result, wall = local_overhead.drive_benchmark(experiment, executor, args, resume=resume)
    ideal = args.segments * args.segment_seconds / args.workers
    result["wall_seconds"] = wall
    result["overhead_per_segment_ms"] = 1000 * (wall - ideal) * args.workers / args.segments
    result["startup_seconds"] = list(executor.startup_seconds)
    return result


def search_actor_start(root: pathlib.Path, model: pathlib.Path, address: str) -> float:
    """Seconds from ``searchkit run --runner remote --detach`` to the search actor's first answer."""
    (model / "tiny.yaml").write_text(
        textwrap.dedent(
            """
            name: bench-submit
            entrypoint: bench:train
            searcher: {name: asha, metric: loss, max_length: {batches: 4}, max_trials: 1, num_rungs: 1}
            hyperparameters: {segment_seconds: 0.0}
            """
        )
    )
    command = [
        sys.executable, "-m", "searchkit_core", "run", str(model / "tiny.yaml"), str(model),
        "--runner", "remote", "--address", address, "--storage-path", str(root / "submit"),
        "--detach", "--linger=1",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=60)
    parser.add_argument("--segment-seconds", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", help="an existing cluster (default: start one on loopback)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cluster = None
    if args.address is None:
        from ray_cluster import start_cluster

        cluster = start_cluster()
        args.address = cluster.address
    root = pathlib.Path(tempfile.mkdtemp(prefix="skbench-"))
    try:
        model = local_overhead.write_model(root)
        connect(args.address, timeout=60, runtime_env={"working_dir": str(model)})
        results: dict[str, Any] = {"settings": local_overhead.settings(args)}
        for resume in (False, True):
            for runner in ("local", "remote"):
                key = f"{runner} {'resume' if resume else 'in place'}"
                results[key] = run(root, model, args, runner=runner, resume=resume)
                print(f"measured {key}", file=sys.stderr, flush=True)
        disconnect()
        results["search actor start seconds"] = search_actor_start(root, model, args.address)
    finally:
        disconnect()
        if cluster is not None:
            from ray_cluster import stop_cluster

            stop_cluster(cluster)
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"settings: {results.pop('settings')}")
    print(f"search actor start: {results.pop('search actor start seconds'):.2f} s")
    for name, r in results.items():
        print(
            f"{name}: utilisation {r['utilisation'] * 100:.1f}%; gap median {r['gap_median_ms']:.1f} ms, "
            f"p95 {r['gap_p95_ms']:.1f} ms, max {r['gap_max_ms']:.1f} ms; overhead per segment "
            f"{r['overhead_per_segment_ms']:.0f} ms (wall {r['wall_seconds']:.1f} s); "
            f"start-up {', '.join(f'{s:.2f}' for s in r['startup_seconds'])} s"
        )


if __name__ == "__main__":
    main()
