"""BLAS threads under load: training steps of a CPU-preset decoder, alone and beside a busy core.

For each BLAS thread count (1 and every core), the step time is measured twice in child
processes: on a quiet machine, and while another process keeps one core busy (a Python busy
loop, as another user's job would). OpenBLAS threads spin while they wait for each other, so a
GEMM split over every core waits for the thread that shares its core with the other job.
Target (threads that do not collapse under load): with the default thread count
(``train --threads``, default 1), a busy core costs at most about 2x.

    python3 bench/bench_threads.py [--feature hog] [--steps 30]

Measure on an otherwise quiet machine: the "quiet" column must be quiet.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import nn, nn.functional as F
from models.networks import decoders
from models.training.train import CPU_PRESETS, PRESETS
nn.process.keep_freed_memory()
print(nn.process.set_blas_threads({threads}), file=sys.stderr)
preset = dict(PRESETS["cpu"], **CPU_PRESETS.get({feature!r}, {{}}))
nn.random.seed(0)
model = decoders.build({feature!r}, preset["width"], preset["image_size"], min_channels=preset["min_channels"])
shape = decoders.feature_shape({feature!r}, preset["image_size"])
size = decoders.output_size({feature!r}, preset["image_size"])
rng = np.random.default_rng(0)
x = nn.Tensor(rng.random((preset["batch_size"],) + shape, dtype=np.float32))
t = nn.Tensor(rng.random((preset["batch_size"], 3, size, size), dtype=np.float32) - 0.5)
opt = nn.optim.Adam(model.parameters(), lr=1e-4)
def step():
    loss = F.mse_loss(model(x), t, reduction="paper")
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
times = []
for _ in range({steps}):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
print(json.dumps(float(np.median(times))))
"""


def busy_loop():
    while True:
        pass


def step_time(feature, threads, steps, busy):
    hog = None
    if busy:
        hog = multiprocessing.Process(target=busy_loop, daemon=True)
        hog.start()
        time.sleep(0.5)
    try:
        code = CHILD.format(root=ROOT, feature=feature, threads=threads, steps=steps)
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if hog is not None:
            hog.terminate()
            hog.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feature", default="hog")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"{args.feature} decoder, cpu preset, median step of {args.steps}; {cores} cores")
    print("| BLAS threads | quiet (ms) | one core busy (ms) | slowdown |")
    print("|---|---|---|---|")
    for threads in sorted({1, cores}):
        quiet = step_time(args.feature, threads, args.steps, busy=False)
        loaded = step_time(args.feature, threads, args.steps, busy=True)
        verdict = "ok" if loaded / quiet <= 2.0 else "MISS (target <= 2x)"
        print(f"| {threads} | {quiet * 1e3:.1f} | {loaded * 1e3:.1f} | {loaded / quiet:.2f}x {verdict} |")


if __name__ == "__main__":
    main()
