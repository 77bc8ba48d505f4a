"""Show what an MNIST search found: the best trial, its accuracy, trials per rung, plots and logs.

    python examples/mnist/report.py EXPERIMENT_DIR

Reads the experiment's store read-only (it can run while the search runs) and
writes two plots without any plotting library: ``EXPERIMENT_DIR/plots/accuracy.svg``
and ``EXPERIMENT_DIR/plots/validation_loss.svg``, one line per trial over batches
trained, the best trial highlighted.
"""

from __future__ import annotations

import argparse
import collections
import html
import pathlib
import sys
from typing import Any

from searchkit_core._status import collect
from searchkit_core._store import Store, db_path

WIDTH, HEIGHT, MARGIN = 640, 400, 56


def validation_curves(experiment_dir: pathlib.Path) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each trial's validation metrics, by request id, in order of batches trained."""
    store = Store.open(db_path(experiment_dir), is_readonly=True)
    try:
        rows = store.metrics()
    finally:
        store.close()
    curves: dict[str, list[tuple[int, dict[str, Any]]]] = collections.defaultdict(list)
    for request_id, group, steps, values, _time in rows:
        if group == "validation":
            curves[request_id].append((steps, values))
    for points in curves.values():
        points.sort(key=lambda point: point[0])
    return curves


def svg_plot(
    curves: dict[str, list[tuple[int, dict[str, Any]]]], key: str, best: str | None, title: str
) -> str:
    """A line per trial of ``key`` over batches trained, as a standalone SVG document."""
    points = [(s, float(v[key])) for c in curves.values() for s, v in c if v.get(key) is not None]
    if not points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"></svg>\n'
    x_max = max(s for s, _ in points) or 1
    y_min, y_max = min(y for _, y in points), max(y for _, y in points)
    if y_max == y_min:
        y_max = y_min + 1.0

    def xy(steps: int, value: float) -> str:
        x = MARGIN + (WIDTH - 2 * MARGIN) * steps / x_max
        y = HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * (value - y_min) / (y_max - y_min)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 16}" text-anchor="middle">batches trained (0 to {x_max})</text>',
        f'<text x="{MARGIN - 6}" y="{MARGIN}" text-anchor="end">{y_max:.3g}</text>',
        f'<text x="{MARGIN - 6}" y="{HEIGHT - MARGIN}" text-anchor="end">{y_min:.3g}</text>',
        f'<text x="14" y="{HEIGHT / 2}" transform="rotate(-90 14 {HEIGHT / 2})" text-anchor="middle">{html.escape(key)}</text>',
    ]
    for request_id, curve in sorted(curves.items(), key=lambda item: item[0] == best):
        line = " ".join(xy(s, float(v[key])) for s, v in curve if v.get(key) is not None)
        is_best = request_id == best
        colour, width = ("crimson", 3) if is_best else ("steelblue", 1)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="{width}"/>')
        for s, v in curve:
            if v.get(key) is not None:
                x, y = xy(s, float(v[key])).split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="{width + 1}" fill="{colour}"/>')
    parts.append("</svg>\n")
    return "\n".join(parts)


def report(experiment_dir: pathlib.Path) -> str:
    """The summary text; writes the plots into ``experiment_dir/plots``."""
    document = collect(experiment_dir)
    curves = validation_curves(experiment_dir)
    best = document["best_trial"]
    lines = [f"experiment {document['name']} in {experiment_dir}: {document['status']}"]
    if best is None:
        lines.append("no trial has validated yet")
        return "\n".join(lines)
    best_id = best["request_id"]
    best_metrics = dict(curves.get(best_id, []))
    accuracy = best_metrics.get(best["length"], {}).get("accuracy")
    lines.append(
        f"best trial {best['trial_id']}: {document['metric']} {best['metric']:.4f} after {best['length']} batches"
        + (f", validation accuracy {100 * float(accuracy):.2f} %" if accuracy is not None else "")
    )
    hparams = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["hparams"].items()
    )
    lines.append(f"  hyperparameters: {hparams}")
    per_length = collections.Counter(v["length"] for t in document["trials"] for v in t["validations"])
    lines.append(
        "trials per rung: "
        + ", ".join(f"{n} at {length} batches" for length, n in sorted(per_length.items()))
    )
    plots = experiment_dir / "plots"
    plots.mkdir(exist_ok=True)
    for key in ("accuracy", "validation_loss"):
        (plots / f"{key}.svg").write_text(
            svg_plot(curves, key, best_id, f"{key} of every trial (best in red)"), encoding="utf-8"
        )
    lines.append(f"plots: {plots / 'accuracy.svg'}, {plots / 'validation_loss.svg'}")
    lines.append(
        f"logs: {experiment_dir / 'trials'}/<trial id>/trial.log (best: {experiment_dir / 'trials' / str(best['trial_id']) / 'trial.log'})"
    )
    lines.append(f"more: searchkit status {experiment_dir}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment_dir", type=pathlib.Path)
    args = parser.parse_args(argv)
    try:
        print(report(args.experiment_dir.resolve()))
    except Exception as exc:  # one line for the demo's user, not a traceback
        print(f"report: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
