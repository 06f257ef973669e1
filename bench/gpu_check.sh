#!/usr/bin/env bash
# The device check: what a session with a GPU runs first (about 5 minutes on one GPU).
#
#   bash bench/gpu_check.sh [OUT]        # OUT: a folder for its runs (default /tmp/featinv_gpu_check)
#
# 1. the GPU tests on the real GPU (the GPU variants, every --device gpu command path, the fused
#    kernels against their twins);
# 2. `train hog` for 200 steps on the CPU and on the GPU, the losses side by side;
# 3. the paper preset (full width, 256x256, batch 64) for 20 steps, a resume to 30, and eval;
# 4. one training step of hog, sift, conv5 and fc8 at batch 64, full width, against the same
#    decoders in PyTorch CUDA with TF32 off on both sides (bench/bench_gpu_step.py; targets: speed
#    >= 0.8x PyTorch's, peak memory <= 1.2x).
# Needs CuPy with a usable GPU (any CUDA build: cupy-cuda12x from the `gpu` extra, or a cupy-cuda13x
# already installed); PyTorch CUDA only for step 4's comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/featinv_gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
start=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }

stage "0. the device"
$PY - <<'EOF'
import cupy
props = cupy.cuda.runtime.getDeviceProperties(0)
print(f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
      f"{props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB")
EOF

stage "1. GPU tests on the GPU"
$PY -m pytest -q -x -m gpu tests
$PY -m pytest -q -x tests/cli/test_device_paths.py tests/nn/test_nn_fused.py

stage "2. train hog on the CPU and on the GPU: losses side by side"
for device in cpu gpu; do
    $PY cli.py train hog --iters 200 --device "$device" --threads 8 --out "$OUT/hog_$device" > "$OUT/hog_$device.txt" 2>&1
    tail -n 4 "$OUT/hog_$device.txt"
done
$PY - "$OUT" <<'EOF'
import csv, sys
def losses(device):
    with open(f"{sys.argv[1]}/hog_{device}/log.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["loss"]}
cpu, gpu = losses("cpu"), losses("gpu")
print("| step | loss CPU | loss GPU | relative difference |\n|---|---|---|---|")
for step in sorted(cpu)[::20] + [max(cpu)]:
    print(f"| {step} | {cpu[step]:.4g} | {gpu[step]:.4g} | {abs(cpu[step] - gpu[step]) / cpu[step]:.1e} |")
EOF

stage "3. paper preset: 20 steps, resume to 30, eval"
$PY cli.py train hog --preset paper --iters 20 --device gpu --out "$OUT/paper" | tail -n 3
$PY cli.py train hog --preset paper --iters 30 --device gpu --out "$OUT/paper" --resume | tail -n 3
$PY cli.py eval hog --checkpoint "$OUT/paper/checkpoint.h5" --device gpu

stage "4. one training step against PyTorch CUDA (TF32 off)"
$PY bench/bench_gpu_step.py --batch 64

stage "done"
