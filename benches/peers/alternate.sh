#!/usr/bin/env bash
# Runs commands that print a JSON line with "median_ms" one after another, ROUNDS times, and
# prints one line per round with each command's median: the way to compare builds (or a
# build and a peer) on a VM whose speed drifts between minutes.
#
#   benches/peers/alternate.sh ROUNDS cmd1 args -- cmd2 args [-- cmd3 args ...]
#
# FIELD=min_ms (any numeric JSON field) prints that field instead of the median.
set -uo pipefail
rounds=$1
shift
cmds=()
cur=""
for a in "$@"; do
  if [ "$a" = "--" ]; then
    cmds+=("$cur")
    cur=""
  else
    cur="$cur $a"
  fi
done
cmds+=("$cur")
for r in $(seq "$rounds"); do
  line="r$r"
  for c in "${cmds[@]}"; do
    m=$(eval "$c" 2>/dev/null | grep -o "\"${FIELD:-median_ms}\": [0-9.]*" | tail -1 | grep -o '[0-9.]*$')
    line="$line ${m:-?}"
  done
  echo "$line"
done
