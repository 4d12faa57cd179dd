"""Host API: derivative queries over batches of points, sharded over the CPU cores.

Points are in field coordinates (the field's domain, e.g. [-1, 1]^dim for hybrid fields), an
(N, dim) numpy array, torch tensor or Warp array (float rows or vectors); results come back
as the same kind: (N,) for scalars, (N, dim) for vectors, (N, dim, dim) for matrices.

Every query runs one generic kernel with the quantity and the method fixed at compile
time, so a field only needs what the chosen method uses (``field_value`` for fd and
polyfit). The polyfit seed of query ``i`` is ``salted_seed(spec.seed, i)``, the same as
``op_*(field, x, spec.warp(), salt=i)`` in a user kernel.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import warp as wp

from .. import parallel
from ..errors import InputError
from ..fields.analytic import field_gradient, field_hessian, field_prefetch, field_value
from . import funcs
from .funcs import METHOD_AD, METHOD_FD, METHOD_POLYFIT, STENCIL_ANTITHETIC, STENCIL_CUBATURE, STENCIL_GAUSS

METHODS = {"ad": METHOD_AD, "fd": METHOD_FD, "polyfit": METHOD_POLYFIT}
STENCILS = {"gauss": STENCIL_GAUSS, "antithetic": STENCIL_ANTITHETIC, "cubature": STENCIL_CUBATURE}
QUANTITIES = ("value", "gradient", "normal", "hessian", "laplacian", "mean_curvature")
_SECOND_ORDER = ("hessian", "laplacian", "mean_curvature")

DEFAULT_K = 32
# Fields without a grid (analytic) are smooth at every scale, so sigma only trades the
# smoothing bias (~sigma^2 |f'''|, below 1e-5 relative for features of size >= 0.5) against
# float32 rounding of the values (~1e-7, which a quadratic fit divides by sigma^2 |H|). 2e-3
# is the paper's choice for fields on [-1, 1]^3 and keeps both small.
ANALYTIC_SIGMA = 2.0e-3
# Central differences: truncation ~h^2 |f''''| / 12 against rounding ~1e-7 / h^2 for the
# second differences; 5e-3 balances them near 1e-3 relative on curvatures of order 1.
ANALYTIC_H = 5.0e-3
# Grid fields: the kinks of multilinear interpolation are one finest cell apart; a stencil that
# spans about two cells averages them out without smoothing away the shape. The sweep in
# BENCHMARKS.md (fast bunny: mean normal error 4.8/4.3/3.4/2.2/2.2 deg at 0.25/0.5/1/2/4 cells,
# curvature RMS best at 2 cells) sets both factors; it matches the paper's sigma = 0.002 for a
# finest resolution of 2048 on [-1, 1]^3.
SIGMA_PER_CELL = 2.0
H_PER_CELL = 2.0


def default_sigma(field) -> float:
    """Polyfit scale for ``field``: ``SIGMA_PER_CELL`` finest cells, or ``ANALYTIC_SIGMA`` without a grid."""
    cell = getattr(field, "finest_cell", None)
    return ANALYTIC_SIGMA if cell is None else SIGMA_PER_CELL * float(cell)


def default_h(field) -> float:
    """Finite-difference step for ``field``: ``H_PER_CELL`` finest cells, or ``ANALYTIC_H`` without a grid."""
    cell = getattr(field, "finest_cell", None)
    return ANALYTIC_H if cell is None else H_PER_CELL * float(cell)


def min_samples(dim: int, degree: int, stencil: str) -> int:
    """Smallest k with a well-posed fit: the basis size, counted in antipodal pairs for the paired stencils."""
    if stencil == "cubature":
        return funcs.cubature_block(dim)
    basis = 1 + dim + (dim * (dim + 1) // 2 if degree == 2 else 0)
    if stencil == "antithetic":
        # A pair constrains one even and one odd combination: the even part (1, squares, cross terms)
        # needs as many pairs as it has functions, the odd part (linear) dim of them.
        even = basis - dim
        return 2 * max(even, dim)
    return basis


def _positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class OperatorSpec:
    """How to differentiate: ``method`` "ad" | "fd" | "polyfit" and its parameters.

    ``h`` is the fd step; ``sigma``, ``k``, ``stencil`` ("gauss" | "antithetic" | "cubature")
    and ``seed`` drive polyfit. Use ``for_field`` to get the field's default scales.
    """

    method: str = "polyfit"
    k: int = DEFAULT_K
    sigma: float = ANALYTIC_SIGMA
    h: float = ANALYTIC_H
    stencil: str = "cubature"
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise InputError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.stencil not in STENCILS:
            raise InputError(f"stencil must be one of {sorted(STENCILS)}, got {self.stencil!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise InputError(f"k must be a positive integer, got {self.k!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InputError(f"seed must be an integer, got {self.seed!r}")
        if not -(2**31) <= self.seed < 2**31:
            raise InputError(f"seed must fit in 32 bits (signed), got {self.seed}")
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "sigma", _positive("sigma", self.sigma))
        object.__setattr__(self, "h", _positive("h", self.h))

    @classmethod
    def for_field(
        cls, field, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0
    ) -> OperatorSpec:
        """A spec whose unset ``sigma``/``h`` are the field's defaults."""
        return cls(
            method=method,
            k=k,
            sigma=default_sigma(field) if sigma is None else sigma,
            h=default_h(field) if h is None else h,
            stencil=stencil,
            seed=seed,
        )

    def check(self, quantity: str, dim: int) -> None:
        """Raise InputError unless this spec can compute ``quantity`` in ``dim`` dimensions."""
        if self.method != "polyfit" or quantity == "value":
            return
        degree = 2 if quantity in _SECOND_ORDER else 1
        need = min_samples(dim, degree, self.stencil)
        if self.k < need:
            raise InputError(
                f"k={self.k} is too small for a degree-{degree} fit with the {self.stencil} stencil in {dim}D; "
                f"need k >= {need}"
            )
        if self.stencil == "antithetic" and self.k % 2:
            raise InputError(f"k must be even for the antithetic stencil (pairs +d, -d), got {self.k}")
        block = funcs.cubature_block(dim)
        if self.stencil == "cubature" and self.k % block:
            raise InputError(f"k must be a multiple of {block} for the cubature stencil in {dim}D, got {self.k}")

    def warp(self) -> funcs.Operator:
        op = funcs.Operator()
        op.method = METHODS[self.method]
        op.h = self.h
        op.sigma = self.sigma
        op.k = self.k
        op.stencil = STENCILS[self.stencil]
        op.seed = self.seed
        return op


_FUNCTIONS = {
    "gradient": {"ad": funcs.ad_gradient, "fd": funcs.fd_gradient, "polyfit": funcs.polyfit_gradient},
    "normal": {"ad": funcs.ad_normal, "fd": funcs.fd_normal, "polyfit": funcs.polyfit_normal},
    "hessian": {"ad": funcs.ad_hessian, "fd": funcs.fd_hessian, "polyfit": funcs.polyfit_hessian},
    "laplacian": {"ad": funcs.ad_laplacian, "fd": funcs.fd_laplacian, "polyfit": funcs.polyfit_laplacian},
    "mean_curvature": {
        "ad": funcs.ad_mean_curvature,
        "fd": funcs.fd_mean_curvature,
        "polyfit": funcs.polyfit_mean_curvature,
    },
}


@functools.cache
def _query_kernel(quantity: str, method: str) -> wp.Kernel:
    # "value" takes the ad calling convention (field, x); the other branches are dropped at compile time.
    fn = field_value if quantity == "value" else _FUNCTIONS[quantity][method]
    convention = "ad" if quantity == "value" else method

    @wp.kernel(enable_backward=False, module="unique")
    def query_kernel(
        start: int,
        field: Any,
        op: funcs.Operator,
        ordered_points: wp.array(dtype=Any),
        visit_order: wp.array(dtype=int),
        ordered_out: wp.array(dtype=Any),
    ):
        # Points and results in locality order (``parallel.locality_order``); i is the caller's row.
        j = start + wp.tid()
        if j + 1 < ordered_points.shape[0]:
            field_prefetch(field, ordered_points[j + 1])
        x = ordered_points[j]
        if wp.static(convention == "ad"):
            ordered_out[j] = wp.static(fn)(field, x)
        elif wp.static(convention == "fd"):
            ordered_out[j] = wp.static(fn)(field, x, op.h)
        else:
            i = visit_order[j]
            ordered_out[j] = wp.static(fn)(field, x, op.sigma, op.k, funcs.salted_seed(op.seed, i), op.stencil)

    return query_kernel


def _normalize_quantity(quantity: str) -> str:
    name = str(quantity).replace("-", "_")
    if name not in QUANTITIES:
        raise InputError(f"quantity must be one of {[q.replace('_', '-') for q in QUANTITIES]}, got {quantity!r}")
    return name


def _has_overload(root: wp.Function, struct) -> bool:
    struct_type = getattr(struct, "_cls", None)
    overloads = [*root.user_overloads.values(), *root.user_templates.values()]
    return any(next(iter(o.input_types.values())) in (struct_type, Any) for o in overloads)


def _check_protocol(field, struct, quantity: str, method: str) -> None:
    name = type(struct).__name__ if getattr(struct, "_cls", None) is None else struct._cls.key
    needs = [field_value]
    if method == "ad" and quantity != "value":
        needs.append(field_hessian if quantity in _SECOND_ORDER else field_gradient)
    for root in needs:
        if not _has_overload(root, struct):
            what = quantity.replace("_", " ")
            raise InputError(
                f"field {field!r} (struct {name}) has no {root.key} overload, needed for the {what} by {method!r}; "
                f"use method 'fd' or 'polyfit', or define {root.key} for it"
            )


def _points_to_host(points) -> tuple[np.ndarray, str]:
    if isinstance(points, wp.array):
        host = points.numpy()
        if host.ndim == 1 and points.dtype not in (wp.float32, wp.float64):
            raise InputError(f"points: a Warp array of vectors or an (N, dim) float array expected, got {points.dtype}")
        return host, "warp"
    if type(points).__module__.startswith("torch"):
        return points.detach().cpu().numpy(), "torch"
    return np.asarray(points), "numpy"


def _prepare_points(points, dim: int, device) -> tuple[wp.array, wp.array, str]:
    """The points on ``device``, the order to visit them in, and the caller's array kind."""
    host, kind = _points_to_host(points)
    if host.ndim != 2 or host.shape[1] != dim:
        raise InputError(f"points must have shape (N, {dim}) to match the {dim}D field, got {host.shape}")
    if host.dtype == bool or not np.issubdtype(host.dtype, np.number) or np.issubdtype(host.dtype, np.complexfloating):
        raise InputError(f"points must be real numbers, got dtype {host.dtype}")
    host = host.astype(np.float32)
    if not np.all(np.isfinite(host)):
        bad = int(np.argwhere(~np.isfinite(host).all(axis=1))[0, 0])
        raise InputError(f"points must be finite; row {bad} is {host[bad].tolist()}")
    xs = wp.array(host, dtype=wp.types.vector(length=dim, dtype=float), device=device)
    return xs, parallel.locality_order(xs), kind


def _output_dtype(quantity: str, dim: int):
    if quantity in ("gradient", "normal"):
        return wp.types.vector(length=dim, dtype=float)
    if quantity == "hessian":
        return wp.types.matrix(shape=(dim, dim), dtype=float)
    return float


def _as_kind(out: wp.array, kind: str, like, device):
    result = out.numpy()
    if kind == "numpy":
        return result
    if kind == "torch":
        import torch

        return torch.from_numpy(result).to(like.device)
    return wp.array(result, dtype=float, device=device)


def query(field, points, quantity: str, spec: OperatorSpec | None = None, device=None):
    """``quantity`` ("value", "gradient", "normal", "hessian", "laplacian", "mean-curvature") of
    ``field`` (a ``Field`` handle) at ``points``, computed as ``spec`` says (default: polyfit
    with the field's default scales)."""
    quantity = _normalize_quantity(quantity)
    spec = OperatorSpec.for_field(field) if spec is None else spec
    if not isinstance(spec, OperatorSpec):
        raise InputError(f"spec must be an OperatorSpec, got {type(spec).__name__}")
    device = wp.get_device(device)
    dim = field.dim
    spec.check(quantity, dim)
    struct = field.warp(device)
    _check_protocol(field, struct, quantity, spec.method)
    xs, visit_order, kind = _prepare_points(points, dim, device)
    dtype = _output_dtype(quantity, dim)
    ordered_out = wp.empty(xs.shape[0], dtype=dtype, device=device)
    kernel = _query_kernel(quantity, spec.method)
    ordered = parallel.in_order(xs, visit_order)
    parallel.launch(kernel, xs.shape[0], [struct, spec.warp(), ordered, visit_order, ordered_out], device)
    out = parallel.from_order(ordered_out, visit_order, wp.empty(xs.shape[0], dtype=dtype, device=device))
    return _as_kind(out, kind, points, device)


def _derivative(quantity, field, points, method, k, sigma, h, stencil, seed, device):
    spec = OperatorSpec.for_field(field, method=method, k=k, sigma=sigma, h=h, stencil=stencil, seed=seed)
    return query(field, points, quantity, spec, device)


def value(field, points, device=None):
    """Field values at ``points``."""
    return query(field, points, "value", OperatorSpec(method="ad"), device)


def gradient(field, points, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0, device=None):
    """Gradients at ``points``; ``sigma``/``h`` default to the field's (``default_sigma``/``default_h``)."""
    return _derivative("gradient", field, points, method, k, sigma, h, stencil, seed, device)


def normal(field, points, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0, device=None):
    """Unit normals (normalised gradients) at ``points``."""
    return _derivative("normal", field, points, method, k, sigma, h, stencil, seed, device)


def hessian(field, points, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0, device=None):
    """Hessians at ``points`` (polyfit: quadratic fit)."""
    return _derivative("hessian", field, points, method, k, sigma, h, stencil, seed, device)


def laplacian(
    field, points, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0, device=None
):
    """Laplacians (trace of the Hessian) at ``points``."""
    return _derivative("laplacian", field, points, method, k, sigma, h, stencil, seed, device)


def mean_curvature(
    field, points, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0, device=None
):
    """Mean curvature of the level set through each point (+1/R on a sphere; curvature in 2D)."""
    return _derivative("mean_curvature", field, points, method, k, sigma, h, stencil, seed, device)


@functools.cache
def _offsets_kernel(dim: int) -> wp.Kernel:
    offset = funcs.STENCIL_OFFSET[dim]

    @wp.kernel(enable_backward=False, module="unique")
    def offsets_kernel(seed: int, stencil: int, offsets: wp.array(dtype=Any), weights: wp.array(dtype=float)):
        i = wp.tid()
        u, w = wp.static(offset)(seed, stencil, i)
        offsets[i] = u
        weights[i] = w

    return offsets_kernel


def polyfit_offsets(dim: int, k: int, seed: int, stencil: str = "cubature", device=None):
    """The scaled offsets (k, dim) and weights (k,) that the fused fit with per-query ``seed`` uses.

    For checking the fused accumulation against a materialised least-squares fit. The seed
    is the one the Warp function receives (the host API passes ``salted_seed(spec.seed, i)``).
    """
    spec = OperatorSpec(k=k, stencil=stencil, seed=seed)
    spec.check("gradient", dim)
    device = wp.get_device(device)
    offsets = wp.empty(spec.k, dtype=wp.types.vector(length=dim, dtype=float), device=device)
    weights = wp.empty(spec.k, dtype=float, device=device)
    wp.launch(_offsets_kernel(dim), spec.k, inputs=[spec.seed, STENCILS[stencil], offsets, weights], device=device)
    return offsets.numpy(), weights.numpy()


__all__ = [
    "ANALYTIC_H",
    "ANALYTIC_SIGMA",
    "DEFAULT_K",
    "H_PER_CELL",
    "METHODS",
    "QUANTITIES",
    "SIGMA_PER_CELL",
    "STENCILS",
    "OperatorSpec",
    "default_h",
    "default_sigma",
    "gradient",
    "hessian",
    "laplacian",
    "mean_curvature",
    "min_samples",
    "normal",
    "polyfit_offsets",
    "query",
    "value",
]
