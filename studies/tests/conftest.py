import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The small fixed-weight models are shared with the library's tests.
sys.path.insert(0, str(ROOT / "tests"))
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def shared_data():
    """Path to the staged real data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the staged real data at {SHARED_DATA} (present in this "
                    "project's CI, absent in a plain clone)")
    return SHARED_DATA
