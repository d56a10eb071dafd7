"""DistillGrasp's wiring layer: the commands that build a simulated or a real cell from the layers below
(``pipeline``, ``grasping``, ``sim``, ``hardware``) and run them. Nothing below imports it."""

__version__ = "0.1.0"
