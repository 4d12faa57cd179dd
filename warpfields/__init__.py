"""warpfields: accurate spatial derivatives of hybrid neural fields inside Warp simulations."""

import warp as wp

from .fields import *  # noqa: F403
from .fields import __all__ as _fields_all

__version__ = "0.1.0"
__all__ = [*_fields_all, "wp"]
