"""coordinator.ops: see the package docstring of :mod:`coordinator`."""
