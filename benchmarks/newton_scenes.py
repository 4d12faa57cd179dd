"""The Newton scenes on a trained field against Newton's own mesh collider, and the contacts' cost.

    python benchmarks/newton_scenes.py --field bunny_fast.wfield [--tuned bunny_tuned.wfield]
        [--mesh bunny] [--scenes cloth pour] [--frames 180] [--repeats 30]

Each scene runs once with Newton's mesh collider of ``--mesh`` (the reference) and then with the
field as a ``FieldCollider`` under ``ad``, ``polyfit`` (cubature k 16 and 32) and the tuned
field's ``ad``. Figures per run: deviation of the final particles from the reference (mean and
max), deepest penetration below the mesh (its exact signed distance) in particle radii, kinetic
energy at the end, and median ms per step of the whole step and of contact generation (Newton's
pipeline plus the field collider; the reference's pipeline includes its mesh).

The cost table then times contact generation on one state, the reference's final one, loaded
into every scene and timed in turns (``--repeats`` rounds, median): Newton's mesh collider
against each field collider, once warm (as in a run: a settled sheet keeps its normals) and once
cold (``reset()`` first: every particle evaluated and every normal computed afresh).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import warp as wp

from warpfields.io.fieldfile import load_field
from warpfields.io.mesh import load_mesh
from warpfields.ops import OperatorSpec
from warpfields.sims.base import print_summary
from warpfields.sims.cloth import ClothScene
from warpfields.sims.newton_scene import METRICS, DepthGauge, compare, run_frames, scene_metrics
from warpfields.sims.pour import PourScene

SCENES = {"cloth": ClothScene, "pour": PourScene}


def _runs(field, tuned) -> list[tuple[str, object, OperatorSpec]]:
    runs = [
        ("ad", field, OperatorSpec.for_field(field, method="ad")),
        ("polyfit k=16", field, OperatorSpec.for_field(field, method="polyfit", k=16)),
        ("polyfit k=32", field, OperatorSpec.for_field(field, method="polyfit", k=32)),
    ]
    if tuned is not None:
        runs.append(("fine-tuned ad", tuned, OperatorSpec.for_field(tuned, method="ad")))
    return runs


def _contacts_seconds(scene) -> float:
    start = time.perf_counter()
    scene.pipeline.collide(scene.state, scene.contacts)
    if scene.collider is not None:
        scene.collider.collide(scene.state, scene.contacts)
    wp.synchronize_device(scene.device)
    return time.perf_counter() - start


def cost_table(reference, scenes: dict, repeats: int) -> list[tuple]:
    """Contact generation on the reference's final state, every collider timed in turns."""
    for scene in scenes.values():
        wp.copy(scene.state.particle_q, reference.state.particle_q)
    times = {"mesh": [], **{(name, cold): [] for name in scenes for cold in (False, True)}}
    for _ in range(repeats):
        times["mesh"].append(_contacts_seconds(reference))
        for name, scene in scenes.items():
            times[(name, False)].append(_contacts_seconds(scene))
            scene.collider.reset()
            times[(name, True)].append(_contacts_seconds(scene))
    mesh = float(np.median(times["mesh"]))
    rows = [("Newton mesh collider", 1e3 * mesh, 1.0, "", "")]
    for name in scenes:
        warm, cold = (float(np.median(times[(name, c)])) for c in (False, True))
        rows.append((name, 1e3 * warm, warm / mesh, 1e3 * cold, cold / mesh))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", required=True, help="trained field file (fast bunny)")
    parser.add_argument("--tuned", default=None, help="the fine-tuned field file")
    parser.add_argument("--mesh", default="bunny", help="the mesh the field was trained from (default bunny)")
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--frames", type=int, default=180, help="frames of 1/60 s (default 180)")
    parser.add_argument("--repeats", type=int, default=30, help="rounds of the cost table (default 30)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    field = load_field(args.field)
    tuned = load_field(args.tuned) if args.tuned else None
    mesh = load_mesh(args.mesh)
    dt = 1.0 / 60.0
    for scene_name in args.scenes:
        scene_type = SCENES[scene_name]
        scenes = {name: scene_type(f, spec, device=args.device) for name, f, spec in _runs(field, tuned)}
        reference = next(iter(scenes.values())).reference(mesh)
        metrics = {}
        for name, scene in [("Newton mesh collider", reference), *scenes.items()]:
            gauge = DepthGauge(mesh, scene.radius, args.device)
            run_frames(scene, args.frames, dt, gauge)
            metrics[name] = scene_metrics(scene, gauge)
            if scene is not reference:
                metrics[name].update(compare(scene, reference))
        keys = [key for key in METRICS if key != "penetration_max"]
        rows = [(name, *(values.get(key, "-") for key in keys)) for name, values in metrics.items()]
        title = (
            f"{scene_name}: {reference.model.particle_count} particles, radius {reference.radius:.4g}, "
            f"{args.frames} frames x {reference.substeps} substeps ({reference.solver_name})"
        )
        print_summary(title, rows, ("collider", *keys))
        print_summary(
            f"{scene_name}: contact generation on the reference's final state, ms (median of {args.repeats}, in turns)",
            cost_table(reference, scenes, args.repeats),
            ("collider", "warm ms", "warm / mesh", "cold ms", "cold / mesh"),
        )


if __name__ == "__main__":
    main()
