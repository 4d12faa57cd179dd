"""Simulations built on warpfields (shipped as ``warpfields.sims``): collision, curvature flow, advection,
with the shared framework in ``base``."""

from .base import Simulation, SimulationError, format_table, print_summary

__all__ = ["Simulation", "SimulationError", "format_table", "print_summary"]
