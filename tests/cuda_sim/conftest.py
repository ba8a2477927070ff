"""Fixtures of the CUDA cases (cases.py, products_cases.py), run by tests/test_cuda.py."""

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # A fresh seed per test, derived from its name: different inputs everywhere, repeatable.
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.fixture
def stream():
    from hpctrain.kernels.cuda_shim import cuda  # after the caller chose simulator or GPU

    return cuda.stream()
