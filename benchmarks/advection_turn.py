"""One turn of an off-centre sphere (radius 0.3 at (0.45, 0, 0), about the z axis) by the advection scene with
its defaults, once per refit seed: the metrics after the turn for each seed and their mean, and the median
wall time per step.

    python benchmarks/advection_turn.py [FIELD] [--config tiny] [--seeds 0,1,2] [--steps 32]
        [--points P --batch B --rounds R]

FIELD is a hybrid field of that sphere (default: one trained with the ``--config`` preset, seed 0). One
seed's figures move by about 0.005 of IoU between seeds on a `tiny` field, so compare means. Uses only the
scene's public API, so the same script measures older versions of the code.
"""

import argparse
import math

import numpy as np

import warpfields
from warpfields.fields.hybrid import preset_config
from warpfields.io.fieldfile import load_field
from warpfields.ops import OperatorSpec
from warpfields.sims.advection import Advection
from warpfields.torch.train import settings_for, train_field

SHAPE = warpfields.sphere(0.3, center=(0.45, 0.0, 0.0))
COLUMNS = ("IoU", "mean surface distance", "median normal error (deg)", "volume drift")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("field", nargs="?", default=None, help="hybrid field file of the sphere")
    parser.add_argument("--config", default="tiny", help="preset of the field trained without FIELD (default tiny)")
    parser.add_argument("--seeds", default="0,1,2", help="refit seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=32, help="steps of the turn (default 32)")
    parser.add_argument("--points", type=int, default=None, help="band points per round (default: the scene's)")
    parser.add_argument("--batch", type=int, default=None, help="points per refit step (default: the scene's)")
    parser.add_argument("--rounds", type=int, default=None, help="refit rounds per step (default: the scene's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    given = {"points": args.points, "batch": args.batch, "refit_rounds": args.rounds}
    refit = {name: value for name, value in given.items() if value is not None}
    if args.field:
        field = load_field(args.field)
    else:
        config = preset_config(args.config, dim=3)
        field = train_field(SHAPE, config, settings_for(args.config), 0, args.device, progress=False)[0]
    spec = OperatorSpec.for_field(field)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        axis = (0.0, 0.0, 1.0)
        sim = Advection(field, spec, axis=axis, omega=2.0 * math.pi, seed=seed, device=args.device, **refit)
        for _ in range(args.steps):
            sim.step(1.0 / args.steps)
        metrics = sim.metrics(SHAPE)
        rows.append([metrics[c] for c in COLUMNS] + [1e3 * float(np.median(sim.step_seconds[1:]))])
        figures = ", ".join(f"{c} {v:.4g}" for c, v in zip((*COLUMNS, "ms/step"), rows[-1]))
        print(f"seed {seed}: {figures}", flush=True)
    mean = np.mean(np.abs(rows), axis=0)
    figures = ", ".join(f"{c} {v:.4g}" for c, v in zip((*COLUMNS[:3], "|volume drift|", "ms/step"), mean))
    print(f"mean of {len(rows)}: {figures}")


if __name__ == "__main__":
    main()
