"""nn/process.py: malloc keeps freed memory, BLAS threads are set and their kernels named."""
import os
import platform
import subprocess
import sys

import pytest

import nn.process


def test_keep_freed_memory_lets_the_next_step_reuse_freed_blocks():
    """After nn.process.keep_freed_memory(), a freed 64 MiB block is reused instead of faulting in
    fresh pages (run in a subprocess: the setting is process-wide)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("keep_freed_memory acts on glibc's malloc: Linux only")
    code = (
        "import resource, numpy as np, nn.process\n"
        "def faults():\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(4):\n"
        "        a = np.empty(16 << 20, np.float32); a.fill(1.0); del a\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before\n"
        "default = faults()\n"
        "kept = nn.process.keep_freed_memory()\n"
        "faults()\n"
        "print(default, kept, faults())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))).stdout.split()
    default, kept, after = int(out[0]), out[1] == "True", int(out[2])
    if not kept:
        pytest.skip("this C library does not take mallopt (not glibc): nothing to check")
    assert after < default / 10, (default, after)


def test_set_blas_threads_sets_the_children_environment_and_refuses_zero(monkeypatch):
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    assert nn.process.set_blas_threads(1) >= 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    with pytest.raises(ValueError, match="at least 1"):
        nn.process.set_blas_threads(0)


def test_blas_kernels_names_the_kernels_that_openblas_coretype_chose():
    """OPENBLAS_CORETYPE overrides the CPU's choice when OpenBLAS is loaded; blas_kernels() reads
    back what the library runs (bench/bench_train.py prints it beside its times)."""
    if nn.process.blas_kernels() is None or platform.machine() != "x86_64":
        pytest.skip("NumPy's BLAS here is not an x86-64 OpenBLAS that names its kernels")
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    code = "import numpy, nn.process; print(nn.process.blas_kernels())"
    chosen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "Haswell"
