#!/usr/bin/env bash
# float32 n x n `dot` (2 threads): mixnet through invoke beside numpy (and PyTorch / MXNet
# 1.9.1 when their venvs exist), alternating, REPS rounds; one JSON line per run. Compare
# medians from the same run only. Peak here: about 196 GFLOP/s (2 cores x 32 flop/cycle x ~3.07 GHz; peers/peak_fma.c).
#
#   benches/peers/dot.sh [SIZE] [REPS]        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE=${1:-1024}
REPS=${2:-3}
PEERS=${PEERS:-../shared/peers}
PT=${PT:-$HOME/peers/pt/bin/python}
MX=${MX:-$HOME/peers/mx/bin/python}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p mixnet --example dot_gflops
for _ in $(seq "$REPS"); do
  "$CARGO_TARGET_DIR"/release/examples/dot_gflops --size "$SIZE"
  "$PT" "$PEERS/gemm.py" --framework numpy --size "$SIZE" 2>/dev/null | tail -1
  "$PT" "$PEERS/gemm.py" --framework torch --size "$SIZE" 2>/dev/null | tail -1
  if [ -x "$MX" ]; then "$MX" "$PEERS/gemm.py" --framework mxnet --size "$SIZE" 2>/dev/null | tail -1; fi
done
