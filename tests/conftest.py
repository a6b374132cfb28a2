"""Shared fixtures: small seeded data sets. Every test draws its randomness from a fixed seed."""
import sys
from pathlib import Path

import numpy as np
import pytest

import emlib

# The book's build tooling (chapter sources, launch cell, reproducibility) lives in book/_ext.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))


@pytest.fixture(scope="session")
def faithful():
    return emlib.datasets.old_faithful()


@pytest.fixture
def blobs():
    """Three well-separated 2-D clusters, 300 points."""
    rng = np.random.default_rng(12345)
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0]])
    return np.concatenate([c + rng.standard_normal((100, 2)) for c in centres])
