"""warpfields: accurate spatial derivatives of hybrid neural fields inside Warp simulations.

Kernel-side: the field protocol (``field_value``, ``field_gradient``, ``field_hessian``) and
the operators (``ad_*``, ``fd_*``, ``polyfit_*``, ``op_*``) are Warp functions generic over
the field type (annotate kernel arguments with ``AnyField``). Host-side: ``warpfields.ops``
(``normal``, ``mean_curvature``, ... over arrays of points), ``warpfields.io.fieldfile``
(``load_field``, ``save_field``) and ``warpfields.torch`` (training, fine-tuning).
"""

from typing import Any

from . import geometry, ops
from ._version import __version__
from .fields import *  # noqa: F403
from .fields import __all__ as _fields_all
from .ops.funcs import *  # noqa: F403
from .ops.funcs import __all__ as _funcs_all

AnyField = Any
"""Annotation for kernel arguments that take any field struct."""

__all__ = [*_fields_all, *_funcs_all, "AnyField", "__version__", "geometry", "ops"]
