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

from . import progress
from .errors import InputError
from .io.atomic import atomic_path


@dataclass(frozen=True)
class DemoPreset:
    eval_points: int
    cloth_resolution: int
    frames: int
    image_size: int
    smoke_test: bool = False


DEMO_PRESETS = {
    # Too coarse and too short for the method to show (its fine-tune lands anywhere between 0.57 and 1.39 times
    # the autodiff error over seeds 0-7): it checks that every step runs, in a minute or two.
    "tiny": DemoPreset(eval_points=2000, cloth_resolution=16, frames=60, image_size=96, smoke_test=True),
    "fast": DemoPreset(eval_points=20000, cloth_resolution=32, frames=150, image_size=320),
}
SMOKE_TEST = (
    "The tiny preset is a smoke test: it runs every step quickly on a field too coarse for the comparison "
    "to mean anything (autodiff may even come out ahead). Run the default preset (`warpfields demo`) for the results."
)
# What each column of the operator table measures, against which reference, in which units.
OPERATOR_COLUMNS = """\
- reference: at each point sampled uniformly on the mesh, the mesh's normal (vertex normals interpolated
  across the face) and mean curvature (cotangent Laplacian at the vertices, interpolated); the field's own
  normals and curvature are evaluated at the same points
- normal L2: mean |n - n_ref| of unit normals (no unit; 0 is exact, 2 is opposite)
- angle deg: mean angle between n and n_ref, in degrees
- <1 deg, <5 deg: share of the points where that angle is under 1 and 5 degrees
- curv RMS, curv mean: RMS and mean over the points of the rectified relative error of the mean curvature,
  |H - H_ref| / max(|H_ref|, 1) (no unit; H in 1/length in field units, the mesh scaled into [-1, 1]^3)
- evals n/H: field evaluations per query, for a normal and for a curvature
- normals/s, curv/s: queries per second on this run's device (wall clock, first-use compiling excluded)"""


def _figure(metrics: dict, key: str) -> str:
    return f"{metrics[key]:.4f}" if key in metrics else "-"


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _step(text: str) -> None:
    print(f"{text} ...", flush=True)


def run_demo(out: str | Path, preset: str = "fast", mesh: str = "bunny", seed: int = 0, device=None) -> Path:
    """Run the demo into the folder ``out``; progress lines on stdout (and stderr: bars, compiles, heartbeat)."""
    if preset not in DEMO_PRESETS:
        raise InputError(f"unknown demo preset {preset!r}; expected one of {sorted(DEMO_PRESETS)}")
    sizes = DEMO_PRESETS[preset]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"demo output {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with progress.watch() as watcher:
        return _run(out, preset, sizes, mesh, seed, device, watcher)


def _run(out: Path, preset: str, sizes: DemoPreset, mesh: str, seed: int, device, watcher) -> Path:
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

    started = time.perf_counter()
    timings = {}
    if sizes.smoke_test:
        print(SMOKE_TEST)

    _section(f"1. train a {preset} hash-grid SDF of {mesh}")
    t0 = time.perf_counter()
    train_settings = settings_for(preset)
    _step(f"training {train_settings.steps} steps, then measuring the fit against the mesh")
    target = load_target(mesh)
    field, quality = train_field(target, preset_config(preset), train_settings, seed=seed, device=device)
    field_path = out / "field.wfield"
    save_field(field, field_path)
    print(
        f"near-surface mean |f - sdf| {quality['near_surface_mean_abs_error']:.5f}, "
        f"level set to mesh {quality['level_set_two_sided_distance']:.5f} (normalised units)"
    )
    timings["train and measure the fit"] = time.perf_counter() - t0

    _section("2. fine-tune the field's gradient")
    t0 = time.perf_counter()
    tune_settings = finetune_settings_for(preset)
    _step(f"fine-tuning {tune_settings.steps} steps toward polyfit normals, then measuring how far the level set moved")
    tuned, tune_report = finetune_field(
        field,
        tune_settings,
        seed=seed,
        device=device,
        provenance={"original_file": field_path.name, "original_sha256": file_digest(field_path)},
    )
    tuned_path = out / "field_tuned.wfield"
    save_field(tuned, tuned_path)
    timings["fine-tune and measure the level set's motion"] = time.perf_counter() - t0

    _section("3. operators against the mesh")
    t0 = time.perf_counter()
    _step(f"evaluating 6 operators at {sizes.eval_points} points on the mesh")
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
    timings["evaluate the operators"] = time.perf_counter() - t0

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
        _step(f"{sizes.frames} frames of the cloth on the {name} collider")
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
    timings["cloth: three runs"] = time.perf_counter() - t0

    _section("5. render: shading from ad, polyfit and fine-tuned ad normals")
    t0 = time.perf_counter()
    _step(f"sphere-tracing three {sizes.image_size}x{sizes.image_size} images")
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
    timings["of which compiling kernels"] = watcher.compiling_seconds
    smoke_test = f"\n**{SMOKE_TEST}**\n" if sizes.smoke_test else ""
    timing_rows = "\n".join(f"| {step} | {seconds:.1f} |" for step, seconds in timings.items())

    report = f"""# warpfields demo ({preset})
{smoke_test}
Mesh: `{mesh}`. Field: `{field_path.name}` ({field.config.encoding}, {field.config.levels} levels,
finest resolution {field.config.max_resolution}); fine-tuned: `{tuned_path.name}`.

## Fit

- mean |f - sdf| near the surface: {quality["near_surface_mean_abs_error"]:.5f} (normalised units)
- level set to mesh, mean two-sided distance: {quality["level_set_two_sided_distance"]:.5f} (normalised units)
- training time: {quality["seconds"]:.1f} s, fine-tuning time: {tune_report["seconds"]:.1f} s
- fine-tuning moved the zero level set by {tune_report["level_set_motion"]:.5f} (mean two-sided distance, same units)

## Operators against the mesh ({sizes.eval_points} surface points)

```
{table}
```

{OPERATOR_COLUMNS}

## Cloth in Newton ({scenes["ad"].model.particle_count} particles, {sizes.frames} frames)

The same sheet dropped on the field with `ad` and `polyfit` contact normals and on the mesh with
Newton's own mesh collider (`reference`); deviation: distance of each cloth vertex from its place in
the reference at the end, in the mesh's own units; penetration: deepest, by the mesh's exact signed
distance, in particle radii; kinetic energy of the cloth at the end; milliseconds per solver step, in
all and for the field's contacts alone.

{cloth_table}

Stages: `cloth_ad.usd`, `cloth_polyfit.usd`, `cloth_reference.usd` (open with `python viewer.py STAGE`).

## Rendering

![shading from each method's normals](render_compare.png)

## Timings

| step | seconds |
|---|---|
{timing_rows}

Wall-clock time of each step on this run's device; "compiling kernels" is the part of the total that Warp
spent compiling kernels on first use (cached for later runs, in `~/.cache/warp`).
"""
    with atomic_path(out / "report.md", "report") as tmp:
        tmp.write_text(report)
    with atomic_path(out / "report.json", "report") as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "preset": preset,
                    "smoke_test": sizes.smoke_test,
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
