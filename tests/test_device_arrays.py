"""Device arrays through the host API and the torch bridge: read in place, returned as the caller's kind on
the caller's device, and ordered with torch's work on its stream. Every test runs on each available device
(CPU in CI, CUDA in the GPU check)."""

import contextlib

import numpy as np
import pytest
import torch
import warp as wp

from warpfields import ops
from warpfields.fields.hybrid import HybridConfig, HybridField
from warpfields.ops.host import _prepare_points
from warpfields.torch import HybridModule, reference

DEVICES = ["cpu"] + (["cuda:0"] if wp.is_cuda_available() else [])
CONFIG = HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8)


def field_and_points(n=256, seed=3):
    field = HybridField(CONFIG, seed=seed)
    parameters = dict(field.parameters)
    parameters["table"] = np.random.default_rng(seed).uniform(-1, 1, parameters["table"].shape).astype(np.float32)
    field.set_parameters(parameters)
    return field, np.random.default_rng(seed + 1).uniform(-0.9, 0.9, (n, 3)).astype(np.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_device_arrays_are_read_in_place(device):
    tensor = torch.from_numpy(field_and_points()[1]).to(wp.device_to_torch(device))
    assert _prepare_points(tensor, 3, "normal", None)[0].xs.ptr == tensor.data_ptr()
    vectors = wp.array(tensor.cpu().numpy(), dtype=wp.vec3, device=device)
    assert _prepare_points(vectors, 3, "normal", None)[0].xs is vectors
    rows = wp.array(tensor.cpu().numpy(), dtype=float, device=device)
    assert _prepare_points(rows, 3, "normal", None)[0].xs.ptr == rows.ptr
    # What does not fit (float64) is converted, not refused.
    assert _prepare_points(tensor.double(), 3, "normal", None)[0].xs.ptr != tensor.data_ptr()


@pytest.mark.parametrize("device", DEVICES)
def test_results_come_back_as_the_callers_kind_on_its_device(device):
    field, points = field_and_points()
    expected = ops.normal(field, points, method="ad")
    tensor = torch.from_numpy(points).to(wp.device_to_torch(device))
    from_torch = ops.normal(field, tensor, method="ad")
    assert from_torch.device == tensor.device and from_torch.dtype == torch.float32 and from_torch.shape == (256, 3)
    np.testing.assert_allclose(from_torch.cpu().numpy(), expected, atol=1e-5)
    values = ops.value(field, tensor)
    assert values.device == tensor.device and values.dtype == torch.float32 and values.shape == (256,)
    np.testing.assert_allclose(values.cpu().numpy(), ops.value(field, points), atol=1e-6)
    vectors = ops.normal(field, wp.array(points, dtype=wp.vec3, device=device), method="ad")
    assert vectors.device == wp.get_device(device) and vectors.dtype == wp.vec3 and vectors.shape == (256,)
    np.testing.assert_allclose(vectors.numpy(), expected, atol=1e-5)
    hessians = ops.hessian(field, wp.array(points, dtype=float, device=device), method="fd")
    assert hessians.device == wp.get_device(device) and hessians.dtype == wp.float32 and hessians.shape == (256, 3, 3)


def slow_side_stream_work(device, like: torch.Tensor) -> torch.Tensor:
    """Zero, but only once a long chain of GPU kernels has run: what depends on it waits for the chain."""
    if not wp.get_device(device).is_cuda:
        return torch.zeros((), device=like.device)
    chain = torch.rand((2048, 2048), device=like.device)
    for _ in range(30):
        chain = torch.tanh(chain @ chain)
    return 0.0 * chain[0, 0]


@pytest.mark.parametrize("device", DEVICES)
def test_bridge_and_host_api_follow_torchs_stream(device):
    """On a GPU, the inputs are written by torch on a side stream after a long chain of kernels: a Warp launch on
    any other stream would read them before they exist. Everywhere, the results are the float64 reference's."""
    field, points = field_and_points(n=1 << 14)
    module = HybridModule(field, device=device)
    tdev = wp.device_to_torch(device)
    base = torch.from_numpy(points)
    params = reference.as_torch64(field.parameters, requires_grad=True)
    x64 = base.double().requires_grad_(True)
    expected_values = reference.forward(CONFIG, params, x64)
    (expected_gradients,) = torch.autograd.grad(expected_values.sum(), x64, retain_graph=True)
    expected_values.square().sum().backward()
    side = torch.cuda.Stream(tdev) if wp.get_device(device).is_cuda else None
    with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
        x = base.to(tdev)
        x = x + slow_side_stream_work(device, x)
        values = module(x)
        values.square().sum().backward()
        gradients = module.gradient(x + slow_side_stream_work(device, x))
        normals = ops.normal(field, x + slow_side_stream_work(device, x), method="ad")
    if side is not None:
        torch.cuda.synchronize()
    np.testing.assert_allclose(values.detach().cpu().numpy(), expected_values.detach().numpy(), atol=2e-5)
    np.testing.assert_allclose(gradients.detach().cpu().numpy(), expected_gradients.numpy(), atol=2e-4, rtol=1e-4)
    unit = expected_gradients / expected_gradients.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(normals.cpu().numpy(), unit.numpy(), atol=1e-4)
    for name, parameter in module.named_parameters():
        np.testing.assert_allclose(parameter.grad.cpu().numpy(), params[name].grad.numpy(), atol=2e-3, rtol=1e-3)
