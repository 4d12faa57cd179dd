"""Simulations built on warpfields: collision (``sims.collision``), with the shared framework in ``sims.base``."""

from .base import Simulation, SimulationError, format_table, print_summary

__all__ = ["Simulation", "SimulationError", "format_table", "print_summary"]
