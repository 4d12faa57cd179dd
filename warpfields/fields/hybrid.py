"""Hybrid neural fields: a grid encoding (hash grid, dense grid or tri-plane) decoded by a ReLU MLP.

Each configuration gets its own ``@wp.struct`` type and its own overloads of the field
protocol, generated with every per-grid constant (resolution, table offset, dense or
hashed) fixed at compile time. The MLP is written as column updates on vectors of the
hidden width, which is what keeps one-point-per-thread evaluation fast on CPUs.

Parameters (float32), shared by every device copy and by the torch bridge::

    table     (entries * F,)                  features of every grid, grid after grid
    w_in      (n_in, H)                       first layer, row i multiplies encoding feature i
    w_hidden  (max(n_hidden - 1, 1) * H, H)   hidden layers, row j multiplies activation j
    b_hidden  (n_hidden, H)
    w_out     (1, H), b_out (1,)
"""

from dataclasses import asdict, replace

import numpy as np

from ..errors import InputError
from .base import Field, Normalization
from .hybrid_config import (
    ENCODINGS,
    MAX_LOG2_TABLE,
    PARAMETER_NAMES,
    PRESETS,
    HybridConfig,
    init_parameters,
    parameter_shapes,
    preset_config,
)
from .hybrid_kernels import generated, make_struct


class HybridField(Field):
    """A hybrid neural field: ``HybridField(config, parameters, normalization)``."""

    def __init__(
        self,
        config: HybridConfig,
        parameters: dict[str, np.ndarray] | None = None,
        normalization: Normalization | None = None,
        metadata: dict | None = None,
        seed: int = 0,
    ):
        super().__init__(dim=config.dim, kind="hybrid", normalization=normalization, metadata=dict(metadata or {}))
        self.config = config
        self.parameters = init_parameters(config, seed) if parameters is None else parameters
        shapes = parameter_shapes(config)
        for name in PARAMETER_NAMES:
            if name not in self.parameters:
                raise InputError(f"hybrid field: parameter {name!r} missing")
            array = np.asarray(self.parameters[name])
            if array.shape != shapes[name]:
                raise InputError(f"hybrid field: parameter {name!r} has shape {array.shape}, expected {shapes[name]}")
            self.parameters[name] = np.ascontiguousarray(array, dtype=np.float32)

    @property
    def finest_cell(self) -> float:
        return self.config.finest_cell

    @property
    def struct_type(self) -> type:
        """The ``@wp.struct`` type of this field's configuration (for kernel argument annotations)."""
        return generated(self.config).struct

    def _make_struct(self, device):
        return make_struct(self.config, self.parameters, device)

    def set_parameters(self, parameters: dict[str, np.ndarray]) -> None:
        """Replace the parameters (by name, see ``parameter_shapes``; stored as float32) and drop the device copies."""
        self.parameters = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in parameters.items()}
        self.invalidate()

    def parameter_count(self) -> int:
        """Number of scalar parameters, grids and decoder together."""
        return int(sum(v.size for v in self.parameters.values()))

    def coarse_levels(self, max_resolution: int) -> "HybridField | None":
        """This field without its levels finer than ``max_resolution``: the values it has with their table
        entries zeroed (the decoder's first layer reads no features from them), at a fraction of the cost.
        None when the kept levels are not a level series of their own (with fewer levels the resolutions
        would round differently)."""
        resolutions = self.config.resolutions()
        kept = sum(1 for resolution in resolutions if resolution <= max_resolution)
        if kept == 0:
            raise InputError(
                f"max_resolution: expected at least the coarsest level's {resolutions[0]}, got {max_resolution}"
            )
        config = replace(self.config, levels=kept, max_resolution=resolutions[kept - 1])
        if config.resolutions() != resolutions[:kept]:
            return None
        lengths = {"table": config.table_length, "w_in": config.n_inputs}
        parameters = {name: array[: lengths.get(name)].copy() for name, array in self.parameters.items()}
        return HybridField(config, parameters, self.normalization, self.metadata)

    def header(self) -> dict:
        return {**super().header(), "config": asdict(self.config), "metadata": self.metadata}

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.parameters)

    @classmethod
    def from_parts(cls, header: dict, arrays: dict) -> "HybridField":
        """The field a file's header and arrays describe; raises ``InputError`` when they do not fit together."""
        try:
            config = HybridConfig(**header["config"])
        except TypeError as error:
            raise InputError(f"hybrid field header: bad config {header.get('config')!r}: {error}") from error
        return cls(config, dict(arrays), Normalization.from_dict(header["normalization"]), header.get("metadata", {}))

    def __repr__(self) -> str:
        return f"HybridField({self.config}, {self.parameter_count()} parameters)"


__all__ = [
    "ENCODINGS",
    "MAX_LOG2_TABLE",
    "PARAMETER_NAMES",
    "PRESETS",
    "HybridConfig",
    "HybridField",
    "generated",
    "init_parameters",
    "make_struct",
    "parameter_shapes",
    "preset_config",
]
