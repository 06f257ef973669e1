"""Tuning of the process that runs nn, not part of the autodiff library: how the C library's
malloc keeps freed memory, and how many threads the BLAS libraries loaded in this process use.

Both act on the whole process (libc and the BLAS libraries found in /proc/self/maps), so the
command line, the training loop and the benchmarks call them once at start; no op calls them.
"""
import ctypes
import os
import sys


def keep_freed_memory(threshold=1 << 30):
    """Ask the C library's malloc to keep freed host memory for reuse; True if it agreed.

    NumPy gets every array from malloc. glibc serves blocks above its mmap threshold (at most
    32 MiB by default) with fresh pages and returns freed memory at the top of the heap to the
    system, so a training step that allocates and frees the same large temporaries every time
    faults in and zeroes fresh pages for them at every step, in system time. Raising
    M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to ``threshold`` keeps freed blocks in the heap, and the next step reuses
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
