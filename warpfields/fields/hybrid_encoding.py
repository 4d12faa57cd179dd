"""The grid encoding of a hybrid field in three phases: locate, gather, combine.

``locate`` computes every corner row and the cell fractions of every grid, ``gather``
reads each corner's features once, and every combination reuses them: the encoding
itself, the x-gradient from a feature gradient (vjp), the derivative along a direction
(jvp), the mixed second partials, and the adjoints into the table. No per-point Jacobian
matrix is formed, and one set of per-corner weight terms serves all of them.

Inside a cell multilinear interpolation is linear along each axis, so the only second
derivatives are the mixed ones, one entry per axis pair.
"""

from collections.abc import Callable
from dataclasses import dataclass

import warp as wp

from .hybrid_config import Grid, HybridConfig

wp.set_module_options({"enable_backward": False})

_PRIMES_U32 = [wp.uint32(p) for p in (1, 2654435761, 805459861)]
PAIR_INDEX = {(0, 1): 0, (0, 2): 1, (1, 2): 2}


@dataclass
class Encoding:
    """Generated encoding functions of one configuration; see the module docstring."""

    locate: wp.Function
    gather: wp.Function
    interpolate: wp.Function
    vjp: wp.Function
    jvp: wp.Function
    mixed_vjp: wp.Function
    scatter_builder: Callable[[wp.Function, bool], wp.Function]

    def scatter(self, accumulate, directional: bool) -> wp.Function:
        """``scatter(grads, fracs, scales, rows, u, grad_features)`` adding each corner's share into ``grads.table``.

        The share is the corner's weight (adjoint of the encoding) or, ``directional``, the
        weight's derivative along ``u`` (adjoint of ``jvp``).
        """
        return self.scatter_builder(accumulate, directional)


@wp.func
def corner_factor(frac: float, bit: int):
    return wp.where(bit == 1, frac, 1.0 - frac)


def _make_grid_functions(grid: Grid, config: HybridConfig, vec_d, vec_pairs, tag: str):
    """Locating a point in one grid (cell fractions, slopes and corner rows) and each corner's weight terms."""
    gdim = len(grid.axes)
    axes = grid.axes
    n_corners = 1 << gdim
    res = float(grid.resolution)
    mask = wp.uint32((1 << config.log2_table) - 1)
    strides = [(grid.resolution + 1) ** j for j in range(gdim)]
    vec_rows = wp.types.vector(length=n_corners, dtype=int)
    pair_of = [[PAIR_INDEX.get((min(a, b), max(a, b)), 0) for b in range(3)] for a in range(3)]

    @wp.func(name=f"hybrid_locate_{tag}")
    def locate(x: vec_d):
        cell = wp.vec3i()
        frac = wp.vec3()
        scale = wp.vec3()
        for j in range(wp.static(gdim)):
            xa = x[wp.static(axes[j])]
            p = wp.clamp((xa + 1.0) * 0.5, 0.0, 1.0) * wp.static(res)
            i = wp.min(int(p), wp.static(grid.resolution - 1))
            cell[j] = i
            frac[j] = p - float(i)
            scale[j] = wp.where(wp.abs(xa) < 1.0, wp.static(0.5 * res), 0.0)
        rows = vec_rows()
        for c in range(wp.static(n_corners)):
            index = int(0)
            h = wp.uint32(0)
            for j in range(wp.static(gdim)):
                bit = (c >> j) & 1
                if wp.static(grid.dense):
                    index += (cell[j] + bit) * wp.static(strides[j])
                else:
                    h = h ^ (wp.uint32(cell[j] + bit) * wp.static(_PRIMES_U32[j]))
            if wp.static(not grid.dense):
                index = int(h & wp.static(mask))
            rows[c] = wp.static(grid.offset) + index * wp.static(config.features)
        return frac, scale, rows

    @wp.func(name=f"hybrid_corner_weight_{tag}")
    def weight(frac: wp.vec3, c: int) -> float:
        w = float(1.0)
        for j in range(wp.static(gdim)):
            w *= corner_factor(frac[j], (c >> j) & 1)
        return w

    @wp.func(name=f"hybrid_corner_slope_{tag}")
    def slope(frac: wp.vec3, scale: wp.vec3, c: int) -> vec_d:
        out = vec_d()
        for j in range(wp.static(gdim)):
            partial = wp.where(((c >> j) & 1) == 1, scale[j], -scale[j])
            for k in range(wp.static(gdim)):
                if wp.static(k != j):
                    partial *= corner_factor(frac[k], (c >> k) & 1)
            out[wp.static(axes[j])] = partial
        return out

    @wp.func(name=f"hybrid_corner_curvature_{tag}")
    def curvature(frac: wp.vec3, scale: wp.vec3, c: int) -> vec_pairs:
        out = vec_pairs()
        for j in range(wp.static(gdim)):
            for k in range(wp.static(j + 1), wp.static(gdim)):
                second = scale[j] * scale[k]
                if ((c >> j) & 1) != ((c >> k) & 1):
                    second = -second
                for m in range(wp.static(gdim)):
                    if wp.static(m != j and m != k):
                        second *= corner_factor(frac[m], (c >> m) & 1)
                out[wp.static(pair_of[axes[j]][axes[k]])] = second
        return out

    return locate, weight, slope, curvature


def make_encoding(config: HybridConfig, Struct, vec_d, vec_in, tag: str) -> Encoding:
    F = config.features
    grids = config.grids()
    n_grids = len(grids)
    n_pairs = 3 if config.dim == 3 else 1
    vec_pairs = wp.types.vector(length=n_pairs, dtype=float)
    corners = [1 << len(g.axes) for g in grids]
    slots = [sum(corners[:g]) for g in range(n_grids)]
    first = [g.first_feature for g in grids]
    total = sum(corners)
    vec_rows = wp.types.vector(length=total, dtype=int)
    vec_feats = wp.types.vector(length=total * F, dtype=float)
    mat_cells = wp.types.matrix(shape=(n_grids, 3), dtype=float)
    per_grid = [_make_grid_functions(g, config, vec_d, vec_pairs, f"{tag}_grid{i}") for i, g in enumerate(grids)]
    LOCATE, WEIGHT, SLOPE, CURVATURE = range(4)

    @wp.func(name=f"hybrid_locate_all_{tag}")
    def locate(x: vec_d):
        fracs = mat_cells()
        scales = mat_cells()
        rows = vec_rows()
        for g in range(wp.static(n_grids)):
            frac, scale, grid_rows = wp.static(per_grid[g][LOCATE])(x)
            fracs[g] = frac
            scales[g] = scale
            for c in range(wp.static(corners[g])):
                rows[wp.static(slots[g]) + c] = grid_rows[c]
        return fracs, scales, rows

    @wp.func(name=f"hybrid_gather_{tag}")
    def gather(field: Struct, rows: vec_rows) -> vec_feats:
        feats = vec_feats()
        for g in range(wp.static(n_grids)):
            for c in range(wp.static(corners[g])):
                row = rows[wp.static(slots[g]) + c]
                for f in range(wp.static(F)):
                    feats[(wp.static(slots[g]) + c) * wp.static(F) + f] = field.table[row + f]
        return feats

    @wp.func(name=f"hybrid_interpolate_{tag}")
    def interpolate(fracs: mat_cells, feats: vec_feats) -> vec_in:
        e = vec_in()
        for g in range(wp.static(n_grids)):
            for c in range(wp.static(corners[g])):
                w = wp.static(per_grid[g][WEIGHT])(fracs[g], c)
                for f in range(wp.static(F)):
                    e[wp.static(first[g]) + f] += w * feats[(wp.static(slots[g]) + c) * wp.static(F) + f]
        return e

    @wp.func(name=f"hybrid_corner_share_{tag}")
    def corner_share(feats: vec_feats, slot: int, grad_features: vec_in, first: int) -> float:
        share = float(0.0)
        for f in range(wp.static(F)):
            share += feats[slot * wp.static(F) + f] * grad_features[first + f]
        return share

    @wp.func(name=f"hybrid_vjp_{tag}")
    def vjp(fracs: mat_cells, scales: mat_cells, feats: vec_feats, grad_features: vec_in) -> vec_d:
        grad = vec_d()
        for g in range(wp.static(n_grids)):
            for c in range(wp.static(corners[g])):
                share = corner_share(feats, wp.static(slots[g]) + c, grad_features, wp.static(first[g]))
                grad += share * wp.static(per_grid[g][SLOPE])(fracs[g], scales[g], c)
        return grad

    @wp.func(name=f"hybrid_jvp_{tag}")
    def jvp(fracs: mat_cells, scales: mat_cells, feats: vec_feats, u: vec_d) -> vec_in:
        v = vec_in()
        for g in range(wp.static(n_grids)):
            for c in range(wp.static(corners[g])):
                rate = wp.dot(wp.static(per_grid[g][SLOPE])(fracs[g], scales[g], c), u)
                for f in range(wp.static(F)):
                    v[wp.static(first[g]) + f] += rate * feats[(wp.static(slots[g]) + c) * wp.static(F) + f]
        return v

    @wp.func(name=f"hybrid_mixed_vjp_{tag}")
    def mixed_vjp(fracs: mat_cells, scales: mat_cells, feats: vec_feats, grad_features: vec_in) -> vec_pairs:
        pairs = vec_pairs()
        for g in range(wp.static(n_grids)):
            for c in range(wp.static(corners[g])):
                share = corner_share(feats, wp.static(slots[g]) + c, grad_features, wp.static(first[g]))
                pairs += share * wp.static(per_grid[g][CURVATURE])(fracs[g], scales[g], c)
        return pairs

    scatters: dict = {}

    def scatter_builder(accumulate, directional: bool) -> wp.Function:
        key = (accumulate, directional)
        if key in scatters:
            return scatters[key]

        @wp.func(name=f"hybrid_scatter_{tag}_{accumulate.key}_{int(directional)}")
        def scatter(
            grads: Struct, fracs: mat_cells, scales: mat_cells, rows: vec_rows, u: vec_d, grad_features: vec_in
        ):
            for g in range(wp.static(n_grids)):
                for c in range(wp.static(corners[g])):
                    if wp.static(directional):
                        share = wp.dot(wp.static(per_grid[g][SLOPE])(fracs[g], scales[g], c), u)
                    else:
                        share = wp.static(per_grid[g][WEIGHT])(fracs[g], c)
                    row = rows[wp.static(slots[g]) + c]
                    for f in range(wp.static(F)):
                        wp.static(accumulate)(grads.table, row + f, share * grad_features[wp.static(first[g]) + f])

        scatters[key] = scatter
        return scatter

    return Encoding(locate, gather, interpolate, vjp, jvp, mixed_vjp, scatter_builder)
