"""``warpfields sim SCENE``: run a simulation on a field and write it to a USD stage.

``SCENES`` is the table of scenes: each row has the scene's help, the function that declares
its own arguments and the one that runs it; every scene also gets the common options of
``_sim_common.add_common_arguments``, with the row's own defaults for them (``common``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _sim_collision, _sim_level_set, _sim_newton
from ._sim_common import add_common_arguments


@dataclass(frozen=True)
class Scene:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    common: dict = field(default_factory=dict)


SCENES: dict[str, Scene] = {
    "collision": Scene(_sim_collision.HELP, _sim_collision.add_arguments, _sim_collision.run),
    "curvature-flow": Scene(
        _sim_level_set.CURVATURE_FLOW_HELP, _sim_level_set.add_level_set_arguments, _sim_level_set.run_curvature_flow
    ),
    "advection": Scene(
        _sim_level_set.ADVECTION_HELP, _sim_level_set.add_advection_arguments, _sim_level_set.run_advection
    ),
    "cloth": Scene(_sim_newton.CLOTH_HELP, _sim_newton.add_cloth_arguments, _sim_newton.run_cloth, _sim_newton.COMMON),
    "pour": Scene(_sim_newton.POUR_HELP, _sim_newton.add_pour_arguments, _sim_newton.run_pour, _sim_newton.COMMON),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("sim", help="run a simulation on a field and write a USD stage")
    scenes = p.add_subparsers(dest="scene", required=True, metavar="SCENE")
    for name, scene in SCENES.items():
        sp = scenes.add_parser(name, help=scene.help)
        add_common_arguments(sp, **scene.common)
        scene.add_arguments(sp)
        sp.set_defaults(func=scene.run)
