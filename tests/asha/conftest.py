"""The ASHA property tests use the hypothesis profiles of tests/conftest.py.

``ci`` (the default) keeps ``pytest tests/asha`` around a minute on a loaded
two-core machine; ``thorough`` runs many more examples for local runs::

    HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/asha -q
"""
