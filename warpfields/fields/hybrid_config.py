"""Sizes of a hybrid field and the layout of its parameters."""

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError

ENCODINGS = ("hash", "dense", "triplane")
MAX_LOG2_TABLE = 24


@dataclass(frozen=True)
class Grid:
    axes: tuple[int, ...]
    resolution: int
    dense: bool
    offset: int
    entries: int
    first_feature: int


@dataclass(frozen=True)
class HybridConfig:
    """Sizes of a hybrid field. ``max_resolution`` fixes the per-level scale."""

    dim: int = 3
    encoding: str = "hash"
    levels: int = 16
    features: int = 2
    log2_table: int = 17
    base_resolution: int = 16
    max_resolution: int = 512
    hidden_width: int = 64
    hidden_layers: int = 2

    def __post_init__(self):
        checks = [
            (self.dim in (2, 3), "dim must be 2 or 3"),
            (self.encoding in ENCODINGS, f"encoding must be one of {ENCODINGS}"),
            (1 <= self.levels <= 32, "levels must be in 1..32"),
            (1 <= self.features <= 8, "features must be in 1..8"),
            (4 <= self.log2_table <= MAX_LOG2_TABLE, f"log2_table must be in 4..{MAX_LOG2_TABLE}"),
            (2 <= self.base_resolution <= self.max_resolution, "need 2 <= base_resolution <= max_resolution"),
            (self.max_resolution <= 8192, "max_resolution must be at most 8192"),
            (self.hidden_width in (8, 16, 32, 64, 128), "hidden_width must be one of 8, 16, 32, 64, 128"),
            (1 <= self.hidden_layers <= 4, "hidden_layers must be in 1..4"),
            (self.n_inputs <= 256, "levels * features (* dim for a tri-plane) must be at most 256"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"hybrid field config {self}: {message}")

    @property
    def per_level_scale(self) -> float:
        """Growth factor of the grid resolution from one level to the next."""
        if self.levels == 1:
            return 1.0
        return math.exp((math.log(self.max_resolution) - math.log(self.base_resolution)) / (self.levels - 1))

    def resolutions(self) -> list[int]:
        """Grid resolution (cells per side of [-1, 1]) of each level, coarsest first."""
        return [
            int(math.floor(self.base_resolution * self.per_level_scale**level + 1e-6)) for level in range(self.levels)
        ]

    @property
    def grids_per_level(self) -> int:
        """1 for hash and dense grids, ``dim`` for tri-planes (one plane per dropped axis)."""
        return self.dim if self.encoding == "triplane" else 1

    @property
    def n_inputs(self) -> int:
        """Width of the encoding the decoder reads: levels x grids per level x features."""
        return self.levels * self.grids_per_level * self.features

    def grids(self) -> list[Grid]:
        """The grids in table order: per level, one grid (hash/dense) or one per dropped axis (tri-plane)."""
        table_size = 1 << self.log2_table
        grids, offset, feature = [], 0, 0
        for res in self.resolutions():
            if self.encoding == "triplane":
                axis_sets = [tuple(a for a in range(self.dim) if a != dropped) for dropped in range(self.dim)]
            else:
                axis_sets = [tuple(range(self.dim))]
            for axes in axis_sets:
                dense_entries = (res + 1) ** len(axes)
                dense = self.encoding == "dense" or dense_entries <= table_size
                entries = dense_entries if dense else table_size
                grids.append(Grid(axes, res, dense, offset, entries, feature))
                offset += entries * self.features
                feature += self.features
        return grids

    @property
    def table_length(self) -> int:
        """Number of float32 entries of the feature table, all grids together."""
        last = self.grids()[-1]
        return last.offset + last.entries * self.features

    @property
    def finest_cell(self) -> float:
        """Side of the finest grid cell in field units (the domain is [-1, 1]^dim)."""
        return 2.0 / self.max_resolution

    def key(self) -> str:
        """A short digest of the configuration; equal configurations share generated kernels."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


PRESETS = {
    "tiny": HybridConfig(levels=4, features=2, log2_table=12, base_resolution=4, max_resolution=32, hidden_width=16),
    "fast": HybridConfig(levels=16, features=2, log2_table=17, base_resolution=16, max_resolution=512),
    "paper": HybridConfig(levels=16, features=2, log2_table=19, base_resolution=16, max_resolution=2048),
}


def preset_config(name: str, dim: int = 3, encoding: str = "hash") -> HybridConfig:
    """The configuration of a named preset (``PRESETS``) for dimension ``dim`` (2 or 3) and ``encoding``
    (``hash``, ``dense`` or ``triplane``). Raises ``InputError`` for an unknown preset."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    base = asdict(PRESETS[name])
    return HybridConfig(**{**base, "dim": dim, "encoding": encoding})


PARAMETER_NAMES = ("table", "w_in", "w_hidden", "b_hidden", "w_out", "b_out")


def parameter_shapes(config: HybridConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter array (float32) of a field of this configuration, by name."""
    H = config.hidden_width
    return {
        "table": (config.table_length,),
        "w_in": (config.n_inputs, H),
        "w_hidden": (max(config.hidden_layers - 1, 1) * H, H),
        "b_hidden": (config.hidden_layers, H),
        "w_out": (1, H),
        "b_out": (1,),
    }


def init_parameters(config: HybridConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Instant-NGP style: tiny uniform table, He-uniform ReLU layers, zero biases."""
    rng = np.random.default_rng(seed)
    shapes = parameter_shapes(config)
    H = config.hidden_width

    def he(shape, fan_in):
        bound = math.sqrt(6.0 / fan_in)
        return rng.uniform(-bound, bound, size=shape)

    params = {
        "table": rng.uniform(-1e-4, 1e-4, size=shapes["table"]),
        "w_in": he(shapes["w_in"], config.n_inputs),
        "w_hidden": he(shapes["w_hidden"], H),
        "b_hidden": np.zeros(shapes["b_hidden"]),
        "w_out": he(shapes["w_out"], H) * 0.5,
        "b_out": np.zeros(shapes["b_out"]),
    }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
