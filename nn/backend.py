"""Where arrays live: NumPy on the CPU, CuPy on the GPU.

Every op asks its input for the array module (``xp = get_array_module(x)``) and then calls only
functions that NumPy and CuPy both have, so one code path serves both devices. CuPy is imported
lazily, only when the GPU is asked for, and is optional.

One rule for the device, as in PyTorch: a model is built on the host, then moved with
``model.to(device)``; inputs follow the model (``to_device(x, model.device)``). Nothing is placed
by a global default. The environment variable ``FEATINV_DEVICE`` (``cpu`` or ``gpu``) is the
default of the command line's ``--device`` option, and nothing else.
"""
import ctypes
import os
import sys

import numpy as np

DEVICES = ("cpu", "gpu")
DEVICE_ALIASES = {"cuda": "gpu"}  # PyTorch's name for the GPU
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


def keep_freed_memory(threshold=1 << 30):
    """Ask the C library's malloc to keep freed host memory for reuse; True if it agreed.

    NumPy gets every array from malloc. glibc serves blocks above its mmap threshold (at most
    32 MiB by default) with fresh pages and returns freed memory at the top of the heap to the
    system, so a training step that allocates and frees the same large temporaries every time
    faults in and zeroes thousands of new pages (about 4,500 page faults and 13-16 ms of system
    time per upconvJ5 forward+backward on the development machine). Raising M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD to ``threshold`` keeps freed blocks in the heap, and the next step reuses
    them. Peak memory is unchanged; memory freed late in a run goes back to the system at exit.
    The command line and the benchmarks call this once at start; it does nothing (False) outside
    glibc on Linux. CuPy has its own memory pool on the GPU.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another C library
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    return mallopt(m_mmap_threshold, threshold) == 1 and mallopt(m_trim_threshold, threshold) == 1


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # read when a library loads
BLAS_THREAD_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads", "MKL_Set_Num_Threads")
OPENBLAS_CORE_NAMES = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename")


def _loaded_blas_libraries():
    """The BLAS libraries (OpenBLAS, MKL) loaded in this process, as ctypes handles; none where
    /proc/self/maps does not exist (outside Linux)."""
    if not os.path.exists("/proc/self/maps"):
        return
    with open("/proc/self/maps") as f:
        libraries = sorted({line.split()[-1] for line in f
                            if line.rstrip().endswith(".so") or ".so." in line.split()[-1]})
    for path in libraries:
        name = os.path.basename(path).lower()
        if "blas" not in name and "mkl" not in name:
            continue
        try:
            yield ctypes.CDLL(path)
        except OSError:
            continue


def set_blas_threads(count):
    """Set how many threads the BLAS libraries loaded in this process use for a GEMM; returns how
    many libraries took the setting (0 where none could be found, e.g. outside Linux).

    OpenBLAS threads wait for work by spinning: when another process keeps one of the cores busy,
    a GEMM split over every core waits for its slowest thread, and each step slows by far more
    than the lost core's share (bench/bench_threads.py measures it). One thread per training
    process is the safe choice on a shared machine. Child processes inherit the count through the
    environment variables set here.
    """
    count = int(count)
    if count < 1:
        raise ValueError(f"BLAS threads must be at least 1, got {count}")
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = str(count)
    done = 0
    for library in _loaded_blas_libraries():
        for symbol in BLAS_THREAD_SETTERS:
            setter = getattr(library, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(count))
                done += 1
                break
    return done


def blas_kernels():
    """The name of the CPU kernels OpenBLAS runs in this process (``"Haswell"``: AVX2,
    ``"SkylakeX"``: AVX-512, ...), or None where no OpenBLAS is loaded.

    OpenBLAS built for several CPUs (as NumPy's wheels are) picks its kernels when it is loaded,
    from the CPU or from the environment variable ``OPENBLAS_CORETYPE``, which overrides the CPU:
    on a CPU with AVX-512, ``OPENBLAS_CORETYPE=Haswell`` confines every GEMM to AVX2
    (bench/bench_train.py reports the kernels of both frameworks beside its times).
    """
    for library in _loaded_blas_libraries():
        for symbol in OPENBLAS_CORE_NAMES:
            getter = getattr(library, symbol, None)
            if getter is not None:
                getter.restype = ctypes.c_char_p
                return getter().decode()
    return None
