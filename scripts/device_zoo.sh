#!/usr/bin/env bash
# The whole zoo from one short GPU window: every architecture trains at once, each fitting its
# epochs to one shared deadline, and the finished checkpoints come back over a few device
# calls sent back to back (a call returns at most 64 MiB; the machine goes back 30 s after a
# call ends, so no pause between them). docs/sweeps.md plans the window minute by minute.
#
#   bash scripts/device_zoo.sh run [train_zoo flags...]     # unpack, MPS, train to the deadline, bundle what fits
#   bash scripts/device_zoo.sh fetch [train_zoo flags...]   # bundle the rest (send right after `run`)
#   bash scripts/device_zoo.sh start [train_zoo flags...]   # only launch, return at once
#   bash scripts/device_zoo.sh status                       # the status table, nothing else
#
# Use the same flags for every call (they name the recipes). `start` (and `run`, which begins
# with it) untars .devdata/*.tar or .tar.gz into $VH_ZOO_DATA (default /tmp/imagenette) unless
# it is there already, starts NVIDIA MPS when the machine has it (pipe and log folders under
# /tmp; checked with get_server_list, and said in the log) so the trainings' kernels run side by
# side instead of taking turns, and launches `train_zoo.py --fit_s $VH_ZOO_FIT_S` (default 420)
# in its own session: every run starts at once, times its first epoch under the full load and
# fits its schedule to end at the shared deadline (train.py --deadline; capped at its recipe's
# epochs, at least --min_epochs). `run` then waits for the trainings (at most the deadline plus
# train_zoo's export grace), with VH_ZOO_SIDEFILES=1 makes every side file of the finished
# checkpoints there (`release_zoo.py --device`, in the --export folder; off by default: the
# builders run on the machine's CPU, not its GPU, and their time there is not measured) and bundles
# into $OUT what is finished: whole checkpoints with their side files, up to 60 MiB, in 15 MiB
# tar parts, plus the zoo-wide side files and every run's metrics and logs. `fetch` bundles
# what is left.
# Back here: `python scripts/release_zoo.py --from FILES_AT` (docs/sweeps.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# the device's Python has torch but not this project installed (here `make` installs it in
# development mode): the packages (models, training, ...) are found from the repository root
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cmd="${1:-}"
shift || true
DATA="${VH_ZOO_DATA:-/tmp/imagenette}"
RUNS="${VH_ZOO_RUNS:-runs}"          # train_zoo.py's --out: state, metrics, logs of every run
OUTDIR="${OUT:-$RUNS/bundle}"         # $OUT on the device machine: what comes back
PY="${PYTHON:-python3}"
mkdir -p "$RUNS"

FIT_S="${VH_ZOO_FIT_S:-420}"
running() { [ -f "$RUNS/zoo.pid" ] && kill -0 "$(cat "$RUNS/zoo.pid")" 2>/dev/null; }
say() { echo "$*"; echo "$(date '+%H:%M:%S') device_zoo: $*" >> "$RUNS/zoo.log"; }

start_mps() {
  # NVIDIA MPS lets the 14 trainings' kernels share the GPU at once; without it, time slicing
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  if ! command -v nvidia-cuda-mps-control >/dev/null 2>&1 || ! command -v nvidia-smi >/dev/null 2>&1 \
     || ! nvidia-smi -L >/dev/null 2>&1; then
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    say "MPS: absent (no nvidia-cuda-mps-control or no GPU); plain time slicing"
    return 0
  fi
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1 || nvidia-cuda-mps-control -d 2>/dev/null; then
    sleep 1
    if echo get_server_list | timeout 10 nvidia-cuda-mps-control >/dev/null 2>&1; then
      say "MPS: serving (control daemon answers get_server_list)"
      return 0
    fi
  fi
  echo quit | timeout 10 nvidia-cuda-mps-control >/dev/null 2>&1 || true
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  say "MPS: did not start or does not answer; plain time slicing"
}

export_dir() {  # the --export folder among the flags
  local prev=""
  for a in "$@"; do [ "$prev" = --export ] && echo "$a"; prev="$a"; done
}

side_files() {
  local ck
  ck="$(export_dir "$@")"
  if [ "${VH_ZOO_SIDEFILES:-0}" = 1 ] && [ -n "$ck" ] && [ -d "$ck" ]; then
    say "side files of the finished checkpoints in $ck"
    "$PY" scripts/release_zoo.py --device --checkpoints "$ck" --data "$DATA" 2>&1 | tail -n 30 || say "side files failed"
  fi
}

bundle() {
  mkdir -p "$OUTDIR"
  "$PY" scripts/train_zoo.py --data "$DATA" --out "$RUNS" --time_budget_s 0 --bundle "$OUTDIR" "$@"
  tail -n 60 "$RUNS/zoo.log" > "$OUTDIR/zoo.log.tail" 2>/dev/null || true
  if running; then echo "still training: fetch again"; else echo "train_zoo.py has ended"; fi
}

case "$cmd" in
  start|run)
    if [ ! -d "$DATA/train" ]; then
      mkdir -p "$DATA/val"
      for t in .devdata/*.tar .devdata/*.tar.gz; do
        [ -e "$t" ] || continue
        case "$t" in *.gz) tar xzf "$t" -C "$DATA" ;; *) tar xf "$t" -C "$DATA" ;; esac
      done
    fi
    [ -d "$DATA/train" ] || { echo "no training data in $DATA (and no .devdata/ pack to unpack)" >&2; exit 2; }
    if running; then
      echo "already running (pid $(cat "$RUNS/zoo.pid"))"
    else
      : > "$RUNS/zoo.log"
      start_mps
      t0=$(date +%s)
      setsid nohup "$PY" scripts/train_zoo.py --data "$DATA" --out "$RUNS" --fit_s "$FIT_S" "$@" \
        >> "$RUNS/zoo.log" 2>&1 < /dev/null &
      echo $! > "$RUNS/zoo.pid"
      echo "$t0" > "$RUNS/zoo.t0"
      echo "started train_zoo.py (pid $(cat "$RUNS/zoo.pid")), schedules fitted to end in $FIT_S s; log $RUNS/zoo.log"
    fi
    if [ "$cmd" = run ]; then
      # train_zoo stops itself at the deadline plus its export grace; wait for it, a little longer at most
      end=$(( $(cat "$RUNS/zoo.t0") + ${FIT_S%.*} + ${VH_ZOO_GRACE_S:-140} ))
      while running && [ "$(date +%s)" -lt "$end" ]; do sleep 2; done
      grep -h "fitted to the deadline\|fast path" "$RUNS"/*/train.log 2>/dev/null | sort | uniq -c | head -20 || true
      side_files "$@"
      bundle "$@"
    fi
    ;;
  fetch)
    deadline=$(( $(date +%s) + ${VH_ZOO_WAIT_S:-480} ))
    while running && [ "$(date +%s)" -lt "$deadline" ]; do
      # a run is finished and not handed back yet: done.json without bundled.json
      for d in "$RUNS"/*/; do
        if [ -f "$d/done.json" ] && [ ! -f "$d/bundled.json" ]; then break 2; fi
      done
      sleep 2
    done
    side_files "$@"
    bundle "$@"
    ;;
  status)
    "$PY" scripts/train_zoo.py --data "$DATA" --out "$RUNS" --time_budget_s 0 "$@"
    ;;
  *)
    sed -n '2,24p' "$0"
    exit 2
    ;;
esac
