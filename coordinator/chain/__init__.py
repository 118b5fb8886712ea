"""coordinator.chain: see the package docstring of :mod:`coordinator`."""
