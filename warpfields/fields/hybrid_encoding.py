"""The grid encoding of a hybrid field, generated grid by grid with every grid constant fixed at compile time.

Three phases per grid and point: ``locate`` finds the grid's cell (corner rows of the table and
the fractions inside the cell), ``gather`` loads every corner's features (one row each), and the
combinations run on those corners: the encoding itself by successive linear interpolation
axis after axis, its Jacobian from the differences along each axis, and the mixed second
partials against a feature gradient. The adjoints into the table locate the point again
and spread each corner's share.

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
    """Generated encoding functions of one configuration; see the module docstring.

    ``encode(field, x) -> e``; ``encode_jacobian(field, x) -> (e, J)`` with ``J[a, k] = de_k/dx_a``;
    ``mixed_vjp(field, x, ge) -> pairs``: the mixed second partials of ``ge . e(x)``, one per axis pair;
    ``mark(flags, x)`` sets ``flags[row]`` (a ``uint8`` per table row) of every row that encoding ``x`` reads.
    """

    encode: wp.Function
    encode_jacobian: wp.Function
    mixed_vjp: wp.Function
    mark: wp.Function
    scatter_builder: Callable[[wp.Function, bool], wp.Function]

    def scatter(self, accumulate, directional: bool) -> wp.Function:
        """``scatter(grads, x, u, grad_features)`` adding each corner's share into ``grads.table``.

        The share is the corner's weight (adjoint of the encoding) or, ``directional``, the
        weight's derivative along ``u`` (adjoint of the encoding's derivative along ``u``).
        """
        return self.scatter_builder(accumulate, directional)


@wp.func
def corner_factor(frac: float, bit: int):
    return wp.where(bit == 1, frac, 1.0 - frac)


def _make_grid_functions(grid: Grid, config: HybridConfig, Struct, vec_d, vec_pairs, mat_corners, tag: str):
    """Locating a point in one grid, each corner's weight terms, and the combinations of its corner features."""
    gdim = len(grid.axes)
    axes = grid.axes
    F = config.features
    n_corners = 1 << gdim
    res = float(grid.resolution)
    mask = wp.uint32((1 << config.log2_table) - 1)
    strides = [(grid.resolution + 1) ** j for j in range(gdim)]
    vec_rows = wp.types.vector(length=n_corners, dtype=int)
    vec_corners = wp.types.vector(length=n_corners, dtype=float)
    vec_f = wp.types.vector(length=F, dtype=float)
    mat_fd = wp.types.matrix(shape=(F, config.dim), dtype=float)
    pair_of = [[PAIR_INDEX.get((min(a, b), max(a, b)), 0) for b in range(3)] for a in range(3)]

    @wp.func(name=f"hybrid_locate_{tag}")
    def locate(x: vec_d):
        frac = wp.vec3()
        scale = wp.vec3()
        # Per axis, the lower and upper corner's term of the row: index offsets (dense) or hash terms.
        low = wp.vec3i()
        high = wp.vec3i()
        low_hash = wp.vec3ui()
        high_hash = wp.vec3ui()
        for j in range(wp.static(gdim)):
            xa = x[wp.static(axes[j])]
            # Clamped: release builds do no bounds checks, and stencils around boundary points leave the domain.
            p = wp.clamp((xa + 1.0) * 0.5, 0.0, 1.0) * wp.static(res)
            i = wp.min(int(p), wp.static(grid.resolution - 1))
            frac[j] = p - float(i)
            scale[j] = wp.where(wp.abs(xa) < 1.0, wp.static(0.5 * res), 0.0)
            if wp.static(grid.dense):
                low[j] = i * wp.static(strides[j])
                high[j] = low[j] + wp.static(strides[j])
            else:
                low_hash[j] = wp.uint32(i) * wp.static(_PRIMES_U32[j])
                high_hash[j] = low_hash[j] + wp.static(_PRIMES_U32[j])
        rows = vec_rows()
        for c in range(wp.static(n_corners)):
            index = int(0)
            h = wp.uint32(0)
            for j in range(wp.static(gdim)):
                if wp.static(grid.dense):
                    if wp.static((c >> j) & 1):
                        index += high[j]
                    else:
                        index += low[j]
                elif wp.static((c >> j) & 1):
                    h = h ^ high_hash[j]
                else:
                    h = h ^ low_hash[j]
            if wp.static(not grid.dense):
                index = int(h & wp.static(mask))
            rows[c] = wp.static(grid.offset // F) + index
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

    # Corner c has bit j set where it is the upper corner along the grid's axis j. Interpolation and
    # its derivatives run axis by axis on the corner values t: along axis j, the pairs (c, c + 2^j) with
    # c a multiple of 2^(j+1) are replaced in place (in c) by their interpolation or difference.

    @wp.func(name=f"hybrid_interpolate_{tag}")
    def interpolate(frac: wp.vec3, t: mat_corners) -> vec_f:
        for j in range(wp.static(gdim)):
            for c in range(0, wp.static(n_corners), wp.static(2 << j)):
                t[c] = t[c] + frac[j] * (t[c + wp.static(1 << j)] - t[c])
        return t[0]

    @wp.func(name=f"hybrid_interpolate_jacobian_{tag}")
    def interpolate_jacobian(frac: wp.vec3, scale: wp.vec3, t: mat_corners):
        jac = mat_fd()
        for j in range(wp.static(gdim)):
            # The difference along axis j, interpolated along the axes after it (those before are done in t).
            d = mat_corners()
            for c in range(0, wp.static(n_corners), wp.static(2 << j)):
                d[c] = t[c + wp.static(1 << j)] - t[c]
                t[c] = t[c] + frac[j] * d[c]
            for k in range(wp.static(j + 1), wp.static(gdim)):
                for c in range(0, wp.static(n_corners), wp.static(2 << k)):
                    d[c] = d[c] + frac[k] * (d[c + wp.static(1 << k)] - d[c])
            for f in range(wp.static(F)):
                jac[f, wp.static(axes[j])] = d[0, f] * scale[j]
        return t[0], jac

    @wp.func(name=f"hybrid_mixed_partials_{tag}")
    def mixed_partials(frac: wp.vec3, scale: wp.vec3, t: mat_corners, grad_features: vec_f) -> vec_pairs:
        shares = vec_corners()
        for c in range(wp.static(n_corners)):
            shares[c] = wp.dot(t[c], grad_features)
        pairs = vec_pairs()
        for j in range(wp.static(gdim)):
            for k in range(wp.static(j + 1), wp.static(gdim)):
                d = vec_corners()
                for c in range(wp.static(n_corners)):
                    d[c] = shares[c]
                for m in range(wp.static(gdim)):
                    for c in range(0, wp.static(n_corners), wp.static(2 << m)):
                        if wp.static(m == j or m == k):
                            d[c] = d[c + wp.static(1 << m)] - d[c]
                        else:
                            d[c] = d[c] + frac[m] * (d[c + wp.static(1 << m)] - d[c])
                pairs[wp.static(pair_of[axes[j]][axes[k]])] = d[0] * scale[j] * scale[k]
        return pairs

    def make_scatter(accumulate, directional: bool):
        @wp.func(name=f"hybrid_grid_scatter_{tag}_{accumulate.key}_{int(directional)}")
        def scatter(grads: Struct, x: vec_d, u: vec_d, grad_features: vec_f):
            frac, scale, rows = locate(x)
            for c in range(wp.static(n_corners)):
                if wp.static(directional):
                    share = wp.dot(slope(frac, scale, c), u)
                else:
                    share = weight(frac, c)
                wp.static(accumulate)(grads.table, rows[c], share * grad_features)

        return scatter

    @wp.func(name=f"hybrid_grid_mark_{tag}")
    def mark(flags: wp.array(dtype=wp.uint8), x: vec_d):
        frac, scale, rows = locate(x)
        for c in range(wp.static(n_corners)):
            # Written once: threads that share the coarse rows would otherwise pass their lines back and forth.
            if flags[rows[c]] == wp.uint8(0):
                flags[rows[c]] = wp.uint8(1)

    return locate, interpolate, interpolate_jacobian, mixed_partials, make_scatter, mark


def make_encoding(config: HybridConfig, Struct, vec_d, vec_in, tag: str) -> Encoding:
    F, D = config.features, config.dim
    grids = config.grids()
    n_grids = len(grids)
    n_corners = 1 << len(grids[0].axes)
    n_pairs = 3 if D == 3 else 1
    vec_pairs = wp.types.vector(length=n_pairs, dtype=float)
    vec_f = wp.types.vector(length=F, dtype=float)
    mat_corners = wp.types.matrix(shape=(n_corners, F), dtype=float)
    vec_rows = wp.types.vector(length=n_corners, dtype=int)
    mat_jacobian = wp.types.matrix(shape=(D, config.n_inputs), dtype=float)
    first = [g.first_feature for g in grids]
    per_grid = [
        _make_grid_functions(grid, config, Struct, vec_d, vec_pairs, mat_corners, f"{tag}_grid{i}")
        for i, grid in enumerate(grids)
    ]
    LOCATE, INTERPOLATE, INTERPOLATE_JACOBIAN, MIXED_PARTIALS, MAKE_SCATTER, MARK = range(6)

    # Grid after grid: locate the cell, load its corners, combine them. On points in locality order most
    # corners are in cache, and the corners of one grid at a time stay in registers; locating and loading
    # every grid first (all misses in flight together) spilled them and cost 15% of a value.
    @wp.func(name=f"hybrid_gather_{tag}")
    def gather(field: Struct, rows: vec_rows) -> mat_corners:
        corners = mat_corners()
        for c in range(wp.static(n_corners)):
            corners[c] = field.table[rows[c]]
        return corners

    @wp.func(name=f"hybrid_encode_{tag}")
    def encode(field: Struct, x: vec_d) -> vec_in:
        e = vec_in()
        for g in range(wp.static(n_grids)):
            frac, scale, rows = wp.static(per_grid[g][LOCATE])(x)
            v = wp.static(per_grid[g][INTERPOLATE])(frac, gather(field, rows))
            for f in range(wp.static(F)):
                e[wp.static(first[g]) + f] = v[f]
        return e

    @wp.func(name=f"hybrid_encode_jacobian_{tag}")
    def encode_jacobian(field: Struct, x: vec_d):
        e = vec_in()
        jac = mat_jacobian()
        for g in range(wp.static(n_grids)):
            frac, scale, rows = wp.static(per_grid[g][LOCATE])(x)
            v, grid_jac = wp.static(per_grid[g][INTERPOLATE_JACOBIAN])(frac, scale, gather(field, rows))
            for f in range(wp.static(F)):
                e[wp.static(first[g]) + f] = v[f]
                for a in range(wp.static(D)):
                    jac[a, wp.static(first[g]) + f] = grid_jac[f, a]
        return e, jac

    @wp.func(name=f"hybrid_feature_slice_{tag}")
    def feature_slice(grad_features: vec_in, first: int) -> vec_f:
        out = vec_f()
        for f in range(wp.static(F)):
            out[f] = grad_features[first + f]
        return out

    @wp.func(name=f"hybrid_mixed_vjp_{tag}")
    def mixed_vjp(field: Struct, x: vec_d, grad_features: vec_in) -> vec_pairs:
        pairs = vec_pairs()
        for g in range(wp.static(n_grids)):
            frac, scale, rows = wp.static(per_grid[g][LOCATE])(x)
            ge = feature_slice(grad_features, wp.static(first[g]))
            pairs += wp.static(per_grid[g][MIXED_PARTIALS])(frac, scale, gather(field, rows), ge)
        return pairs

    @wp.func(name=f"hybrid_mark_{tag}")
    def mark(flags: wp.array(dtype=wp.uint8), x: vec_d):
        for g in range(wp.static(n_grids)):
            wp.static(per_grid[g][MARK])(flags, x)

    scatters: dict = {}

    def scatter_builder(accumulate, directional: bool) -> wp.Function:
        key = (accumulate, directional)
        if key in scatters:
            return scatters[key]
        grid_scatters = [functions[MAKE_SCATTER](accumulate, directional) for functions in per_grid]

        @wp.func(name=f"hybrid_scatter_{tag}_{accumulate.key}_{int(directional)}")
        def scatter(grads: Struct, x: vec_d, u: vec_d, grad_features: vec_in):
            for g in range(wp.static(n_grids)):
                wp.static(grid_scatters[g])(grads, x, u, feature_slice(grad_features, wp.static(first[g])))

        scatters[key] = scatter
        return scatter

    return Encoding(encode, encode_jacobian, mixed_vjp, mark, scatter_builder)
