"""The benchmark scripts still run against the library they measure (one quick round, batch 1):
they call the public primitives of nn/functional/conv_engine by name, so a refactor there must not
leave them broken."""
import os
import platform
import subprocess
import sys

import nn.process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_bench(name):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_bench_nn_runs_and_profiles_every_stage():
    bench_nn = _import_bench("bench_nn")
    from nn.functional import conv_engine
    assert all(callable(getattr(conv_engine, name, None)) for stages in bench_nn.STAGES.values()
               for _, name in stages)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_nn.py"), "--batch", "1",
                          "--repeat", "1", "--no-torch", "--profile"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "targets: convJ1: throughput" in out and "upconvJ5: throughput" in out
    assert "GEMMs (BLAS)" in out and "profile upconvJ5" in out


def test_bench_nn_runs_on_the_device():
    """On the GPU (the strict stand-in where there is none): the gather design's memory need."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_nn.py"), "--device", "gpu",
                          "--batch", "1", "--repeat", "1", "--no-torch"],
                         capture_output=True, text=True, timeout=300, check=True, env=dict(os.environ)).stdout
    assert "device gpu" in out and "targets: convJ1: throughput" in out


def test_bench_train_gives_both_frameworks_the_same_kernels(monkeypatch):
    """--kernels native removes every variable that overrides a library's choice of CPU kernels,
    --kernels avx2 sets all of them to AVX2, as-set leaves the environment alone."""
    bench_train = _import_bench("bench_train")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert bench_train.worker_environment("as-set")["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    native = bench_train.worker_environment("native")
    assert not any(name in native for name in bench_train.KERNEL_VARIABLES)
    avx2 = bench_train.worker_environment("avx2")
    assert (avx2["OPENBLAS_CORETYPE"], avx2["ONEDNN_MAX_CPU_ISA"]) == ("Haswell", "AVX2")
    one = bench_train.worker_environment("as-set", threads=1)  # --threads: both frameworks alike
    assert all(one[name] == "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))


def test_bench_train_runs_and_names_its_kernels():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_train.py"), "--only", "lbp",
                          "--width", "0.125", "--image-size", "64", "--batch-size", "1", "--steps", "1",
                          "--kernels", "avx2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "| lbp | " in out and "error" not in out
    if nn.process.blas_kernels() is not None and platform.machine() == "x86_64":
        assert "ours OpenBLAS Haswell" in out
