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

from ..runtime import build_lock
from . import analytic
from .hybrid_config import PARAMETER_NAMES, HybridConfig
from .hybrid_encoding import PAIR_INDEX, Encoding, make_encoding

wp.set_module_options({"enable_backward": False})
_UNROLL = {"max_unroll": 16}


@dataclass
class Generated:
    """The Warp struct type and functions generated for one configuration."""

    config: HybridConfig
    struct: type
    vec_in: type
    vec_hidden: type
    encoding: Encoding
    mlp: wp.Function
    mlp_activations: wp.Function
    mlp_input_gradient: wp.Function
    relu_mask: wp.Function
    hidden_dot: wp.Function
    value_kernel: wp.Kernel
    backward_kernels: dict[str, wp.Kernel]

    def backward_kernel(self, device) -> wp.Kernel:
        """Plain accumulation where each shard owns its buffer (CPU), atomics where threads share it (GPU)."""
        return self.backward_kernels["exclusive" if wp.get_device(device).is_cpu else "atomic"]


_GENERATED: dict[str, Generated] = {}


def generated(config: HybridConfig) -> Generated:
    """The Warp struct, protocol overloads and kernels of one configuration, generated once per process (the
    first call compiles, later calls with an equal configuration return the same objects)."""
    key = config.key()
    with build_lock:
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


def _accumulation_name(accumulate) -> str:
    return "atomic" if accumulate is wp.atomic_add else "exclusive"


@wp.func
def add_exclusive(values: wp.array(dtype=Any), index: int, value: Any):
    # Safe where a buffer has one writer at a time (a CPU shard); far cheaper than an atomic.
    values[index] = values[index] + value


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
    enc = make_encoding(config, Struct, vec_d, vec_in, tag)

    lanes = min(8, H)
    vec_lanes = wp.types.vector(length=lanes, dtype=float)

    @wp.func(name=f"hybrid_hidden_dot_{tag}")
    def hidden_dot(a: vec_hidden, b: vec_hidden) -> float:
        # Independent partial sums: one running sum is a chain of H dependent multiply-adds that
        # strict float semantics keep from vectorising (it made the MLP's backward 10x its forward).
        partial = vec_lanes()
        for j in range(wp.static(H // lanes)):
            for lane in range(wp.static(lanes)):
                partial[lane] += a[wp.static(lanes) * j + lane] * b[wp.static(lanes) * j + lane]
        total = float(0.0)
        for lane in range(wp.static(lanes)):
            total += partial[lane]
        return total

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
        return hidden_dot(field.w_out[0], a) + field.b_out[0], acts

    @wp.func(name=f"hybrid_mlp_{tag}")
    def mlp(field: Struct, e: vec_in) -> float:
        # The compiler drops the unused activations: the value path's machine code is that of a value-only MLP.
        value, acts = mlp_activations(field, e)
        return value

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
                below[j] = hidden_dot(field.w_hidden[(layer - 1) * wp.static(H) + j], g)
            g = relu_mask(below, acts[layer - 1])
        ge = vec_in()
        for i in range(wp.static(N_IN)):
            ge[i] = hidden_dot(field.w_in[i], g)
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
                    below[j] = hidden_dot(field.w_hidden[row], g)
                g = relu_mask(below, a_below)
            wp.static(accumulate)(grads.b_hidden, 0, g)
            ge = vec_in()
            for i in range(wp.static(N_IN)):
                wp.static(accumulate)(grads.w_in, i, e[i] * g)
                ge[i] = hidden_dot(field.w_in[i], g)
            return ge

        return mlp_backward

    field_value = analytic.field_value
    field_gradient = analytic.field_gradient
    field_hessian = analytic.field_hessian

    @wp.func(name=f"hybrid_field_value_{tag}")
    def field_value(field: Struct, x: vec_d) -> float:
        fracs, scales, rows = enc.locate(x)
        return mlp(field, enc.interpolate(fracs, enc.gather(field, rows)))

    @wp.func(name=f"hybrid_field_gradient_{tag}")
    def field_gradient(field: Struct, x: vec_d) -> vec_d:
        fracs, scales, rows = enc.locate(x)
        feats = enc.gather(field, rows)
        value, acts = mlp_activations(field, enc.interpolate(fracs, feats))
        return enc.vjp(fracs, scales, feats, mlp_input_gradient(field, acts))

    @wp.func(name=f"hybrid_field_hessian_{tag}")
    def field_hessian(field: Struct, x: vec_d) -> mat_dd:
        fracs, scales, rows = enc.locate(x)
        feats = enc.gather(field, rows)
        value, acts = mlp_activations(field, enc.interpolate(fracs, feats))
        pairs = enc.mixed_vjp(fracs, scales, feats, mlp_input_gradient(field, acts))
        hess = mat_dd()
        for a in range(wp.static(D)):
            for b in range(wp.static(D)):
                if wp.static(a != b):
                    hess[a, b] = pairs[wp.static(PAIR_INDEX[(min(a, b), max(a, b))])]
        return hess

    @wp.kernel(enable_backward=False, module="unique", module_options=_UNROLL)
    def value_kernel(start: int, field: Struct, xs: wp.array(dtype=vec_d), out: wp.array(dtype=float)):
        i = start + wp.tid()
        out[i] = field_value(field, xs[i])

    def make_backward_kernel(accumulate):
        mlp_backward = make_mlp_backward(accumulate)
        scatter = enc.scatter(accumulate, directional=False)

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
            fracs, scales, rows = enc.locate(xs[i])
            feats = enc.gather(field, rows)
            e = enc.interpolate(fracs, feats)
            value, acts = mlp_activations(field, e)
            grad_features = mlp_backward(field, grads, e, acts, grad_out[i])
            scatter(grads, fracs, scales, rows, vec_d(), grad_features)
            x_grad[i] = enc.vjp(fracs, scales, feats, grad_features)

        return backward_kernel

    return Generated(
        config=config,
        struct=Struct,
        vec_in=vec_in,
        vec_hidden=vec_hidden,
        encoding=enc,
        mlp=mlp,
        mlp_activations=mlp_activations,
        mlp_input_gradient=mlp_input_gradient,
        relu_mask=relu_mask,
        hidden_dot=hidden_dot,
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
