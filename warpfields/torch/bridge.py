"""``HybridModule``: a hybrid field's parameters as torch tensors, shared zero-copy with Warp.

The value and its parameter/input gradients are Warp kernels with hand-written adjoints
(``warpfields.fields.hybrid``); Warp's generated adjoints are not used. The backward pass
accumulates parameter gradients into one buffer per CPU shard and sums them, because
atomics are not atomic across concurrent CPU launches. Every kernel visits the batch in
one Z curve (``parallel.locality_order``, the same order whatever the thread count), on
copies of its per-point inputs and outputs in that order. On a GPU the kernels run on the
stream torch is using, in order with the torch work around them.
"""

from __future__ import annotations

from typing import Any

import torch
import warp as wp

from .. import parallel
from ..errors import InputError
from ..fields.analytic import field_gradient
from ..fields.hybrid import PARAMETER_NAMES, HybridField, generated, make_struct
from ..fields.hybrid_gradient import gradient_backward_kernel
from ..fields.hybrid_kernels import refresh_transposes
from ..runtime import torch_stream


def torch_device(device) -> torch.device:
    return torch.device(wp.device_to_torch(wp.get_device(device)))


class HybridModule(torch.nn.Module):
    """Wraps a ``HybridField``: ``module(x)`` evaluates the field at points ``x`` of shape (N, dim)."""

    def __init__(self, field: HybridField, device=None):
        super().__init__()
        self.config = field.config
        self.normalization = field.normalization
        self.metadata = dict(field.metadata)
        self.warp_device = wp.get_device(device)
        tdev = torch_device(self.warp_device)
        for name in PARAMETER_NAMES:
            self.register_parameter(name, torch.nn.Parameter(torch.tensor(field.parameters[name], device=tdev)))
        self._struct_key = None
        self._struct = None

    def parameter_dict(self) -> dict[str, torch.Tensor]:
        """The parameter tensors by name (see ``parameter_shapes``), the module's own storage, not copies."""
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def warp_struct(self):
        """The Warp struct over the current parameter storage (rebuilt if a tensor was replaced), its
        transposed weights recomputed: optimisers change the weights in place."""
        key = tuple(getattr(self, name).data_ptr() for name in PARAMETER_NAMES)
        if key != self._struct_key:
            self._struct = make_struct(self.config, self.parameter_dict())
            self._struct_key = key
        else:
            refresh_transposes(self.config, self._struct)
        return self._struct

    def to_field(self, metadata: dict | None = None) -> HybridField:
        """A ``HybridField`` holding a CPU copy of the current parameters, with ``metadata`` added to the module's."""
        parameters = {name: getattr(self, name).detach().cpu().numpy().copy() for name in PARAMETER_NAMES}
        return HybridField(self.config, parameters, self.normalization, {**self.metadata, **(metadata or {})})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_points(x, self.config.dim, self.warp_device)
        return _HybridValue.apply(x, self, *self.parameter_dict().values())

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """The exact spatial gradient (N, dim), differentiable with respect to the parameters (not to ``x``)."""
        x = check_points(x, self.config.dim, self.warp_device).detach()
        return _HybridGradient.apply(x, self, *self.parameter_dict().values())


def check_points(x: torch.Tensor, dim: int, device) -> torch.Tensor:
    if x.ndim != 2 or x.shape[1] != dim:
        raise InputError(f"points: expected shape (N, {dim}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InputError("points: contain NaN or infinite coordinates")
    return x.to(device=torch_device(device), dtype=torch.float32).contiguous()


def _vec(dim: int):
    return wp.vec3 if dim == 3 else wp.vec2


def _batch_order(x: torch.Tensor, dim: int) -> tuple[wp.array, wp.array]:
    """The batch's visit order and its points in that order."""
    xs = wp.from_torch(x, dtype=_vec(dim))
    order = parallel.locality_order(xs, shards=1)
    return order, parallel.in_order(xs, order)


def _in_order(values: torch.Tensor, order: wp.array, dtype=wp.float32) -> wp.array:
    return parallel.in_order(wp.from_torch(values.detach().contiguous(), dtype=dtype), order)


def _from_order(ordered: wp.array, order: wp.array, out: torch.Tensor, dtype=wp.float32) -> torch.Tensor:
    parallel.from_order(ordered, order, wp.from_torch(out, dtype=dtype))
    return out


class _HybridValue(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, module, *params):
        gen = generated(module.config)
        device = module.warp_device
        n = x.shape[0]
        with torch_stream(device):
            order, ordered_x = _batch_order(x, module.config.dim)
            ordered_out = wp.empty(n, dtype=float, device=device)
            parallel.launch(gen.value_kernel, n, [module.warp_struct(), ordered_x, ordered_out], device)
            out = _from_order(ordered_out, order, torch.empty(n, dtype=torch.float32, device=x.device))
        ctx.module = module
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        module = ctx.module
        grads, x_grad = field_backward(module, x, grad_out, input_gradient=ctx.needs_input_grad[0])
        return (x_grad, None, *(grads[name] for name in PARAMETER_NAMES))


class _HybridGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, module, *params):
        device = module.warp_device
        vec = _vec(module.config.dim)
        with torch_stream(device):
            order, ordered_x = _batch_order(x, module.config.dim)
            ordered_gradients = wp.empty(x.shape[0], dtype=vec, device=device)
            parallel.launch(_gradient_kernel, x.shape[0], [module.warp_struct(), ordered_x, ordered_gradients], device)
            gradients = _from_order(ordered_gradients, order, torch.empty_like(x), vec)
        ctx.module = module
        ctx.save_for_backward(x)
        return gradients

    @staticmethod
    def backward(ctx, grad_gradients):
        (x,) = ctx.saved_tensors
        module = ctx.module
        with torch_stream(module.warp_device):
            order, ordered_x = _batch_order(x, module.config.dim)
            upstream = _in_order(grad_gradients, order, _vec(module.config.dim))
            kernel = gradient_backward_kernel(module.config, module.warp_device)
            grads = _sharded_parameter_gradients(module, x.shape[0], kernel, [ordered_x, upstream])
        return (None, None, *(grads[name] for name in PARAMETER_NAMES))


@wp.kernel(enable_backward=False)
def _gradient_kernel(start: int, field: Any, xs: wp.array(dtype=Any), gradients: wp.array(dtype=Any)):
    i = start + wp.tid()
    gradients[i] = field_gradient(field, xs[i])


def _sharded_parameter_gradients(module: HybridModule, n: int, kernel: wp.Kernel, args: list) -> dict:
    """Launch ``kernel(start, field, grads, *args)`` with one gradient buffer per shard, then sum the buffers
    (callers hold ``torch_stream``)."""
    shards = parallel.reduction_shard_count(n, module.warp_device)
    shard_grads = [{k: torch.zeros_like(v) for k, v in module.parameter_dict().items()} for _ in range(shards)]
    shard_structs = [make_struct(module.config, g, transposes=False) for g in shard_grads]
    field_struct = module.warp_struct()
    parallel.launch(kernel, n, lambda s: [field_struct, shard_structs[s], *args], module.warp_device)
    return reduce_shards(shard_grads)


def field_backward(module: HybridModule, x: torch.Tensor, grad_out: torch.Tensor, input_gradient: bool = True):
    """Parameter gradients and input gradient (None unless ``input_gradient``) of ``sum(grad_out * f(x))``."""
    vec = _vec(module.config.dim)
    n = x.shape[0] if input_gradient else 0
    with torch_stream(module.warp_device):
        order, ordered_x = _batch_order(x, module.config.dim)
        ordered_x_grad = wp.empty(n, dtype=vec, device=module.warp_device)
        args = [ordered_x, _in_order(grad_out.to(torch.float32), order), ordered_x_grad]
        kernel = generated(module.config).backward_kernel(module.warp_device, input_gradient)
        grads = _sharded_parameter_gradients(module, x.shape[0], kernel, args)
        if not input_gradient:
            return grads, None
        return grads, _from_order(ordered_x_grad, order, torch.empty_like(x), vec)


def reduce_shards(shard_grads: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Sum of the per-shard gradient buffers."""
    if len(shard_grads) == 1:
        return shard_grads[0]
    return {k: torch.stack([g[k] for g in shard_grads]).sum(0) for k in shard_grads[0]}


__all__ = ["HybridModule", "check_points", "field_backward", "reduce_shards"]
