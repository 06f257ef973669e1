#!/usr/bin/env bash
# One row of the preset experiments in docs/results/README.md: train FEATURE on the bundled photos
# with the given options, then evaluate its best checkpoint beside the baselines on HELDOUT, a folder
# of photos never trained on. Prints: name, wall time, the eval table.
#   bash bench/sweep_presets.sh NAME HELDOUT FEATURE [train options...]
set -euo pipefail
name=$1 heldout=$2 feature=$3; shift 3
out=${SWEEP_OUT:-/tmp/featinv_sweep}/$name
start=$(date +%s)
python3 cli.py train "$feature" --out "$out" "$@" > "$out.train.log" 2>&1
seconds=$(( $(date +%s) - start ))
echo "## $name: $feature $* ($seconds s)"
tail -3 "$out.train.log" | tr '\r' '\n' | grep -E "^(done|validation)" | cut -c1-400 || true
python3 cli.py eval "$feature" --checkpoint "$out/best.h5" --data "$heldout"
