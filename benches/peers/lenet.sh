#!/usr/bin/env bash
# LeNet training step (batch 64), mixnet eager (crates/mixnet/benches/lenet.rs) beside
# PyTorch eager (shared/peers/cnn_train.py), alternating, REPS times each; one JSON line
# per run. Compare medians from the same run only.
#
#   benches/peers/lenet.sh [REPS]        (from the repository root)
set -euo pipefail
REPS=${1:-3}
PEERS=${PEERS:-/work/shared/peers}
PY=${PY:-/root/peers/pt/bin/python}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo bench -p mixnet --bench lenet --no-run >/dev/null 2>&1
BIN=$(ls -t "$CARGO_TARGET_DIR"/release/deps/lenet-* | grep -v '\.d$' | head -1)
for _ in $(seq "$REPS"); do
  "$BIN" --iters 200 --warmup 20
  "$PY" "$PEERS/cnn_train.py" --framework torch --mode eager --iters 200 2>/dev/null | tail -1
done
