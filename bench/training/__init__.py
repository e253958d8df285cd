"""How a model is trained: the :class:`~.trainer.Trainer` loop, its settings
(:class:`~.settings.TrainConfig`), checkpoints and the speed switches.

A sibling of :mod:`aebench.metrics`: neither imports the other. Metrics that need a train step
(the speed family) are handed one by the layer above.
"""
