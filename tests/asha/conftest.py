"""Hypothesis profiles for the ASHA property tests.

``ci`` (the default) keeps ``pytest tests/asha`` around a minute on a loaded
two-core machine; ``thorough`` runs many more examples for local runs::

    HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/asha -q
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
