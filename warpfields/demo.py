"""``warpfields demo``: the whole pipeline on Warp's bundled bunny, written into one folder.

Train a hash-grid SDF, compare the derivative operators against the mesh, fine-tune the
field, drop a cloth on it in Newton with ``ad`` and ``polyfit`` normals against Newton's own
mesh collider, render the shading comparison, and write a ``report.md`` that links everything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .io.atomic import atomic_path


@dataclass(frozen=True)
class DemoPreset:
    eval_points: int
    cloth_resolution: int
    frames: int
    image_size: int


DEMO_PRESETS = {
    "tiny": DemoPreset(eval_points=2000, cloth_resolution=16, frames=60, image_size=96),
    "fast": DemoPreset(eval_points=20000, cloth_resolution=32, frames=150, image_size=320),
}


def _figure(metrics: dict, key: str) -> str:
    return f"{metrics[key]:.4f}" if key in metrics else "-"


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run_demo(out: str | Path, preset: str = "fast", mesh: str = "bunny", seed: int = 0, device=None) -> Path:
    from warpfields.sims.base import surface_mesh
    from warpfields.sims.cloth import ClothScene
    from warpfields.sims.newton_scene import DepthGauge, compare, ground_quad, run_frames, scene_metrics

    from . import render
    from .evaluate import Row, evaluate_rows, format_table, reference_on_surface, rows_to_json
    from .fields.hybrid import preset_config
    from .io.fieldfile import save_field
    from .io.mesh import Mesh, load_mesh
    from .io.usd import StageRecorder
    from .ops.host import OperatorSpec
    from .targets import load_target
    from .torch.finetune import file_digest, finetune_field, finetune_settings_for
    from .torch.train import settings_for, train_field

    if preset not in DEMO_PRESETS:
        raise InputError(f"unknown demo preset {preset!r}; expected one of {sorted(DEMO_PRESETS)}")
    sizes = DEMO_PRESETS[preset]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"demo output {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings = {}

    _section(f"1. train a {preset} hash-grid SDF of {mesh}")
    target = load_target(mesh)
    field, quality = train_field(target, preset_config(preset), settings_for(preset), seed=seed, device=device)
    field_path = out / "field.wfield"
    save_field(field, field_path)
    timings["train"] = quality["seconds"]
    print(
        f"near-surface mean |f - sdf| {quality['near_surface_mean_abs_error']:.5f}, "
        f"level set to mesh {quality['level_set_two_sided_distance']:.5f} (normalised units)"
    )

    _section("2. fine-tune the field's gradient")
    tuned, tune_report = finetune_field(
        field,
        finetune_settings_for(preset),
        seed=seed,
        device=device,
        provenance={"original_file": field_path.name, "original_sha256": file_digest(field_path)},
    )
    tuned_path = out / "field_tuned.wfield"
    save_field(tuned, tuned_path)
    timings["finetune"] = tune_report["seconds"]

    _section("3. operators against the mesh")
    t0 = time.perf_counter()
    reference = reference_on_surface(target, sizes.eval_points, seed, device)
    polyfit = OperatorSpec.for_field(field, method="polyfit", k=16, seed=seed)
    rows = [
        Row("ad", OperatorSpec.for_field(field, method="ad")),
        Row("fd", OperatorSpec.for_field(field, method="fd")),
        Row("polyfit cubature k=16", polyfit),
        Row("polyfit cubature k=64", OperatorSpec.for_field(field, method="polyfit", k=64, seed=seed)),
        Row("polyfit gauss k=256", OperatorSpec.for_field(field, k=256, stencil="gauss", seed=seed)),
    ]
    evaluate_rows(field, reference, rows, device)
    tuned_rows = evaluate_rows(
        tuned, reference, [Row("fine-tuned ad", OperatorSpec.for_field(tuned, method="ad"))], device
    )
    table = format_table(rows + tuned_rows)
    print(table)
    timings["eval"] = time.perf_counter() - t0

    _section("4. a cloth dropped on the field in Newton: ad and polyfit normals against Newton's mesh collider")
    t0 = time.perf_counter()
    surface = surface_mesh(field, resolution=96, device=device)
    # An analytic target has no mesh of its own: a fine polygonisation stands in for it.
    reference_mesh = load_mesh(mesh) if target.kind == "mesh" else Mesh(*surface_mesh(target, 128, device), mesh)
    runs = {"ad": OperatorSpec.for_field(field, method="ad"), "polyfit": polyfit}
    scenes = {
        name: ClothScene(field, spec, resolution=sizes.cloth_resolution, device=device) for name, spec in runs.items()
    }
    # The reference runs first: every field run is compared with its final state.
    scenes = {"reference": scenes["ad"].reference(reference_mesh), **scenes}
    cloth = {}
    for name, scene in scenes.items():
        gauge = DepthGauge(reference_mesh, scene.radius, device)
        with StageRecorder(out / f"cloth_{name}.usd", fps=60, metadata={"method": name}) as recorder:
            recorder.add_static_mesh("field", *surface)
            recorder.add_static_mesh("ground", *ground_quad(scene.bounds))
            run_frames(scene, sizes.frames, 1.0 / 60.0, gauge, recorder, progress=False)
        cloth[name] = scene_metrics(scene, gauge)
        if name != "reference":
            cloth[name].update(compare(scene, scenes["reference"]))
    cloth_table = "\n".join(
        [
            "| collider | deviation mean | deviation max | deepest penetration (radii) | kinetic energy (J) | "
            "ms per step | contacts ms per step |",
            "|---|---|---|---|---|---|---|",
        ]
        + [
            f"| {n} | {_figure(m, 'deviation_mean')} | {_figure(m, 'deviation_max')} | "
            f"{m['penetration_per_radius']:.3f} | {m['kinetic_energy']:.3g} | {m['ms_per_step']:.1f} | "
            f"{m['contacts_ms_per_step']:.2f} |"
            for n, m in cloth.items()
        ]
    )
    print(cloth_table)
    timings["cloth"] = time.perf_counter() - t0

    _section("5. render: shading from ad, polyfit and fine-tuned ad normals")
    t0 = time.perf_counter()
    image_path = out / "render_compare.png"
    render.write_compare(
        [field, field, tuned],
        [runs["ad"], polyfit, OperatorSpec.for_field(tuned, method="ad")],
        ["autodiff", "polyfit k=16", "fine-tuned autodiff"],
        image_path,
        width=sizes.image_size,
        height=sizes.image_size,
        device=device,
    )
    timings["render"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    report = f"""# warpfields demo ({preset})

Mesh: `{mesh}`. Field: `{field_path.name}` ({field.config.encoding}, {field.config.levels} levels,
finest resolution {field.config.max_resolution}); fine-tuned: `{tuned_path.name}`.

## Fit

- mean |f - sdf| near the surface: {quality["near_surface_mean_abs_error"]:.5f} (normalised units)
- level set to mesh, mean two-sided distance: {quality["level_set_two_sided_distance"]:.5f}
- training time: {timings["train"]:.1f} s, fine-tuning time: {timings["finetune"]:.1f} s
- fine-tuning moved the zero level set by {tune_report["level_set_motion"]:.5f} (mean two-sided distance)

## Operators against the mesh ({sizes.eval_points} surface points)

```
{table}
```

## Cloth in Newton ({scenes["ad"].model.particle_count} particles, {sizes.frames} frames)

The same sheet dropped on the field with `ad` and `polyfit` contact normals and on the mesh with
Newton's own mesh collider (`reference`); deviation: distance of each cloth vertex from its place in
the reference at the end; penetration: deepest, by the mesh's exact signed distance.

{cloth_table}

Stages: `cloth_ad.usd`, `cloth_polyfit.usd`, `cloth_reference.usd` (open with `python viewer.py STAGE`).

## Rendering

![shading from each method's normals](render_compare.png)

## Timings (s)

{json.dumps({k: round(v, 1) for k, v in timings.items()})}
"""
    with atomic_path(out / "report.md", "report") as tmp:
        tmp.write_text(report)
    with atomic_path(out / "report.json", "report") as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "preset": preset,
                    "mesh": mesh,
                    "quality": quality,
                    "finetune": tune_report,
                    "timings": timings,
                    "operators": rows_to_json(rows + tuned_rows),
                    "cloth": cloth,
                },
                indent=2,
            )
        )
    _section(f"done in {timings['total']:.0f} s: everything is in {out.resolve()}")
    return out
