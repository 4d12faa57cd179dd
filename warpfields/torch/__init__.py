"""The torch bridge: hybrid fields as torch modules (``nn.Module``) whose forward and backward run as Warp kernels."""

from .bridge import HybridModule

__all__ = ["HybridModule"]
