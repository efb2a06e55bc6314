"""``seqmodels-serve``'s parts: the application (``app``), its batcher, error shape, drain and metrics. The
command itself is :mod:`seqmodels.server`."""
