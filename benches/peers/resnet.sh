#!/usr/bin/env bash
# ResNet-50 v1 inference, batch 1 (and 8 with BATCHES="1 8"): mixnet Gluon layers
# (crates/mixnet/benches/resnet50_infer.rs), hybridized (Conv+BatchNorm+ReLU fused) and
# imperative, beside MXNet 1.9.1 from shared/peers/resnet_infer.py hybridized and fused
# (oneDNN's conv+bn+relu+sum; issue 5's "67 ms-class" figure), PyTorch too when
# torchvision is installed; alternating, REPS rounds, one JSON line per run. Compare
# medians from the same run only.
#
#   benches/peers/resnet.sh [REPS]        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
BATCHES=${BATCHES:-1}
PEERS=${PEERS:-../shared/peers}
PT=${PT:-$HOME/peers/pt/bin/python}
MX=${MX:-$HOME/peers/mx/bin/python}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo bench -p mixnet --bench resnet50_infer --no-run >/dev/null 2>&1
BIN=$(ls -t "$CARGO_TARGET_DIR"/release/deps/resnet50_infer-* | grep -v '\.d$' | head -1)
for _ in $(seq "$REPS"); do
  for b in $BATCHES; do
    for mode in hybrid imperative; do "$BIN" --batch "$b" --mode "$mode"; done
    if [ -x "$MX" ]; then
      for mode in hybrid fused; do
        "$MX" "$PEERS/resnet_infer.py" --framework mxnet --model resnet50_v1 --batch "$b" --mode "$mode" 2>/dev/null | tail -1
      done
    fi
    if "$PT" -c "import torchvision" 2>/dev/null; then
      "$PT" "$PEERS/resnet_infer.py" --framework torch --model resnet50_v1 --batch "$b" 2>/dev/null | tail -1
    fi
  done
done
