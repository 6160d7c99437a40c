#!/usr/bin/env bash
# tided's real footprint on real guests: CPU and RSS of the tided process while it manages N
# idle guests on qemu:///system for SECONDS, libvirt RPCs included.
#   bench/tided-footprint.sh [N=3] [SECONDS=60]
# Prints: domains, tided cpu_pct (of one core), cpu_usec_per_domain_tick, rss_kib, and RSS with
# no managed domain for comparison. Guests are TCG here; tided's cost does not depend on that.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-3}; secs=${2:-60}
bin=$repo/build/bin; vm=$repo/tools/vm; uri=qemu:///system
work=$(mktemp -d); sock=$work/tided.sock
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; "$vm" destroy-all tide-bench- >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
printf '[tided]\nmetrics = off\n' > "$work/tided.conf"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

"$vm" libvirt-up >/dev/null
for i in $(seq "$n"); do "$vm" create tide-bench-$i --memory 512MiB >/dev/null; done
for i in $(seq "$n"); do "$vm" wait-up tide-bench-$i 180 >/dev/null; done
"$bin/tided" --foreground --connect "$uri" --config "$work/tided.conf" --socket "$sock" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
sleep 5
rss0=$(rss "$pid")
for i in $(seq "$n"); do
  "$bin/tidectl" policy set tide-bench-$i --minimum 128MiB --socket "$sock" >/dev/null
done
sleep 10 # let the balloons settle: the steady state is the figure
hz=$(getconf CLK_TCK)
c0=$(cpu_ticks "$pid"); s0=$(date +%s.%N)
sleep "$secs"
c1=$(cpu_ticks "$pid"); s1=$(date +%s.%N)
python3 - "$n" "$c0" "$c1" "$s0" "$s1" "$hz" "$(rss "$pid")" "$rss0" <<'PY'
import sys
n, c0, c1, s0, s1, hz, rss, rss0 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
cpu = (c1 - c0) / hz
wall = s1 - s0
print(f"domains={n} seconds={wall:.0f} cpu_pct={100 * cpu / wall:.3f} "
      f"cpu_usec_per_domain_tick={1e6 * cpu / wall / n:.0f} rss_kib={rss} rss_kib_unmanaged={rss0} "
      f"rss_kib_per_domain={(rss - rss0) / n:.0f}")
PY
