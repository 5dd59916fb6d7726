#!/usr/bin/env bash
# `c = a + b` dispatch cost: mixnet beside PyTorch and numpy (and MXNet 1.9.1 if its venv
# exists), same machine, same run. Peers come from ../shared/peers with the venvs of
# ../shared/peers/README.md (default ~/peers/pt, ~/peers/mx).
set -euo pipefail
cd "$(dirname "$0")/../.."
PEERS=${PEERS:-../shared/peers}
PT=${PT:-$HOME/peers/pt/bin/python}
MX=${MX:-$HOME/peers/mx/bin/python}
cargo build --release -q -p mixnet --example op_overhead
for size in 10 1000000; do
  for mode in async sync; do
    ./target/release/examples/op_overhead --size "$size" --mode "$mode"
  done
  "$PT" "$PEERS/op_overhead.py" --framework torch --size "$size" 2>/dev/null
  "$PT" "$PEERS/op_overhead.py" --framework numpy --size "$size" 2>/dev/null
  if [ -x "$MX" ]; then
    for mode in async sync; do "$MX" "$PEERS/op_overhead.py" --framework mxnet --mode "$mode" --size "$size" 2>/dev/null; done
  fi
done
