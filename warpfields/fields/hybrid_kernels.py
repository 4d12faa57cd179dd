"""Generated Warp code of hybrid fields: one struct type and one family of functions per configuration.

Every per-grid constant (resolution, table offset, dense or hashed) is fixed at compile
time, and the MLP is written as column updates on vectors of the hidden width, which is
what keeps one-point-per-thread evaluation fast on CPUs. The field protocol overloads
(``field_value``, ``field_gradient``, ``field_hessian``) are registered here.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import warp as wp

from . import analytic
from .hybrid_config import PARAMETER_NAMES, Grid, HybridConfig

wp.set_module_options({"enable_backward": False})
_UNROLL = {"max_unroll": 16}
_PRIMES = (1, 2654435761, 805459861)


@dataclass
class Generated:
    """The Warp struct type and functions generated for one configuration."""

    config: HybridConfig
    struct: type
    vec_in: type
    vec_hidden: type
    encode: wp.Function
    encode_jacobian: wp.Function
    mlp: wp.Function
    mlp_activations: wp.Function
    mlp_input_gradient: wp.Function
    value_kernel: wp.Kernel
    backward_kernels: dict[str, wp.Kernel]

    def backward_kernel(self, device) -> wp.Kernel:
        """Plain accumulation where each shard owns its buffer (CPU), atomics where threads share it (GPU)."""
        return self.backward_kernels["exclusive" if wp.get_device(device).is_cpu else "atomic"]


_GENERATED: dict[str, Generated] = {}


def generated(config: HybridConfig) -> Generated:
    key = config.key()
    if key not in _GENERATED:
        _GENERATED[key] = _generate(config)
    return _GENERATED[key]


def _make_struct(config: HybridConfig, vec_hidden) -> type:
    name = f"HybridField{config.dim}D_{config.encoding}_{config.key()}"
    annotations = {
        "table": wp.array(dtype=float),
        "w_in": wp.array(dtype=vec_hidden),
        "w_hidden": wp.array(dtype=vec_hidden),
        "b_hidden": wp.array(dtype=vec_hidden),
        "w_out": wp.array(dtype=vec_hidden),
        "b_out": wp.array(dtype=float),
    }
    cls = type(name, (), {"__annotations__": annotations, "__module__": __name__, "__qualname__": name})
    return wp.struct(cls)


_PRIMES_U32 = [wp.uint32(p) for p in _PRIMES]
_PAIR_INDEX = {(0, 1): 0, (0, 2): 1, (1, 2): 2}


def _accumulation_name(accumulate) -> str:
    return "atomic" if accumulate is wp.atomic_add else "exclusive"


@wp.func
def add_exclusive(values: wp.array(dtype=Any), index: int, value: Any):
    # Safe where a buffer has one writer at a time (a CPU shard); far cheaper than an atomic.
    values[index] = values[index] + value


def _make_grid_lookup(grid: Grid, vec_d, log2_table: int, features: int, tag: str):
    """Functions locating a point in ``grid``: its cell, and each corner's table row and weight factors."""
    gdim = len(grid.axes)
    res = float(grid.resolution)
    mask = wp.uint32((1 << log2_table) - 1)
    strides = [(grid.resolution + 1) ** j for j in range(gdim)]

    @wp.func(name=f"hybrid_locate_{tag}")
    def locate(x: vec_d):
        cell = wp.vec3i()
        frac = wp.vec3()
        scale = wp.vec3()
        for j in range(wp.static(gdim)):
            xa = x[wp.static(grid.axes[j])]
            p = wp.clamp((xa + 1.0) * 0.5, 0.0, 1.0) * wp.static(res)
            i = wp.min(int(p), wp.static(grid.resolution - 1))
            cell[j] = i
            frac[j] = p - float(i)
            scale[j] = wp.where(wp.abs(xa) < 1.0, wp.static(0.5 * res), 0.0)
        return cell, frac, scale

    @wp.func(name=f"hybrid_corner_{tag}")
    def corner(cell: wp.vec3i, frac: wp.vec3, c: int):
        # Row of the corner's first feature, its per-axis weights, and the sign of each weight's slope.
        weights = wp.vec3()
        signs = wp.vec3()
        index = 0
        h = wp.uint32(0)
        for j in range(wp.static(gdim)):
            bit = (c >> j) & 1
            weights[j] = wp.where(bit == 1, frac[j], 1.0 - frac[j])
            signs[j] = wp.where(bit == 1, 1.0, -1.0)
            if wp.static(grid.dense):
                index += (cell[j] + bit) * wp.static(strides[j])
            else:
                h = h ^ (wp.uint32(cell[j] + bit) * wp.static(_PRIMES_U32[j]))
        if wp.static(not grid.dense):
            index = int(h & wp.static(mask))
        return wp.static(grid.offset) + index * wp.static(features), weights, signs

    return locate, corner


def _make_encoder(config: HybridConfig, lookups, Struct, vec_d, vec_in, order: int):
    """Encoding features and, for ``order`` >= 1, their Jacobian; for 2 the mixed second partials.

    Inside a cell multilinear interpolation is linear along each axis, so the only second
    derivatives are the mixed ones, one column per axis pair.
    """
    D, F = config.dim, config.features
    grids = config.grids()
    n_pairs = 3 if D == 3 else 1
    mat_jac = wp.types.matrix(shape=(config.n_inputs, D), dtype=float)
    mat_mixed = wp.types.matrix(shape=(config.n_inputs, n_pairs), dtype=float)
    g_dim = [len(g.axes) for g in grids]
    g_axes = [g.axes for g in grids]
    g_first = [g.first_feature for g in grids]
    pair_of = [[_PAIR_INDEX.get((min(a, b), max(a, b)), 0) for b in range(3)] for a in range(3)]
    tag = f"{config.key()}_order{order}"

    @wp.func(name=f"hybrid_encoder_{tag}")
    def encoder(field: Struct, x: vec_d):
        e = vec_in()
        if wp.static(order >= 1):
            jac = mat_jac()
        if wp.static(order >= 2):
            mixed = mat_mixed()
        for g in range(wp.static(len(grids))):
            cell, frac, scale = wp.static(lookups[g][0])(x)
            for c in range(wp.static(1 << g_dim[g])):
                base, weights, signs = wp.static(lookups[g][1])(cell, frac, c)
                w = weights[0]
                for j in range(1, wp.static(g_dim[g])):
                    w *= weights[j]
                for f in range(wp.static(F)):
                    feature = field.table[base + f]
                    e[wp.static(g_first[g] + f)] += w * feature
                    if wp.static(order >= 1):
                        for j in range(wp.static(g_dim[g])):
                            partial = signs[j] * scale[j] * feature
                            for k in range(wp.static(g_dim[g])):
                                if wp.static(k != j):
                                    partial *= weights[k]
                            jac[wp.static(g_first[g] + f), wp.static(g_axes[g][j])] += partial
                    if wp.static(order >= 2):
                        for j in range(wp.static(g_dim[g])):
                            for k in range(wp.static(j + 1), wp.static(g_dim[g])):
                                second = signs[j] * signs[k] * scale[j] * scale[k] * feature
                                for m in range(wp.static(g_dim[g])):
                                    if wp.static(m != j and m != k):
                                        second *= weights[m]
                                pair = wp.static(pair_of[g_axes[g][j]][g_axes[g][k]])
                                mixed[wp.static(g_first[g] + f), pair] += second
        if wp.static(order == 0):
            return e
        elif wp.static(order == 1):
            return e, jac
        else:
            return e, jac, mixed

    return encoder


def _make_scatter(config: HybridConfig, lookups, Struct, vec_d, vec_in, accumulate):
    """Adds ``weight * grad_features`` into the corner rows of ``grads.table``: the encoding's adjoint."""
    grids = config.grids()
    g_dim = [len(g.axes) for g in grids]
    g_first = [g.first_feature for g in grids]

    tag = f"{config.key()}_{_accumulation_name(accumulate)}"

    @wp.func(name=f"hybrid_scatter_{tag}")
    def scatter(grads: Struct, x: vec_d, grad_features: vec_in):
        for g in range(wp.static(len(grids))):
            cell, frac, scale = wp.static(lookups[g][0])(x)
            for c in range(wp.static(1 << g_dim[g])):
                base, weights, signs = wp.static(lookups[g][1])(cell, frac, c)
                w = weights[0]
                for j in range(1, wp.static(g_dim[g])):
                    w *= weights[j]
                for f in range(wp.static(config.features)):
                    wp.static(accumulate)(grads.table, base + f, w * grad_features[wp.static(g_first[g] + f)])

    return scatter


def _generate(config: HybridConfig) -> Generated:
    D, H, NH, N_IN = config.dim, config.hidden_width, config.hidden_layers, config.n_inputs
    vec_d = wp.vec3 if D == 3 else wp.vec2
    mat_dd = wp.mat33 if D == 3 else wp.mat22
    vec_in = wp.types.vector(length=N_IN, dtype=float)
    vec_hidden = wp.types.vector(length=H, dtype=float)
    mat_acts = wp.types.matrix(shape=(NH, H), dtype=float)
    Struct = _make_struct(config, vec_hidden)
    zero_hidden = vec_hidden()

    tag = config.key()
    lookups = [
        _make_grid_lookup(g, vec_d, config.log2_table, config.features, f"{tag}_grid{i}")
        for i, g in enumerate(config.grids())
    ]
    encode_value = _make_encoder(config, lookups, Struct, vec_d, vec_in, 0)
    encode_jacobian = _make_encoder(config, lookups, Struct, vec_d, vec_in, 1)
    encode_mixed = _make_encoder(config, lookups, Struct, vec_d, vec_in, 2)

    @wp.func(name=f"hybrid_mlp_activations_{tag}")
    def mlp_activations(field: Struct, e: vec_in):
        acts = mat_acts()
        h = field.b_hidden[0]
        for i in range(wp.static(N_IN)):
            h += field.w_in[i] * e[i]
        a = wp.max(h, zero_hidden)
        acts[0] = a
        for layer in range(1, wp.static(NH)):
            h = field.b_hidden[layer]
            for j in range(wp.static(H)):
                h += field.w_hidden[(layer - 1) * wp.static(H) + j] * a[j]
            a = wp.max(h, zero_hidden)
            acts[layer] = a
        return wp.dot(field.w_out[0], a) + field.b_out[0], acts

    @wp.func(name=f"hybrid_mlp_{tag}")
    def mlp(field: Struct, e: vec_in) -> float:
        h = field.b_hidden[0]
        for i in range(wp.static(N_IN)):
            h += field.w_in[i] * e[i]
        a = wp.max(h, zero_hidden)
        for layer in range(1, wp.static(NH)):
            h = field.b_hidden[layer]
            for j in range(wp.static(H)):
                h += field.w_hidden[(layer - 1) * wp.static(H) + j] * a[j]
            a = wp.max(h, zero_hidden)
        return wp.dot(field.w_out[0], a) + field.b_out[0]

    @wp.func(name=f"hybrid_relu_mask_{tag}")
    def relu_mask(g: vec_hidden, a: vec_hidden) -> vec_hidden:
        masked = g
        for j in range(wp.static(H)):
            masked[j] = wp.where(a[j] > 0.0, g[j], 0.0)
        return masked

    @wp.func(name=f"hybrid_mlp_input_gradient_{tag}")
    def mlp_input_gradient(field: Struct, acts: mat_acts) -> vec_in:
        g = relu_mask(field.w_out[0], acts[wp.static(NH - 1)])
        for back in range(wp.static(NH - 1)):
            layer = wp.static(NH - 1) - back
            below = vec_hidden()
            for j in range(wp.static(H)):
                below[j] = wp.dot(field.w_hidden[(layer - 1) * wp.static(H) + j], g)
            g = relu_mask(below, acts[layer - 1])
        ge = vec_in()
        for i in range(wp.static(N_IN)):
            ge[i] = wp.dot(field.w_in[i], g)
        return ge

    def make_mlp_backward(accumulate):
        backward_tag = f"{tag}_{_accumulation_name(accumulate)}"

        @wp.func(name=f"hybrid_mlp_backward_{backward_tag}")
        def mlp_backward(field: Struct, grads: Struct, e: vec_in, acts: mat_acts, grad_out: float) -> vec_in:
            # Accumulates parameter gradients of grad_out * f into ``grads``; returns d(grad_out * f)/de.
            a_last = acts[wp.static(NH - 1)]
            wp.static(accumulate)(grads.w_out, 0, grad_out * a_last)
            wp.static(accumulate)(grads.b_out, 0, grad_out)
            g = relu_mask(grad_out * field.w_out[0], a_last)
            for back in range(wp.static(NH - 1)):
                layer = wp.static(NH - 1) - back
                wp.static(accumulate)(grads.b_hidden, layer, g)
                a_below = acts[layer - 1]
                below = vec_hidden()
                for j in range(wp.static(H)):
                    row = (layer - 1) * wp.static(H) + j
                    wp.static(accumulate)(grads.w_hidden, row, a_below[j] * g)
                    below[j] = wp.dot(field.w_hidden[row], g)
                g = relu_mask(below, a_below)
            wp.static(accumulate)(grads.b_hidden, 0, g)
            ge = vec_in()
            for i in range(wp.static(N_IN)):
                wp.static(accumulate)(grads.w_in, i, e[i] * g)
                ge[i] = wp.dot(field.w_in[i], g)
            return ge

        return mlp_backward

    field_value = analytic.field_value
    field_gradient = analytic.field_gradient
    field_hessian = analytic.field_hessian

    @wp.func(name=f"hybrid_field_value_{tag}")
    def field_value(field: Struct, x: vec_d) -> float:
        return mlp(field, encode_value(field, x))

    @wp.func(name=f"hybrid_field_gradient_{tag}")
    def field_gradient(field: Struct, x: vec_d) -> vec_d:
        e, jac = encode_jacobian(field, x)
        value, acts = mlp_activations(field, e)
        return wp.transpose(jac) * mlp_input_gradient(field, acts)

    @wp.func(name=f"hybrid_field_hessian_{tag}")
    def field_hessian(field: Struct, x: vec_d) -> mat_dd:
        e, jac, mixed = encode_mixed(field, x)
        value, acts = mlp_activations(field, e)
        pairs = wp.transpose(mixed) * mlp_input_gradient(field, acts)
        hess = mat_dd()
        for a in range(wp.static(D)):
            for b in range(wp.static(D)):
                if wp.static(a != b):
                    hess[a, b] = pairs[wp.static(_PAIR_INDEX[(min(a, b), max(a, b))])]
        return hess

    @wp.kernel(enable_backward=False, module="unique", module_options=_UNROLL)
    def value_kernel(start: int, field: Struct, xs: wp.array(dtype=vec_d), out: wp.array(dtype=float)):
        i = start + wp.tid()
        out[i] = mlp(field, encode_value(field, xs[i]))

    def make_backward_kernel(accumulate):
        mlp_backward = make_mlp_backward(accumulate)
        scatter = _make_scatter(config, lookups, Struct, vec_d, vec_in, accumulate)

        @wp.kernel(enable_backward=False, module="unique", module_options=_UNROLL)
        def backward_kernel(
            start: int,
            field: Struct,
            grads: Struct,
            xs: wp.array(dtype=vec_d),
            grad_out: wp.array(dtype=float),
            x_grad: wp.array(dtype=vec_d),
        ):
            i = start + wp.tid()
            x = xs[i]
            e, jac = encode_jacobian(field, x)
            value, acts = mlp_activations(field, e)
            grad_features = mlp_backward(field, grads, e, acts, grad_out[i])
            scatter(grads, x, grad_features)
            x_grad[i] = wp.transpose(jac) * grad_features

        return backward_kernel

    return Generated(
        config=config,
        struct=Struct,
        vec_in=vec_in,
        vec_hidden=vec_hidden,
        encode=encode_value,
        encode_jacobian=encode_jacobian,
        mlp=mlp,
        mlp_activations=mlp_activations,
        mlp_input_gradient=mlp_input_gradient,
        value_kernel=value_kernel,
        backward_kernels={
            "exclusive": make_backward_kernel(add_exclusive),
            "atomic": make_backward_kernel(wp.atomic_add),
        },
    )


def make_struct(config: HybridConfig, arrays: dict, device=None):
    """The Warp struct of ``config`` over ``arrays`` (numpy, or torch shared zero-copy; see ``parameter_shapes``)."""
    gen = generated(config)
    s = gen.struct()
    for name in PARAMETER_NAMES:
        value = arrays[name]
        dtype = wp.float32 if name in ("table", "b_out") else gen.vec_hidden
        if type(value).__module__.startswith("torch"):
            setattr(s, name, wp.from_torch(value.detach(), dtype=dtype))
        else:
            setattr(s, name, wp.array(np.ascontiguousarray(value, dtype=np.float32), dtype=dtype, device=device))
    return s
