"""coordinator.store: see the package docstring of :mod:`coordinator`."""
