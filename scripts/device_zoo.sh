#!/usr/bin/env bash
# The whole zoo on a lent GPU in one lease: train every architecture at once in the background,
# then hand the finished checkpoints back over several device calls sent back to back (a call
# returns at most 64 MiB; the machine goes back 30 s after a call ends, so no pause between them).
#
#   bash scripts/device_zoo.sh start [train_zoo flags...]   # unpack the data, launch, return at once
#   bash scripts/device_zoo.sh fetch [train_zoo flags...]   # wait for finished runs, bundle them into $OUT
#   bash scripts/device_zoo.sh status                       # the status table, nothing else
#
# Each call of the `run` tool is one of these lines, with the same flags for start and fetch
# (they name the recipes; a recipe that differs is another run). `start` untars .devdata/*.tar
# or .tar.gz into $VH_ZOO_DATA (default /tmp/imagenette) unless it is there already, and starts
# `train_zoo.py --parallel 14` in its own session, so it outlives the call. `fetch` waits until
# a finished checkpoint has not been handed back yet or nothing is running any more (at most
# $VH_ZOO_WAIT_S, default 480 s), then lets `train_zoo.py --time_budget_s 0 --bundle $OUT`
# pack what is finished (whole checkpoints, up to 60 MiB, in 15 MiB tar parts) plus every
# run's metrics and logs. Back here: `cat FILES_AT/zoo-*.tar.part* | tar x` (docs/sweeps.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
shift || true
DATA="${VH_ZOO_DATA:-/tmp/imagenette}"
RUNS="${VH_ZOO_RUNS:-runs}"          # train_zoo.py's --out: state, metrics, logs of every run
OUTDIR="${OUT:-$RUNS/bundle}"         # $OUT on the device machine: what comes back
PY="${PYTHON:-python}"
mkdir -p "$RUNS"

running() { [ -f "$RUNS/zoo.pid" ] && kill -0 "$(cat "$RUNS/zoo.pid")" 2>/dev/null; }

case "$cmd" in
  start)
    if [ ! -d "$DATA/train" ]; then
      mkdir -p "$DATA/val"
      for t in .devdata/*.tar .devdata/*.tar.gz; do
        [ -e "$t" ] || continue
        case "$t" in *.gz) tar xzf "$t" -C "$DATA" ;; *) tar xf "$t" -C "$DATA" ;; esac
      done
    fi
    [ -d "$DATA/train" ] || { echo "no training data in $DATA (and no .devdata/ pack to unpack)" >&2; exit 2; }
    if running; then echo "already running (pid $(cat "$RUNS/zoo.pid"))"; exit 0; fi
    setsid nohup "$PY" scripts/train_zoo.py --data "$DATA" --out "$RUNS" --parallel 14 --time_budget_s 100000 "$@" \
      > "$RUNS/zoo.log" 2>&1 < /dev/null &
    echo $! > "$RUNS/zoo.pid"
    echo "started train_zoo.py (pid $(cat "$RUNS/zoo.pid")); log $RUNS/zoo.log"
    ;;
  fetch)
    deadline=$(( $(date +%s) + ${VH_ZOO_WAIT_S:-480} ))
    while running && [ "$(date +%s)" -lt "$deadline" ]; do
      # a run is finished and not handed back yet: done.json without bundled.json
      for d in "$RUNS"/*/; do
        if [ -f "$d/done.json" ] && [ ! -f "$d/bundled.json" ]; then break 2; fi
      done
      sleep 5
    done
    mkdir -p "$OUTDIR"
    "$PY" scripts/train_zoo.py --data "$DATA" --out "$RUNS" --time_budget_s 0 --bundle "$OUTDIR" "$@"
    tail -n 40 "$RUNS/zoo.log" > "$OUTDIR/zoo.log.tail" 2>/dev/null || true
    if running; then echo "still training: fetch again"; else echo "train_zoo.py has ended"; fi
    ;;
  status)
    "$PY" scripts/train_zoo.py --data "$DATA" --out "$RUNS" --time_budget_s 0 "$@"
    ;;
  *)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
