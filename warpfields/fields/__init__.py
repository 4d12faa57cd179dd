"""Field types: analytic ground truth, hybrid neural fields, mesh SDFs."""

from .analytic import (
    CircleField,
    QuadraticField2,
    QuadraticField3,
    SphereField,
    TorusField,
    field_gradient,
    field_hessian,
    field_value,
)
from .base import Field, Normalization
from .shapes import AnalyticField, circle, quadratic, sphere, torus

__all__ = [
    "AnalyticField",
    "CircleField",
    "Field",
    "Normalization",
    "QuadraticField2",
    "QuadraticField3",
    "SphereField",
    "TorusField",
    "circle",
    "field_gradient",
    "field_hessian",
    "field_value",
    "quadratic",
    "sphere",
    "torus",
]
