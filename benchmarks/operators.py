"""Operator accuracy on a trained field against its mesh: the eval table, a sigma sweep, and a plot.

    python benchmarks/operators.py FIELD --mesh MESH [--points N] [--json OUT] [--plot OUT.png]

Prints the table of ``warpfields eval``, then a sweep of the polyfit scale (cubature k=64)
in units of the finest grid cell, and plots mean angular error and curvature error against
field evaluations per query for each method family.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from warpfields.evaluate import Row, default_rows, evaluate_rows, format_table, reference_on_surface, rows_to_json  # noqa: E402
from warpfields.io.fieldfile import load_field  # noqa: E402
from warpfields.ops.host import OperatorSpec  # noqa: E402
from warpfields.targets import load_target  # noqa: E402

SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0)


def plot(rows, path: Path, title: str) -> None:
    families = {}
    for row in rows:
        family = row.label if row.spec.method == "ad" else row.label.rsplit(" ", 1)[0]
        if row.spec.method == "fd":
            family = "fd"
        families.setdefault(family, []).append(row)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for family, members in families.items():
        members = sorted(members, key=lambda r: r.metrics["evals_normal"])
        marker = "o-" if len(members) > 1 else "s"
        axes[0].plot(
            [r.metrics["evals_normal"] for r in members],
            [r.metrics["angle_mean_deg"] for r in members],
            marker,
            label=family,
        )
        axes[1].plot(
            [r.metrics["evals_curvature"] for r in members],
            [r.metrics["curvature_rms"] for r in members],
            marker,
            label=family,
        )
    for ax, ylabel in zip(axes, ("mean normal angle error (deg)", "mean curvature rectified RMS error")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("field evaluations per query")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("field")
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    field = load_field(args.field)
    target = load_target(args.mesh)
    reference = reference_on_surface(target, args.points, args.seed)
    rows = evaluate_rows(field, reference, default_rows(field, seed=args.seed))
    print(f"{args.field} against {args.mesh}, {args.points} surface points")
    print(format_table(rows))

    cell = field.finest_cell or 1.0
    sweep = [
        Row(
            f"cubature k=64 sigma={factor:g} cell",
            OperatorSpec.for_field(field, k=64, sigma=factor * cell, seed=args.seed),
        )
        for factor in SWEEP
    ]
    evaluate_rows(field, reference, sweep)
    print(f"\npolyfit scale sweep (finest cell = {cell:.5f} field units)")
    print(format_table(sweep))

    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows_to_json(rows), "sweep": rows_to_json(sweep)}, indent=2))
    if args.plot:
        plot(rows, Path(args.plot), f"{Path(args.field).name} vs {args.mesh}")
        print(f"plot -> {args.plot}")


if __name__ == "__main__":
    main()
