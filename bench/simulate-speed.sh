#!/usr/bin/env bash
# The simulator's speed on the shared trace (issue 9's goal: 10,000 VMs x 24 h at a 1 s tick in
# <= 10 s for the tide policy), fast path and full loop, in simulated VM-ticks per second.
#   bench/simulate-speed.sh [VMS=10000] [HOURS=24] [RUNS=3]
# Prints per case: wall seconds and VM-ticks/s (the median of RUNS), and the table's numbers,
# which must be the same with and without --full-loop. The full loop runs one hour (it is ~6x
# slower, and its rate does not depend on the length), so its rate, not its time, compares.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
vms=${1:-10000}; hours=${2:-24}; runs=${3:-3}
trace=${TIDE_TRACE:-$repo/../shared/traces/bitbrains-rnd-2013-07-public.csv.gz}
ctl=$repo/build/bin/tidectl
[ -r "$trace" ] || { echo "simulate-speed: no trace at $trace (set TIDE_TRACE)" >&2; exit 1; }

# One case: its median wall time and rate over $runs, and its numbers.
measure() {
  local label=$1; shift
  local out walls=() rates=() numbers=
  for _ in $(seq "$runs"); do
    out=$("$ctl" simulate --trace "$trace" --policies tide --json "$@")
    read -r wall rate nums < <(python3 -c '
import json, sys
d = json.load(sys.stdin); p = d["policies"][0]
print(p["wall_seconds"], p["vm_ticks_per_second"],
      "returned=%.6f%% warning_s=%.0f oom=%d balloon_ops=%d" % (p["memory_returned_pct"],
      p["warning_vm_seconds"], p["oom_events"], p["balloon_ops"]))' <<<"$out")
    walls+=("$wall"); rates+=("$rate"); numbers=$nums
  done
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  printf '%-34s wall_s=%-8.2f vm_ticks_per_s=%-6.1fM %s\n' "$label" "$(median "${walls[@]}")" \
    "$(median "${rates[@]}" | awk '{print $1/1e6}')" "$numbers"
}

echo "vms=$vms hours=$hours runs=$runs trace=$(basename "$trace")"
measure "fast, interpolated" --vms "$vms" --hours "$hours"
measure "fast, held (--hold)" --vms "$vms" --hours "$hours" --hold
measure "fast, interpolated, 1 h" --vms "$vms" --hours 1
measure "full loop, interpolated, 1 h" --vms "$vms" --hours 1 --full-loop
