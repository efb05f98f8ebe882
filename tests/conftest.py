"""Shared test set-up: one fixed hypothesis profile, so runs are reproducible."""

import os
import sys

from hypothesis import HealthCheck, settings

settings.register_profile(
    "symgraph",
    deadline=None,
    derandomize=True,
    max_examples=int(os.environ.get("SYMGRAPH_HYPOTHESIS_EXAMPLES", "150")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("symgraph")

# Test modules import shared helpers (strategies.py) by plain name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
