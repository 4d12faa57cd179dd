"""Polyscope viewer for field files and simulation stages.

    python viewer.py FIELD [--mesh MESH] [--color angle|error|curvature] [--method M --stencil S --k K]
    python viewer.py STAGE.usd [--frame N]
    add --screenshot OUT.png to render the same view headless (EGL) to a PNG and exit

A field (a .wfield file or a shape word) opens on its zero level set, coloured by one scalar with a
colour bar:

  angle      angle (deg) between the chosen method's normal and autodiff's: where autodiff is noisy
             (the default without --mesh)
  error      angle (deg) between the chosen method's normal and the reference's (--mesh: the mesh's
             interpolated vertex normal at the closest point, as in `warpfields eval`; the default with --mesh)
  curvature  the chosen method's mean curvature (1/length, field units)

The panel switches the method, stencil, k and colour (each change recomputes), draws the chosen
method's normals at a sparse subset of vertices (off by default; --normals), and moves a slice plane
through a grid of the field's values (--slice).

A USD stage opens at its first frame (--frame picks another; -1 is the last) with the camera fitted to
every point and mesh prim over all of its time samples; a slider and play/pause step through the
samples. Points (particles) are drawn at their widths, meshes static or deforming.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import numpy as np

METHODS = ("ad", "fd", "polyfit")
STENCILS = ("cubature", "gauss", "antithetic")
COLORS = ("angle", "error", "curvature")
# Fixed colour ranges, so that switching the method compares like with like.
ANGLE_RANGE_DEG = 45.0
ERROR_RANGE_DEG = 15.0
CURVATURE_RANGE = 10.0
NORMALS_SHOWN = 800
NORMAL_LENGTH = 0.04  # of the surface's bounding-box diagonal
SLICE_SAMPLES = 160  # per side of the slice
VIEW_DIRECTION = np.array([1.6, 0.9, 2.4]) / np.linalg.norm([1.6, 0.9, 2.4])  # render.Camera's default
FOV_DEGREES = 45.0  # Polyscope's default vertical field of view
FRAME_FILL = 0.8  # of the frame's half-height (or half-width) that the content may reach
COLORBAR_AT = (16.0, 16.0)  # pixels from the top left: the long titles run to the right
PARTICLE_COLOR = (0.95, 0.45, 0.1)
MESH_COLOR = (0.7, 0.75, 0.85)
DEFORMING_COLOR = (0.25, 0.55, 0.85)
SCREENSHOT_SIZE = (960, 720)
# ImGui keeps window layouts in imgui.ini, by default in the working folder; Polyscope's own preferences go
# to .polyscope.ini there unless switched off. Both stay out of the user's folder.
IMGUI_SETTINGS = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "warpfields" / "imgui.ini"
_imgui_settings_path: str | None = None  # ImGui keeps a pointer to this string's buffer


def init_polyscope(headless: bool, size: tuple[int, int] = SCREENSHOT_SIZE, verbose: bool = False) -> None:
    import polyscope as ps

    ps.set_program_name("warpfields")
    ps.set_verbosity(2 if verbose else 0)
    ps.set_use_prefs_file(False)
    ps.set_up_dir("y_up")
    ps.set_front_dir("z_front")
    ps.init("openGL3_egl" if headless else "")
    keep_imgui_settings_out_of_working_folder()
    ps.set_window_size(*size)
    ps.set_ground_plane_mode("shadow_only")
    ps.set_background_color((1.0, 1.0, 1.0))
    # Only the colour bar, not Polyscope's panels, in screenshots (they take the UI layer).
    ps.set_build_default_gui_panels(not headless)


def keep_imgui_settings_out_of_working_folder() -> None:
    """Point ImGui's settings file, when there is one, at the user's config folder."""
    from polyscope import imgui

    global _imgui_settings_path
    io = imgui.GetIO()
    if io.IniFilename:
        IMGUI_SETTINGS.parent.mkdir(parents=True, exist_ok=True)
        _imgui_settings_path = str(IMGUI_SETTINGS)
        io.IniFilename = _imgui_settings_path


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between the rows of ``a`` and ``b`` (NaN where either is NaN)."""
    cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def fit_camera(points: np.ndarray, aspect: float) -> None:
    """Look at ``points`` from the render's default direction, centred and as close as keeps them all in view."""
    import polyscope as ps

    points = np.asarray(points, dtype=np.float64)
    center = (points.min(axis=0) + points.max(axis=0)) / 2
    right = np.cross(-VIEW_DIRECTION, (0.0, 1.0, 0.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, -VIEW_DIRECTION)
    tangent = FRAME_FILL * np.tan(np.radians(FOV_DEGREES) / 2)
    for _ in range(4):
        offsets = points - center
        # A point at depth z toward the camera and lateral offsets (x, y) is in view from distance D when
        # |y| <= t (D - z) and |x| <= t * aspect * (D - z).
        x, y, depth = offsets @ right, offsets @ up, offsets @ VIEW_DIRECTION
        distance = max(float((np.maximum(np.abs(y) / tangent, np.abs(x) / (tangent * aspect)) + depth).max()), 1e-6)
        # Then move the centre of the view to the middle of the picture's extent.
        sx, sy = x / (distance - depth), y / (distance - depth)
        center = center + distance * ((sx.max() + sx.min()) / 2 * right + (sy.max() + sy.min()) / 2 * up)
    ps.look_at(tuple(center + distance * VIEW_DIRECTION), tuple(center))


def method_label(spec) -> str:
    if spec.method == "ad":
        return "autodiff"
    if spec.method == "fd":
        return f"fd h={spec.h:.2g}"
    return f"polyfit {spec.stencil} k={spec.k}"


def reference_normals(reference, points: np.ndarray, device=None) -> np.ndarray:
    """Ground-truth normals at ``points`` (field coordinates): a mesh's interpolated vertex normal at the
    closest point, or the exact gradient of an analytic shape or field."""
    from warpfields import geometry, ops
    from warpfields.fields.mesh_sdf import MeshSDF

    if isinstance(reference, MeshSDF):
        return geometry.closest_reference_normals(reference.mesh, points, device)
    return ops.normal(reference, points, method="ad", device=device)


@dataclass
class FieldView:
    """A field's zero level set, coloured by ``color`` for the operator ``method``/``stencil``/``k``."""

    field: object
    reference: object = None
    method: str = "polyfit"
    stencil: str = "cubature"
    k: int = 16
    sigma: float | None = None
    color: str = "angle"
    normals: bool = False
    slice: bool = False
    slice_z: float | None = None
    resolution: int = 160
    device: object = None
    message: str = ""
    _cache: dict = dataclass_field(default_factory=dict)
    _plane: object = None

    def __post_init__(self):
        from warpfields import geometry
        from warpfields.errors import InputError

        if self.field.dim != 3:
            raise InputError(f"viewer: needs a 3D field, got a {self.field.dim}D one")
        if self.color == "error" and self.reference is None:
            raise InputError("--color error: needs a reference, pass --mesh MESH (a mesh file, 'bunny' or a shape)")
        self.vertices, self.faces = geometry.extract_level_set(self.field, self.resolution, self.device)
        if self.slice_z is None:
            self.slice_z = float(self.vertices[:, 2].mean())
        self.spec()  # bad operator settings fail here, before any window opens

    def spec(self):
        from warpfields.ops import OperatorSpec

        spec = OperatorSpec.for_field(self.field, method=self.method, k=self.k, sigma=self.sigma, stencil=self.stencil)
        spec.check("mean_curvature" if self.color == "curvature" else "normal", 3, self.field)
        return spec

    def _query(self, quantity: str, spec) -> np.ndarray:
        from warpfields import ops

        key = (quantity, spec)
        if key not in self._cache:
            self._cache[key] = np.asarray(ops.query(self.field, self.vertices, quantity, spec, self.device))
        return self._cache[key]

    def scalar(self) -> tuple[str, np.ndarray, tuple[float, float], str]:
        """(title, values per vertex, colour range, colour map) of the current colour."""
        from warpfields.ops import OperatorSpec

        spec = self.spec()
        label = method_label(spec)
        if self.color == "curvature":
            values = self._query("mean_curvature", spec)
            return f"mean curvature, {label}", values, (-CURVATURE_RANGE, CURVATURE_RANGE), "coolwarm"
        normals = self._query("normal", spec)
        if self.color == "angle":
            autodiff = self._query("normal", OperatorSpec.for_field(self.field, method="ad"))
            values = angle_degrees(normals, autodiff)
            return f"{label} vs autodiff normal (deg)", values, (0, ANGLE_RANGE_DEG), "viridis"
        if "reference" not in self._cache:
            self._cache["reference"] = reference_normals(self.reference, self.vertices, self.device)
        values = angle_degrees(normals, self._cache["reference"])
        return f"{label} normal error vs reference (deg)", values, (0, ERROR_RANGE_DEG), "viridis"

    def normal_arrows(self) -> tuple[np.ndarray, np.ndarray]:
        """A fixed sparse subset of the vertices and the chosen method's normals there, scaled to a readable length."""
        count = min(NORMALS_SHOWN, len(self.vertices))
        chosen = np.sort(np.random.default_rng(0).choice(len(self.vertices), count, replace=False))
        normals = self._query("normal", self.spec())[chosen]
        length = NORMAL_LENGTH * float(np.linalg.norm(np.ptp(self.vertices, axis=0)))
        return self.vertices[chosen], np.nan_to_num(normals) * length

    def show(self) -> None:
        """(Re-)register everything with Polyscope for the current settings."""
        import polyscope as ps

        surface = ps.register_surface_mesh("zero level set", self.vertices, self.faces, smooth_shade=True)
        surface.remove_all_quantities()
        title, values, vminmax, cmap = self.scalar()
        surface.add_scalar_quantity(
            title,
            values,
            enabled=True,
            cmap=cmap,
            vminmax=vminmax,
            onscreen_colorbar_enabled=True,
            onscreen_colorbar_location=COLORBAR_AT,
        )
        if self.normals:
            points, arrows = self.normal_arrows()
            cloud = ps.register_point_cloud("normals at a subset", points, radius=0.002, color=(0.1, 0.1, 0.1))
            cloud.add_vector_quantity("normal", arrows, vectortype="ambient", enabled=True, color=(0.1, 0.1, 0.1))
        elif ps.has_point_cloud("normals at a subset"):
            ps.remove_point_cloud("normals at a subset")
        self.show_slice()

    def show_slice(self) -> None:
        """A plane z = ``slice_z`` across the level set's box, coloured by the field's values (zero: white, and a
        black line), with the level set cut away in front of it."""
        import polyscope as ps

        from warpfields import geometry

        if not self.slice:
            if self._plane is not None:
                ps.remove_surface_mesh("slice")
                ps.remove_slice_plane("cut")
                if ps.has_curve_network("zero in the slice"):
                    ps.remove_curve_network("zero in the slice")
                self._plane = None
            return
        low, high = self.vertices.min(axis=0), self.vertices.max(axis=0)
        pad = 0.1 * (high - low)
        n = SLICE_SAMPLES
        x, y = np.meshgrid(
            np.linspace(low[0] - pad[0], high[0] + pad[0], n), np.linspace(low[1] - pad[1], high[1] + pad[1], n)
        )
        points = np.stack([x.ravel(), y.ravel(), np.full(n * n, self.slice_z)], axis=1)
        if self._plane is None:
            self._plane = ps.add_slice_plane("cut")
            self._plane.set_draw_plane(False)
            self._plane.set_draw_widget(False)
        # Keeps what lies behind the plane, seen from the default view (which looks along -z).
        self._plane.set_pose((0.0, 0.0, self.slice_z), (0.0, 0.0, -1.0))
        values = geometry.evaluate_values(self.field, points, self.device)
        corner = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).ravel()
        quads = np.stack([corner, corner + 1, corner + n + 1, corner + n], axis=1)
        mesh = ps.register_surface_mesh("slice", points, quads, material="flat")
        # Symmetric about the zero level set, spanning the inside's values (an SDF's outside reaches further).
        span = float(max(-values.min(), 1e-3 * np.abs(values).max(), 1e-12))
        mesh.add_scalar_quantity("field value", values, enabled=True, cmap="coolwarm", vminmax=(-span, span))
        self.show_slice_contour(values.reshape(n, n), x[0], y[:, 0])
        mesh.set_ignore_slice_plane(self._plane, True)

    def show_slice_contour(self, values: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> None:
        """The zero level set within the slice, as black lines."""
        import polyscope as ps

        from warpfields import geometry

        lines, segments = geometry.contour_lines(values, 0.0)
        if ps.has_curve_network("zero in the slice"):
            ps.remove_curve_network("zero in the slice")
        if len(segments):
            nodes = np.column_stack(
                [
                    np.interp(lines[:, 1], np.arange(len(xs)), xs),
                    np.interp(lines[:, 0], np.arange(len(ys)), ys),
                    np.full(len(lines), self.slice_z),
                ]
            )
            curve = ps.register_curve_network("zero in the slice", nodes, segments, color=(0.05, 0.05, 0.05))
            curve.set_radius(0.002)
            curve.set_ignore_slice_plane(self._plane, True)

    def fit_camera(self, aspect: float) -> None:
        fit_camera(self.vertices, aspect)

    def panel(self) -> None:
        """The ImGui controls; any change recomputes."""
        from polyscope import imgui

        from warpfields.errors import InputError

        before = (self.method, self.stencil, self.k, self.color, self.normals, self.slice, self.slice_z)
        _, index = imgui.Combo("method", METHODS.index(self.method), list(METHODS))
        self.method = METHODS[index]
        if self.method == "polyfit":
            _, index = imgui.Combo("stencil", STENCILS.index(self.stencil), list(STENCILS))
            self.stencil = STENCILS[index]
            _, k = imgui.InputInt("k (Enter)", self.k, step=16)
            if imgui.IsItemDeactivatedAfterEdit() or k != self.k and not imgui.IsItemActive():
                self.k = k
        colors = COLORS if self.reference is not None else COLORS[::2]
        _, index = imgui.Combo("colour", colors.index(self.color), list(colors))
        self.color = colors[index]
        _, self.normals = imgui.Checkbox("normals (a subset)", self.normals)
        _, self.slice = imgui.Checkbox("slice through the values", self.slice)
        if self.slice:
            low, high = self.vertices[:, 2].min(), self.vertices[:, 2].max()
            _, self.slice_z = imgui.SliderFloat("slice z", self.slice_z, float(low), float(high))
        if (self.method, self.stencil, self.k, self.color, self.normals, self.slice, self.slice_z) != before:
            try:
                self.show()
                self.message = ""
            except InputError as error:
                self.message = str(error)
        if self.message:
            imgui.TextWrapped(self.message)


@dataclass
class Prim:
    path: str
    kind: str  # "points" or "mesh"
    prim: object
    times: list


class StageView:
    """The point and mesh prims of a USD stage, one time sample at a time."""

    def __init__(self, path: str):
        from pxr import Usd, UsdGeom

        from warpfields.errors import InputError

        self.stage = Usd.Stage.Open(str(path)) if Path(path).is_file() else None
        if self.stage is None:
            raise InputError(f"stage {str(path)!r}: not a readable USD file")
        self.prims = []
        for prim in self.stage.Traverse():
            if prim.IsA(UsdGeom.Points) or prim.IsA(UsdGeom.Mesh):
                points = UsdGeom.PointBased(prim).GetPointsAttr()
                times = set(points.GetTimeSamples())
                for xformable in _ancestors(prim):
                    for op in UsdGeom.Xformable(xformable).GetOrderedXformOps():
                        times.update(op.GetAttr().GetTimeSamples())
                kind = "points" if prim.IsA(UsdGeom.Points) else "mesh"
                self.prims.append(Prim(str(prim.GetPath()), kind, prim, sorted(times)))
        if not self.prims:
            raise InputError(f"stage {str(path)!r}: no points or mesh prims to show")
        times = sorted({t for p in self.prims for t in p.times})
        self.times = times or [Usd.TimeCode.Default().GetValue()]
        self.index = 0
        self.playing = False
        self.extent = self.extent_points()

    def geometry(self, prim: Prim, time: float):
        """World-space points (and radii for points, triangles for meshes) of ``prim`` at ``time``, or None."""
        from pxr import Usd, UsdGeom

        code = Usd.TimeCode(time) if prim.times else Usd.TimeCode.Default()
        geom = UsdGeom.PointBased(prim.prim)
        points = geom.GetPointsAttr().Get(code)
        if points is None or len(points) == 0:
            return None
        points = np.asarray(points, dtype=np.float64)
        matrix = np.asarray(UsdGeom.XformCache(code).GetLocalToWorldTransform(prim.prim), dtype=np.float64)
        points = points @ matrix[:3, :3] + matrix[3, :3]
        if prim.kind == "points":
            widths = UsdGeom.Points(prim.prim).GetWidthsAttr().Get(code)
            widths = np.zeros(len(points)) if widths is None else np.broadcast_to(np.asarray(widths), len(points))
            return points, 0.5 * widths * np.cbrt(abs(np.linalg.det(matrix[:3, :3])))
        mesh = UsdGeom.Mesh(prim.prim)
        counts = mesh.GetFaceVertexCountsAttr().Get(code)
        indices = mesh.GetFaceVertexIndicesAttr().Get(code)
        if counts is None or indices is None or len(counts) == 0:
            return None
        return points, triangulate(np.asarray(counts), np.asarray(indices))

    def extent_points(self, per_sample: int = 4096) -> np.ndarray:
        """Points of every prim at every time sample (at most ``per_sample`` of each, particles as the
        corners of their boxes): whatever the view must hold."""
        rng = np.random.default_rng(0)
        chosen = []
        for prim in self.prims:
            for time in prim.times or self.times[:1]:
                shape = self.geometry(prim, time)
                if shape is None:
                    continue
                points, extra = shape
                keep = np.isfinite(points).all(axis=1)
                if len(points) > per_sample:
                    keep &= np.isin(np.arange(len(points)), rng.choice(len(points), per_sample, replace=False))
                points = points[keep]
                if prim.kind == "points":
                    radii = extra[keep][:, None]
                    points = np.concatenate([points - radii, points + radii])
                chosen.append(points)
        return np.concatenate(chosen) if chosen else np.zeros((1, 3))

    def show(self) -> None:
        """Register every prim at the current time sample."""
        import polyscope as ps

        time = self.times[self.index]
        diagonal = float(np.linalg.norm(np.ptp(self.extent, axis=0)))
        for prim in self.prims:
            shape = self.geometry(prim, time)
            if shape is None:
                structure = ps.get_point_cloud if prim.kind == "points" else ps.get_surface_mesh
                has = ps.has_point_cloud if prim.kind == "points" else ps.has_surface_mesh
                if has(prim.path):
                    structure(prim.path).set_enabled(False)
                continue
            points, extra = shape
            if prim.kind == "points":
                cloud = ps.register_point_cloud(prim.path, points, color=PARTICLE_COLOR)
                # True size, but never under a pixel or so, so that small particles stay visible.
                radii = np.maximum(extra, 1.5e-3 * diagonal)
                cloud.add_scalar_quantity("radius", radii)
                cloud.set_point_radius_quantity("radius", autoscale=False)
            else:
                color = DEFORMING_COLOR if prim.times else MESH_COLOR
                ps.register_surface_mesh(prim.path, points, extra, color=color, smooth_shade=True)

    def frame_label(self) -> str:
        return f"time {self.times[self.index]:g} ({self.index + 1} of {len(self.times)})"

    def fit_camera(self, aspect: float) -> None:
        fit_camera(self.extent, aspect)

    def panel(self) -> None:
        from polyscope import imgui

        changed, index = imgui.SliderInt("sample", self.index, 0, len(self.times) - 1)
        imgui.Text(self.frame_label())
        if imgui.Button("pause" if self.playing else "play"):
            self.playing = not self.playing
        if self.playing:
            index = (index + 1) % len(self.times)
            changed = True
        if changed:
            self.index = index
            self.show()


def _ancestors(prim):
    while prim and prim.GetPath().pathString != "/":
        yield prim
        prim = prim.GetParent()


def triangulate(counts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Faces of any vertex count as triangles (fans)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    triangles = [
        np.stack([indices[starts[counts > j]], indices[starts[counts > j] + j - 1], indices[starts[counts > j] + j]], 1)
        for j in range(2, int(counts.max()))
    ]
    return np.concatenate(triangles).astype(np.int64)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 960x720, got {text!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"expected sizes in [16, 8192], got {text!r}")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="field file (or shape word) or USD stage")
    parser.add_argument("--mesh", default=None, help="reference for --color error: mesh file, 'bunny' or shape word")
    parser.add_argument("--color", choices=COLORS, default=None, help="error with --mesh, else angle")
    parser.add_argument("--method", choices=METHODS, default="polyfit")
    parser.add_argument("--stencil", choices=STENCILS, default="cubature")
    parser.add_argument("--k", type=int, default=16, help="polyfit samples per query (default 16)")
    parser.add_argument("--sigma", type=float, default=None, help="polyfit scale (default: the field's)")
    parser.add_argument("--normals", action="store_true", help="start with the normals of a subset of vertices shown")
    parser.add_argument("--slice", action="store_true", help="start with a slice z = const through the values shown")
    parser.add_argument("--slice-z", type=float, default=None, help="the slice's z (default: the level set's middle)")
    parser.add_argument("--resolution", type=int, default=160, help="marching-cubes grid of the level set")
    parser.add_argument("--frame", type=int, default=0, help="stage: time sample to open at (-1: the last)")
    parser.add_argument("--screenshot", default=None, help="render headless to this PNG and exit")
    parser.add_argument("--size", type=parse_size, default=SCREENSHOT_SIZE, help="screenshot size (default 960x720)")
    parser.add_argument("--device", default=None, help="Warp device (default: Warp's default)")
    parser.add_argument("--verbose", action="store_true", help="also print Warp's and Polyscope's own messages")
    return parser


def open_view(args):
    from warpfields.errors import InputError
    from warpfields.io.usd import STAGE_EXTENSIONS

    if Path(args.source).suffix.lower() in STAGE_EXTENSIONS:
        view = StageView(args.source)
        if not -len(view.times) <= args.frame < len(view.times):
            raise InputError(f"--frame {args.frame}: the stage has {len(view.times)} time samples")
        view.index = args.frame % len(view.times)
        return view
    from warpfields.io.fieldfile import load_field
    from warpfields.runtime import get_device
    from warpfields.targets import load_reference

    device = get_device(args.device)
    field = load_field(args.source)
    reference = load_reference(args.mesh, field) if args.mesh else None
    color = args.color or ("error" if reference is not None else "angle")
    return FieldView(
        field,
        reference,
        method=args.method,
        stencil=args.stencil,
        k=args.k,
        sigma=args.sigma,
        color=color,
        normals=args.normals,
        slice=args.slice,
        slice_z=args.slice_z,
        resolution=args.resolution,
        device=device,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import polyscope as ps

    from warpfields import progress
    from warpfields.errors import InputError

    try:
        if args.screenshot:
            from warpfields.io.atomic import check_output_path

            check_output_path(args.screenshot, "screenshot")
        with progress.quiet_warp(args.verbose), progress.watch():
            view = open_view(args)
            init_polyscope(headless=args.screenshot is not None, size=args.size, verbose=args.verbose)
            view.show()
        view.fit_camera(args.size[0] / args.size[1])
    except InputError as error:
        print(f"viewer: error: {error}", file=sys.stderr)
        return 2
    if args.screenshot:
        from warpfields.io.atomic import atomic_path

        with atomic_path(args.screenshot, "screenshot") as tmp:
            ps.screenshot(str(tmp), transparent_bg=False, include_UI=True)
        return 0
    ps.set_user_callback(view.panel)
    ps.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
