"""The benchmark scripts still run against the library they measure (one quick round, batch 1):
they reach into nn/functional/conv.py by name, so a refactor there must not leave them broken."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_nn_runs_and_profiles_every_stage():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import bench_nn
    finally:
        sys.path.pop(0)
    from nn.functional import conv
    assert all(callable(getattr(conv, name, None)) for name in bench_nn.STAGES)
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
