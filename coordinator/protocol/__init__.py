"""coordinator.protocol: see the package docstring of :mod:`coordinator`."""
