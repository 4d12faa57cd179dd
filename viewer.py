"""Polyscope viewer for field files and simulation stages.

    python viewer.py FIELD.wfield [--mesh MESH] [--screenshot OUT.png]
    python viewer.py RUN.usd [--screenshot OUT.png]

A field shows its zero level set with the normals of each method (ad, fd, polyfit) as vector
quantities, the angle of each method to the reference (with --mesh) and the mean curvature as
colour maps, and a slice plane through a volume grid of the field's values; ImGui controls
switch the polyfit k and sigma live. A stage shows its points and meshes with a frame slider
and play/pause. ``--screenshot`` renders headless (EGL) and exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

METHODS = ("ad", "fd", "polyfit")


def init_polyscope(headless: bool) -> None:
    import polyscope as ps

    ps.set_program_name("warpfields")
    ps.set_up_dir("y_up")
    ps.init("openGL3_egl" if headless else "")


def surface_quantities(field, vertices: np.ndarray, k: int, sigma: float | None, device=None) -> dict:
    """Per-vertex normals and mean curvature of each method."""
    from warpfields import ops

    quantities = {}
    for method in METHODS:
        spec = ops.OperatorSpec.for_field(field, method=method, k=k, sigma=sigma)
        quantities[method] = {
            "normal": ops.query(field, vertices, "normal", spec, device=device),
            "mean_curvature": ops.query(field, vertices, "mean_curvature", spec, device=device),
        }
    return quantities


def reference_normals_at(target, points: np.ndarray, device=None) -> np.ndarray:
    from warpfields import ops

    return ops.normal(target, points, method="ad", device=device)


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def show_field(field, mesh: str | None = None, k: int = 32, sigma: float | None = None, resolution: int = 128):
    """Register the field's surface, per-method quantities and a value slice with Polyscope."""
    import polyscope as ps

    from warpfields import geometry
    from warpfields.targets import load_target

    vertices, faces = geometry.extract_level_set(field, resolution)
    surface = ps.register_surface_mesh("zero level set", vertices, faces, smooth_shade=True)
    reference = load_target(mesh) if mesh else None
    state = {"k": k, "sigma": sigma if sigma is not None else 0.0}

    def refresh() -> None:
        quantities = surface_quantities(field, vertices, state["k"], state["sigma"] or None)
        reference_normals = reference_normals_at(reference, vertices) if reference is not None else None
        for method, values in quantities.items():
            surface.add_vector_quantity(f"normal {method}", values["normal"], length=0.02, enabled=method == "polyfit")
            curvature = np.clip(values["mean_curvature"], -50, 50)
            surface.add_scalar_quantity(f"mean curvature {method}", curvature, cmap="coolwarm", vminmax=(-10, 10))
            if reference_normals is not None:
                angles = angle_degrees(values["normal"], reference_normals)
                surface.add_scalar_quantity(
                    f"angle to reference {method} (deg)",
                    angles,
                    cmap="viridis",
                    vminmax=(0, 10),
                    enabled=method == "ad",
                )

    refresh()
    # The field's values on a volume grid, cut by a slice plane (enable both in the UI).
    n = 64
    grid = ps.register_volume_grid("field values", (n, n, n), (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), enabled=False)
    values = np.asarray(geometry.grid_values(field, n)).reshape(n, n, n)
    grid.add_scalar_quantity("value", values, defined_on="nodes", cmap="coolwarm", enabled=True, isolines_enabled=True)
    grid.set_cull_whole_elements(False)
    plane = ps.add_scene_slice_plane()
    plane.set_pose((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    plane.set_active(False)

    def callback() -> None:
        from polyscope import imgui

        changed_k, state["k"] = imgui.InputInt("polyfit k", state["k"])
        changed_sigma, state["sigma"] = imgui.InputFloat("polyfit sigma (0 = default)", state["sigma"], format="%.5f")
        if imgui.Button("recompute") or ((changed_k or changed_sigma) and imgui.IsKeyPressed(imgui.ImGuiKey_Enter)):
            state["k"] = max(state["k"], 16)
            state["sigma"] = max(state["sigma"], 0.0)
            refresh()

    ps.set_user_callback(callback)
    return surface


def stage_frames(path: str):
    """The opened stage, its frames, and its Points and Mesh prims by path."""
    from pxr import Usd, UsdGeom

    from warpfields.errors import InputError

    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise InputError(f"stage {path!r} could not be opened as USD")
    prims = {str(p.GetPath()): p for p in stage.Traverse() if p.IsA(UsdGeom.Points) or p.IsA(UsdGeom.Mesh)}
    start, end = int(stage.GetStartTimeCode()), int(stage.GetEndTimeCode())
    return stage, list(range(start, end + 1)), prims


def show_stage(path: str):
    """Register a stage's points and meshes at its first frame; a slider and play/pause step through time."""
    import polyscope as ps
    from pxr import UsdGeom

    stage, frames, prims = stage_frames(path)
    state = {"frame": frames[0], "playing": False, "stage": stage}

    def draw(frame: int) -> None:
        for name, prim in prims.items():
            if prim.IsA(UsdGeom.Points):
                points = np.asarray(UsdGeom.Points(prim).GetPointsAttr().Get(frame), dtype=np.float64)
                if len(points):
                    ps.register_point_cloud(name, points, radius=0.004)
            else:
                mesh = UsdGeom.Mesh(prim)
                points = np.asarray(mesh.GetPointsAttr().Get(frame), dtype=np.float64)
                indices = np.asarray(mesh.GetFaceVertexIndicesAttr().Get(frame), dtype=np.int64)
                if len(points) and len(indices):
                    ps.register_surface_mesh(name, points, indices.reshape(-1, 3), smooth_shade=True)

    draw(state["frame"])

    def callback() -> None:
        from polyscope import imgui

        changed, state["frame"] = imgui.SliderInt("frame", state["frame"], frames[0], frames[-1])
        if imgui.Button("pause" if state["playing"] else "play"):
            state["playing"] = not state["playing"]
        if state["playing"]:
            state["frame"] = frames[0] + (state["frame"] + 1 - frames[0]) % len(frames)
            changed = True
        if changed:
            draw(state["frame"])

    ps.set_user_callback(callback)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="field file (or shape word) or USD stage")
    parser.add_argument("--mesh", default=None, help="reference mesh for the angle colour maps")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--sigma", type=float, default=None)
    parser.add_argument("--screenshot", default=None, help="render headless to this PNG and exit")
    args = parser.parse_args(argv)

    import polyscope as ps

    from warpfields.errors import InputError
    from warpfields.io.mesh import USD_EXTENSIONS

    try:
        if args.screenshot:
            from warpfields.io.atomic import check_output_path

            check_output_path(args.screenshot, "screenshot")
        init_polyscope(headless=args.screenshot is not None)
        if Path(args.source).suffix.lower() in USD_EXTENSIONS:
            show_stage(args.source)
        else:
            from warpfields.io.fieldfile import load_field

            show_field(load_field(args.source), args.mesh, args.k, args.sigma)
    except InputError as error:
        print(f"viewer: error: {error}", file=sys.stderr)
        return 2
    if args.screenshot:
        ps.look_at((1.5, 1.0, 2.2), (0.0, 0.0, 0.0))
        ps.screenshot(args.screenshot, transparent_bg=False)
        return 0
    ps.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
