"""Throughput and memory of nn's convolutions at the decoders' real layer sizes.

    python bench/bench_nn.py                    # CPU (NumPy), float32, batch 8
    python bench/bench_nn.py --device gpu       # the same on CuPy
    python bench/bench_nn.py --profile          # also: where the time goes (primitives, GEMMs alone)

For each layer, forward+backward of ``nn.functional.conv2d`` / ``conv_transpose2d``:

* achieved GFLOP/s, counting 2 * multiply-adds for the forward GEMM and for each of the two
  backward GEMMs (input gradient, weight gradient), over the whole op's time (im2col, col2im,
  transposes and bias included);
* its ratio to this machine's float32 ``matmul`` throughput measured in the same run, on a square
  GEMM of about the same number of multiply-adds (target: at least 0.5), and on a GEMM of the
  layer's own shapes;
* its ratio to PyTorch (same op, same number of threads) when torch is installed;
* the peak memory allocated during one forward+backward (tracemalloc, which sees NumPy's
  allocations; on the GPU, CuPy's memory pool), against the bytes of the activations, gradients
  and im2col buffers this design must hold (``required_bytes``; target: at most 1.5x).

Timings are the fastest of ``--repeat`` interleaved rounds (``Backend.best_of_rounds``): the op
and the reference GEMMs take turns, so they see the same machine load; PyTorch runs its rounds
afterwards, alone (its OpenMP threads spin after each call and would slow whatever runs next).

Layers (Dosovitskiy & Brox 2016, decoder tables): convJ1 256 -> 256 channels at 32x32, kernel 3,
padding 1; upconvJ5 64 -> 32 channels, 64x64 -> 128x128, kernel 4, stride 2, padding 1.
"""
import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import nn  # noqa: E402
import nn.functional as F  # noqa: E402
from nn.functional import conv as C  # noqa: E402
from nn.functional import conv_engine as E  # noqa: E402
from nn.functional.conv_reference import conv_output_size  # noqa: E402

LAYERS = [
    # name, op, C_in, C_out, H, W, kernel, stride, padding
    ("convJ1", "conv2d", 256, 256, 32, 32, 3, 1, 1),
    ("upconvJ5", "conv_transpose2d", 64, 32, 64, 64, 4, 2, 1),
]


class Backend:
    def __init__(self, device):
        self.device = device
        if device == "gpu":
            self.xp = nn.backend.cupy()
        else:
            self.xp = np

    def sync(self):
        if self.device == "gpu":
            self.xp.cuda.Device().synchronize()

    def best_of_rounds(self, fns, repeat):
        """{name: seconds} for a dict of callables: each is run once to warm up, then all of them in
        turn, ``repeat`` rounds, and the fastest run of each is kept. Interleaving puts the op and
        its references under the same machine load; the minimum is the least disturbed run (on a
        shared machine other tenants only ever add time)."""
        for fn in fns.values():
            fn()
        self.sync()
        best = {name: float("inf") for name in fns}
        for _ in range(repeat):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                self.sync()
                best[name] = min(best[name], time.perf_counter() - start)
        return best

    def peak_bytes(self, fn):
        """Peak bytes allocated while ``fn()`` runs, above what was allocated before it."""
        if self.device == "gpu":
            pool = self.xp.get_default_memory_pool()
            pool.free_all_blocks()
            base = pool.used_bytes()
            # CuPy has no peak counter: the pool's total after the run bounds what was in use at once
            fn()
            self.sync()
            peak = pool.total_bytes()
            return peak - base
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak - base


def layer_shapes(op, c_in, c_out, h, w, k, s, p):
    if op == "conv2d":
        oh, ow = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
        w_shape = (c_out, c_in, k, k)
    else:
        oh, ow = C.conv_transpose_output_size(h, k, s, p, 0), C.conv_transpose_output_size(w, k, s, p, 0)
        w_shape = (c_in, c_out, k, k)
    return w_shape, (oh, ow)


def layer_macs(op, n, c_in, c_out, h, w, k, oh, ow):
    """Multiply-adds of the forward pass; each of the two backward GEMMs does as many."""
    return c_out * c_in * k * k * n * (oh * ow if op == "conv2d" else h * w)


def gemm_dims(op, n, c_in, c_out, h, w, k, s, oh, ow):
    """(M, K, N) of the forward GEMM, whole (the conv engine cuts N into row bands)."""
    if op == "conv2d":
        return c_out, c_in * k * k, n * oh * ow           # W (Co, C k k) @ col (C k k, N OH OW)
    taps = k // s                                          # by stride phases (k a multiple of s)
    return s * s * c_out, c_in * taps * taps, n * (h + taps - 1) * (w + taps - 1)


def required_bytes(op, n, c_in, c_out, h, w, k, s, p, oh, ow, device="cpu", itemsize=4):
    """Bytes that a forward+backward of this design must hold at its peak on ``device`` (besides x,
    w, b and gy): the output, the input gradient, the weight and bias gradients, and

    * on the CPU (banded im2col): one zero-padded phase copy of the larger of input and output
      (what the bands are cut from, or what the transposed convolution's phases are written
      into), and one im2col band;
    * on the GPU (gather, ConvPlan.gather): the channel-major canvas, the whole im2col, and the
      col2im gather's (T, input) intermediate, T = ceil(k / s)^2 taps per pixel.
    """
    y, gx, gw = n * c_out * oh * ow, n * c_in * h * w, c_in * c_out * k * k
    padded = max(n * c_in * (h + 2 * p + s) * (w + 2 * p + s), n * c_out * (oh + 2 * p + s) * (ow + 2 * p + s))
    if op == "conv2d":
        col_row = c_in * k * k * n * ow           # im2col of x, one output row
        rows, image = oh, gx
    else:
        col_row = c_out * k * k * n * w           # im2col of gy (backward), one input row
        rows, image = h, y
    plan = E.ConvPlan.for_device(device)
    if plan.gather:
        taps = -(-k // s) ** 2
        return (y + gx + gw + c_out + padded + col_row * rows + taps * image) * itemsize
    band = min(plan.band_bytes // itemsize, col_row * rows)
    return (y + gx + gw + c_out + padded + max(band, col_row)) * itemsize


def run_nn(backend, op, x, wt, b, gy, stride, padding):
    fn = F.conv2d if op == "conv2d" else F.conv_transpose2d
    xt, wt_, bt = nn.Tensor(x, requires_grad=True), nn.Tensor(wt, requires_grad=True), nn.Tensor(b, requires_grad=True)
    y = fn(xt, wt_, bt, stride=stride, padding=padding)
    y.backward(gy)
    return y, xt.grad, wt_.grad, bt.grad


def bench_layer(backend, layer, batch, repeat, torch_mod, profile):
    name, op, c_in, c_out, h, w, k, s, p = layer
    xp = backend.xp
    rng = np.random.default_rng(0)
    w_shape, (oh, ow) = layer_shapes(op, c_in, c_out, h, w, k, s, p)
    x = xp.asarray(rng.standard_normal((batch, c_in, h, w), dtype=np.float32))
    wt = xp.asarray(rng.standard_normal(w_shape, dtype=np.float32) * 0.05)
    b = xp.asarray(rng.standard_normal(c_out, dtype=np.float32))
    gy = xp.asarray(rng.standard_normal((batch, c_out, oh, ow), dtype=np.float32))
    m, kk, nn_ = gemm_dims(op, batch, c_in, c_out, h, w, k, s, oh, ow)
    macs = layer_macs(op, batch, c_in, c_out, h, w, k, oh, ow)
    flops_total = 3 * 2 * macs
    fn = F.conv2d if op == "conv2d" else F.conv_transpose2d

    def forward():
        return fn(nn.Tensor(x), nn.Tensor(wt), nn.Tensor(b), stride=s, padding=p)

    # reference GEMMs: a square one of about the same multiply-adds, and the layer's own shapes
    side = int(round(macs ** (1 / 3) / 64) * 64)
    a_sq, b_sq = xp.ones((side, side), np.float32), xp.ones((side, side), np.float32)
    a_l = xp.asarray(rng.standard_normal((m, kk), dtype=np.float32))
    b_l = xp.asarray(rng.standard_normal((kk, nn_), dtype=np.float32))
    fns = {"fwd": forward, "all": lambda: run_nn(backend, op, x, wt, b, gy, s, p),
           "gemm_sq": lambda: xp.matmul(a_sq, b_sq), "gemm_layer": lambda: xp.matmul(a_l, b_l)}  # noqa: F821 (deleted below, after the timing)

    if torch_mod is not None:
        torch, tdev = torch_mod
        tfn = torch.nn.functional.conv2d if op == "conv2d" else torch.nn.functional.conv_transpose2d
        tx = torch.as_tensor(nn.to_numpy(x), device=tdev).requires_grad_()
        tw = torch.as_tensor(nn.to_numpy(wt), device=tdev).requires_grad_()
        tb = torch.as_tensor(nn.to_numpy(b), device=tdev).requires_grad_()
        tgy = torch.as_tensor(nn.to_numpy(gy), device=tdev)

        def torch_step():
            tx.grad = tw.grad = tb.grad = None
            tfn(tx, tw, tb, stride=s, padding=p).backward(tgy)
            if tdev == "cuda":
                torch.cuda.synchronize()

    t = backend.best_of_rounds(fns, repeat)
    if torch_mod is not None:
        # PyTorch on its own: its OpenMP threads and OpenBLAS's spin-wait for a while after each
        # call, and taking turns with them would slow both sides
        t.update(backend.best_of_rounds({"torch": torch_step}, repeat))
    del a_sq, b_sq, a_l, b_l
    t_fwd, t_all = t["fwd"], t["all"]
    t_bwd = t_all - t_fwd
    gemm_sq = 2 * side ** 3 / t["gemm_sq"] / 1e9
    gemm_layer = 2 * m * kk * nn_ / t["gemm_layer"] / 1e9
    row = dict(name=name, op=op, gflop=flops_total / 1e9, t_fwd=t_fwd, t_bwd=t_bwd, t_all=t_all,
               gflops=flops_total / t_all / 1e9, gflops_fwd=2 * macs / t_fwd / 1e9,
               gflops_bwd=4 * macs / t_bwd / 1e9, gemm_sq=gemm_sq, gemm_side=side, gemm_layer=gemm_layer,
               gemm_shape=f"{m}x{kk}x{nn_}")
    row["ratio_gemm"] = row["gflops"] / gemm_sq
    row["ratio_gemm_layer"] = row["gflops"] / gemm_layer

    if torch_mod is not None:
        row["torch_gflops"] = flops_total / t["torch"] / 1e9
        row["ratio_torch"] = t["torch"] / t_all  # >1: we are faster
        # correctness sanity: our forward matches torch's
        ref = tfn(tx, tw, tb, stride=s, padding=p).detach().cpu().numpy()
        ours = nn.to_numpy(forward().data)
        row["max_rel_diff_vs_torch"] = float(np.abs(ours - ref).max() / np.abs(ref).max())

    # memory of one forward+backward (x, w, b, gy allocated before)
    def one_step():
        out = run_nn(backend, op, x, wt, b, gy, s, p)
        del out

    row["peak_mb"] = backend.peak_bytes(one_step) / 2 ** 20
    row["required_mb"] = required_bytes(op, batch, c_in, c_out, h, w, k, s, p, oh, ow, backend.device) / 2 ** 20
    row["mem_ratio"] = row["peak_mb"] / row["required_mb"]
    if profile:
        row["profile"], row["profile_gemms"] = profile_layer(backend, op, x, wt, b, gy, s, p, repeat)
    return row


# the public primitives of nn/functional/conv_engine that the profile times, per op
STAGES = {
    "conv2d": [("forward (conv_forward_data)", "conv_forward_data"),
               ("input gradient (conv_backward_data)", "conv_backward_data"),
               ("weight gradient (conv_backward_weight)", "conv_backward_weight")],
    "conv_transpose2d": [("forward (conv_backward_data)", "conv_backward_data"),
                         ("input and weight gradients (conv_forward_data_and_weight_grad)",
                          "conv_forward_data_and_weight_grad")],
}


def profile_layer(backend, op, x, wt, b, gy, stride, padding, repeat):
    """Where one forward+backward's time goes: each public primitive of the conv engine that the op
    calls, run alone on the layer's arrays (best of ``repeat``); "other" is the rest of the whole
    step (Python, graph bookkeeping, the bias gradient). Beside them, ``gemms``: the three GEMMs of
    the layer's shapes alone, what BLAS takes without any layout work (im2col, col2im, copies)."""
    plan = E.ConvPlan.for_device(backend.device)
    conv = ((stride, stride), (padding, padding), 1, plan)
    if op == "conv2d":
        calls = [lambda: E.conv_forward_data(x, wt, *conv, bias=b),
                 lambda: E.conv_backward_data(gy, wt, x.shape[2:], *conv),
                 lambda: E.conv_backward_weight(x, gy, wt.shape, *conv)]
    else:
        calls = [lambda: E.conv_backward_data(x, wt, gy.shape[2:], *conv, bias=b),
                 lambda: E.conv_forward_data_and_weight_grad(gy, wt, x, *conv)]
    stages = {name: call for (name, _), call in zip(STAGES[op], calls)}
    n, c_in, h, w = x.shape
    c_out, (oh, ow), k = gy.shape[1], gy.shape[2:], wt.shape[2]
    m, kk, nn_ = gemm_dims(op, n, c_in, c_out, h, w, k, stride, oh, ow)
    xp, rng = backend.xp, np.random.default_rng(1)
    a, bm = (xp.asarray(rng.standard_normal(shape, dtype=np.float32)) for shape in ((m, kk), (kk, nn_)))
    c = xp.asarray(rng.standard_normal((m, nn_), dtype=np.float32))
    gemms = lambda: (a @ bm, a.T @ c, c @ bm.T)  # noqa: E731  forward, data and weight gradient shapes
    t = backend.best_of_rounds(dict(stages, step=lambda: run_nn(backend, op, x, wt, b, gy, stride, padding),
                                    gemms=gemms), repeat)
    profile = {name: t[name] for name in stages}
    profile["other"] = t["step"] - sum(profile.values())
    return profile, t["gemms"]


def load_torch(device, threads):
    try:
        import torch
    except ImportError:
        return None
    if device == "gpu":
        if not torch.cuda.is_available():
            return None
        # full FP32 on both sides: ours has no TF32, so PyTorch's TF32 GEMMs/convolutions would not compare
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch, "cuda"
    torch.set_num_threads(threads)
    return torch, "cpu"


def main():
    parser = argparse.ArgumentParser(description="nn convolution throughput and memory at the paper's layer sizes")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=25,
                        help="rounds; each measurement keeps its fastest run (see Backend.best_of_rounds)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for PyTorch (NumPy's BLAS uses its own setting: OPENBLAS_NUM_THREADS)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--profile", action="store_true",
                        help="time each primitive of the conv engine, and the GEMMs alone")
    args = parser.parse_args()

    print(f"malloc keeps freed memory: {nn.process.keep_freed_memory()} (as cli.py sets it; see nn.process)")
    backend = Backend(args.device)
    torch_mod = None if args.no_torch else load_torch(args.device, args.threads)
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    print(f"device {args.device}, batch {args.batch}, float32, numpy {np.__version__}, "
          f"BLAS threads {blas_threads} (cpu_count {os.cpu_count()}), "
          f"torch {'%s (%d threads)' % (torch_mod[0].__version__, args.threads) if torch_mod else 'not installed/used'}")
    rows = [bench_layer(backend, layer, args.batch, args.repeat, torch_mod, args.profile) for layer in LAYERS]

    print()
    head = (f"{'layer':<10}{'op':<18}{'GFLOP':>7}{'fwd ms':>9}{'bwd ms':>9}{'GFLOP/s':>9}"
            f"{'fwd':>7}{'bwd':>7}{'GEMMsq':>8}{'ratio':>7}{'GEMMly':>8}{'ratio':>7}")
    if torch_mod:
        head += f"{'torch':>8}{'vs torch':>9}"
    head += f"{'peak MB':>9}{'need MB':>9}{'mem x':>7}"
    print(head)
    for r in rows:
        line = (f"{r['name']:<10}{r['op']:<18}{r['gflop']:>7.1f}{r['t_fwd'] * 1e3:>9.1f}{r['t_bwd'] * 1e3:>9.1f}"
                f"{r['gflops']:>9.1f}{r['gflops_fwd']:>7.1f}{r['gflops_bwd']:>7.1f}{r['gemm_sq']:>8.1f}"
                f"{r['ratio_gemm']:>7.2f}{r['gemm_layer']:>8.1f}{r['ratio_gemm_layer']:>7.2f}")
        if torch_mod:
            line += f"{r['torch_gflops']:>8.1f}{r['ratio_torch']:>9.2f}"
        line += f"{r['peak_mb']:>9.1f}{r['required_mb']:>9.1f}{r['mem_ratio']:>7.2f}"
        print(line)
    print()
    print("GFLOP: 2 x MACs for forward + the two backward GEMMs. GFLOP/s: over the whole fwd+bwd "
          "(fwd/bwd: each part alone).")
    print("GEMMsq: float32 matmul GFLOP/s on a square GEMM of similar MACs (side: "
          + ", ".join(f"{r['name']} {r['gemm_side']}" for r in rows) + "); GEMMly: on the layer's whole forward GEMM "
          "shape (" + ", ".join(f"{r['name']} {r['gemm_shape']}" for r in rows) + "); ratio: ours / that "
          "(target: >= 0.5 of GEMMsq).")
    if torch_mod:
        print("torch: PyTorch GFLOP/s, same op and threads; vs torch: torch time / our time (>1: we are faster). "
              "max rel diff of forward vs torch: "
              + ", ".join(f"{r['name']} {r['max_rel_diff_vs_torch']:.1e}" for r in rows))
    print("peak MB: peak allocation of one forward+backward (tracemalloc / CuPy pool); need MB: output, "
          "input/weight/bias gradients, one padded phase copy and one im2col band (target mem x <= 1.5).")
    verdict = []
    for r in rows:
        verdict.append(f"{r['name']}: throughput {'OK' if r['ratio_gemm'] >= 0.5 else 'MISS'} "
                       f"({r['ratio_gemm']:.2f} of GEMM), memory {'OK' if r['mem_ratio'] <= 1.5 else 'MISS'} "
                       f"({r['mem_ratio']:.2f}x)")
    print("targets: " + "; ".join(verdict))
    if args.profile:
        for r in rows:
            total = sum(r["profile"].values())
            print(f"\nprofile {r['name']} ({r['op']}): one forward+backward, best of {args.repeat}, "
                  f"{total * 1e3:.1f} ms")
            for stage, sec in r["profile"].items():
                print(f"  {stage:<66}{sec * 1e3:>9.1f} ms {sec / total:>6.1%}")
            gemms = r["profile_gemms"]
            print(f"  {'GEMMs (BLAS) of these shapes alone, no layout work':<66}{gemms * 1e3:>9.1f} ms "
                  f"{gemms / total:>6.1%}")


if __name__ == "__main__":
    main()
