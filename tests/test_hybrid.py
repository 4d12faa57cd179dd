"""Hybrid fields against the float64 pure-torch reference in ``warpfields.torch.reference``.

Tests taking ``device`` run on every device of ``conftest.available_devices`` (the reference on the same device)."""

from typing import Any

import numpy as np
import pytest
import torch
import warp as wp

import warpfields as wf
from warpfields import parallel
from warpfields.errors import InputError
from warpfields.fields.hybrid import HybridConfig, HybridField
from warpfields.torch import HybridModule, reference
from warpfields.torch.bridge import torch_device

CONFIGS = {
    "hash3": HybridConfig(levels=3, features=2, log2_table=8, base_resolution=4, max_resolution=16, hidden_width=16),
    "hash2": HybridConfig(
        dim=2, levels=3, features=2, log2_table=6, base_resolution=4, max_resolution=16, hidden_width=8
    ),
    "dense2": HybridConfig(
        dim=2,
        encoding="dense",
        levels=2,
        features=2,
        base_resolution=4,
        max_resolution=8,
        hidden_width=8,
        hidden_layers=1,
    ),
    "dense3": HybridConfig(encoding="dense", levels=2, features=1, base_resolution=3, max_resolution=6, hidden_width=8),
    "triplane3": HybridConfig(
        encoding="triplane",
        levels=2,
        features=2,
        log2_table=8,
        base_resolution=4,
        max_resolution=16,
        hidden_width=16,
        hidden_layers=3,
    ),
}


def random_field(config: HybridConfig, seed: int = 1) -> HybridField:
    """A field with O(1) table entries, so the encoding matters as much as the MLP."""
    field = HybridField(config, seed=seed)
    parameters = dict(field.parameters)
    parameters["table"] = np.random.default_rng(seed).uniform(-1, 1, parameters["table"].shape).astype(np.float32)
    field.set_parameters(parameters)
    return field


def random_points(n: int, dim: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.99, 0.99, (n, dim)).astype(np.float32)


@wp.kernel(enable_backward=False)
def protocol_kernel(
    start: int,
    field: Any,
    points: wp.array(dtype=Any),
    values: wp.array(dtype=float),
    gradients: wp.array(dtype=Any),
    hessians: wp.array(dtype=Any),
):
    i = start + wp.tid()
    values[i] = wf.field_value(field, points[i])
    gradients[i] = wf.field_gradient(field, points[i])
    hessians[i] = wf.field_hessian(field, points[i])


def evaluate_protocol(field, points: np.ndarray, device="cpu"):
    dim = points.shape[1]
    vec, mat = (wp.vec3, wp.mat33) if dim == 3 else (wp.vec2, wp.mat22)
    n = points.shape[0]
    xs = wp.array(points, dtype=vec, device=device)
    values = wp.zeros(n, dtype=float, device=device)
    gradients = wp.zeros(n, dtype=vec, device=device)
    hessians = wp.zeros(n, dtype=mat, device=device)
    parallel.launch(protocol_kernel, n, [field.warp(device), xs, values, gradients, hessians], device)
    return values.numpy(), gradients.numpy(), hessians.numpy()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_protocol_matches_float64_reference(name, device):
    """A kernel written here calls the protocol on every encoding, 2D and 3D."""
    config = CONFIGS[name]
    field = random_field(config)
    points = random_points(3000, config.dim)
    values, gradients, hessians = evaluate_protocol(field, points, device)

    tdev = torch_device(device)
    params = reference.as_torch64(field.parameters, device=tdev)
    x = torch.tensor(points, dtype=torch.float64, device=tdev, requires_grad=True)
    ref_values = reference.forward(config, params, x)
    (ref_gradients,) = torch.autograd.grad(ref_values.sum(), x, create_graph=True)
    scale = ref_values.abs().max().item()
    assert np.abs(values - ref_values.detach().cpu().numpy()).max() <= 1e-5 * max(scale, 1.0)
    grad_scale = ref_gradients.abs().max().item()
    assert np.abs(gradients - ref_gradients.detach().cpu().numpy()).max() <= 1e-5 * grad_scale

    # Second order: the reference Hessian by autograd of the autograd gradient (mixed terms only in a cell).
    ref_hessians = torch.stack(
        [torch.autograd.grad(ref_gradients[:, a].sum(), x, retain_graph=True)[0] for a in range(config.dim)], dim=1
    ).cpu()
    assert np.abs(hessians - ref_hessians.numpy()).max() <= 1e-4 * ref_hessians.abs().max().item()
    assert np.allclose(np.diagonal(hessians, axis1=1, axis2=2), 0.0)


@pytest.mark.parametrize("name", ["hash3", "dense2", "triplane3"])
def test_exact_gradient_matches_central_differences_of_reference(name):
    config = CONFIGS[name]
    field = random_field(config)
    points = random_points(200, config.dim, seed=5).astype(np.float64)
    _, gradients, _ = evaluate_protocol(field, points.astype(np.float32))
    params = reference.as_torch64(field.parameters)
    h = 1e-6
    for axis in range(config.dim):
        step = np.zeros(config.dim)
        step[axis] = h
        plus = reference.forward(config, params, torch.tensor(points + step)).numpy()
        minus = reference.forward(config, params, torch.tensor(points - step)).numpy()
        central = (plus - minus) / (2 * h)
        # Points within h of a cell face can straddle it; the rest must agree to float32 precision.
        agree = np.abs(gradients[:, axis] - central) <= 1e-4 * np.abs(central).max()
        assert agree.mean() > 0.97


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bridge_gradients_match_reference_autograd(name, device):
    config = CONFIGS[name]
    field = random_field(config)
    module = HybridModule(field, device=device)
    tdev = torch_device(device)
    points = random_points(5000, config.dim, seed=3)
    weights = torch.tensor(np.random.default_rng(4).normal(size=5000), dtype=torch.float32, device=tdev)
    x = torch.tensor(points, device=tdev, requires_grad=True)
    (module(x) * weights).sum().backward()

    params = reference.as_torch64(field.parameters, requires_grad=True, device=tdev)
    x64 = torch.tensor(points, dtype=torch.float64, device=tdev, requires_grad=True)
    (reference.forward(config, params, x64) * weights.double()).sum().backward()
    for name_, tensor in module.parameter_dict().items():
        assert tensor.grad.device == tdev, name_
        expected = params[name_].grad
        if name_ == "w_hidden" and config.hidden_layers == 1:
            expected = torch.zeros_like(tensor, dtype=torch.float64)
        err = (tensor.grad.double() - expected).abs().max().item()
        assert err <= 2e-5 * max(expected.abs().max().item(), 1e-3), name_
    assert (x.grad.double() - x64.grad).abs().max().item() <= 2e-5 * x64.grad.abs().max().item()


def test_backward_without_input_gradient_gives_the_same_parameter_gradients():
    """Training points need no gradient: the backward then skips the encoding's Jacobian, nothing else."""
    config = CONFIGS["triplane3"]
    field = random_field(config)
    points = random_points(5000, config.dim, seed=12)
    weights = torch.tensor(np.random.default_rng(13).normal(size=5000), dtype=torch.float32)
    grads = []
    for requires_grad in (True, False):
        module = HybridModule(field, device="cpu")
        x = torch.tensor(points, requires_grad=requires_grad)
        (module(x) * weights).sum().backward()
        assert (x.grad is not None) == requires_grad
        grads.append({k: v.grad for k, v in module.parameter_dict().items()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["hash2", "dense3"])
def test_bridge_follows_weights_changed_in_place(name):
    """The backward passes read transposed copies of the weights: after an optimiser step changes the weights
    in place, the exact gradient and the input gradient follow the new weights."""
    config = CONFIGS[name]
    module = HybridModule(random_field(config), device="cpu")
    points = random_points(5000, config.dim, seed=14)
    module(torch.tensor(points)).sum().backward()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    optimizer.step()

    params = reference.as_torch64({k: v.detach().numpy() for k, v in module.parameter_dict().items()})
    x64 = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(reference.forward(config, params, x64).sum(), x64)
    scale = expected.abs().max().item()
    assert (module.gradient(torch.tensor(points)).double() - expected).abs().max().item() <= 2e-5 * scale
    x = torch.tensor(points, requires_grad=True)
    module(x).sum().backward()
    assert (x.grad.double() - expected).abs().max().item() <= 2e-5 * scale


def test_backward_identical_between_one_and_two_threads(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    config = CONFIGS["hash3"]
    field = random_field(config)
    points = torch.tensor(random_points(20000, 3, seed=9))
    grads = []
    for threads in ("1", "2"):
        monkeypatch.setenv("WARPFIELDS_THREADS", threads)
        module = HybridModule(field, device="cpu")
        module(points).sum().backward()
        grads.append({k: v.grad.clone() for k, v in module.parameter_dict().items()})
    for k in grads[0]:
        # A reduction has one shard per core whatever the thread count: the same sums, the same bits.
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=0, atol=0)


def test_backward_needs_the_shard_reduction(monkeypatch):
    """With two shards every shard holds part of the gradient: dropping the sum must be wrong."""
    from warpfields.torch import bridge

    config = CONFIGS["hash3"]
    field = random_field(config)
    points = torch.tensor(random_points(20000, 3, seed=9))
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    module = HybridModule(field, device="cpu")
    full, _ = bridge.field_backward(module, points, torch.ones(20000))
    monkeypatch.setattr(bridge, "reduce_shards", lambda shard_grads: shard_grads[0])
    partial, _ = bridge.field_backward(module, points, torch.ones(20000))
    assert not torch.allclose(full["w_in"], partial["w_in"])


def test_config_validation():
    with pytest.raises(InputError, match="log2_table"):
        HybridConfig(log2_table=25)
    with pytest.raises(InputError, match="encoding"):
        HybridConfig(encoding="octree")
    with pytest.raises(InputError, match="unknown preset"):
        wf.fields.hybrid.preset_config("huge")
    with pytest.raises(InputError, match="shape"):
        HybridField(CONFIGS["hash3"], {**HybridField(CONFIGS["hash3"]).parameters, "w_in": np.zeros((2, 2))})


@pytest.mark.parametrize("name", ["hash3", "dense2", "triplane3"])
def test_coarse_levels_are_the_field_with_the_finer_levels_zeroed(name):
    field = random_field(CONFIGS[name])
    resolutions = field.config.resolutions()
    coarse = field.coarse_levels(resolutions[-2])
    assert coarse.config.resolutions() == resolutions[:-1]
    finest = field.config.grids()[-len(field.config.grids()) // field.config.levels]
    zeroed = {**field.parameters, "table": field.parameters["table"].copy()}
    zeroed["table"][finest.offset :] = 0.0
    x = torch.tensor(random_points(500, field.dim), dtype=torch.float64)
    expected = reference.forward(field.config, reference.as_torch64(zeroed), x)
    kept = reference.forward(coarse.config, reference.as_torch64(coarse.parameters), x)
    np.testing.assert_allclose(kept.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)
    assert not np.allclose(expected.numpy(), reference.forward(field.config, reference.as_torch64(field.parameters), x))
    assert field.coarse_levels(resolutions[-1]).config == field.config
    with pytest.raises(InputError, match="max_resolution"):
        field.coarse_levels(resolutions[0] - 1)


def test_coarse_levels_none_when_fewer_levels_round_to_other_resolutions():
    config = HybridConfig(
        dim=2, levels=4, features=2, log2_table=8, base_resolution=4, max_resolution=22, hidden_width=8
    )
    assert config.resolutions() == [4, 7, 12, 22]
    # Three levels from 4 to 12 would be 4, 6, 12.
    assert HybridField(config).coarse_levels(12) is None


def test_dense_and_hashed_levels():
    config = HybridConfig(levels=4, features=2, log2_table=10, base_resolution=4, max_resolution=32)
    dense = [g.dense for g in config.grids()]
    assert dense[0] and not dense[-1]
    assert config.table_length == sum(g.entries for g in config.grids()) * 2


@pytest.mark.parametrize("name", ["hash3", "dense2", "triplane3"])
def test_double_backward_matches_reference(name, device):
    """Parameter gradients of a loss on unit gradients (the fine-tuning loss) equal float64 torch."""
    config = CONFIGS[name]
    field = random_field(config)
    module = HybridModule(field, device=device)
    tdev = torch_device(device)
    points = random_points(5000, config.dim, seed=11)
    generator = torch.Generator().manual_seed(0)
    targets = torch.randn(5000, config.dim, dtype=torch.float64, generator=generator)
    targets = torch.nn.functional.normalize(targets, dim=1).to(tdev)

    normals = torch.nn.functional.normalize(module.gradient(torch.tensor(points, device=tdev)), dim=1)
    ((normals.double() - targets) ** 2).sum().backward()

    params = reference.as_torch64(field.parameters, requires_grad=True, device=tdev)
    x64 = torch.tensor(points, dtype=torch.float64, device=tdev, requires_grad=True)
    (grad64,) = torch.autograd.grad(reference.forward(config, params, x64).sum(), x64, create_graph=True)
    ((torch.nn.functional.normalize(grad64, dim=1) - targets) ** 2).sum().backward()
    for name_, tensor in module.parameter_dict().items():
        expected = params[name_].grad
        if expected is None:
            expected = torch.zeros_like(tensor, dtype=torch.float64)
        scale = max(expected.abs().max().item(), 1e-3)
        assert (tensor.grad.double() - expected).abs().max().item() <= 1e-4 * scale, name_
