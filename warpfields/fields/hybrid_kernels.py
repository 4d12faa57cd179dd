"""Generated Warp code of hybrid fields: one struct type and one family of functions per configuration.

Every per-grid constant (resolution, table offset, dense or hashed) is fixed at compile
time. The MLP is written as column updates on vectors of the hidden width, forward with
the weights and backward with their transposes (kept in the struct beside them), so no
layer is a series of dot products; that is what keeps one-point-per-thread evaluation
fast on CPUs. The field protocol overloads (``field_value``, ``field_gradient``,
``field_hessian``) are registered here.
"""

import hashlib
import inspect
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import warp as wp

from ..parallel import bulk_module_options
from ..runtime import build_lock
from . import analytic, hybrid_encoding
from .hybrid_config import PARAMETER_NAMES, HybridConfig
from .hybrid_encoding import PAIR_INDEX, Encoding, make_encoding

wp.set_module_options({"enable_backward": False})
# Struct members derived from the parameters: the transposed weights the backward passes read.
TRANSPOSED = {"w_in_t": "w_in", "w_hidden_t": "w_hidden"}


@dataclass
class Generated:
    """The Warp struct type and functions generated for one configuration."""

    config: HybridConfig
    struct: type
    vec_features: type
    vec_in: type
    vec_hidden: type
    encoding: Encoding
    mlp: wp.Function
    mlp_activations: wp.Function
    mlp_input_gradient: wp.Function
    relu_mask: wp.Function
    hidden_layer_vjp: wp.Function
    first_layer_vjp: wp.Function
    value_kernel: wp.Kernel
    backward_kernels: dict

    def backward_kernel(self, device, input_gradient: bool = True) -> wp.Kernel:
        """Plain accumulation where each shard owns its buffer (CPU), atomics where threads share it (GPU);
        ``input_gradient`` also writes d/dx (else that output is not touched)."""
        accumulation = "exclusive" if wp.get_device(device).is_cpu else "atomic"
        return self.backward_kernels[accumulation, input_gradient]


_GENERATED: dict[str, Generated] = {}


def generated(config: HybridConfig) -> Generated:
    """The Warp struct, protocol overloads and kernels of one configuration, generated once per process (the
    first call compiles, later calls with an equal configuration return the same objects)."""
    key = config.key()
    with build_lock:
        if key not in _GENERATED:
            _GENERATED[key] = _generate(config)
        return _GENERATED[key]


def _source_digest() -> str:
    # Warp's module hash does not follow functions picked by wp.static inside unrolled loops (the
    # per-grid functions), so a changed encoding could load kernels compiled from the old code. The
    # digest of this code in the struct's name changes the hash of everything that takes the struct.
    digest = hashlib.sha1()
    for module in (hybrid_encoding, sys.modules[__name__]):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:8]


def _make_struct(config: HybridConfig, vec_features, vec_in, vec_hidden) -> type:
    name = f"HybridField{config.dim}D_{config.encoding}_{config.key()}_{_source_digest()}"
    annotations = {
        # One row per table entry: a corner's features are one load.
        "table": wp.array(dtype=vec_features),
        "w_in": wp.array(dtype=vec_hidden),
        "w_hidden": wp.array(dtype=vec_hidden),
        "b_hidden": wp.array(dtype=vec_hidden),
        "w_out": wp.array(dtype=vec_hidden),
        "b_out": wp.array(dtype=float),
        "w_in_t": wp.array(dtype=vec_in),
        "w_hidden_t": wp.array(dtype=vec_hidden),
    }
    cls = type(name, (), {"__annotations__": annotations, "__module__": __name__, "__qualname__": name})
    return wp.struct(cls)


def _accumulation_name(accumulate) -> str:
    return "atomic" if accumulate is wp.atomic_add else "exclusive"


@wp.func
def add_exclusive(values: wp.array(dtype=Any), index: int, value: Any):
    # Safe where a buffer has one writer at a time (a CPU shard); far cheaper than an atomic.
    values[index] = values[index] + value


@wp.kernel(enable_backward=False)
def _transpose_blocks(rows: int, cols: int, source: wp.array(dtype=Any), dest: wp.array(dtype=Any)):
    # source: blocks of ``rows`` vectors of length ``cols``; dest: the same blocks transposed.
    block, i, j = wp.tid()
    dest[block * cols + j][i] = source[block * rows + i][j]


def _generate(config: HybridConfig) -> Generated:
    D, H, NH, N_IN = config.dim, config.hidden_width, config.hidden_layers, config.n_inputs
    vec_d = wp.vec3 if D == 3 else wp.vec2
    mat_dd = wp.mat33 if D == 3 else wp.mat22
    vec_in = wp.types.vector(length=N_IN, dtype=float)
    vec_hidden = wp.types.vector(length=H, dtype=float)
    mat_acts = wp.types.matrix(shape=(NH, H), dtype=float)
    vec_features = wp.types.vector(length=config.features, dtype=float)
    Struct = _make_struct(config, vec_features, vec_in, vec_hidden)
    zero_hidden = vec_hidden()

    tag = config.key()
    enc = make_encoding(config, Struct, vec_d, vec_in, tag)

    lanes = min(8, H)
    vec_lanes = wp.types.vector(length=lanes, dtype=float)

    @wp.func(name=f"hybrid_hidden_dot_{tag}")
    def hidden_dot(a: vec_hidden, b: vec_hidden) -> float:
        # Independent partial sums: one running sum is a chain of H dependent multiply-adds that
        # strict float semantics keep from vectorising.
        partial = vec_lanes()
        for j in range(wp.static(H // lanes)):
            for lane in range(wp.static(lanes)):
                partial[lane] += a[wp.static(lanes) * j + lane] * b[wp.static(lanes) * j + lane]
        total = float(0.0)
        for lane in range(wp.static(lanes)):
            total += partial[lane]
        return total

    @wp.func(name=f"hybrid_first_layer_{tag}")
    def first_layer(field: Struct, e: vec_in) -> vec_hidden:
        h = field.b_hidden[0]
        for i in range(wp.static(N_IN)):
            h += field.w_in[i] * e[i]
        return wp.max(h, zero_hidden)

    @wp.func(name=f"hybrid_hidden_layer_{tag}")
    def hidden_layer(field: Struct, layer: int, a: vec_hidden) -> vec_hidden:
        h = field.b_hidden[layer]
        for j in range(wp.static(H)):
            h += field.w_hidden[(layer - 1) * wp.static(H) + j] * a[j]
        return wp.max(h, zero_hidden)

    @wp.func(name=f"hybrid_mlp_activations_{tag}")
    def mlp_activations(field: Struct, e: vec_in):
        acts = mat_acts()
        a = first_layer(field, e)
        acts[0] = a
        for layer in range(1, wp.static(NH)):
            a = hidden_layer(field, layer, a)
            acts[layer] = a
        return hidden_dot(field.w_out[0], a) + field.b_out[0], acts

    @wp.func(name=f"hybrid_mlp_{tag}")
    def mlp(field: Struct, e: vec_in) -> float:
        # The compiler drops the unused activations: the value path's machine code is that of a value-only MLP.
        value, acts = mlp_activations(field, e)
        return value

    @wp.func(name=f"hybrid_relu_mask_{tag}")
    def relu_mask(g: vec_hidden, a: vec_hidden) -> vec_hidden:
        # Selects, not branches: the activation signs are data-dependent and mispredict.
        masked = g
        for j in range(wp.static(H)):
            masked[j] = wp.where(a[j] > 0.0, g[j], 0.0)
        return masked

    @wp.func(name=f"hybrid_hidden_layer_vjp_{tag}")
    def hidden_layer_vjp(field: Struct, layer: int, g: vec_hidden) -> vec_hidden:
        # W_layer^T g as a sum of the rows of W_layer (the columns of the stored transpose).
        below = vec_hidden()
        for k in range(wp.static(H)):
            below += field.w_hidden_t[(layer - 1) * wp.static(H) + k] * g[k]
        return below

    @wp.func(name=f"hybrid_first_layer_vjp_{tag}")
    def first_layer_vjp(field: Struct, g: vec_hidden) -> vec_in:
        ge = vec_in()
        for k in range(wp.static(H)):
            ge += field.w_in_t[k] * g[k]
        return ge

    @wp.func(name=f"hybrid_mlp_input_gradient_{tag}")
    def mlp_input_gradient(field: Struct, acts: mat_acts) -> vec_in:
        g = relu_mask(field.w_out[0], acts[wp.static(NH - 1)])
        for back in range(wp.static(NH - 1)):
            layer = wp.static(NH - 1) - back
            g = relu_mask(hidden_layer_vjp(field, layer, g), acts[layer - 1])
        return first_layer_vjp(field, g)

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
                for j in range(wp.static(H)):
                    wp.static(accumulate)(grads.w_hidden, (layer - 1) * wp.static(H) + j, a_below[j] * g)
                g = relu_mask(hidden_layer_vjp(field, layer, g), a_below)
            wp.static(accumulate)(grads.b_hidden, 0, g)
            for i in range(wp.static(N_IN)):
                wp.static(accumulate)(grads.w_in, i, e[i] * g)
            return first_layer_vjp(field, g)

        return mlp_backward

    field_value = analytic.field_value
    field_gradient = analytic.field_gradient
    field_hessian = analytic.field_hessian

    @wp.func(name=f"hybrid_field_value_{tag}")
    def field_value(field: Struct, x: vec_d) -> float:
        return mlp(field, enc.encode(field, x))

    @wp.func(name=f"hybrid_field_gradient_{tag}")
    def field_gradient(field: Struct, x: vec_d) -> vec_d:
        e, jacobian = enc.encode_jacobian(field, x)
        value, acts = mlp_activations(field, e)
        return jacobian * mlp_input_gradient(field, acts)

    @wp.func(name=f"hybrid_field_hessian_{tag}")
    def field_hessian(field: Struct, x: vec_d) -> mat_dd:
        value, acts = mlp_activations(field, enc.encode(field, x))
        pairs = enc.mixed_vjp(field, x, mlp_input_gradient(field, acts))
        hess = mat_dd()
        for a in range(wp.static(D)):
            for b in range(wp.static(D)):
                if wp.static(a != b):
                    hess[a, b] = pairs[wp.static(PAIR_INDEX[(min(a, b), max(a, b))])]
        return hess

    options = bulk_module_options(max_unroll=16)

    @wp.kernel(enable_backward=False, module="unique", module_options=options)
    def value_kernel(start: int, field: Struct, xs: wp.array(dtype=vec_d), out: wp.array(dtype=float)):
        i = start + wp.tid()
        out[i] = field_value(field, xs[i])

    def make_backward_kernel(accumulate, input_gradient: bool):
        mlp_backward = make_mlp_backward(accumulate)
        scatter = enc.scatter(accumulate, directional=False)

        @wp.kernel(enable_backward=False, module="unique", module_options=options)
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
            if wp.static(input_gradient):
                e, jacobian = enc.encode_jacobian(field, x)
            else:
                e = enc.encode(field, x)
            value, acts = mlp_activations(field, e)
            grad_features = mlp_backward(field, grads, e, acts, grad_out[i])
            scatter(grads, x, vec_d(), grad_features)
            if wp.static(input_gradient):
                x_grad[i] = jacobian * grad_features

        return backward_kernel

    return Generated(
        config=config,
        struct=Struct,
        vec_features=vec_features,
        vec_in=vec_in,
        vec_hidden=vec_hidden,
        encoding=enc,
        mlp=mlp,
        mlp_activations=mlp_activations,
        mlp_input_gradient=mlp_input_gradient,
        relu_mask=relu_mask,
        hidden_layer_vjp=hidden_layer_vjp,
        first_layer_vjp=first_layer_vjp,
        value_kernel=value_kernel,
        backward_kernels={
            (_accumulation_name(accumulate), input_gradient): make_backward_kernel(accumulate, input_gradient)
            for accumulate in (add_exclusive, wp.atomic_add)
            for input_gradient in (True, False)
        },
    )


def refresh_transposes(config: HybridConfig, struct) -> None:
    """Recompute the struct's transposed weights from its weights (after they changed in place)."""
    H, N_IN = config.hidden_width, config.n_inputs
    device = struct.w_in.device
    wp.launch(_transpose_blocks, (1, N_IN, H), inputs=[N_IN, H, struct.w_in, struct.w_in_t], device=device)
    blocks = struct.w_hidden.shape[0] // H
    wp.launch(_transpose_blocks, (blocks, H, H), inputs=[H, H, struct.w_hidden, struct.w_hidden_t], device=device)


def make_struct(config: HybridConfig, arrays: dict, device=None, transposes: bool = True):
    """The Warp struct of ``config`` over ``arrays`` (numpy, or torch shared zero-copy; see ``parameter_shapes``).

    ``transposes`` also allocates and fills the transposed weights that evaluation reads; a struct
    that only receives gradients goes without them.
    """
    gen = generated(config)
    s = gen.struct()
    dtypes = {"table": gen.vec_features, "b_out": wp.float32}
    for name in PARAMETER_NAMES:
        value = arrays[name]
        dtype = dtypes.get(name, gen.vec_hidden)
        if name == "table":
            value = value.reshape(-1, config.features)
        if type(value).__module__.startswith("torch"):
            setattr(s, name, wp.from_torch(value.detach(), dtype=dtype))
        else:
            setattr(s, name, wp.array(np.ascontiguousarray(value, dtype=np.float32), dtype=dtype, device=device))
    if transposes:
        device = s.w_in.device
        s.w_in_t = wp.empty(config.hidden_width, dtype=gen.vec_in, device=device)
        s.w_hidden_t = wp.empty(s.w_hidden.shape[0], dtype=gen.vec_hidden, device=device)
        refresh_transposes(config, s)
    return s
