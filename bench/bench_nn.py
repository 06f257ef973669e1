"""Throughput and memory of nn's convolutions at the decoders' real layer sizes.

    python bench/bench_nn.py                    # CPU (NumPy), float32, batch 8
    python bench/bench_nn.py --device gpu       # the same on CuPy
    python bench/bench_nn.py --profile          # also: where the time goes (im2col, GEMM, copies)

For each layer, forward+backward of ``nn.functional.conv2d`` / ``conv_transpose2d``:

* achieved GFLOP/s, counting 2 * multiply-adds for the forward GEMM and for each of the two
  backward GEMMs (input gradient, weight gradient), over the whole op's time (im2col, col2im,
  transposes and bias included);
* its ratio to this machine's float32 ``matmul`` throughput measured in the same run, on a square
  GEMM of about the same number of multiply-adds (target: at least 0.5), and on a GEMM of the
  layer's own shapes;
* its ratio to PyTorch (same op, same number of threads) when torch is installed;
* the peak memory allocated during one forward+backward (tracemalloc, which sees NumPy's
  allocations; on the GPU, CuPy's memory pool), against the bytes of the activations and im2col
  buffers the computation must hold (target: at most 1.5x).

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

    def timeit(self, fn, repeat, warmup=1):
        """Median seconds of ``fn()`` over ``repeat`` runs."""
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

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
        oh, ow = C.conv_output_size(h, k, s, p), C.conv_output_size(w, k, s, p)
        w_shape = (c_out, c_in, k, k)
    else:
        oh, ow = C.conv_transpose_output_size(h, k, s, p, 0), C.conv_transpose_output_size(w, k, s, p, 0)
        w_shape = (c_in, c_out, k, k)
    return w_shape, (oh, ow)


def gemm_dims(op, n, c_in, c_out, h, w, k, oh, ow):
    """(M, K, N) of the forward GEMM; each backward GEMM has the same number of multiply-adds."""
    if op == "conv2d":
        return c_out, c_in * k * k, n * oh * ow          # W (Co, C k k) @ col (C k k, N OH OW)
    return c_out * k * k, c_in, n * h * w                  # W^T (Co k k, Ci) @ x (Ci, N H W), then col2im


def required_bytes(op, n, c_in, c_out, h, w, k, oh, ow, itemsize=4):
    """Buffers a forward+backward of this im2col design must hold at its peak (besides x, w, gy):
    the output, the one im2col-sized buffer alive at a time (saved col, or its gradient), the
    input gradient and the weight gradient. (conv2d's backward needs col and its gradient at the
    same time: both are counted there.)"""
    y = n * c_out * oh * ow
    gx = n * c_in * h * w
    gw = c_in * c_out * k * k
    if op == "conv2d":
        col = c_in * k * k * n * oh * ow
        cols = 2 * col                      # saved col + gcol while computing gx
    else:
        cols = c_out * k * k * n * h * w    # forward: gcol before col2im; backward: col(gy)
    return (y + cols + gx + gw + c_out) * itemsize


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
    m, kk, nn_ = gemm_dims(op, batch, c_in, c_out, h, w, k, oh, ow)
    macs = m * kk * nn_
    flops_total = 3 * 2 * macs

    fn = F.conv2d if op == "conv2d" else F.conv_transpose2d

    def forward():
        return fn(nn.Tensor(x), nn.Tensor(wt), nn.Tensor(b), stride=s, padding=p)

    t_fwd = backend.timeit(lambda: forward(), repeat)
    t_all = backend.timeit(lambda: run_nn(backend, op, x, wt, b, gy, s, p), repeat)
    t_bwd = t_all - t_fwd

    # reference GEMMs: a square one of about the same multiply-adds, and the layer's own shapes
    side = int(round(macs ** (1 / 3) / 64) * 64)
    a_sq, b_sq = xp.ones((side, side), np.float32), xp.ones((side, side), np.float32)
    t_sq = backend.timeit(lambda: xp.matmul(a_sq, b_sq), repeat)
    gemm_sq = 2 * side ** 3 / t_sq / 1e9
    a_l = xp.asarray(rng.standard_normal((m, kk), dtype=np.float32))
    b_l = xp.asarray(rng.standard_normal((kk, nn_), dtype=np.float32))
    t_l = backend.timeit(lambda: xp.matmul(a_l, b_l), repeat)
    gemm_layer = 2 * macs / t_l / 1e9
    del a_sq, b_sq, a_l, b_l

    row = dict(name=name, op=op, gflop=flops_total / 1e9, t_fwd=t_fwd, t_bwd=t_bwd, t_all=t_all,
               gflops=flops_total / t_all / 1e9, gflops_fwd=2 * macs / t_fwd / 1e9,
               gflops_bwd=4 * macs / t_bwd / 1e9, gemm_sq=gemm_sq, gemm_side=side, gemm_layer=gemm_layer)
    row["ratio_gemm"] = row["gflops"] / gemm_sq
    row["ratio_gemm_layer"] = row["gflops"] / gemm_layer

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

        t_torch = backend.timeit(torch_step, repeat)
        row["torch_gflops"] = flops_total / t_torch / 1e9
        row["ratio_torch"] = t_torch / t_all  # >1: we are faster
        # correctness sanity: our forward matches torch's
        ref = tfn(tx, tw, tb, stride=s, padding=p).detach().cpu().numpy()
        ours = nn.to_numpy(forward().data)
        row["max_rel_diff_vs_torch"] = float(np.abs(ours - ref).max() / np.abs(ref).max())

    # memory of one forward+backward (x, w, b, gy allocated before)
    def one_step():
        out = run_nn(backend, op, x, wt, b, gy, s, p)
        del out

    row["peak_mb"] = backend.peak_bytes(one_step) / 2 ** 20
    row["required_mb"] = required_bytes(op, batch, c_in, c_out, h, w, k, oh, ow) / 2 ** 20
    row["mem_ratio"] = row["peak_mb"] / row["required_mb"]

    if profile:
        row["profile"] = profile_layer(backend, op, x, wt, gy, s, p, repeat)
    return row


def profile_layer(backend, op, x, wt, gy, s, p, repeat):
    """Seconds spent in each stage of the im2col design, timed separately (same calls as conv.py)."""
    stride, padding, groups = (s, s), (p, p), 1
    t = {}
    if op == "conv2d":
        kernel = wt.shape[2:]
        out_size = tuple(C.conv_output_size(n, k, s, p) for n, k in zip(x.shape[2:], kernel))
        t["fwd: im2col (phase-split copy + kH*kW block copies)"] = backend.timeit(
            lambda: C.im2col(x, kernel, stride, padding, out_size), repeat)
        col = C.im2col(x, kernel, stride, padding, out_size).reshape(1, -1, x.shape[0] * out_size[0] * out_size[1])
        wg = C._grouped_weight(wt, groups)
        t["fwd: GEMM W @ col"] = backend.timeit(lambda: wg @ col, repeat)
        yg = wg @ col
        t["fwd: to batch-first (transpose copy)"] = backend.timeit(lambda: C._batch_first(yg, x.shape[0], out_size),
                                                                    repeat)
        t["bwd: gy to channels-first (copy)"] = backend.timeit(lambda: C._channels_first(gy, groups), repeat)
        gcf = C._channels_first(gy, groups)
        wt_t = wg.transpose(0, 2, 1)
        t["bwd: GEMM W^T @ gy"] = backend.timeit(lambda: wt_t @ gcf, repeat)
        gcol = (wt_t @ gcf).reshape(x.shape[1], *kernel, x.shape[0], *out_size)
        t["bwd: col2im (zeroed phase layout + kH*kW block adds)"] = backend.timeit(
            lambda: C.col2im(gcol, x.shape[2:], stride, padding), repeat)
        t["bwd: weight grad GEMM (col @ gy^T)^T"] = backend.timeit(
            lambda: C.conv_backward_weight(col, gy, wt.shape, groups), repeat)
        t["bwd: bias grad (sum)"] = backend.timeit(lambda: C._bias_grad(gy), repeat)
    else:
        kernel = wt.shape[2:]
        out_size = gy.shape[2:]
        t["fwd: x to channels-first (copy)"] = backend.timeit(lambda: C._channels_first(x, groups), repeat)
        xcf = C._channels_first(x, groups)
        wg_t = C._grouped_weight(wt, groups).transpose(0, 2, 1)
        t["fwd: GEMM W^T @ x"] = backend.timeit(lambda: wg_t @ xcf, repeat)
        gcol = (wg_t @ xcf).reshape(wt.shape[1], *kernel, x.shape[0], *x.shape[2:])
        t["fwd: col2im (zeroed phase layout + kH*kW block adds)"] = backend.timeit(
            lambda: C.col2im(gcol, out_size, stride, padding), repeat)
        t["bwd: im2col of gy"] = backend.timeit(lambda: C.im2col(gy, kernel, stride, padding, x.shape[2:]), repeat)
        col = C.im2col(gy, kernel, stride, padding, x.shape[2:]).reshape(1, -1, x.shape[0] * x.shape[2] * x.shape[3])
        wg = C._grouped_weight(wt, groups)
        t["bwd: GEMM W @ col(gy) (input grad)"] = backend.timeit(lambda: wg @ col, repeat)
        yg = wg @ col
        t["bwd: to batch-first (transpose copy)"] = backend.timeit(lambda: C._batch_first(yg, x.shape[0], x.shape[2:]),
                                                                    repeat)
        t["bwd: weight grad GEMM (col(gy) @ x^T)^T"] = backend.timeit(
            lambda: C.conv_backward_weight(col, x, wt.shape, groups), repeat)
        t["bwd: bias grad (sum)"] = backend.timeit(lambda: C._bias_grad(gy), repeat)
    return t


def load_torch(device, threads):
    try:
        import torch
    except ImportError:
        return None
    if device == "gpu":
        if not torch.cuda.is_available():
            return None
        return torch, "cuda"
    torch.set_num_threads(threads)
    return torch, "cpu"


def main():
    parser = argparse.ArgumentParser(description="nn convolution throughput and memory at the paper's layer sizes")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for PyTorch (NumPy's BLAS uses its own setting: OPENBLAS_NUM_THREADS)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--profile", action="store_true", help="time each stage of the im2col design")
    args = parser.parse_args()

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
          + ", ".join(f"{r['name']} {r['gemm_side']}" for r in rows) + "); GEMMly: on the layer's forward GEMM shape; "
          "ratio: ours / that (target >= 0.5).")
    if torch_mod:
        print("torch: PyTorch GFLOP/s, same op and threads; vs torch: torch time / our time (>1: we are faster). "
              "max rel diff of forward vs torch: "
              + ", ".join(f"{r['name']} {r['max_rel_diff_vs_torch']:.1e}" for r in rows))
    print("peak MB: peak allocation of one forward+backward (tracemalloc / CuPy pool); need MB: output + "
          "im2col-sized buffers + input and weight gradients (target mem x <= 1.5).")
    verdict = []
    for r in rows:
        verdict.append(f"{r['name']}: throughput {'OK' if r['ratio_gemm'] >= 0.5 else 'MISS'} "
                       f"({r['ratio_gemm']:.2f} of GEMM), memory {'OK' if r['mem_ratio'] <= 1.5 else 'MISS'} "
                       f"({r['mem_ratio']:.2f}x)")
    print("targets: " + "; ".join(verdict))
    if args.profile:
        for r in rows:
            total = sum(r["profile"].values())
            print(f"\nprofile {r['name']} ({r['op']}): stages timed separately, sum {total * 1e3:.1f} ms "
                  f"(whole op {r['t_all'] * 1e3:.1f} ms)")
            for stage, sec in r["profile"].items():
                print(f"  {stage:<50}{sec * 1e3:>9.1f} ms {sec / total:>6.1%}")


if __name__ == "__main__":
    main()
