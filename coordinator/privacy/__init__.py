"""coordinator.privacy: see the package docstring of :mod:`coordinator`."""
