"""Shared pytest setup: which array modules (devices) the tests run on.

Every test that takes the ``xp`` fixture runs once with NumPy and once with CuPy. The CuPy
variant is skipped, with the reason printed by ``pytest -rs`` (and summarised in the report
header), where CuPy is not importable or no CUDA GPU is usable.

    def test_something(xp):
        x = xp.asarray(...)          # numpy or cupy

A test that only makes sense on the GPU takes ``@pytest.mark.gpu``.
``device`` gives the matching device name (``"cpu"``/``"gpu"``) for code that takes one, and
``to_numpy(a)`` brings any array back to the host for comparisons.
"""
import os
import sys

import numpy as np
import pytest

# The repository root on sys.path, so ``import nn`` works without installing the package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

GPU_SKIP_REASON = "CuPy/GPU not available: GPU variants skipped"


def _probe_gpu():
    """(cupy module or None, a one-line explanation)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"{GPU_SKIP_REASON} (import cupy failed: {type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"{GPU_SKIP_REASON} (no usable CUDA device: {type(exc).__name__}: {exc})"
    if count < 1:
        return None, f"{GPU_SKIP_REASON} (CUDA reports no device)"
    return cupy, f"CuPy {cupy.__version__} with {count} CUDA device(s): GPU variants enabled"


CUPY, GPU_STATUS = _probe_gpu()
HAS_GPU = CUPY is not None

requires_gpu = pytest.mark.skipif(not HAS_GPU, reason=GPU_STATUS)


def pytest_report_header(config):
    return f"featinv array backends: numpy {np.__version__}; {GPU_STATUS}"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: the test needs CuPy and a CUDA GPU (skipped, with the reason, "
                                       "where there is none)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``@pytest.mark.gpu`` are skipped with the printed reason where no GPU is usable."""
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason=GPU_STATUS)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


ARRAY_MODULES = [
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason=GPU_STATUS)]),
]


@pytest.fixture(params=ARRAY_MODULES)
def xp(request):
    """The array module under test: numpy, or cupy (skipped with its reason without a GPU)."""
    if request.param == "numpy":
        return np
    if not HAS_GPU:  # defensive: the skipif mark already handles it
        pytest.skip(GPU_STATUS)
    return CUPY


@pytest.fixture
def device(xp):
    """``"cpu"`` for numpy, ``"gpu"`` for cupy."""
    return "cpu" if xp is np else "gpu"


def to_numpy(a):
    """A host NumPy array for an array or tensor from either device."""
    a = getattr(a, "data", a) if not isinstance(a, np.ndarray) else a
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


@pytest.fixture
def nn_seed():
    """Reseed the nn library's random stream (weights, dropout masks) before the test."""
    import nn
    nn.random.seed(0)
    return 0
