"""Fitting a hybrid field to a signed distance field (a mesh SDF or an analytic shape)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import warp as wp
from tqdm.auto import tqdm

from .. import geometry
from ..distributed import BatchSampler, Ranks
from ..errors import InputError
from ..fields.base import Field
from ..fields.hybrid import HybridConfig, HybridField
from .bridge import HybridModule, torch_device


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    pool_size: int
    learning_rate: float = 1e-2
    final_learning_rate: float = 1e-4
    # The decoder learns more slowly than the grid: at the grid's rate Adam's sign-like early
    # steps kill ReLU units, leaving patches where the exact gradient is zero.
    decoder_learning_rate_factor: float = 0.1
    surface_share: float = 0.4
    near_share: float = 0.4
    noise_scales: tuple[float, float] = (0.002, 0.02)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 16 or self.pool_size < self.batch_size:
            raise InputError(f"training settings {self}: need steps >= 1, batch >= 16, pool >= batch")
        if not (0 < self.final_learning_rate <= self.learning_rate):
            raise InputError(f"training settings {self}: need 0 < final_learning_rate <= learning_rate")


TRAIN_PRESETS = {
    "tiny": TrainSettings(steps=150, batch_size=4096, pool_size=1 << 15, learning_rate=2e-2),
    "fast": TrainSettings(steps=600, batch_size=1 << 15, pool_size=1 << 21),
    "paper": TrainSettings(steps=20000, batch_size=1 << 18, pool_size=1 << 23),
}


def fit_quality(field: Field, target: Field, seed: int, device=None, n: int = 100_000) -> dict:
    """Mean |f - sdf| on points within 0.005 of the surface, and (3D) the two-sided distance of the level sets
    (infinite when the field has no zero level set yet)."""
    rng = np.random.default_rng(seed + 7919)
    surface = geometry.surface_points(target, n, seed + 7919, device)
    near = np.clip(surface + rng.normal(size=surface.shape) * 0.005, -1, 1).astype(np.float32)
    error = np.abs(geometry.evaluate_values(field, near, device) - geometry.evaluate_values(target, near, device))
    report = {"near_surface_mean_abs_error": float(error.mean())}
    if field.dim == 3:
        try:
            verts, faces = geometry.extract_level_set(field, resolution=256, device=device)
        except InputError:
            report["level_set_two_sided_distance"] = float("inf")
            return report
        target_verts, target_faces = geometry.target_surface(target, device=device)
        report["level_set_two_sided_distance"] = float(
            geometry.two_sided_distance(verts, faces, target_verts, target_faces, n=n, seed=seed, device=device)
        )
    return report


def fit_module(
    module: HybridModule,
    pool_x,
    pool_y,
    settings: TrainSettings,
    seed: int,
    progress: bool = True,
    group=None,
    sampler=None,
):
    """Adam on the L1 loss over random batches of the pool, with the preset's learning rates; returns the last loss.

    With a process ``group`` every rank holds the same pool and module and computes its share of each batch
    (``sampler``, default ``BatchSampler``); the gradient sums are all-reduced and every rank takes the same
    step, as one process would on the union of the shares."""
    ranks = Ranks(group)
    if sampler is None:
        sampler = BatchSampler(pool_x.shape[0], settings.batch_size, seed, ranks.rank, ranks.size)
    tdev = pool_x.device
    decoder = [p for name, p in module.named_parameters() if name != "table"]
    groups = [
        {"params": [module.table], "lr": settings.learning_rate},
        {"params": decoder, "lr": settings.learning_rate * settings.decoder_learning_rate_factor},
    ]
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
    decay = math.log(settings.final_learning_rate / settings.learning_rate) / max(settings.steps - 1, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: math.exp(decay * step))
    bar = tqdm(range(settings.steps), desc="train", disable=not progress, unit="step", mininterval=0.5)
    for _ in bar:
        with ranks.checkpoint():
            batch = sampler().to(tdev)
            # This share's part of the mean over the whole batch (exactly the mean for one process).
            loss = (module(pool_x[batch]) - pool_y[batch]).abs().mean() * (len(batch) / settings.batch_size)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        (loss,) = ranks.sum_gradients(module.parameters(), loss)
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.2e}", refresh=False)
    return loss


def train_field(
    target: Field,
    config: HybridConfig,
    settings: TrainSettings,
    seed: int = 0,
    device=None,
    progress: bool = True,
    group=None,
) -> tuple[HybridField, dict]:
    """Fit a hybrid field of ``config`` to the signed distance ``target`` with Adam on an L1 loss.

    With a process ``group`` (e.g. ``torch.distributed.group.WORLD``) every rank calls this and the ranks
    train data-parallel (``fit_module``); rank 0 alone shows progress and measures the fit quality (the other
    ranks' reports hold only the seconds)."""
    if target.dim != config.dim:
        raise InputError(f"training target is {target.dim}D but the field config is {config.dim}D")
    ranks = Ranks(group)
    device = wp.get_device(device)
    tdev = torch_device(device)
    torch.manual_seed(seed)
    started = time.perf_counter()
    points, values = geometry.sample_training_points(
        target, settings.pool_size, seed, settings.surface_share, settings.near_share, settings.noise_scales, device
    )
    pool_x = torch.from_numpy(points).to(tdev)
    pool_y = torch.from_numpy(values).to(tdev)
    sampling_seconds = time.perf_counter() - started

    module = HybridModule(HybridField(config, seed=seed, normalization=target.normalization), device=device)
    loss = fit_module(module, pool_x, pool_y, settings, seed, progress and ranks.rank == 0, group)
    train_seconds = time.perf_counter() - started
    metadata = {
        "training": {
            "target": target.header(),
            "settings": asdict(settings),
            "seed": seed,
            "seconds": round(train_seconds, 2),
            "sampling_seconds": round(sampling_seconds, 2),
            "final_loss": float(loss.item()),
        }
    }
    field = module.to_field(metadata)
    if ranks.rank != 0:
        return field, {"seconds": train_seconds}
    quality = fit_quality(field, target, seed, device)
    field.metadata["training"]["quality"] = quality
    return field, {**quality, "seconds": train_seconds}


def settings_for(preset: str, steps: int | None = None) -> TrainSettings:
    if preset not in TRAIN_PRESETS:
        raise InputError(f"unknown preset {preset!r}; expected one of {sorted(TRAIN_PRESETS)}")
    settings = TRAIN_PRESETS[preset]
    return settings if steps is None else replace(settings, steps=steps)
