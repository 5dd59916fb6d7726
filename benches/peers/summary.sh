#!/usr/bin/env bash
# The issue figures in one pass, each mixnet run beside its peer in the same round:
# MLP and LeNet training steps (PyTorch), `a + b` on 10 and 1M elements (PyTorch), `dot`
# 1024² (PyTorch, numpy). One line per figure per round, with the ratio mixnet / peer.
# This VM's speed drifts by up to 1.5x within minutes, so compare within a round only.
#
#   benches/peers/summary.sh [ROUNDS]        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
PEERS=${PEERS:-../shared/peers}
PT=${PT:-$HOME/peers/pt/bin/python}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo bench -p mixnet --bench mlp_train --bench lenet --no-run >/dev/null 2>&1
cargo build --release -q -p mixnet --example op_overhead --example dot_gflops
MLP=$(ls -t "$CARGO_TARGET_DIR"/release/deps/mlp_train-* | grep -v '\.d$' | head -1)
LENET=$(ls -t "$CARGO_TARGET_DIR"/release/deps/lenet-* | grep -v '\.d$' | head -1)
EX="$CARGO_TARGET_DIR/release/examples"
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readlines()[-1])['$1'])"; }
line() { python3 -c "print(f'{\"$1\":<22} mixnet {float($2):9.3f}  $3 {float($4):9.3f}  ratio {float($2)/float($4):.2f}')"; }
for r in $(seq "$ROUNDS"); do
  echo "round $r ($(date -u +%H:%M:%S))"
  a=$("$MLP" | field median_ms); b=$("$PT" "$PEERS/mlp_train.py" --framework torch 2>/dev/null | field median_ms)
  line "mlp step ms" "$a" torch "$b"
  a=$("$LENET" --iters 200 --warmup 20 | field median_ms)
  b=$("$PT" "$PEERS/cnn_train.py" --framework torch --mode eager --iters 200 2>/dev/null | field median_ms)
  line "lenet step ms" "$a" torch "$b"
  for size in 10 1000000; do
    b=$("$PT" "$PEERS/op_overhead.py" --framework torch --size "$size" 2>/dev/null | field median_us)
    for mode in async sync; do
      a=$("$EX/op_overhead" --size "$size" --mode "$mode" | field median_us)
      line "a+b $size $mode us" "$a" torch "$b"
    done
  done
  a=$("$EX/dot_gflops" --size 1024 | field gflops)
  b=$("$PT" "$PEERS/gemm.py" --framework torch --size 1024 2>/dev/null | field gflops)
  c=$("$PT" "$PEERS/gemm.py" --framework numpy --size 1024 2>/dev/null | field gflops)
  line "dot 1024 GFLOP/s" "$a" torch "$b"
  line "dot 1024 GFLOP/s" "$a" numpy "$c"
done
