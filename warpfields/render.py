"""A Warp sphere tracer that shades with the normals of a chosen operator.

Diffuse + Blinn-Phong specular + a mirror reflection of a procedural environment, as in
the paper's rendering application: the reflection turns small normal errors into visible
ripples, so autodiff's artefacts show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import warp as wp

from . import parallel
from .errors import InputError
from .fields.analytic import field_value
from .io.atomic import atomic_path, check_output_path
from .ops.funcs import Operator, op_normal
from .runtime import check_launch_size, check_memory, get_device

wp.set_module_options({"enable_backward": False})

MAX_STEPS = 256
HIT_EPSILON = 2.0e-4
# Colour and hit mask on the device (16 B), their host copies and the float32 steps to 8-bit RGB (~80 B).
BYTES_PER_PIXEL = 96


@dataclass(frozen=True)
class Camera:
    """Looks from ``eye`` at ``target``; ``orthographic`` views a square of half-width ``extent``."""

    eye: tuple[float, float, float] = (1.6, 0.9, 2.4)
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_degrees: float = 34.0
    orthographic: bool = False
    extent: float = 1.0

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        forward = np.subtract(self.target, self.eye).astype(np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, self.up)
        right /= np.linalg.norm(right)
        return forward, right, np.cross(right, forward)


@wp.func
def environment(d: wp.vec3) -> wp.vec3:
    # A sky gradient above the horizon, a checkerboard floor below it.
    if d[1] >= 0.0:
        t = wp.sqrt(d[1])
        return wp.lerp(wp.vec3(0.85, 0.88, 0.95), wp.vec3(0.25, 0.45, 0.85), t)
    s = 1.0 / wp.max(-d[1], 1.0e-3)
    u = wp.floor(d[0] * s * 0.5) + wp.floor(d[2] * s * 0.5)
    checker = wp.where(wp.mod(u, 2.0) == 0.0, 0.75, 0.35)
    return wp.vec3(checker, checker, checker)


@wp.func
def box_interval(origin: wp.vec3, direction: wp.vec3) -> wp.vec2:
    t_near = -1.0e30
    t_far = 1.0e30
    for a in range(3):
        inv = 1.0 / wp.where(wp.abs(direction[a]) > 1.0e-12, direction[a], 1.0e-12)
        t0 = (-1.0 - origin[a]) * inv
        t1 = (1.0 - origin[a]) * inv
        t_near = wp.max(t_near, wp.min(t0, t1))
        t_far = wp.min(t_far, wp.max(t0, t1))
    return wp.vec2(wp.max(t_near, 0.0), t_far)


@wp.kernel(enable_backward=False)
def trace_kernel(
    start: int,
    field: Any,
    op: Operator,
    width: int,
    height: int,
    eye: wp.vec3,
    forward: wp.vec3,
    right: wp.vec3,
    up: wp.vec3,
    tan_half_fov: float,
    orthographic: int,
    extent: float,
    light: wp.vec3,
    color: wp.array(dtype=wp.vec3),
    hit: wp.array(dtype=int),
):
    i = start + wp.tid()
    px = float(i % width) + 0.5
    py = float(i // width) + 0.5
    sx = (2.0 * px / float(width) - 1.0) * float(width) / float(height)
    sy = 1.0 - 2.0 * py / float(height)
    origin = eye
    direction = forward
    if orthographic == 1:
        origin = eye + (right * sx + up * sy) * extent
    else:
        direction = wp.normalize(forward + (right * sx + up * sy) * tan_half_fov)
    span = box_interval(origin, direction)
    t = float(span[0])
    found = int(0)
    if span[0] < span[1]:
        for _step in range(MAX_STEPS):
            f = field_value(field, origin + direction * t)
            if f < HIT_EPSILON:
                found = 1
                break
            t += 0.9 * f
            if t > span[1]:
                break
    hit[i] = found
    if found == 0:
        color[i] = wp.lerp(wp.vec3(0.16, 0.17, 0.2), wp.vec3(0.05, 0.05, 0.07), py / float(height))
        return
    x = origin + direction * t
    n = wp.normalize(op_normal(field, x, op, i))
    view = -direction
    diffuse = wp.max(wp.dot(n, light), 0.0)
    halfway = wp.normalize(light + view)
    specular = wp.pow(wp.max(wp.dot(n, halfway), 0.0), 60.0)
    mirror = direction - 2.0 * wp.dot(direction, n) * n
    base = wp.vec3(0.72, 0.55, 0.42)
    color[i] = base * (0.12 + 0.75 * diffuse) + wp.vec3(0.35, 0.35, 0.35) * specular + 0.3 * environment(mirror)


def light_direction() -> np.ndarray:
    light = np.array([0.5, 0.8, 0.6])
    return light / np.linalg.norm(light)


def render(field, spec, width: int = 320, height: int = 320, camera: Camera | None = None, device=None):
    """Shade ``field`` with the normals of ``spec`` (an ``OperatorSpec``).

    Returns ``(rgb uint8 (H, W, 3), hit mask (H, W))``.
    """
    if field.dim != 3:
        raise InputError(f"render: needs a 3D field, got a {field.dim}D one")
    if width < 1 or height < 1:
        raise InputError(f"render: image size {width}x{height} must be positive")
    spec.check("normal", 3, field)
    device = get_device(device)
    check_memory(f"render: a {width}x{height} image, pixels", width * height, BYTES_PER_PIXEL, device)
    check_launch_size(f"render: a {width}x{height} image, pixels", width * height)
    camera = camera or Camera()
    forward, right, up = camera.basis()
    n = width * height
    color = wp.zeros(n, dtype=wp.vec3, device=device)
    hit = wp.zeros(n, dtype=int, device=device)
    args = [
        field.warp(device),
        spec.warp(),
        width,
        height,
        wp.vec3(*camera.eye),
        wp.vec3(*forward),
        wp.vec3(*right),
        wp.vec3(*up),
        math.tan(math.radians(camera.fov_degrees) / 2),
        int(camera.orthographic),
        camera.extent,
        wp.vec3(*light_direction()),
        color,
        hit,
    ]
    parallel.launch(trace_kernel, n, args, device)
    rgb = np.clip(color.numpy().reshape(height, width, 3), 0.0, 1.0) ** (1 / 2.2)
    return (rgb * 255 + 0.5).astype(np.uint8), hit.numpy().reshape(height, width).astype(bool)


def render_compare(fields, specs, labels, width=320, height=320, camera=None, device=None) -> np.ndarray:
    """Images of each (field, spec) side by side, each labelled."""
    from PIL import Image, ImageDraw

    panels = []
    for field, spec, label in zip(fields, specs, labels, strict=True):
        image = Image.fromarray(render(field, spec, width, height, camera, device)[0])
        ImageDraw.Draw(image).text((6, 4), label, fill=(255, 255, 255))
        panels.append(np.asarray(image))
    return np.concatenate(panels, axis=1)


def write_png(image: np.ndarray, path) -> None:
    from PIL import Image

    with atomic_path(path, "image") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_compare(fields, specs, labels, path, width=320, height=320, camera=None, device=None) -> None:
    check_output_path(path, "image")
    write_png(render_compare(fields, specs, labels, width, height, camera, device), path)
