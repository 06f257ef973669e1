"""Where arrays live: NumPy on the CPU, CuPy on the GPU.

Every op asks its input for the array module (``xp = get_array_module(x)``) and then calls only
functions that NumPy and CuPy both have, so one code path serves both devices. CuPy is imported
lazily, only when the GPU is asked for, and is optional.

One rule for the device, as in PyTorch: a model is built on the host, then moved with
``model.to(device)``; inputs follow the model (``to_device(x, model.device)``). Nothing is placed
by a global default. The environment variable ``FEATINV_DEVICE`` (``cpu`` or ``gpu``) is the
default of the command line's ``--device`` option, and nothing else.
"""
import numpy as np

from .errors import SetupError

DEVICES = ("cpu", "gpu")
DEVICE_ALIASES = {"cuda": "gpu"}  # PyTorch's name for the GPU
_cupy = None


class DeviceError(SetupError):
    """The GPU was asked for but cannot be used; the message says what to install."""


def cupy():
    """The ``cupy`` module, imported on first use, with a clear error when it is unusable."""
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp
        except ImportError:
            raise DeviceError("the GPU needs CuPy: pip install 'featinv[gpu]' (cupy-cuda12x) "
                              "or the cupy wheel matching your CUDA version") from None
        try:
            cp.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver or device missing
            raise DeviceError(f"CuPy is installed but no usable CUDA GPU was found ({exc}); "
                              "install an NVIDIA driver or use --device cpu") from None
        _cupy = cp
    return _cupy


def is_gpu_array(x):
    """True for a CuPy array, decided without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy"


def unwrap(x):
    """The array inside a tensor; arrays and numbers pass through."""
    return x if isinstance(x, np.ndarray) or is_gpu_array(x) else getattr(x, "data", x)


def get_array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (tensors are looked through)."""
    for a in arrays:
        if is_gpu_array(unwrap(a)):
            return cupy()
    return np


def device_of(x):
    """``"gpu"`` or ``"cpu"``: where the array (or tensor) ``x`` lives."""
    return "gpu" if is_gpu_array(unwrap(x)) else "cpu"


def check_device(device):
    """``device`` if it is ``cpu``, or ``gpu`` (also named ``cuda``) with a usable CuPy (else the
    DeviceError with the install hint, before anything has been computed)."""
    device = DEVICE_ALIASES.get(device, device)
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES} (or 'cuda', the same as 'gpu')")
    if device == "gpu":
        cupy()
    return device


def to_device(array, device):
    """Copy ``array`` to ``device`` (``cpu``/``gpu``); no copy if it is already there."""
    if check_device(device) == "gpu":
        return cupy().asarray(array)
    if is_gpu_array(array):
        return array.get()
    return np.asarray(array)


def to_numpy(array):
    """A NumPy array holding ``array``'s values, wherever it lives."""
    return to_device(unwrap(array), "cpu")
