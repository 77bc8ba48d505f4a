"""The ``remote`` runner: the search loop and the trials on a Ray cluster (``searchkit-runners[remote]``).

See docs/remote.md. Importing this package does not import Ray; the runner
and the commands do when they run.
"""

from __future__ import annotations

from searchkit_runners.remote._cluster import ClusterError
from searchkit_runners.remote._executor import RayExecutor, TrialResources
from searchkit_runners.remote._runner import RemoteRunner, attach, cancel, preflight, status_document

__all__ = [
    "ClusterError",
    "RayExecutor",
    "RemoteRunner",
    "TrialResources",
    "attach",
    "cancel",
    "preflight",
    "status_document",
]
