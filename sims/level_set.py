"""Level-set simulations whose state is a hybrid neural field.

Each step samples points in a band around the current zero level set (plus a share of uniform points
that keep the far field in check), computes the state's next values there with a Warp kernel that calls
the derivative operators per point, and refits the field's coarse grid levels to them. The whole step
runs in Warp kernels on the simulation's device, in arrays allocated once: the band sampling
(``BandSampler``), the targets and the refit (``TableRefit``, Adam on a linearisation of the field in
its table); no array goes through the host and no count comes back from the device. Everything is in
field coordinates ([-1, 1]^dim): lengths, speeds and times are field units.
"""

import functools
import math
import typing
from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
import warp as wp

from warpfields import parallel
from warpfields.errors import InputError
from warpfields.fields import Field, field_value
from warpfields.fields.hybrid import PARAMETER_NAMES, HybridConfig, HybridField, generated, parameter_shapes
from warpfields.fields.hybrid_kernels import TRANSPOSED, add_exclusive
from warpfields.geometry import evaluate_values, extract_level_set
from warpfields.ops import (
    Operator,
    OperatorSpec,
    mean_curvature,
    operator_function,
)

from .base import Simulation, check_count

wp.set_module_options({"enable_backward": False})

FLOW_ROTATION = 0
FLOW_DEFORMATION = 1
FLOWS = {"rotation": FLOW_ROTATION, "deformation": FLOW_DEFORMATION}
_VEC = {2: wp.vec2, 3: wp.vec3}
# Targets that call the operators' local fits cost microseconds per point: shards this small still pay.
FIT_SHARD = 256


@wp.struct
class Flow:
    """A prescribed velocity: rigid rotation (``omega`` rad/s about ``axis`` through ``center``; 2D: about
    ``center.xy``) or the Enright (3D) / single-vortex (2D) deformation reversed at ``period / 2``."""

    kind: int
    axis: wp.vec3
    center: wp.vec3
    omega: float
    period: float


@wp.func
def flow_velocity(flow: Flow, x: wp.vec3, t: float) -> wp.vec3:
    if flow.kind == FLOW_ROTATION:
        return flow.omega * wp.cross(flow.axis, x - flow.center)
    # The deformation is defined on [0, 1]^3: u = (x + 1) / 2, so dx/dt = 2 du/dt.
    p = wp.pi * (x + wp.vec3(1.0)) * 0.5
    s = wp.vec3(wp.sin(p[0]), wp.sin(p[1]), wp.sin(p[2]))
    s2 = wp.vec3(wp.sin(2.0 * p[0]), wp.sin(2.0 * p[1]), wp.sin(2.0 * p[2]))
    c = 2.0 * wp.cos(wp.pi * t / flow.period)
    return c * wp.vec3(2.0 * s[0] * s[0] * s2[1] * s2[2], -s2[0] * s[1] * s[1] * s2[2], -s2[0] * s2[1] * s[2] * s[2])


@wp.func
def flow_velocity(flow: Flow, x: wp.vec2, t: float) -> wp.vec2:  # noqa: F811 (an overload per dimension)
    if flow.kind == FLOW_ROTATION:
        r = x - wp.vec2(flow.center[0], flow.center[1])
        return flow.omega * wp.vec2(-r[1], r[0])
    p = wp.pi * (x + wp.vec2(1.0)) * 0.5
    c = 2.0 * wp.cos(wp.pi * t / flow.period)
    return c * wp.vec2(
        -wp.sin(p[0]) * wp.sin(p[0]) * wp.sin(2.0 * p[1]), wp.sin(p[1]) * wp.sin(p[1]) * wp.sin(2.0 * p[0])
    )


@functools.cache
def curvature_targets_kernel(method: str) -> wp.Kernel:
    """The curvature flow's targets with the operators' ``method`` fixed at compile time."""
    gradient_fn = operator_function("gradient", method)
    curvature_fn = operator_function("mean_curvature", method)

    @wp.kernel(enable_backward=False, module="unique")
    def curvature_targets(
        start: int,
        field: typing.Any,
        op: Operator,
        salt: int,
        dt: float,
        principal: float,
        max_curvature: float,
        band: float,
        points: wp.array(dtype=typing.Any),
        out: wp.array(dtype=float),
    ):
        i = start + wp.tid()
        x = points[i]
        phi = field_value(field, x)
        g = wp.static(gradient_fn)(field, x, op, salt + i)
        gg = wp.max(wp.dot(g, g), 1.0e-4)
        # The closest surface point: two Newton steps along x's gradient (a distance field's gradient is the
        # same along its straight normal lines, so x's serves both steps); |g|^2 is floored so that flat spots
        # stay put.
        p = x - phi * g / gg
        p = p - field_value(field, p) * g / gg
        # The speed is the curvature at the closest surface point, extended along the normal to every point
        # (no far-field curvature, unbounded at a collapsing sphere's centre, enters). Taking it on the parallel
        # surface half a step in (second order in dt) costs a third fit per point, 1.2 times the step, for a
        # worst radius error of 1.5% instead of 1.6% on the fast sphere (21 steps of 0.002); the fits are the step.
        kappa = wp.clamp(principal * wp.static(curvature_fn)(field, p, op, salt + i), -max_curvature, max_curvature)
        slope = wp.length(g)
        out[i] = phi + dt * kappa * slope
        if wp.abs(phi) > band and wp.abs(field_value(field, p)) > 0.25 * wp.abs(phi):
            # No closest point (the medial axis, e.g. a sphere's centre): hold the value there.
            out[i] = phi
        elif wp.abs(phi) < band and slope > 0.25:
            # Reinitialise in the band: phi / |grad phi| has the same zero set and unit slope, so the refit's
            # errors in the slope do not accumulate into the speed of the surface.
            out[i] = phi / slope + dt * kappa

    return curvature_targets


@functools.cache
def advection_targets_kernel(method: str) -> wp.Kernel:
    """The Taylor advection step's targets with the operators' ``method`` fixed at compile time."""
    gradient_fn = operator_function("gradient", method)
    hessian_fn = operator_function("hessian", method)

    @wp.kernel(enable_backward=False, module="unique")
    def advection_targets(
        start: int,
        field: typing.Any,
        op: Operator,
        salt: int,
        flow: Flow,
        t: float,
        dt: float,
        points: wp.array(dtype=typing.Any),
        out: wp.array(dtype=float),
    ):
        # Second-order Taylor step (RK2 for this linear equation): phi_tt = v.(H v) + (J v).g with v at
        # the mid time, which also absorbs the -v_t.g term of a time-dependent velocity to O(dt^3).
        i = start + wp.tid()
        x = points[i]
        g = wp.static(gradient_fn)(field, x, op, salt + i)
        hess = wp.static(hessian_fn)(field, x, op, salt + i)
        mid = t + 0.5 * dt
        v = flow_velocity(flow, x, mid)
        eps = 1.0e-3
        jv = (flow_velocity(flow, x + eps * v, mid) - flow_velocity(flow, x - eps * v, mid)) / (2.0 * eps)
        second = wp.dot(v, hess * v) + wp.dot(jv, g)
        out[i] = field_value(field, x) - dt * wp.dot(v, g) + 0.5 * dt * dt * second

    return advection_targets


@wp.func
def trace_flow(flow: Flow, x: typing.Any, t: float, dt: float, substeps: int, dim: int):
    """Where the flow carries ``x`` from time ``t`` to ``t + dt`` (RK4 in ``substeps``; a negative ``dt``
    traces back), kept in the domain [-1, 1]^dim."""
    h = dt / float(substeps)
    y = x
    s = t
    for _ in range(substeps):
        k1 = flow_velocity(flow, y, s)
        k2 = flow_velocity(flow, y + 0.5 * h * k1, s + 0.5 * h)
        k3 = flow_velocity(flow, y + 0.5 * h * k2, s + 0.5 * h)
        k4 = flow_velocity(flow, y + h * k3, s + h)
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        s = s + h
    for a in range(dim):
        y[a] = wp.clamp(y[a], -1.0, 1.0)
    return y


@wp.kernel
def _characteristic_targets(
    start: int,
    field: typing.Any,
    flow: Flow,
    t: float,
    dt: float,
    substeps: int,
    dim: int,
    carry: int,
    points: wp.array(dtype=typing.Any),
    out: wp.array(dtype=float),
):
    # phi is constant along the flow's paths: the new value at x is the old one where x came from. With
    # ``carry``, the points of even index are first carried forward over the step, so that they sample the
    # band the surface moves into.
    i = start + wp.tid()
    x = points[i]
    if carry != 0 and i % 2 == 0:
        x = trace_flow(flow, x, t, dt, substeps, dim)
        points[i] = x
    out[i] = field_value(field, trace_flow(flow, x, t + dt, -dt, substeps, dim))


@wp.kernel
def _values(start: int, field: typing.Any, points: wp.array(dtype=typing.Any), out: wp.array(dtype=float)):
    i = start + wp.tid()
    out[i] = field_value(field, points[i])


# --- band sampling ---------------------------------------------------------------------------------------


@wp.func
def _unit_point(state: wp.uint32, like: wp.vec3):
    return wp.vec3(wp.randf(state), wp.randf(state), wp.randf(state))


@wp.func
def _unit_point(state: wp.uint32, like: wp.vec2):  # noqa: F811 (an overload per dimension)
    return wp.vec2(wp.randf(state), wp.randf(state))


@wp.func
def _cell_point(cell: int, resolution: int, u: typing.Any):
    """The point at unit coordinates ``u`` in cell number ``cell`` of a ``resolution``^dim grid of [-1, 1]^dim."""
    x = u
    rest = cell
    for a in range(len(u)):
        x[a] = (float(rest % resolution) + u[a]) * (2.0 / float(resolution)) - 1.0
        rest = rest // resolution
    return x


@wp.kernel
def _mark_cells(
    start: int, field: typing.Any, resolution: int, reach: float, centre: typing.Any, marks: wp.array(dtype=int)
):
    i = start + wp.tid()
    marks[i] = wp.where(wp.abs(field_value(field, _cell_point(i, resolution, centre))) < reach, 1, 0)


@wp.func
def _nth_flagged(ends: wp.array(dtype=int), n: int) -> int:
    """The index of the ``n``-th (from 0) flagged entry, given the inclusive scan ``ends`` of the flags."""
    lo = int(0)
    hi = ends.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] > n:
            hi = mid
        else:
            lo = mid + 1
    return lo


@wp.kernel
def _candidates(
    start: int,
    field: typing.Any,
    seed: int,
    resolution: int,
    cell_ends: wp.array(dtype=int),
    width: float,
    points: wp.array(dtype=typing.Any),
    accepted: wp.array(dtype=int),
):
    # A point uniform in a uniformly chosen marked cell: uniform in the union of the marked cells.
    i = start + wp.tid()
    state = wp.rand_init(seed, i)
    count = cell_ends[cell_ends.shape[0] - 1]
    accepted[i] = 0
    if count > 0:
        cell = _nth_flagged(cell_ends, wp.randi(state, 0, count))
        x = _cell_point(cell, resolution, _unit_point(state, points[i]))
        points[i] = x
        accepted[i] = wp.where(wp.abs(field_value(field, x)) < width, 1, 0)


@wp.kernel
def _fill(
    seed: int,
    uniform_share: float,
    candidates: wp.array(dtype=typing.Any),
    accepted_ends: wp.array(dtype=int),
    out: wp.array(dtype=typing.Any),
):
    # Every slot where floor(i * uniform_share) steps up is uniform in the domain, so any run of slots holds
    # the same mix; the others take the accepted candidates in order (from the first again when there are
    # fewer), or uniform points when there is none.
    i = wp.tid()
    count = accepted_ends[accepted_ends.shape[0] - 1]
    uniform_before = int(float(i) * uniform_share)
    if int(float(i + 1) * uniform_share) == uniform_before and count > 0:
        out[i] = candidates[_nth_flagged(accepted_ends, (i - uniform_before) % count)]
    else:
        state = wp.rand_init(seed, -1 - i)
        out[i] = _cell_point(0, 1, _unit_point(state, out[i]))


class BandSampler:
    """``n`` points of which about ``1 - uniform_share`` are uniform in the band |phi| < ``width`` of a field,
    the rest (evenly interleaved) uniform in [-1, 1]^dim, drawn on the device with fixed-size arrays (no
    count comes back to the host). The field is first evaluated at the centres of a grid of cells about
    the band's width; candidates are drawn uniformly in the cells whose centre is within ``width`` plus
    twice the cell's half diagonal of the level set (a field with slope up to 2 reaches no band point from
    elsewhere), and those in the band are kept: a third or more of them, where rejection from the whole
    domain keeps a few percent."""

    candidates_per_point = 4

    def __init__(self, dim: int, n: int, width: float, device, uniform_share: float = 0.25):
        self.device = wp.get_device(device)
        self.n, self.width, self.uniform_share = n, width, uniform_share
        self.resolution = int(min(max(math.ceil(math.sqrt(dim) / width), 8), 256 if dim == 2 else 64))
        self.reach = width + 2.0 * math.sqrt(dim) / self.resolution
        self.centre = _VEC[dim](0.5)
        cells = self.resolution**dim
        self.marks = wp.zeros(cells, dtype=int, device=self.device)
        self.cell_ends = wp.zeros(cells, dtype=int, device=self.device)
        candidates = max(int(self.candidates_per_point * n * (1.0 - uniform_share)), 1)
        self.candidates = wp.zeros(candidates, dtype=_VEC[dim], device=self.device)
        self.accepted = wp.zeros(candidates, dtype=int, device=self.device)
        self.accepted_ends = wp.zeros(candidates, dtype=int, device=self.device)
        self.points = wp.zeros(n, dtype=_VEC[dim], device=self.device)

    def sample(self, struct, seed: int) -> wp.array:
        """Fresh points (the same array, overwritten) in the band of the field ``struct``."""
        device = self.device
        inputs = [struct, self.resolution, self.reach, self.centre, self.marks]
        parallel.launch(_mark_cells, len(self.marks), inputs, device)
        wp.utils.array_scan(self.marks, self.cell_ends, inclusive=True)
        inputs = [struct, seed, self.resolution, self.cell_ends, self.width, self.candidates, self.accepted]
        parallel.launch(_candidates, len(self.candidates), inputs, device)
        wp.utils.array_scan(self.accepted, self.accepted_ends, inclusive=True)
        inputs = [seed, self.uniform_share, self.candidates, self.accepted_ends, self.points]
        wp.launch(_fill, self.n, inputs, device=device)
        return self.points


# --- the refit ---------------------------------------------------------------------------------------------


@dataclass
class _RefitKernels:
    linearize: wp.Kernel
    gradient: wp.Kernel


_REFIT_KERNELS: dict = {}


def refit_kernels(config: HybridConfig, device) -> _RefitKernels:
    """The linearisation and gradient kernels of ``TableRefit`` for fields of ``config`` on ``device``
    (plain accumulation into one buffer per CPU shard; atomics where threads share one, on a GPU)."""
    accumulate = add_exclusive if wp.get_device(device).is_cpu else wp.atomic_add
    key = (config.key(), accumulate is add_exclusive)
    if key in _REFIT_KERNELS:
        return _REFIT_KERNELS[key]
    gen = generated(config)
    enc = gen.encoding
    Struct = gen.struct
    vec_in = gen.vec_in
    vec_d = _VEC[config.dim]
    scatter = enc.scatter(accumulate, directional=False)
    options = parallel.bulk_module_options(max_unroll=16)

    @wp.kernel(enable_backward=False, module="unique", module_options=options)
    def linearize(
        start: int,
        field: Struct,
        points: wp.array(dtype=vec_d),
        targets: wp.array(dtype=float),
        residuals: wp.array(dtype=float),
        slopes: wp.array(dtype=vec_in),
    ):
        i = start + wp.tid()
        value, acts = gen.mlp_activations(field, enc.encode(field, points[i]))
        residuals[i] = value - targets[i]
        slopes[i] = gen.mlp_input_gradient(field, acts)

    @wp.kernel(enable_backward=False, module="unique", module_options=options)
    def gradient(
        start: int,
        moves: Struct,
        grads: Struct,
        points: wp.array(dtype=vec_d),
        residuals: wp.array(dtype=float),
        slopes: wp.array(dtype=vec_in),
        offset: int,
        weight: float,
        loss: wp.array(dtype=float),
        touched: wp.array(dtype=wp.uint8),
    ):
        # Point offset + i (cyclically) of the round: the residual of the linear model after the table's
        # moves since the round began, and its share of the gradient of weight / 2 * sum r^2; the rows it
        # reaches are marked for Adam.
        i = (offset + start + wp.tid()) % points.shape[0]
        x = points[i]
        slope = slopes[i]
        r = residuals[i] + wp.dot(slope, enc.encode(moves, x))
        scatter(grads, x, vec_d(), (weight * r) * slope)
        enc.mark(touched, x)
        wp.static(accumulate)(loss, 0, 0.5 * weight * r * r)

    _REFIT_KERNELS[key] = _RefitKernels(linearize, gradient)
    return _REFIT_KERNELS[key]


def with_table(config: HybridConfig, struct, table: wp.array):
    """A struct of ``config``'s field type with ``struct``'s decoder arrays (shared) and ``table``."""
    out = generated(config).struct()
    for name in (*PARAMETER_NAMES, *TRANSPOSED):
        setattr(out, name, getattr(struct, name))
    out.table = table
    return out


# Rows per thread of the Adam kernel, in words of 8 one-byte marks.
ADAM_CHUNK = 64
_MARKS_PER_WORD = 8


@wp.kernel
def _adam(
    start: int,
    touched: wp.array(dtype=wp.uint64),
    rows: int,
    features: int,
    grads: wp.array2d(dtype=float),
    params: wp.array(dtype=float),
    moves: wp.array(dtype=float),
    first: wp.array(dtype=float),
    second: wp.array(dtype=float),
    lr: float,
    beta1: float,
    beta2: float,
    correction1: float,
    correction2: float,
    eps: float,
):
    # Lazy Adam (as torch.optim.SparseAdam) over ADAM_CHUNK consecutive table rows (one thread per row costs
    # more in the launch than in the update): only the rows that the step's points touched change, moments
    # included, and their marks and the shards' gradient buffers are cleared. Most of the coarse levels' rows
    # lie away from a step's points; a dense update read and wrote every entry (1.6 million on a `fast`
    # field), 70% of the refit's time. The marks are read 8 at a time (one word), most words being 0. The
    # update is applied to the parameters and to their moves since the round began.
    first_word = (start + wp.tid()) * wp.static(ADAM_CHUNK // _MARKS_PER_WORD)
    for word in range(first_word, first_word + wp.static(ADAM_CHUNK // _MARKS_PER_WORD)):
        marks = touched[word]
        if marks != wp.uint64(0):
            touched[word] = wp.uint64(0)
            for byte in range(wp.static(_MARKS_PER_WORD)):
                row = word * wp.static(_MARKS_PER_WORD) + byte
                if (marks >> wp.uint64(8 * byte)) & wp.uint64(0xFF) != wp.uint64(0) and row < rows:
                    for i in range(row * features, (row + 1) * features):
                        g = float(0.0)
                        for s in range(grads.shape[0]):
                            g += grads[s, i]
                            grads[s, i] = 0.0
                        m = beta1 * first[i] + (1.0 - beta1) * g
                        v = beta2 * second[i] + (1.0 - beta2) * g * g
                        first[i] = m
                        second[i] = v
                        update = (lr / correction1) * m / (wp.sqrt(v) / wp.sqrt(correction2) + eps)
                        params[i] = params[i] - update
                        moves[i] = moves[i] - update


class TableRefit:
    """Adam on the mean squared error of a hybrid field against targets, moving its table entries
    ``[0, entries)`` (the coarse levels: the table stores level after level) with the decoder fixed, in
    place and on the device. The Adam is lazy: a step moves only the table rows its points reach and
    leaves the others and their moments as they are (which also fits better than a dense update: over a
    turn of the fast off-centre sphere the advection's surface error drops from 0.0027 to 0.0020).

    The field is linear in its table through the encoding, and its ReLU decoder is linear in the
    features wherever no activation switches. So each round linearises the decoder once at the round's
    points (value and feature gradient: one pass of the MLP forward and back per point), and the
    round's Adam steps evaluate that linear model from the table's moves since: the encoding's gathers
    and scatters alone, no MLP. On a `fast` field (a 64-wide decoder) such a step costs a fraction of an
    exact one; a few rounds per refit follow the switches that the table's moves cause. The steps take
    the round's points in consecutive batches (cyclically): the points come in random order, and
    neighbouring ones share cache lines."""

    beta1, beta2, eps = 0.9, 0.99, 1e-15

    def __init__(self, config: HybridConfig, struct, entries: int, batch: int, capacity: int, device):
        self.device = wp.get_device(device)
        self.struct, self.entries, self.batch = struct, entries, batch
        self.kernels = refit_kernels(config, self.device)
        self.moves = with_table(config, struct, wp.zeros_like(struct.table))
        self.shards = parallel.reduction_shard_count(batch, self.device)
        # The scatter reaches every level the points see; Adam reads and clears the first ``entries``.
        self.grads = wp.zeros((self.shards, len(struct.table)), dtype=struct.table.dtype, device=self.device)
        self.grad_structs = [with_table(config, struct, self.grads[s]) for s in range(self.shards)]
        # Adam runs over the entries' features one by one, as the flat host table counts them.
        self._adam_arrays = [
            self.grads.view(float).reshape((self.shards, -1)),
            _flat(struct.table),
            _flat(self.moves.table),
        ]
        # A cache line (64 bytes) per shard: shards that add into one line would pass it back and forth per point.
        self.losses = wp.zeros((self.shards, 16), dtype=float, device=self.device)
        self.features = config.features
        # One mark per table row, whole words of them for Adam (the scatter reaches every level, Adam reads the
        # first ``entries``' rows).
        words = -(-len(struct.table) // ADAM_CHUNK) * (ADAM_CHUNK // _MARKS_PER_WORD)
        self.touched = wp.zeros(words * _MARKS_PER_WORD, dtype=wp.uint8, device=self.device)
        self._touched_words = wp.array(ptr=self.touched.ptr, dtype=wp.uint64, shape=(words,), device=self.device)
        self.first = wp.zeros(entries, dtype=float, device=self.device)
        self.second = wp.zeros(entries, dtype=float, device=self.device)
        self.adam_steps = 0
        self.residuals = wp.zeros(capacity, dtype=float, device=self.device)
        self.slopes = wp.zeros(capacity, dtype=generated(config).vec_in, device=self.device)
        self._recorded = None

    def reset(self) -> None:
        """Forget the optimiser's moments (a fresh Adam)."""
        self.first.zero_()
        self.second.zero_()
        self.adam_steps = 0

    def linearize(self, points: wp.array, targets: wp.array) -> None:
        """Start a round: the linear model of the field around its current table at ``points``."""
        self.moves.table.zero_()
        inputs = [self.struct, points, targets, self.residuals, self.slopes]
        parallel.launch(self.kernels.linearize, len(points), inputs, self.device)

    def steps(self, points: wp.array, rates) -> None:
        """One Adam step on the current round's linear model per learning rate in ``rates``, on consecutive
        batches of ``batch`` points (all the points when there are no more)."""
        n = len(points)
        size = min(self.batch, n)
        gradient, adam = self._launches(points)
        for k, lr in enumerate(rates):
            if k == len(rates) - 1:
                self.losses.zero_()  # the loss reported is the last step's
            gradient.run(offset=(k * size) % n)
            self.adam_steps += 1
            t = self.adam_steps
            adam.run(lr=float(lr), correction1=1.0 - self.beta1**t, correction2=1.0 - self.beta2**t)

    def _launches(self, points: wp.array) -> tuple:
        """The gradient and Adam launches on ``points``, recorded on first use (a refit's points stay one array)."""
        size = min(self.batch, len(points))
        if self._recorded is None or self._recorded[0] is not points or self._recorded[1] != size:

            def inputs(s):
                field = [self.moves, self.grad_structs[s], points, self.residuals, self.slopes]
                return [*field, 0, 2.0 / size, self.losses[s], self.touched]

            gradient = parallel.RecordedLaunch(self.kernels.gradient, size, inputs, self.device)
            rows = self.entries // self.features
            adam_inputs = [self._touched_words, rows, self.features, *self._adam_arrays, self.first, self.second]
            adam_inputs += [0.0, self.beta1, self.beta2, 1.0, 1.0, self.eps]
            adam = parallel.RecordedLaunch(_adam, -(-rows // ADAM_CHUNK), adam_inputs, self.device)
            self._recorded = (points, size, gradient, adam)
        return self._recorded[2:]

    def loss(self) -> float:
        """The mean squared residual of the last step's batch (reads the device)."""
        return float(self.losses.numpy().sum())


def _flat(table: wp.array) -> wp.array:
    return table.view(float).reshape((-1,))


def refit_entries(config: HybridConfig, max_resolution: int) -> int:
    """How many table entries (a prefix: the table stores level after level, coarse first) the grid levels of
    resolution <= ``max_resolution`` hold."""
    ends = [g.offset + g.entries * config.features for g in config.grids() if g.resolution <= max_resolution]
    return max(ends, default=0)


@wp.kernel
def _jitter(start: int, pool: wp.array(dtype=typing.Any), spread: float, seed: int, out: wp.array(dtype=typing.Any)):
    # Pool point i moved by N(0, spread^2) noise, kept in the domain.
    i = start + wp.tid()
    state = wp.rand_init(seed, i)
    x = pool[i]
    for a in range(len(x)):
        x[a] = wp.clamp(x[a] + spread * wp.randn(state), -1.0, 1.0)
    out[i] = x


class StateField(HybridField):
    """The simulation's state as a hybrid field: on the state's device it reads the state's own arrays in
    place (no copy), elsewhere a copy; ``parameters`` copies them to the host."""

    def __init__(self, config: HybridConfig, struct, device, normalization, metadata: dict):
        Field.__init__(self, dim=config.dim, kind="hybrid", normalization=normalization, metadata=dict(metadata))
        self.config = config
        self._struct = struct
        self._device = wp.get_device(device)

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        shapes = parameter_shapes(self.config)
        # A copy: on the CPU ``numpy()`` is a view of the state, which the next step changes.
        return {name: getattr(self._struct, name).numpy().reshape(shapes[name]).copy() for name in PARAMETER_NAMES}

    def warp(self, device=None):
        if wp.get_device(device) == self._device:
            return self._struct
        return super().warp(device)

    def snapshot(self) -> HybridField:
        """A copy of the state now, on the host."""
        return HybridField(self.config, self.parameters, self.normalization, self.metadata)


class LevelSetSimulation(Simulation):
    """The shared machinery: subclasses implement ``_launch_targets(struct, points, out, dt)``.

    The default step computes the targets once at fixed band points and refits to them in ``refit_rounds``
    rounds of a linearised refit (``TableRefit``) with one Adam that persists over the steps."""

    # Band points per step and per refit step (None: all of them) on fields whose moved levels reach 128 cells
    # (the `fast` preset's).
    full_sample_counts: tuple = (4096, None)

    def default_rounds(self, share: float) -> int:
        """The refit's rounds per step; each relinearises the decoder at the step's fixed points."""
        return 10

    @staticmethod
    def sample_share(config: HybridConfig, refit_resolution: int) -> float:
        """The finest moved level's cells over 128, at most 1: the default batch is ``full_sample_counts``'
        times this share, the band points times its square root. A coarser field has fewer rows to fit and
        fits them no worse from fewer points: on the `tiny` preset (32 cells) the curvature flow's radius error
        stays at 29% with half the points, where a quarter leaves 35%."""
        finest = max(grid.resolution for grid in config.grids() if grid.resolution <= refit_resolution)
        return min(finest / 128.0, 1.0)

    def __init__(
        self,
        field: HybridField,
        spec: OperatorSpec,
        band_width: float = 0.1,
        points: int | None = None,
        refit_steps: int = 20,
        refit_rounds: int | None = None,
        learning_rate: float = 5e-3,
        refit_resolution: int = 128,
        batch: int | None = None,
        seed: int = 0,
        device=None,
    ):
        super().__init__(device)
        if not isinstance(field, HybridField):
            raise InputError(f"field: expected a hybrid neural field (the state), got a {field.kind} field")
        if not (isinstance(band_width, int | float) and band_width > 0):
            raise InputError(f"band_width: expected a positive number, got {band_width!r}")
        self.dim = field.dim
        self.spec = spec
        self.op = spec.warp()
        self.band_width = float(band_width)
        self.refit_steps = check_count(refit_steps, "refit_steps")
        self.learning_rate = float(learning_rate)
        self.refit_resolution = check_count(refit_resolution, "refit_resolution")
        self.seed = seed
        self.normalization = field.normalization
        entries = refit_entries(field.config, self.refit_resolution)
        if entries == 0:
            coarsest = min(grid.resolution for grid in field.config.grids())
            expected = f"expected at least the coarsest level's {coarsest}"
            raise InputError(f"refit_resolution: {expected}, got {refit_resolution}")
        share = self.sample_share(field.config, self.refit_resolution)
        full_points, full_batch = self.full_sample_counts
        if points is None:
            points = max(16, round(full_points * math.sqrt(share)))
        if batch is None and full_batch is not None:
            batch = max(16, round(full_batch * share))
        self.points = check_count(points, "points", 16)
        self.batch = self.points if batch is None else check_count(batch, "batch")
        rounds = min(self.default_rounds(share), self.refit_steps) if refit_rounds is None else refit_rounds
        self.refit_rounds = check_count(rounds, "refit_rounds")
        if self.refit_rounds > self.refit_steps:
            given = f"expected at most refit_steps ({refit_steps}), got {self.refit_rounds}"
            raise InputError(f"refit_rounds: {given}")
        state = field
        if entries < field.config.table_length:
            state = self._without_unmoved_levels(field, entries, self.refit_resolution)
        self.config = state.config
        self.refit_entries = refit_entries(self.config, self.refit_resolution)
        self.state = StateField(
            self.config, state._make_struct(self.device), self.device, self.normalization, field.metadata
        )
        self._struct = self.state.warp(self.device)
        self.sampler = BandSampler(self.dim, self.points, self.band_width, self.device)
        self._targets = wp.zeros(self.points, dtype=float, device=self.device)
        self.refit = TableRefit(self.config, self._struct, self.refit_entries, self.batch, self.points, self.device)
        if state is not field:
            self._refit_to(field)

    @staticmethod
    def _without_unmoved_levels(field: HybridField, entries: int, refit_resolution: int) -> HybridField:
        """The refit moves the grid levels up to ``refit_resolution``; finer ones would hold their part of the
        shape where it started (0.0035 rms near the fast sphere's surface, more than a step's refit error) and
        drag the moving surface. So the state starts without them (``_refit_to`` then fits the moved levels
        to the field): it keeps only the moved levels where they form a level series of their own (every
        refit then costs about half), and holds the others at zero where they do not."""
        coarse = field.coarse_levels(refit_resolution)
        if coarse is not None:
            return coarse
        table = field.parameters["table"].copy()
        table[entries:] = 0.0
        return HybridField(field.config, {**field.parameters, "table": table}, field.normalization, field.metadata)

    def _refit_to(self, field: HybridField) -> None:
        """Fit the moved levels to ``field`` (200 steps on jittered batches of its band, as the advection's)."""
        pool = BandSampler(self.dim, 65536, self.band_width, self.device).sample(field.warp(self.device), self.seed)
        points = wp.empty_like(pool)
        targets = wp.empty(len(pool), dtype=float, device=self.device)
        refit = TableRefit(self.config, self._struct, self.refit_entries, 8192, len(pool), self.device)

        def draw(r: int):
            parallel.launch(_jitter, len(pool), [pool, 0.5 * self.band_width, self.seed + r, points], self.device)
            parallel.launch(_values, len(pool), [field.warp(self.device), points, targets], self.device)
            return points, targets

        run_rounds(refit, draw, 4, 200, 1e-2, 1e-4)

    @abstractmethod
    def _launch_targets(self, struct, points: wp.array, out: wp.array, dt: float) -> None:
        """Write the state's next values at ``points`` into ``out``."""

    def _advance(self, dt: float) -> None:
        points = self.sampler.sample(self._struct, self.seed + self.steps)
        self._launch_targets(self._struct, points, self._targets, dt)
        # Fine entries are each seen by one or two of these fixed samples and would fit them on their own,
        # leaving the level set between them behind: the refit keeps to the coarse levels.
        draw = lambda r: (points, self._targets)  # noqa: E731
        run_rounds(self.refit, draw, self.refit_rounds, self.refit_steps, self.learning_rate, self.learning_rate)

    @property
    def last_loss(self) -> float:
        """The mean squared residual of the last refit step's batch (reads the device)."""
        return self.refit.loss()

    def next_values(self, points: np.ndarray, dt: float) -> np.ndarray:
        """The state's values at ``points`` one step of ``dt`` on: what the refit of a step fits to."""
        x = wp.array(np.ascontiguousarray(points, dtype=np.float32), dtype=_VEC[self.dim], device=self.device)
        out = wp.zeros(len(x), dtype=float, device=self.device)
        self._launch_targets(self._struct, x, out, dt)
        return out.numpy()

    def state_arrays(self) -> dict[str, wp.array]:
        return {"targets": self._targets, "table": self._struct.table}

    def field(self) -> HybridField:
        """A copy of the state now (on the host)."""
        return self.state.snapshot()

    def values(self, points: np.ndarray) -> np.ndarray:
        """The state's values at ``points`` (field coordinates)."""
        return evaluate_values(self.state, points, self.device)

    def surface(self, n: int = 2048, seed: int = 0) -> np.ndarray:
        """``n`` points on the current zero level set (field coordinates): vertices of its marching-cubes
        extraction at 128^3 (a 512^2 contour in 2D), which lie within about 1e-4 of the level set. Newton
        projection with the field's own gradient does not: its fine-level noise leaves a share of the points
        0.05 off after 10 steps."""
        vertices, _ = extract_level_set(self.state, 128 if self.dim == 3 else 512, self.device)
        pick = np.random.default_rng(seed).choice(len(vertices), size=min(n, len(vertices)), replace=False)
        return vertices[pick]

    def inside_fraction(self, resolution: int = 48) -> np.ndarray:
        return inside_grid(self.state, resolution, self.device)

    def record(self, recorder, frame: int) -> None:
        vertices, faces = extract_level_set(self.state, 64 if self.dim == 3 else 256, self.device)
        if self.dim == 2:
            recorder.add_points("surface", self.normalization.from_field(vertices) @ np.eye(2, 3), frame=frame)
            return
        curvature = mean_curvature(self.state, vertices, **self._op_kwargs(), device=self.device)
        recorder.add_mesh_frame(
            "surface", self.normalization.from_field(vertices), faces, frame, primvars={"curvature": curvature}
        )

    def _op_kwargs(self) -> dict:
        s = self.spec
        return {"method": s.method, "k": s.k, "sigma": s.sigma, "h": s.h, "stencil": s.stencil, "seed": s.seed}


def run_rounds(refit: TableRefit, draw, rounds: int, steps: int, lr: float, final_lr: float) -> None:
    """``steps`` Adam steps of ``refit`` in ``rounds`` rounds, each on the points and targets ``draw(round)``
    returns; the rate decays geometrically from ``lr`` to ``final_lr`` over the steps.

    Adam moves each entry by about the rate per step: a round's reach grows with its summed rate, its cost
    with its steps. The rounds split the steps at equal shares of the two, half each, so that no round's
    linear model reaches much further than another's while the first, short ones keep some steps each."""
    rates = lr * (final_lr / lr) ** (np.arange(steps) / steps)
    share = 0.5 * (np.cumsum(rates) / rates.sum() + np.arange(1, steps + 1) / steps)
    begin = 0
    for r in range(rounds):
        # At least one step per round, and one left for each round after it.
        end = int(np.searchsorted(share, (r + 1) / rounds - 1e-9)) + 1
        end = min(max(end, begin + 1), steps - (rounds - 1 - r))
        points, targets = draw(r)
        refit.linearize(points, targets)
        refit.steps(points, rates[begin:end])
        begin = end


def grid_points(dim: int, resolution: int) -> np.ndarray:
    axis = np.linspace(-1.0, 1.0, resolution)
    grid = np.meshgrid(*([axis] * dim), indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def inside_grid(field: Field, resolution: int, device=None) -> np.ndarray:
    return evaluate_values(field, grid_points(field.dim, resolution), device) < 0.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


__all__ = [
    "FIT_SHARD",
    "FLOWS",
    "BandSampler",
    "Flow",
    "LevelSetSimulation",
    "StateField",
    "TableRefit",
    "advection_targets_kernel",
    "curvature_targets_kernel",
    "grid_points",
    "inside_grid",
    "iou",
    "refit_entries",
    "run_rounds",
    "with_table",
]
