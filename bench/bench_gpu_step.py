"""One training step of the full-width decoders on the GPU, against the same decoder in PyTorch CUDA.

    python bench/bench_gpu_step.py [--batch 64] [--steps 10] [--features hog sift conv5 fc8]

For each decoder: forward, the paper's Euclidean loss, backward and Adam, on random features of
the decoder's input shape and random targets, float32. Ours runs on CuPy; the PyTorch twin
(tests/reference/torch_decoders.py: the same layer tables, our weights copied) on CUDA, with TF32 off on
both sides (ours has no TF32 path; PyTorch's is turned off), so both compute in full FP32.

Reported per decoder: milliseconds per step (the fastest of ``--rounds`` rounds of ``--steps``
steps, each round synchronised), the speed ratio torch_ms / our_ms (target: at least 0.8), peak
GPU memory of a step, everything included (weights, gradients, Adam's moments, activations,
inputs; ours: CuPy's pool after one step that starts from an emptied cache; torch:
``max_memory_allocated``) and its ratio (target: at most 1.2), and the relative difference of
the first step's loss. Without PyTorch CUDA, only our timings are printed.
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import nn  # noqa: E402
import nn.functional as F  # noqa: E402
from models.networks import decoders  # noqa: E402

TARGET_SPEED, TARGET_MEMORY = 0.8, 1.2


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def inputs(name, batch, rng):
    shape = decoders.feature_shape(name, None)
    size = decoders.output_size(name, None)
    return (rng.standard_normal((batch,) + tuple(shape)).astype(np.float32),
            (rng.random((batch, 3, size, size)) - 0.5).astype(np.float32))


def best_ms(step, sync, steps, rounds):
    step()
    sync()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e3


def bench_ours(name, x, target, steps, rounds):
    cp = nn.backend.cupy()
    nn.random.seed(0)
    model = decoders.build(name, 1.0, None, in_channels=x.shape[1]).to("gpu")
    optimizer = nn.optim.Adam(model.parameters(), lr=1e-4)
    xd, td = nn.to_device(x, "gpu"), nn.to_device(target, "gpu")
    first = []

    def step():
        loss = F.mse_loss(model(nn.Tensor(xd)), nn.Tensor(td), reduction="paper")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not first:
            first.append(float(loss.item()))

    pool = cp.get_default_memory_pool()
    step()
    cp.cuda.Device().synchronize()
    ms = best_ms(step, cp.cuda.Device().synchronize, steps, rounds)
    pool.free_all_blocks()  # cached but unused blocks go; one more step grows the pool to its need
    step()
    cp.cuda.Device().synchronize()
    return model, ms, pool.total_bytes(), first[0]


def bench_torch(torch, ours, name, x, target, steps, rounds):
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    from torch_decoders import TorchDecoder, copy_weights
    net = TorchDecoder(ours).cuda()
    copy_weights(ours.to("cpu"), net)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    xt, tt = torch.as_tensor(x, device="cuda"), torch.as_tensor(target, device="cuda")
    first = []

    def step():
        loss = ((net(xt) - tt) ** 2).sum() / xt.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not first:
            first.append(float(loss.item()))

    step()
    torch.cuda.synchronize()
    ms = best_ms(step, torch.cuda.synchronize, steps, rounds)
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return ms, torch.cuda.max_memory_allocated(), first[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", nargs="+", default=["hog", "sift", "conv5", "fc8"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cp = nn.backend.cupy()
    torch = load_torch()
    print(f"CuPy {cp.__version__}; PyTorch: {torch.__version__ + ' CUDA, TF32 off' if torch else 'not available'}; "
          f"batch {args.batch}, full width, float32")
    print("| decoder | ours ms/step | torch ms/step | speed (torch/ours) | ours peak MiB | torch peak MiB "
          "| memory (ours/torch) | first loss rel. diff |")
    print("|---|---|---|---|---|---|---|---|")
    verdicts = []
    rng = np.random.default_rng(0)
    for name in args.features:
        x, target = inputs(name, args.batch, rng)
        model, ms, peak, loss = bench_ours(name, x, target, args.steps, args.rounds)
        row = [name, f"{ms:.1f}"]
        if torch:
            cp.get_default_memory_pool().free_all_blocks()
            t_ms, t_peak, t_loss = bench_torch(torch, model, name, x, target, args.steps, args.rounds)
            speed, memory = t_ms / ms, peak / max(t_peak, 1)
            row += [f"{t_ms:.1f}", f"{speed:.2f}", f"{peak / 2 ** 20:.0f}", f"{t_peak / 2 ** 20:.0f}",
                    f"{memory:.2f}", f"{abs(loss - t_loss) / abs(t_loss):.1e}"]
            verdicts.append(f"{name}: speed {'OK' if speed >= TARGET_SPEED else 'MISS'} ({speed:.2f}x, target "
                            f">= {TARGET_SPEED}), memory {'OK' if memory <= TARGET_MEMORY else 'MISS'} "
                            f"({memory:.2f}x, target <= {TARGET_MEMORY})")
        else:
            row += ["-", "-", f"{peak / 2 ** 20:.0f}", "-", "-", "-"]
        print("| " + " | ".join(row) + " |", flush=True)
        del model
        cp.get_default_memory_pool().free_all_blocks()
    print("\n".join(["targets:"] + verdicts) if verdicts else "targets: not measured (no PyTorch CUDA)")


if __name__ == "__main__":
    main()
