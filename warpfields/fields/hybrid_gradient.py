"""Second-order terms of hybrid fields: parameter gradients of a loss on the field's spatial gradient.

For points x_i and upstream vectors u_i = dL/dg_i with g_i = grad_x f(x_i), this computes
d/dtheta sum_i <u_i, g_i>. With e the encoding, J = de/dx and ge = df/de:

    <u, g> = ge . (J u) = ge . v,   v = J u   (the encoding's derivative along u)

ReLU masks are piecewise constant, so ge . v is the MLP's forward-mode tangent along v,
linear in every weight: d/dw_out = tangent of the last activations, d/dW rows = tangent of
the layer's input times the masked backward signal, biases get nothing. The table enters
through v only: d/dtable[corner, k] = ge_k * (grad_x w_corner . u).
"""

import warp as wp

from ..parallel import bulk_module_options
from ..runtime import build_lock
from .hybrid_config import HybridConfig
from .hybrid_kernels import add_exclusive, generated

wp.set_module_options({"enable_backward": False})

_KERNELS: dict = {}


def gradient_backward_kernel(config: HybridConfig, device) -> wp.Kernel:
    """Kernel ``(start, field, grads, xs, upstream)`` adding d/dtheta sum_i <upstream_i, grad f(x_i)> into ``grads``."""
    atomic = not wp.get_device(device).is_cpu
    key = (config.key(), atomic)
    with build_lock:
        if key not in _KERNELS:
            _KERNELS[key] = _make_kernel(config, wp.atomic_add if atomic else add_exclusive)
        return _KERNELS[key]


def _make_kernel(config: HybridConfig, accumulate):
    gen = generated(config)
    Struct, vec_hidden = gen.struct, gen.vec_hidden
    D, H, NH, N_IN = config.dim, config.hidden_width, config.hidden_layers, config.n_inputs
    vec_d = wp.vec3 if D == 3 else wp.vec2
    mat_layers = wp.types.matrix(shape=(NH, H), dtype=float)
    enc = gen.encoding
    scatter_directional = enc.scatter(accumulate, directional=True)

    @wp.kernel(enable_backward=False, module="unique", module_options=bulk_module_options(max_unroll=16))
    def kernel(
        start: int,
        field: Struct,
        grads: Struct,
        xs: wp.array(dtype=vec_d),
        upstream: wp.array(dtype=vec_d),
    ):
        i = start + wp.tid()
        u = upstream[i]
        x = xs[i]
        e, jacobian = enc.encode_jacobian(field, x)
        value, acts = gen.mlp_activations(field, e)
        v = u * jacobian

        # Backward signals gamma_l = d out / d h_l (masked), last layer first.
        gammas = mat_layers()
        gamma = gen.relu_mask(field.w_out[0], acts[wp.static(NH - 1)])
        gammas[wp.static(NH - 1)] = gamma
        for back in range(wp.static(NH - 1)):
            layer = wp.static(NH - 1) - back
            gamma = gen.relu_mask(gen.hidden_layer_vjp(field, layer, gamma), acts[layer - 1])
            gammas[layer - 1] = gamma

        # Forward tangent along v, accumulating the weight gradients of the tangent output.
        tangent = vec_hidden()
        for k in range(wp.static(N_IN)):
            tangent += field.w_in[k] * v[k]
            wp.static(accumulate)(grads.w_in, k, v[k] * gammas[0])
        tangent = gen.relu_mask(tangent, acts[0])
        for layer in range(1, wp.static(NH)):
            next_tangent = vec_hidden()
            for j in range(wp.static(H)):
                row = (layer - 1) * wp.static(H) + j
                next_tangent += field.w_hidden[row] * tangent[j]
                wp.static(accumulate)(grads.w_hidden, row, tangent[j] * gammas[layer])
            tangent = gen.relu_mask(next_tangent, acts[layer])
        wp.static(accumulate)(grads.w_out, 0, tangent)

        scatter_directional(grads, x, u, gen.first_layer_vjp(field, gammas[0]))

    return kernel


__all__ = ["gradient_backward_kernel"]
