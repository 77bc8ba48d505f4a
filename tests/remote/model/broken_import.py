"""A module whose import fails on the cluster: the entrypoint check (which reads the source) passes."""

raise ImportError("this module needs a package the cluster does not have")


def train(ctx):  # pragma: no cover - never reached
    pass
