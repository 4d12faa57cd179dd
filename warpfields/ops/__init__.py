"""Derivative operators: Warp functions for kernels (``funcs``) and host wrappers (``host``)."""

from .funcs import *  # noqa: F403
from .funcs import __all__ as _funcs_all
from .host import *  # noqa: F403
from .host import __all__ as _host_all

__all__ = [*_funcs_all, *_host_all]
