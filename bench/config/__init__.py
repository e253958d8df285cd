"""The run config: one tree (:class:`~.run.RunConfig`) that nests the training settings and the
metric options, and the identity hash the store keys runs by."""
