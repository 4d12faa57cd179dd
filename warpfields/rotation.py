"""Rotation matrices on the host (float64)."""

import math

import numpy as np


def rotation_matrix(axis, angle: float) -> np.ndarray:
    """The 3x3 matrix of the right-handed rotation by ``angle`` (radians) about the unit vector ``axis``
    (Rodrigues' formula)."""
    kx, ky, kz = np.asarray(axis, dtype=np.float64)
    k = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)
