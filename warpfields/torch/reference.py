"""A pure-torch implementation of the hybrid field, written independently of the Warp code.

The tests check the Warp kernels against it in float64; ``warpfields bench`` uses it in
float32 as the vectorised-torch baseline. It computes on the device of the points ``x``.

It follows the definition: per grid, the point is mapped to [0, res] per axis (domain
[-1, 1] clamped), the cell's corners are looked up (dense row-major index or the
Instant-NGP spatial hash), features are multilinearly interpolated and concatenated, and
a ReLU MLP decodes them.
"""

import itertools

import torch

PRIMES = (1, 2654435761, 805459861)


def encode(config, table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    F = config.features
    mask = (1 << config.log2_table) - 1
    features = []
    for grid in config.grids():
        coords = x[:, list(grid.axes)]
        p = ((coords + 1.0) * 0.5).clamp(0.0, 1.0) * grid.resolution
        cell = torch.clamp(torch.floor(p.detach()), max=grid.resolution - 1).long()
        frac = p - cell.to(p.dtype)
        out = torch.zeros(x.shape[0], F, dtype=x.dtype, device=x.device)
        for corner in itertools.product((0, 1), repeat=len(grid.axes)):
            weight = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
            index = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            hashed = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            for j, bit in enumerate(corner):
                weight = weight * (frac[:, j] if bit else 1.0 - frac[:, j])
                vertex = cell[:, j] + bit
                index = index + vertex * (grid.resolution + 1) ** j
                hashed = hashed ^ ((vertex * PRIMES[j]) & 0xFFFFFFFF)
            entry = index if grid.dense else hashed & mask
            rows = grid.offset + entry[:, None] * F + torch.arange(F, device=x.device)
            out = out + weight[:, None] * table[rows]
        features.append(out)
    return torch.cat(features, dim=1)


def forward(config, params: dict, x: torch.Tensor) -> torch.Tensor:
    H, NH = config.hidden_width, config.hidden_layers
    a = torch.relu(encode(config, params["table"], x) @ params["w_in"] + params["b_hidden"][0])
    for layer in range(1, NH):
        w = params["w_hidden"][(layer - 1) * H : layer * H]
        a = torch.relu(a @ w + params["b_hidden"][layer])
    return a @ params["w_out"][0] + params["b_out"][0]


def as_torch64(parameters: dict, requires_grad: bool = False, device=None) -> dict:
    """The field's parameters as float64 tensors on the torch ``device`` (default: the CPU)."""
    return {
        k: torch.tensor(v, dtype=torch.float64, device=device, requires_grad=requires_grad)
        for k, v in parameters.items()
    }
