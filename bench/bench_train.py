"""Time and peak memory of one training step (forward, loss, backward, Adam) of every decoder.

    python bench/bench_train.py [--batch-size 8] [--width 1.0] [--image-size 256] [--only hog,sift] [--rounds 3]
                                [--threads 1] [--kernels as-set|native|avx2]

Each (decoder, framework) pair runs in a fresh subprocess that reports the median step time of a
few steps after a warm-up and its peak resident memory above the resident memory once the model, the data and the
framework are in memory (so: activations, gradients, optimiser state and work buffers; bench/memory.py resets the
peak counter there, so that the build's own transient peak does not hide the step's). The
reference is the same network in PyTorch CPU (built from the same layer table, same weights,
same threads: ``--threads T`` sets both frameworks' thread counts, as ``train --threads`` sets
ours) when torch is installed. The features are random, and for SIFT empty except in one cell in
eighteen, as a real keypoint map (its first layer works from the filled cells:
nn/functional/sparse_conv.py; PyTorch's dense convolution takes the same time on any values). Both run with malloc keeping freed memory, as the command
line does (``nn.process.keep_freed_memory``). With ``--rounds R`` the two frameworks are measured in
turn R times (ours, torch, ours, torch, ...), so that a slow minute of a shared machine falls on
both; the table gives the median step times, the median of the R ratios and their range. Target: each decoder's step at most 1.3x PyTorch's on a quiet
machine (the goal beyond: 1.0x); the last column says whether it is met.

Which CPU kernels each framework ran (as its measuring subprocesses report) is printed below the
table, and ``--kernels`` sets them for both: ``as-set`` (default) keeps the environment as it is;
``native`` removes the variables that override the CPU's own choice (``OPENBLAS_CORETYPE`` for our
OpenBLAS, ``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY`` and ``MKL_ENABLE_INSTRUCTIONS`` for
PyTorch); ``avx2`` confines both to AVX2. A machine that sets ``OPENBLAS_CORETYPE=Haswell`` on a CPU
with AVX-512 runs our GEMMs on AVX2 and PyTorch's on AVX-512 under ``as-set``: compare like with like.
"""
import argparse
import json
import os
import subprocess
import sys
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from nn.process import BLAS_THREAD_VARIABLES  # noqa: E402

WORKER = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
name, framework, batch, width, image_size, steps = {args!r}
import nn, nn.functional as F
from models.networks import decoders
nn.process.keep_freed_memory()  # as cli.py does, for both frameworks
nn.random.seed(0)
ours = decoders.build(name, width, image_size)
shape = decoders.feature_shape(name, image_size)
size = decoders.output_size(name, image_size)
rng = np.random.default_rng(0)
x = rng.random((batch,) + shape, dtype=np.float32)
if decoders.representation(name).sparse:  # as a real keypoint map: about one cell in eighteen filled
    x *= rng.random((batch, 1) + shape[1:]) < 0.055
t = rng.random((batch, 3, size, size), dtype=np.float32) - 0.5
if framework == "ours":
    from nn.process import blas_kernels
    kernels = f"OpenBLAS {{blas_kernels()}}, {{os.environ.get('OPENBLAS_NUM_THREADS', 'all cores')}} thread(s)"
    opt = nn.optim.Adam(ours.parameters(), lr=1e-4)
    def step():
        loss = F.mse_loss(ours(nn.Tensor(x)), nn.Tensor(t), reduction="paper")
        opt.zero_grad(); loss.backward(); opt.step()
else:
    import torch
    kernels = (f"ATen {{torch.backends.cpu.get_cpu_capability()}}, oneDNN {{os.environ.get('ONEDNN_MAX_CPU_ISA', 'best for the CPU')}}, "
               f"{{torch.get_num_threads()}} thread(s)")
    sys.path.insert(0, {tests!r})
    from torch_decoders import torch_decoder
    model = torch_decoder(name, width, image_size, ours)
    del ours
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    def step():
        loss = ((model(xt) - tt) ** 2).sum() / len(xt)
        opt.zero_grad(); loss.backward(); opt.step()
from bench.memory import reset_peak, peak_since_reset
baseline = reset_peak()  # model, data and imports in place; the build's own peak is not the step's
step()
times = []
for _ in range(steps):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
peak = peak_since_reset() - baseline
print(json.dumps({{"time": float(np.median(times)), "peak_mb": peak / 2**20, "kernels": kernels}}))
"""


TARGET = 1.3  # at most this many times PyTorch's step time
AVX512_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")  # OpenBLAS's kernel sets that use AVX-512
KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
AVX2 = {"OPENBLAS_CORETYPE": "Haswell", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def worker_environment(kernels, threads=None):
    """The environment of the measuring subprocesses for ``--kernels`` and ``--threads``."""
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in BLAS_THREAD_VARIABLES})  # OMP_NUM_THREADS: PyTorch's pool
    if kernels != "as-set":
        for name in KERNEL_VARIABLES:
            env.pop(name, None)
    if kernels == "avx2":
        env.update(AVX2)
    return env


def measure(name, framework, args):
    code = WORKER.format(root=ROOT, tests=os.path.join(ROOT, "tests", "reference"),
                         args=(name, framework, args.batch_size, args.width, args.image_size, args.steps))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=worker_environment(args.kernels, args.threads))
    if result.returncode:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=None, help="shallow features' photo size (default 256)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", default=None, help="comma-separated decoder names")
    parser.add_argument("--rounds", type=int, default=1, help="measure ours and torch in turn this many times")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of both frameworks (default: the environment's; `train` runs one BLAS thread)")
    parser.add_argument("--kernels", choices=("as-set", "native", "avx2"), default="as-set",
                        help="CPU kernels of both frameworks: the environment's, the CPU's best, or AVX2")
    args = parser.parse_args()
    from models.networks import decoders
    names = args.only.split(",") if args.only else list(decoders.REPRESENTATIONS)
    try:
        import torch  # noqa: F401
        frameworks = ("ours", "torch")
    except ImportError:
        frameworks = ("ours",)
        print("torch not installed: no PyTorch reference column")
    print(f"one training step, batch {args.batch_size}, width {args.width}, image size {args.image_size or 256}, "
          f"{os.cpu_count()} cores")
    print(f"{args.rounds} round(s) per decoder, the frameworks in turn; --kernels {args.kernels}; threads: "
          f"{args.threads or 'as the environment sets'}")
    print("| decoder | ours s/step | ours peak MB | torch s/step | torch peak MB | time ratio ours/torch | ratio range "
          "| target 1.3x |")
    print("|---|---|---|---|---|---|---|---|")
    used = {}  # framework -> the CPU kernels its measuring subprocesses ran, in words
    for name in names:
        rounds = [{fw: measure(name, fw, args) for fw in frameworks} for _ in range(args.rounds)]
        failed = [r[fw]["error"] for r in rounds for fw in frameworks if "error" in r[fw]]
        if failed:
            print(f"| {name} | error: {failed[0]} | | | | | | |")
            continue
        used.update({fw: rounds[0][fw]["kernels"] for fw in frameworks})
        ours = [r["ours"] for r in rounds]
        line = f"| {name} | {median(r['time'] for r in ours):.3f} | {max(r['peak_mb'] for r in ours):.0f} |"
        if "torch" in frameworks:
            ref = [r["torch"] for r in rounds]
            ratios = [a["time"] / b["time"] for a, b in zip(ours, ref)]
            ratio = median(ratios)
            line += (f" {median(r['time'] for r in ref):.3f} | {max(r['peak_mb'] for r in ref):.0f} | {ratio:.2f} |"
                     f" {min(ratios):.2f}-{max(ratios):.2f} | {'met' if ratio <= TARGET else 'MISSED'} |")
        else:
            line += " | | | | |"
        print(line, flush=True)
    if used:
        print("kernels: " + "; ".join(f"{fw} {used[fw]}" for fw in frameworks))
    if "torch" in used and ("AVX512" in used["torch"]) != any(core in used["ours"] for core in AVX512_CORES):
        print("warning: the frameworks ran different vector instructions (one AVX2, the other AVX-512); "
              "--kernels native or --kernels avx2 compares like with like")


if __name__ == "__main__":
    main()
