"""The torch bridge: hybrid fields as ``nn.Module``s whose forward and backward run as Warp kernels."""

from .bridge import HybridModule

__all__ = ["HybridModule"]
