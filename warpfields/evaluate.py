"""The paper's evaluation: normals and mean curvature of a field against a ground truth.

Points are sampled on the reference surface. For a mesh the reference normal is the
barycentric interpolation of per-vertex normals and the reference mean curvature the
interpolated cotangent-Laplacian mean curvature; analytic shapes use exact values.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from . import geometry, ops
from .distributed import Ranks
from .fields.base import Field
from .fields.mesh_sdf import MeshSDF
from .io.atomic import atomic_path
from .ops.host import OperatorSpec, default_h, default_sigma, min_samples


@dataclass
class Reference:
    points: np.ndarray
    normals: np.ndarray
    mean_curvature: np.ndarray


@dataclass
class Row:
    label: str
    spec: OperatorSpec
    metrics: dict = field(default_factory=dict)


def reference_on_surface(target: Field, n: int, seed: int, device=None) -> Reference:
    if isinstance(target, MeshSDF):
        mesh = target.mesh
        points, face_ids, barycentrics = geometry.sample_surface(mesh, n, seed)
        normals = geometry.reference_normals(mesh, face_ids, barycentrics)
        curvature = geometry.interpolate(geometry.mean_curvature_vertices(mesh), mesh.faces, face_ids, barycentrics)
        return Reference(points, normals, curvature)
    points = geometry.surface_points(target, n, seed, device)
    normals = ops.normal(target, points, method="ad", device=device)
    curvature = ops.mean_curvature(target, points, method="ad", device=device)
    return Reference(points, normals, curvature)


def fd_evaluations(dim: int, second_order: bool) -> int:
    return 1 + 2 * dim + 2 * dim * (dim - 1) if second_order else 2 * dim


def evaluations_per_query(spec: OperatorSpec, dim: int, second_order: bool) -> int:
    """Field evaluations one query costs (``ad``: one evaluation with its exact derivatives)."""
    if spec.method == "ad":
        return 1
    if spec.method == "fd":
        return fd_evaluations(dim, second_order)
    return spec.k


def default_rows(field: Field, seed: int = 0) -> list[Row]:
    """ad; fd at half, one and two default steps; polyfit for each stencil at k = 16, 64, 256."""
    rows = [Row("ad", OperatorSpec.for_field(field, method="ad"))]
    h = default_h(field)
    for factor in (0.5, 1.0, 2.0):
        rows.append(Row(f"fd h={h * factor:.2g}", OperatorSpec.for_field(field, method="fd", h=h * factor)))
    sigma = default_sigma(field)
    for stencil in ("gauss", "antithetic", "cubature"):
        for k in (16, 64, 256):
            if k >= min_samples(field.dim, 2, stencil) and (
                stencil != "cubature" or k % min_samples(field.dim, 2, stencil) == 0
            ):
                spec = OperatorSpec.for_field(field, method="polyfit", k=k, sigma=sigma, stencil=stencil, seed=seed)
                rows.append(Row(f"polyfit {stencil} k={k}", spec))
    return rows


def normal_metrics(predicted: np.ndarray, reference: np.ndarray) -> dict:
    unit = predicted / np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-30)
    l2 = np.linalg.norm(unit - reference, axis=1)
    angles = np.degrees(np.arccos(np.clip(np.sum(unit * reference, axis=1), -1.0, 1.0)))
    finite = np.isfinite(angles)
    angles = np.where(finite, angles, 180.0)
    return {
        "normal_l2": float(np.mean(np.where(finite, l2, 2.0))),
        "angle_mean_deg": float(angles.mean()),
        "share_under_1deg": float((angles < 1.0).mean()),
        "share_under_5deg": float((angles < 5.0).mean()),
    }


def curvature_metrics(predicted: np.ndarray, reference: np.ndarray) -> dict:
    """Rectified relative error |pred - gt| / max(|gt|, 1), as the paper."""
    error = np.abs(predicted - reference) / np.maximum(np.abs(reference), 1.0)
    error = np.where(np.isfinite(error), error, 1e6)
    return {"curvature_rms": float(np.sqrt(np.mean(error**2))), "curvature_mean": float(error.mean())}


def evaluate_rows(field: Field, reference: Reference, rows: list[Row], device=None, group=None) -> list[Row]:
    """Each row's metrics against ``reference``. With a process ``group`` every rank calls this, the queries are
    split over the ranks (the rates are the whole group's) and rank 0 alone gets the metrics."""
    ranks = Ranks(group)
    warmup = reference.points[:64]
    for row in rows:
        for quantity in ("normal", "mean_curvature"):
            ops.query(field, warmup, quantity, row.spec, device=device)
        started = time.perf_counter()
        normals = ranks.query(field, reference.points, "normal", row.spec, device)
        normal_seconds = time.perf_counter() - started
        started = time.perf_counter()
        curvature = ranks.query(field, reference.points, "mean_curvature", row.spec, device)
        curvature_seconds = time.perf_counter() - started
        if ranks.rank != 0:
            continue
        n = len(reference.points)
        row.metrics = {
            **normal_metrics(normals, reference.normals),
            **curvature_metrics(curvature, reference.mean_curvature),
            "evals_normal": evaluations_per_query(row.spec, field.dim, False),
            "evals_curvature": evaluations_per_query(row.spec, field.dim, True),
            "normal_queries_per_s": n / max(normal_seconds, 1e-9),
            "curvature_queries_per_s": n / max(curvature_seconds, 1e-9),
        }
    return rows


COLUMNS = (
    ("method", None, "{}"),
    ("normal L2", "normal_l2", "{:.4f}"),
    ("angle deg", "angle_mean_deg", "{:.3f}"),
    ("<1 deg", "share_under_1deg", "{:.1%}"),
    ("<5 deg", "share_under_5deg", "{:.1%}"),
    ("curv RMS", "curvature_rms", "{:.3f}"),
    ("curv mean", "curvature_mean", "{:.3f}"),
    ("evals n/H", None, "{}"),
    ("normals/s", "normal_queries_per_s", "{:.3g}"),
    ("curv/s", "curvature_queries_per_s", "{:.3g}"),
)


def format_table(rows: list[Row], markdown: bool = False) -> str:
    header = [c[0] for c in COLUMNS]
    body = []
    for row in rows:
        cells = []
        for title, key, fmt in COLUMNS:
            if title == "method":
                cells.append(row.label)
            elif key is None:
                cells.append(f"{row.metrics['evals_normal']}/{row.metrics['evals_curvature']}")
            else:
                cells.append(fmt.format(row.metrics[key]))
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt_line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt_line(header), fmt_line(["-" * w for w in widths]), *(fmt_line(r) for r in body)])


def rows_to_json(rows: list[Row]) -> list[dict]:
    return [
        {
            "label": r.label,
            "method": r.spec.method,
            "k": r.spec.k,
            "sigma": r.spec.sigma,
            "h": r.spec.h,
            "stencil": r.spec.stencil,
            **r.metrics,
        }
        for r in rows
    ]


def write_json(rows: list[Row], path, extra: dict | None = None) -> None:
    with atomic_path(path, "json output") as tmp:
        tmp.write_text(json.dumps({**(extra or {}), "rows": rows_to_json(rows)}, indent=2))
