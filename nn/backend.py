"""Where arrays live: NumPy on the CPU, CuPy on the GPU.

Every op asks its input for the array module (``xp = get_array_module(x)``) and then calls only
functions that NumPy and CuPy both have, so one code path serves both devices. CuPy is imported
lazily, only when the GPU is asked for, and is optional.

The default device comes from the environment variable ``FEATINV_DEVICE`` (``cpu`` or ``gpu``);
the command line's ``--device`` flag sets the same thing through :func:`set_default_device`.
"""
import os

import numpy as np

DEVICES = ("cpu", "gpu")
_default_device = None
_cupy = None


class DeviceError(RuntimeError):
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
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return device


def default_device():
    """The device new arrays go to: set by :func:`set_default_device`, else ``$FEATINV_DEVICE``."""
    if _default_device is not None:
        return _default_device
    return check_device(os.environ.get("FEATINV_DEVICE", "cpu").lower())


def set_default_device(device):
    global _default_device
    if check_device(device) == "gpu":
        cupy()  # fails with the install hint before anything changes
    _default_device = device


def to_device(array, device=None):
    """Copy ``array`` to ``device`` (``cpu``/``gpu``); no copy if it is already there."""
    device = check_device(device or default_device())
    if device == "gpu":
        return cupy().asarray(array)
    if is_gpu_array(array):
        return array.get()
    return np.asarray(array)


def to_numpy(array):
    """A NumPy array holding ``array``'s values, wherever it lives."""
    return to_device(unwrap(array), "cpu")
