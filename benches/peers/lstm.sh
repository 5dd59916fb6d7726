#!/usr/bin/env bash
# LSTM language-model training step (2x256 LSTM, vocab 10000, T=35, batch 20, SGD with
# global-norm clipping): mixnet Gluon eager (crates/mixnet/benches/lstm_train.rs) beside
# PyTorch eager and MXNet 1.9.1 (imperative and hybridized) from shared/peers/lstm_train.py,
# alternating, REPS rounds; one JSON line per run. Compare medians from the same run only.
#
#   benches/peers/lstm.sh [REPS]        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
PEERS=${PEERS:-../shared/peers}
PT=${PT:-$HOME/peers/pt/bin/python}
MX=${MX:-$HOME/peers/mx/bin/python}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo bench -p mixnet --bench lstm_train --no-run >/dev/null 2>&1
BIN=$(ls -t "$CARGO_TARGET_DIR"/release/deps/lstm_train-* | grep -v '\.d$' | head -1)
for _ in $(seq "$REPS"); do
  "$BIN"
  "$PT" "$PEERS/lstm_train.py" --framework torch --mode eager 2>/dev/null | tail -1
  if [ -x "$MX" ]; then
    for mode in imperative hybrid; do "$MX" "$PEERS/lstm_train.py" --framework mxnet --mode "$mode" 2>/dev/null | tail -1; done
  fi
done
