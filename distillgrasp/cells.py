"""Which cell a command runs on: the commands decide, the layers below only see ``grasping.cell.Cell``."""

from __future__ import annotations

import functools
from typing import Callable

from grasping.cell import Cell


def sim_cell_factory(sensor: str = "d435", renderer: str = "fast", gui: bool = False, layout: str = "scatter",
                     objects: int = 5) -> Callable[[int], Cell]:
    """``make_cell(scene_seed)`` for the simulated cell photographed by ``sensor`` through ``renderer``: a
    picklable callable, so trials can build their cells in worker processes. ``layout`` "pile" or "packed"
    builds clutter-removal scenes of ``objects`` objects instead of the random single-pick scenes."""
    from sim.world import SimWorld, WorldConfig

    config = WorldConfig().with_sensor(sensor).with_renderer(renderer)
    if layout != "scatter":
        config = config.with_layout(layout, objects)
    return functools.partial(SimWorld, config=config, gui=gui)
