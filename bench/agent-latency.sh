#!/usr/bin/env bash
# Reaction latency on a real guest: from the tide-agent report that raises demand to tided's
# balloon call, over repeated trials. The guest allocates 150 MiB, holds, frees, and repeats;
# tided logs each grow with "N ms after the agent's report". Prints the distribution.
#   bench/agent-latency.sh [TRIALS=20]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
trials=${1:-20}
bin=$repo/build/bin; vm=$repo/tools/vm; uri=qemu:///system
work=$(mktemp -d); sock=$work/tided.sock; name=tide-bench-latency
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; "$vm" destroy "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
# The shrink between trials is made quick so each trial starts from a small VM.
printf '[tided]\nmetrics = off\n[memory]\nquiet_period = 5s\nshrink_step = 25\n' > "$work/tided.conf"

export TIDE_GUEST_IMAGE=$repo/build-guest-agent TIDE_GUEST_AGENT=$bin/tide-agent
"$repo/tools/guest-image/build" --agent "$TIDE_GUEST_AGENT" "$TIDE_GUEST_IMAGE" >/dev/null
"$vm" libvirt-up >/dev/null
"$vm" create "$name" --memory 1GiB >/dev/null
"$vm" wait-up "$name" 180 >/dev/null
"$bin/tided" --foreground --connect "$uri" --config "$work/tided.conf" --socket "$sock" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
"$bin/tidectl" policy set "$name" --minimum 256MiB --socket "$sock" >/dev/null
# The trials start once tided has shrunk the idle guest (its quiet period is over).
for _ in $(seq 120); do
  a=$(virsh -c "$uri" dommemstat "$name" | awk '$1=="actual"{print $2}')
  [ "$a" -le $((300 * 1024)) ] && break
  sleep 1
done
"$vm" load "$name" 'alloc:150,hold:6,free,hold:10,loop' >/dev/null
# Each trial is ~17 s of guest time; the first grow of each allocation is the reaction.
deadline=$(( $(date +%s) + 30 + trials * 20 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  n=$(grep -c "ms after the agent's report" "$work/log" || true)
  [ "$n" -ge $((trials * 2)) ] && break
  sleep 5
done
grep -o "[0-9]* ms after the agent's report" "$work/log" | awk '{print $1}' > "$work/ms"
python3 - "$work/ms" <<'PY'
import statistics, sys
v = sorted(int(x) for x in open(sys.argv[1]) if x.strip())
if not v:
    sys.exit("no grows recorded")
p95 = v[min(len(v) - 1, int(len(v) * 0.95))]
print(f"grow_calls={len(v)} report_to_balloon_ms median={statistics.median(v):.0f} p95={p95} max={v[-1]}")
PY
