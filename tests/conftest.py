"""Shared pytest setup: which array modules (devices) the tests run on.

Every test that takes the ``xp`` fixture runs once with NumPy and once with CuPy. Where no real
CuPy with a CUDA GPU is usable, "CuPy" is the strict NumPy-backed stand-in of
``tests/strict_device/cupy`` (it refuses host/device mixing as CuPy does, and counts launches and
syncs); the report header says which one ran. Real CuPy takes precedence where it works.

    def test_something(xp):
        x = xp.asarray(...)          # numpy or cupy

A GPU variant takes ``@pytest.mark.gpu``; one that only makes sense on the stand-in (it reads
its launch and synchronisation counters) skips where ``REAL_GPU``.
``device`` gives the matching device name (``"cpu"``/``"gpu"``) for code that takes one, and
``to_numpy(a)`` brings any array back to the host for comparisons.
"""
import contextlib
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

# The repository root on sys.path, so ``import nn`` works without installing the package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SAMPLES = sorted(glob.glob(os.path.join(ROOT, "models", "data", "sample", "*.jpg")))


def sample_folder(folder, count):
    """Create ``folder`` holding copies of the first ``count`` bundled photos; returns it."""
    os.makedirs(folder)
    for path in SAMPLES[:count]:
        shutil.copy(path, folder)
    return folder


@contextlib.contextmanager
def small_disk(folder, size):
    """A tmpfs of ``size`` bytes mounted at ``folder`` for the duration (a disk that fills); the
    test is skipped where this machine does not let us mount one (it needs root)."""
    os.makedirs(folder)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size)}", "tmpfs", str(folder)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root and mount rights): {exc}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


STRICT_DEVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strict_device")


def _probe_gpu():
    """(real cupy module or None, a one-line explanation)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"import cupy failed: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"no usable CUDA device: {type(exc).__name__}: {exc}"
    if count < 1:
        return None, "CUDA reports no device"
    return cupy, f"CuPy {cupy.__version__} with {count} CUDA device(s): GPU variants on the GPU"


def use_strict_device():
    """Put the strict stand-in (tests/strict_device/cupy) first on the import path, for this
    process and (through PYTHONPATH) for the commands it starts."""
    for name in [m for m in sys.modules if m == "cupy" or m.startswith("cupy.")]:
        del sys.modules[name]  # a real CuPy that failed its probe
    sys.path.insert(0, STRICT_DEVICE)
    os.environ["PYTHONPATH"] = os.pathsep.join([STRICT_DEVICE, ROOT] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    import cupy
    return cupy


CUPY, GPU_STATUS = _probe_gpu()
REAL_GPU = CUPY is not None
if not REAL_GPU:
    CUPY, GPU_STATUS = use_strict_device(), (f"no real GPU ({GPU_STATUS}): GPU variants run on the strict "
                                             "NumPy-backed stand-in tests/strict_device/cupy")


def pytest_report_header(config):
    return f"featinv array backends: numpy {np.__version__}; {GPU_STATUS}"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: a GPU variant (on the strict stand-in where no GPU is usable)")


ARRAY_MODULES = [
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu]),
]


@pytest.fixture(params=ARRAY_MODULES)
def xp(request):
    """The array module under test: numpy, or cupy (the strict stand-in where no GPU is usable)."""
    return np if request.param == "numpy" else CUPY


@pytest.fixture
def device(xp):
    """``"cpu"`` for numpy, ``"gpu"`` for cupy."""
    return "cpu" if xp is np else "gpu"


def to_numpy(a):
    """A host NumPy array for an array or tensor from either device."""
    import nn
    a = a.data if isinstance(a, nn.Tensor) else a
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


@pytest.fixture
def nn_seed():
    """Reseed the nn library's random stream (weights, dropout masks) before the test."""
    import nn
    nn.random.seed(0)
    return 0
