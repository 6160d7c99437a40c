#!/usr/bin/env bash
# End to end on real guests: a boot storm on a short host, with and without Smart Paging.
#   Six guests (startup 384 MiB, minimum 128 MiB) in a libvirt cgroup partition, each touching
#   240 MiB while it boots and holding it a minute (tide.load, as guests that zero their memory at
#   boot do). tided settles them at their minimum; the partition is then tightened to 128 MiB above
#   what they use settled (QEMU's own memory under TCG varies by machine, so the limit is measured,
#   not fixed), and every guest is reset at once.
#   1. control, smart_paging = off: not every guest gets through its boot load in 90 s (the
#      partition cannot hold them: they stall or are OOM-killed)
#   2. smart_paging = restart: every guest gets through its boot load, paging is used, no OOM kill
#      in the partition or any guest, and every paging file is released
# Prints per storm: time until every guest's load was in, the paging peak, time to release.
# Needs root, libvirt (tools/vm libvirt-up), cgroup v1 and the guest image.
# NOT YET PART OF make test: step 2 fails on its last check. Last run (11 min): without paging 3 of 6
# boot loads got in and 4 of 6 QEMUs died; with paging all 6 got in, no QEMU and no guest load was
# killed, but 4 of 6 files were still on 331 s after the reset holding 419 MiB of cold pages: the
# partition (settled use + 128 MiB) never has room to take them back, and tide releases a file only
# when what comes back fits. Whether to release by moving pages between files, or to size the test
# so the host has that room, is the next step. (300 MiB did not fit in these 384 MiB guests even on
# a first boot without tide: memload was OOM-killed in the guest.)
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-storm-$$-1
test_name=storm-e2e
. "$(dirname "$0")/lib.sh"

n=6
part=tide-e2e-storm-$$
pdir=/sys/fs/cgroup/memory/machine/$part.partition
paging=/var/lib/tide/test-paging-$$
guests=()
for i in $(seq $n); do guests+=("tide-e2e-storm-$$-$i"); done

storm_cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  pid=
  for g in "${guests[@]}"; do "$vm" destroy "$g" >/dev/null 2>&1 || true; done
  for f in $(awk -v d="$paging/" 'NR > 1 && index($1, d) == 1 {print $1}' /proc/swaps); do swapoff "$f" || true; done
  rm -rf "$paging"
  sleep 1
  "$vm" partition-remove "$part" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap storm_cleanup EXIT

conf() { # conf MODE: tided's config for this test
  cat > "$work/tided.conf" <<CONF
[tided]
metrics = off
[memory]
shrink_step = 10
[paging]
smart_paging = $1
paging_dir = $paging
CONF
}
stats_json() { ctl stats --json; }
settled() { # every guest at its minimum
  [ "$(stats_json | python3 -c '
import json, sys
d = json.load(sys.stdin)["domains"]
print(sum(1 for x in d if x["assigned_kib"] and x["assigned_kib"] <= 140 * 1024))')" -eq $n ]
}
loads_in() { # guests whose boot load has allocated its 240 MiB since the reset ($1: count before, per guest)
  local k=0 i=0 c
  for g in "${guests[@]}"; do
    c=$(grep -c 'step 2/3' "$("$vm" console-log "$g")" || true)
    [ "$c" -gt "${before[$i]}" ] && k=$((k + 1))
    i=$((i + 1))
  done
  echo $k
}
ours_on() { awk -v d="$paging/" 'NR > 1 && index($1, d) == 1' /proc/swaps | wc -l; }
ours_used() { awk -v d="$paging/" 'NR > 1 && index($1, d) == 1 {s += $4} END {print int(s / 1024)}' /proc/swaps; }
running() { virsh -q -c "$uri" list | grep -c "tide-e2e-storm-$$-" || true; }
oom_kills() { awk '$1 == "oom_kill" {print $2}' "$pdir/memory.oom_control"; }

# Settles the guests at their minimum under tided in MODE, tightens the partition, resets them
# all; sets before[] (each guest's boot-load count) and t_reset.
storm() {
  local mode=$1
  "$vm" partition-limit "$part" 4GiB
  for g in "${guests[@]}"; do
    virsh -q -c "$uri" domstate "$g" | grep -q running || virsh -q -c "$uri" start "$g" >/dev/null
  done
  conf "$mode"
  start_tided
  for g in "${guests[@]}"; do ctl policy set "$g" --minimum 128MiB --startup 384MiB --maximum 384MiB >/dev/null; done
  wait_for 300 "all $n guests settle at their minimum" settled
  sleep 5
  local use=$(( $(cat "$pdir/memory.usage_in_bytes") / 1048576 ))
  limit=$((use + 128))
  "$vm" partition-limit "$part" "${limit}MiB" || fail "cannot tighten the partition to ${limit}MiB"
  log "$mode: settled at ${use} MiB in the partition; limit now ${limit} MiB; resetting all $n guests"
  before=()
  for g in "${guests[@]}"; do before+=("$(grep -c 'step 2/3' "$("$vm" console-log "$g")" || true)"); done
  kills0=$(oom_kills)
  guest_kills0=()
  for g in "${guests[@]}"; do guest_kills0+=("$(grep -c 'Killed process' "$("$vm" console-log "$g")" || true)"); done
  t_reset=$(date +%s)
  local resets=()
  for g in "${guests[@]}"; do virsh -q -c "$uri" reset "$g" >/dev/null & resets+=($!); done
  wait "${resets[@]}" # not tided, which runs in the background too
}

"$vm" libvirt-up >/dev/null
"$vm" partition-create "$part" 4GiB >/dev/null
log "booting $n guests (384 MiB; each touches 240 MiB at boot and holds it a minute) in /machine/$part"
creates=()
for g in "${guests[@]}"; do
  "$vm" create "$g" --memory 384MiB --partition "/machine/$part" --cmdline "tide.load=alloc:240,hold:60,free" >/dev/null &
  creates+=($!)
done
wait "${creates[@]}"
for g in "${guests[@]}"; do "$vm" wait-up "$g" 600 >/dev/null || fail "guest $g did not boot"; done

# 1. control: no paging.
storm off
peak_k=0
for _ in $(seq 45); do
  sleep 2
  k=$(loads_in); [ "$k" -gt "$peak_k" ] && peak_k=$k
done
dead=$((n - $(running)))
killed=$(( $(oom_kills) - kills0 ))
log "1. without paging: $peak_k of $n guests got their boot load in within 90 s; $killed OOM kills in the partition, $dead QEMUs gone"
[ "$peak_k" -lt $n ] || [ "$dead" -gt 0 ] || fail "the storm fits without paging: the test has no shortage to show"
passed=$((passed + 1))
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

# 2. Smart Paging.
storm restart
peak_used=0; t_in=
for _ in $(seq 300); do
  sleep 1
  u=$(ours_used); [ "$u" -gt "$peak_used" ] && peak_used=$u
  [ "$(running)" -eq $n ] || fail "a guest died in the storm ($(running) of $n running)"
  if [ -z "$t_in" ] && [ "$(loads_in)" -eq $n ]; then t_in=$(( $(date +%s) - t_reset )); fi
  [ -n "$t_in" ] && [ "$(ours_on)" -eq 0 ] && break
done
[ -n "$t_in" ] || fail "not every guest got its boot load in with paging ($(loads_in) of $n)"
t_rel=$(( $(date +%s) - t_reset ))
[ "$peak_used" -gt 0 ] || fail "no paging was used"
[ "$(ours_on)" -eq 0 ] || fail "$(ours_on) paging files still on ${t_rel}s after the reset ($(ours_used) MiB used)"
[ "$(( $(oom_kills) - kills0 ))" -eq 0 ] || fail "OOM kills in the partition: $(( $(oom_kills) - kills0 ))"
i=0
for g in "${guests[@]}"; do
  c=$("$vm" console-log "$g")
  [ "$(grep -c 'Killed process' "$c" || true)" -eq "${guest_kills0[$i]}" ] ||
    fail "$g: the guest's OOM killer ran: $(grep 'Killed process' "$c" | tail -n 1)"
  i=$((i + 1))
done
[ -z "$(ls -A "$paging")" ] || fail "paging files left in $paging: $(ls "$paging")"
log "2. with paging: every guest's boot load in after ${t_in}s; paging peak ${peak_used} MiB; every file released ${t_rel}s after the reset; no OOM kill"
passed=$((passed + 1))
echo "$test_name: $passed passed, 0 failed"
