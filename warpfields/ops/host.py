"""Host API: derivative queries over batches of points, sharded over the CPU cores.

Points are in field coordinates, an (N, dim) numpy array, torch tensor or Warp array (float
rows or vectors). Results come back as the caller's kind: numpy for numpy; a torch tensor on
the tensor's device; a Warp array on the array's device, of vectors (matrices) for an array of
vectors and of float rows for float rows. Shapes: (N,) for scalars, (N, dim) for vectors,
(N, dim, dim) for matrices. The query runs on ``device`` or, by default, on the device of the
points (Warp's default device for numpy). Torch tensors and Warp arrays that are float32 and
already there are read in place, results reach torch without a copy, and torch inputs are
computed on the stream torch is using.

The domain of every field is the box ``[-1, 1]^dim`` of field coordinates (hybrid grids cover
exactly it; analytic and mesh fields are given in it). Outside it a value is the value at the
closest point of the box plus the distance to the box, so that a signed distance stays a
continuous upper bound, and every derivative (gradient, normal, Hessian, Laplacian, mean
curvature) is NaN: the field says nothing about its shape there. A normal is NaN too where the
gradient is zero or not finite: no direction is made up.

Every query runs one generic kernel with the quantity and the method fixed at compile
time, so a field only needs what the chosen method uses (``field_value`` for fd and
polyfit). The polyfit seed of query ``i`` is ``salted_seed(spec.seed, first_index + i)`` (``first_index`` is 0
unless the batch is one piece of a larger one), the same as ``op_*(field, x, spec.warp(),
salt=first_index + i)`` in a user kernel.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import warp as wp

from .. import parallel
from ..errors import InputError
from ..fields.analytic import field_gradient, field_hessian, field_value
from ..runtime import build_lock, check_launch_size, check_memory, get_device, torch_stream
from . import funcs
from .funcs import METHOD_AD, METHOD_FD, METHOD_POLYFIT, STENCIL_ANTITHETIC, STENCIL_CUBATURE, STENCIL_GAUSS

METHODS = {"ad": METHOD_AD, "fd": METHOD_FD, "polyfit": METHOD_POLYFIT}
STENCILS = {"gauss": STENCIL_GAUSS, "antithetic": STENCIL_ANTITHETIC, "cubature": STENCIL_CUBATURE}
QUANTITIES = ("value", "gradient", "normal", "hessian", "laplacian", "mean_curvature")
_SECOND_ORDER = ("hessian", "laplacian", "mean_curvature")

DOMAIN = (-1.0, 1.0)
"""Every field's domain: the box ``[DOMAIN[0], DOMAIN[1]]^dim`` of field coordinates."""

DEFAULT_K = 32
# k costs k field evaluations per query: 4096 is 16x the paper's largest k (256), and k, its
# blocks and the sample indices stay far inside the 32-bit integers the Warp functions count in.
MAX_K = 4096
# Below ~100 float32 steps of a coordinate in the domain (1.2e-7 at |x| = 1) the samples x +- h
# land on the same or neighbouring floats and every difference is rounding (at 1e-30 all samples
# were x itself: zero gradients). On a grid, a stencil under 1/256 of the finest cell sees one
# multilinear cell, which ``ad`` gives exactly. Beyond the domain's side every sample leaves it.
MIN_SCALE = 1.0e-5
MIN_SCALE_PER_CELL = 1.0 / 256.0
MAX_SCALE = DOMAIN[1] - DOMAIN[0]

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


def scale_range(field=None) -> tuple[float, float]:
    """The ``sigma`` and ``h`` allowed on ``field``, in field units: at least ``MIN_SCALE`` and, on a grid,
    ``MIN_SCALE_PER_CELL`` of the finest cell; at most ``MAX_SCALE``, the domain's side."""
    cell = getattr(field, "finest_cell", None)
    low = MIN_SCALE if cell is None else max(MIN_SCALE, MIN_SCALE_PER_CELL * float(cell))
    return low, MAX_SCALE


def out_of_range(name: str, value, low, high, rule: str) -> InputError:
    """The one error for an argument outside its range: the argument, the value, the range and its rule."""
    return InputError(f"{name}={value!r} is out of range: expected {low:.4g} <= {name} <= {high:.4g} ({rule})")


def scale_rule(field=None) -> str:
    """Why ``scale_range(field)`` is what it is, for error messages."""
    if getattr(field, "finest_cell", None) is None:
        return f"field units: at least {MIN_SCALE:g}, at most the domain's side"
    return (
        f"field units: at least {MIN_SCALE:g} and 1/{1 / MIN_SCALE_PER_CELL:g} of the finest cell "
        f"{float(field.finest_cell):.4g}, at most the domain's side"
    )


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


def _scale(name: str, value, low: float, high: float, rule: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise out_of_range(name, value, low, high, rule)
    return number


@dataclass(frozen=True)
class OperatorSpec:
    """How to differentiate: ``method`` "ad" | "fd" | "polyfit" and its parameters.

    ``h`` is the fd step; ``sigma``, ``k``, ``stencil`` ("gauss" | "antithetic" | "cubature")
    and ``seed`` drive polyfit. Ranges: ``1 <= k <= MAX_K`` (and what the stencil needs, see
    ``check``); ``sigma`` and ``h`` in ``scale_range(field)``. Use ``for_field`` to get the
    field's default scales and checks.
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
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or not 1 <= self.k <= MAX_K:
            raise out_of_range("k", self.k, 1, MAX_K, "an integer number of samples per query")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InputError(f"seed must be an integer, got {self.seed!r}")
        if not -(2**31) <= self.seed < 2**31:
            raise InputError(f"seed must fit in 32 bits (signed), got {self.seed}")
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "seed", int(self.seed))
        for name in ("sigma", "h"):
            object.__setattr__(self, name, _scale(name, getattr(self, name), *scale_range(), scale_rule()))

    @classmethod
    def for_field(
        cls, field, method="polyfit", k=DEFAULT_K, sigma=None, h=None, stencil="cubature", seed=0
    ) -> OperatorSpec:
        """A spec whose unset ``sigma``/``h`` are the field's defaults, checked against the field's ranges."""
        spec = cls(
            method=method,
            k=k,
            sigma=default_sigma(field) if sigma is None else sigma,
            h=default_h(field) if h is None else h,
            stencil=stencil,
            seed=seed,
        )
        spec.check_scales(field)
        return spec

    def check_scales(self, field) -> None:
        """Raise InputError unless ``sigma`` and ``h`` lie in ``scale_range(field)``."""
        for name in ("sigma", "h"):
            _scale(name, getattr(self, name), *scale_range(field), scale_rule(field))

    def check(self, quantity: str, dim: int, field=None) -> None:
        """Raise InputError unless this spec can compute ``quantity`` in ``dim`` dimensions (on ``field``)."""
        if field is not None:
            self.check_scales(field)
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
        """The ``Operator`` struct that ``op_*`` Warp functions take in kernels."""
        op = funcs.Operator()
        op.method = METHODS[self.method]
        op.h = self.h
        op.sigma = self.sigma
        op.k = self.k
        op.stencil = STENCILS[self.stencil]
        op.seed = self.seed
        return op


_KERNELS: dict = {}
_VECTORS = {2: wp.vec2, 3: wp.vec3}
_MATRICES = {2: wp.mat22, 3: wp.mat33}


def _output_dtype(quantity: str, dim: int):
    if quantity in ("gradient", "normal"):
        return _VECTORS[dim]
    if quantity == "hessian":
        return _MATRICES[dim]
    return wp.float32


def _query_kernel(quantity: str, method: str, dim: int) -> wp.Kernel:
    with build_lock:
        key = (quantity, method, dim)
        if key not in _KERNELS:
            _KERNELS[key] = _make_query_kernel(quantity, method, dim)
        return _KERNELS[key]


def _make_query_kernel(quantity: str, method: str, dim: int) -> wp.Kernel:
    # A normal is the gradient, normalised here where it has a direction.
    fn = None
    if quantity != "value":
        fn = funcs.operator_function("gradient" if quantity == "normal" else quantity, method)
    vec_d = _VECTORS[dim]
    result = _output_dtype(quantity, dim)

    @wp.kernel(enable_backward=False, module="unique")
    def query_kernel(
        start: int,
        first_index: int,
        field: Any,
        op: funcs.Operator,
        ordered_points: wp.array(dtype=vec_d),
        visit_order: wp.array(dtype=int),
        ordered_out: wp.array(dtype=result),
    ):
        # Points and results in locality order (``parallel.locality_order``); visit_order[j] is the caller's row.
        j = start + wp.tid()
        lower, upper = vec_d(wp.static(DOMAIN[0])), vec_d(wp.static(DOMAIN[1]))
        x = ordered_points[j]
        closest = wp.min(wp.max(x, lower), upper)
        # The distance to the box, scaled so that its square cannot overflow for points up to the float32 limit.
        largest = wp.max(wp.abs(x - closest))
        outside = float(0.0)
        if largest > 0.0:
            outside = largest * wp.length((x - closest) / largest)
        if wp.static(quantity == "value"):
            ordered_out[j] = field_value(field, closest) + outside
        else:
            if outside > 0.0:
                ordered_out[j] = result(wp.nan)
            else:
                r = wp.static(fn)(field, x, op, first_index + visit_order[j])
                if wp.static(quantity == "normal"):
                    length = wp.length(r)
                    if length > 0.0 and wp.isfinite(length):
                        ordered_out[j] = r / length
                    else:
                        ordered_out[j] = result(wp.nan)
                else:
                    ordered_out[j] = r

    return query_kernel


def _normalize_quantity(quantity: str) -> str:
    name = str(quantity).replace("-", "_")
    if name not in QUANTITIES:
        raise InputError(f"quantity must be one of {[q.replace('_', '-') for q in QUANTITIES]}, got {quantity!r}")
    return name


def _has_overload(root: wp.Function, struct) -> bool:
    struct_type = getattr(struct, "_cls", None)
    with build_lock:
        overloads = [*root.user_overloads.values(), *root.user_templates.values()]
    return any(next(iter(o.input_types.values())) in (struct_type, Any) for o in overloads)


def check_protocol(field, struct, quantity: str, method: str) -> None:
    """Raise InputError unless ``struct`` (``field``'s Warp struct) overloads what ``method`` needs for ``quantity``:
    ``field_value`` always, and ``field_gradient`` / ``field_hessian`` for autodiff derivatives."""
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


def _is_torch(points) -> bool:
    return type(points).__module__.startswith("torch")


def result_size(quantity: str, dim: int) -> int:
    """Numbers per point in the result of ``quantity``."""
    return {"gradient": dim, "normal": dim, "hessian": dim * dim}.get(_normalize_quantity(quantity), 1)


def bytes_per_point(quantity: str, dim: int) -> int:
    """What a query allocates per point: the points in float32 (the caller's copy converted, the copy on the
    device and the copy in locality order), the locality sort's keys and indices (20 B), the result in locality
    order, on the device and on the host."""
    return 3 * 4 * dim + 20 + 3 * 4 * result_size(quantity, dim)


class _Points:
    """The caller's points as vectors on the query's device, and the result in the caller's kind."""

    def __init__(self, xs: wp.array, kind: str, like, vectors: bool = False, tensor=None):
        self.xs = xs
        self.kind = kind
        self.like = like
        self.vectors = vectors
        self.tensor = tensor

    def empty(self, dtype, shape: tuple[int, ...]) -> wp.array:
        """The output on the query's device; for torch callers a tensor of torch's stream-aware allocator."""
        if self.kind == "torch":
            self.tensor = self.tensor.new_empty(shape)
            return wp.from_torch(self.tensor, dtype=dtype)
        return wp.empty(shape[0], dtype=dtype, device=self.xs.device)

    def result(self, out: wp.array):
        """``out`` as the caller's kind, on the caller's device."""
        if self.kind == "numpy":
            return out.numpy()
        if self.kind == "torch":
            return self.tensor.to(self.like.device)
        if not self.vectors and out.dtype is not wp.float32:
            out = out.view(float)
        return out if out.device == self.like.device else out.to(self.like.device)


def _host_points(host: np.ndarray, dim: int) -> np.ndarray:
    if host.ndim != 2 or host.shape[1] != dim:
        raise InputError(f"points must have shape (N, {dim}) to match the {dim}D field, got {host.shape}")
    if host.dtype == bool or not np.issubdtype(host.dtype, np.number) or np.issubdtype(host.dtype, np.complexfloating):
        raise InputError(f"points must be real numbers, got dtype {host.dtype}")
    return host


def _prepare_points(points, dim: int, quantity: str, device) -> tuple[_Points, wp.Device]:
    """The points as Warp vectors on the query's device (the caller's storage where dtype and device fit)."""
    vec_d = _VECTORS[dim]
    if isinstance(points, wp.array):
        device = points.device if device is None else get_device(device)
        vectors = points.ndim == 1 and wp.types.type_is_vector(points.dtype)
        if points.ndim == 1 and not vectors:
            raise InputError(f"points: a Warp array of vectors or an (N, dim) float array expected, got {points.dtype}")
        if vectors and wp.types.types_equal(points.dtype, vec_d):
            xs = points
        elif points.ndim == 2 and points.dtype is wp.float32 and points.shape[1] == dim and points.is_contiguous:
            xs = points.view(vec_d)
        else:
            xs = None
        if xs is not None:
            check_memory("points", xs.shape[0], bytes_per_point(quantity, dim), device)
            return _Points(xs if xs.device == device else xs.to(device), "warp", points, vectors), device
        host, kind, like = _host_points(points.numpy(), dim), "warp", points
    elif _is_torch(points):
        device = wp.device_from_torch(points.device) if device is None else get_device(device)
        if points.ndim != 2 or points.shape[1] != dim:
            raise InputError(f"points must have shape (N, {dim}) to match the {dim}D field, got {tuple(points.shape)}")
        if points.is_complex() or str(points.dtype) == "torch.bool":
            raise InputError(f"points must be real numbers, got dtype {points.dtype}")
        check_launch_size("points", points.shape[0])
        check_memory("points", points.shape[0], bytes_per_point(quantity, dim), device)
        tensor = points.detach().to(device=wp.device_to_torch(device)).float().contiguous()
        return _Points(wp.from_torch(tensor, dtype=vec_d), "torch", points, tensor=tensor), device
    else:
        device = get_device(device)
        host, kind, like = _host_points(np.asarray(points), dim), "numpy", points
    check_launch_size("points", host.shape[0])
    check_memory("points", host.shape[0], bytes_per_point(quantity, dim), device)
    xs = wp.array(host.astype(np.float32), dtype=vec_d, device=device)
    return _Points(xs, kind, like, kind == "warp" and like.ndim == 1), device


def query(field, points, quantity: str, spec: OperatorSpec | None = None, device=None, first_index: int = 0):
    """``quantity`` ("value", "gradient", "normal", "hessian", "laplacian", "mean-curvature") of
    ``field`` (a ``Field`` handle) at ``points``, computed as ``spec`` says (default: polyfit
    with the field's default scales). Outside the domain [-1, 1]^dim values are extended by the
    distance to it and derivatives are NaN (see the module's docstring).

    ``first_index`` is the index of ``points[0]`` in a larger batch that was split into pieces:
    polyfit seeds follow that index, so the pieces' results equal one query of the whole batch."""
    quantity = _normalize_quantity(quantity)
    spec = OperatorSpec.for_field(field) if spec is None else spec
    if not isinstance(spec, OperatorSpec):
        raise InputError(f"spec must be an OperatorSpec, got {type(spec).__name__}")
    dim = field.dim
    spec.check(quantity, dim, field)
    batch, device = _prepare_points(points, dim, quantity, device)
    # Torch inputs are read and written on the stream torch is using, in order with the caller's work.
    with torch_stream(device) if batch.kind == "torch" else contextlib.nullcontext():
        struct = field.warp(device)
        check_protocol(field, struct, quantity, spec.method)
        xs, n = batch.xs, batch.xs.shape[0]
        order, bad = parallel.checked_locality_order(xs)
        if bad < n:
            raise InputError(f"points must be finite; row {bad} is {xs[bad : bad + 1].numpy()[0].tolist()}")
        out_type = _output_dtype(quantity, dim)
        out = batch.empty(out_type, (n, *getattr(out_type, "_shape_", ())))
        ordered_out = wp.empty(n, dtype=out_type, device=device)
        args = [int(first_index), struct, spec.warp(), parallel.in_order(xs, order), order, ordered_out]
        parallel.launch(_query_kernel(quantity, spec.method, dim), n, args, device)
        parallel.from_order(ordered_out, order, out)
        if batch.kind == "torch" and device.is_cuda:
            # The locality order and the ordered copies are Warp's memory, released when this returns: not before
            # the stream is done with them.
            wp.synchronize_stream(wp.get_stream(device))
        return batch.result(out)


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


def _offsets_kernel(dim: int) -> wp.Kernel:
    with build_lock:
        if ("offsets", dim) not in _KERNELS:
            _KERNELS["offsets", dim] = _make_offsets_kernel(dim)
        return _KERNELS["offsets", dim]


def _make_offsets_kernel(dim: int) -> wp.Kernel:
    @wp.kernel(enable_backward=False, module="unique")
    def offsets_kernel(
        start: int, seed: int, stencil: int, offsets: wp.array(dtype=Any), weights: wp.array(dtype=float)
    ):
        i = start + wp.tid()
        u, w = funcs.stencil_offset(wp.vector(length=dim, dtype=float), seed, stencil, i)
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
    device = get_device(device)
    offsets = wp.empty(spec.k, dtype=_VECTORS[dim], device=device)
    weights = wp.empty(spec.k, dtype=float, device=device)
    parallel.launch(_offsets_kernel(dim), spec.k, [spec.seed, STENCILS[stencil], offsets, weights], device)
    return offsets.numpy(), weights.numpy()


__all__ = [
    "ANALYTIC_H",
    "ANALYTIC_SIGMA",
    "DEFAULT_K",
    "DOMAIN",
    "H_PER_CELL",
    "MAX_K",
    "MAX_SCALE",
    "METHODS",
    "MIN_SCALE",
    "MIN_SCALE_PER_CELL",
    "QUANTITIES",
    "SIGMA_PER_CELL",
    "STENCILS",
    "OperatorSpec",
    "bytes_per_point",
    "default_h",
    "default_sigma",
    "gradient",
    "hessian",
    "laplacian",
    "mean_curvature",
    "min_samples",
    "normal",
    "polyfit_offsets",
    "check_protocol",
    "query",
    "result_size",
    "scale_range",
    "value",
]
