#!/usr/bin/env bash
# End to end on real guests: a boot storm on a short host, with and without Smart Paging.
#   Six guests (startup 384 MiB, minimum 128 MiB, QEMU's translated-code cache capped at 32 MiB:
#   uncapped it grew each QEMU by ~50 MiB per reboot here, memory no KVM host's QEMU holds) in a
#   libvirt cgroup partition, each touching 240 MiB while it boots and holding it a minute
#   (tide.load, as guests that zero their memory at boot do). tided settles them at their
#   minimum; the partition is then tightened to 256 MiB above what they use settled (QEMU's own
#   memory under TCG varies by machine, so the limit is measured, not fixed), and every guest is
#   reset at once. A boot load needs ~900 MiB more than that in all, so the host is well short.
#   Why 256: after a paged storm the guests, back at their minimum, hold 1095-1138 MiB (memory
#   + swap) however little they held before it (980-1104 MiB measured before the storms of one
#   run: a QEMU just started or reset holds less than one that has been through a storm). A
#   file can only go once what all the files hold fits the partition, so with 128 MiB of margin
#   step 2 left its files on for good in two fresh-clone runs: tided was right not to release
#   them, the partition could not have taken the pages back.
#   1. control, smart_paging = off: not every guest gets through its boot load in 90 s (the
#      partition cannot hold them: they stall or are OOM-killed)
#   2. smart_paging = restart: every guest gets through its boot load, paging is used, no OOM kill
#      in the partition or any guest, every paging file is released, nothing is left
#   3. the same storm with tided killed -9 once the files are on and started again at once: every
#      file is adopted (/proc/swaps and its record) and released as in step 2, no policy is lost
#      (the new tided shows each guest's, and its metadata is as before), and no guest's balloon
#      is below its minimum while the new tided runs the rest of the storm
#   4. a full paging directory (a 1 MiB tmpfs), one guest reset: tided logs why it could not
#      page, shows the guest's paging failed and the host overcommitted; the guest boots
# Prints per storm: time until every guest's load was in, the paging peak, time to release.
# STORM_STEPS="2 3" runs some steps; STORM_PARKING=pin runs tided with core parking on (off by
# default: this test proves paging); STORM_TRACE=FILE records
# each guest's cgroup (RSS, swap), balloon and tided's view every 10 s, and keeps tided's log as
# FILE.tided.log. Needs root, libvirt
# (tools/vm libvirt-up), cgroup v1 and the guest image. ~12 min for all four.
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-storm-$$-1
test_name=storm-e2e
. "$(dirname "$0")/lib.sh"

n=6
part=tide-e2e-storm-$$
pdir=/sys/fs/cgroup/memory/machine/$part.partition
paging=/var/lib/tide/test-paging-$$
full=/var/lib/tide/test-paging-full-$$
guests=()
for i in $(seq $n); do guests+=("tide-e2e-storm-$$-$i"); done

storm_cleanup() {
  [ -n "${tracer:-}" ] && kill "$tracer" 2>/dev/null
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  pid=
  for g in "${guests[@]}"; do "$vm" destroy "$g" >/dev/null 2>&1 || true; done
  for f in $(awk -v d="$paging/" 'NR > 1 && index($1, d) == 1 {print $1}' /proc/swaps); do swapoff "$f" || true; done
  rm -rf "$paging"
  mountpoint -q "$full" && umount "$full"
  rm -rf "$full"
  sleep 1
  "$vm" partition-remove "$part" >/dev/null 2>&1 || true
  # With a trace, tided's log is kept beside it: what it decided, tick by tick.
  [ -n "${STORM_TRACE:-}" ] && [ -f "$work/tided.log" ] && cp "$work/tided.log" "$STORM_TRACE.tided.log"
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
[parking]
mode = ${STORM_PARKING:-off}
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
policies() { # every guest's policy as tided shows it, and as its domain's metadata holds it
  ctl policy show --json | python3 -c '
import json, sys
for p in sorted(json.load(sys.stdin)["policies"], key=lambda p: p["name"]):
    if p["name"].startswith(sys.argv[1]):
        print(p["name"], " ".join(f"{k}={p[k]}" for k in ("startup_kib", "minimum_kib", "maximum_kib",
                                                          "buffer_pct", "weight", "dynamic")))' "tide-e2e-storm-$$-"
  for g in "${guests[@]}"; do echo "$g $(virsh -c "$uri" metadata "$g" urn:x-tide:policy:1 | tr -s ' \n' ' ')"; done
}
floor() { # "LOWEST_KIB [NAME MiB]...": the guests' lowest balloon, and those below their minimum
  stats_json | python3 -c '
import json, sys
d = [x for x in json.load(sys.stdin)["domains"] if x["name"].startswith(sys.argv[1]) and x["active"] and x["assigned_kib"]]
# 4 MiB: the balloon moves in pages, its target in 2 MiB steps.
under = ["%s %d" % (x["name"], x["assigned_kib"] // 1024) for x in d if x["minimum_kib"] and x["assigned_kib"] < x["minimum_kib"] - 4096]
print(" ".join([str(min([x["assigned_kib"] for x in d] or [0]))] + under))' "tide-e2e-storm-$$-"
}
ours_on() { awk -v d="$paging/" 'NR > 1 && index($1, d) == 1' /proc/swaps | wc -l; }
ours_used() { awk -v d="$paging/" 'NR > 1 && index($1, d) == 1 {s += $4} END {print int(s / 1024)}' /proc/swaps; }
running() { virsh -q -c "$uri" list | grep -c "tide-e2e-storm-$$-" || true; }
oom_kills() { awk '$1 == "oom_kill" {print $2}' "$pdir/memory.oom_control"; }
# STORM_TRACE=FILE: every 10 s, each guest's cgroup (resident, swap, cache), balloon and tided's
# view, for working out where a storm's memory went. Off by default.
trace() {
  while :; do
    {
      echo "== $(( $(date +%s) - t0 ))s partition usage $(( $(cat "$pdir/memory.usage_in_bytes") / 1048576 )) MiB" \
        "memsw $(( $(cat "$pdir/memory.memsw.usage_in_bytes") / 1048576 )) MiB limit $(( $(cat "$pdir/memory.limit_in_bytes") / 1048576 )) MiB"
      awk 'NR > 1 {printf "swap %s size %d used %d MiB\n", $1, $3 / 1024, $4 / 1024}' /proc/swaps
      for d in "$pdir"/*/; do
        awk -v d="$(basename "$d")" '$1 == "total_rss" {r = $2} $1 == "total_cache" {c = $2} $1 == "total_swap" {s = $2}
          END {printf "%s rss %d cache %d swap %d MiB\n", d, r / 1048576, c / 1048576, s / 1048576}' "$d/memory.stat"
      done
      ctl stats --json 2>/dev/null | python3 -c '
import json, sys
for x in json.load(sys.stdin)["domains"]:
    print(x["name"], x["status"], "assigned", (x["assigned_kib"] or 0) // 1024, "rss", (x["rss_kib"] or 0) // 1024,
          "paging", (x.get("paging_kib") or 0) // 1024, "used", (x.get("paging_used_kib") or 0) // 1024)' 2>/dev/null || true
      for g in "${guests[@]}"; do echo "$g actual $(( $(actual_kib "$g" || echo 0) / 1024 ))"; done
    } >> "$STORM_TRACE"
    sleep 10
  done
}

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
  limit=$((use + 256))
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
  "$vm" create "$g" --memory 384MiB --partition "/machine/$part" --tb-cache 32MiB --cmdline "tide.load=alloc:240,hold:60,free" >/dev/null &
  creates+=($!)
done
wait "${creates[@]}"
for g in "${guests[@]}"; do "$vm" wait-up "$g" 600 >/dev/null || fail "guest $g did not boot"; done

[ -n "${STORM_TRACE:-}" ] && { trace & tracer=$!; }
# STORM_STEPS: the steps to run (default all: "1 2 3 4"; one alone when working on it).
steps=${STORM_STEPS:-1 2 3 4}

# 1. control: no paging.
if [[ " $steps " == *" 1 "* ]]; then
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
fi

# Runs a storm under Smart Paging (step label $1) and checks it: every guest's boot load in,
# paging used, every file released, no OOM kill in the partition or in a guest, nothing left in
# the paging directory. With "kill9", tided is killed -9 as soon as a file is on and started again
# at once: it must adopt the files (from /proc/swaps and their records) and release them.
paged_storm() {
  local step=$1 kill9=${2:-} killed=0 on_at_kill=0 found0 pol0="" low under
  found0=$(grep -c 'found on' "$work/tided.log" || true)
  storm restart
  [ -z "$kill9" ] || pol0=$(policies)
  min_seen=$((1 << 40))
  peak_used=0; t_in=
  for _ in $(seq 300); do
    sleep 1
    u=$(ours_used); [ "$u" -gt "$peak_used" ] && peak_used=$u
    [ "$(running)" -eq $n ] || fail "a guest died in the storm ($(running) of $n running)"
    # Killed once the files stop coming on (every start of the storm seen and paged): a start
    # tided never saw is not what this step is about.
    local on_now
    on_now=$(ours_on)
    if [ -n "$kill9" ] && [ $killed -eq 0 ] && [ "$on_now" -gt 0 ] && [ "$on_now" -eq "$on_at_kill" ]; then
      kill -9 "$pid"; wait "$pid" 2>/dev/null || true
      killed=$(( $(date +%s) - t_reset ))
      log "$step: tided killed -9 ${killed}s after the reset with $on_at_kill paging files on; starting it again"
      start_tided
      [ "$(policies)" = "$pol0" ] || fail "policies changed over the kill -9: $(diff <(echo "$pol0") <(policies) | grep '^[<>]')"
    fi
    if [ $killed -gt 0 ]; then
      read -r low under <<<"$(floor)"
      [ -z "$under" ] || fail "below its minimum (128 MiB) under the restarted tided: $under MiB"
      [ "$low" -eq 0 ] || [ "$low" -ge "$min_seen" ] || min_seen=$low
    fi
    [ $killed -eq 0 ] && on_at_kill=$on_now
    if [ -z "$t_in" ] && [ "$(loads_in)" -eq $n ]; then t_in=$(( $(date +%s) - t_reset )); fi
    [ -n "$t_in" ] && [ "$(ours_on)" -eq 0 ] && break
  done
  [ -n "$t_in" ] || fail "not every guest got its boot load in with paging ($(loads_in) of $n)"
  t_rel=$(( $(date +%s) - t_reset ))
  [ "$peak_used" -gt 0 ] || fail "no paging was used"
  [ "$(ours_on)" -eq 0 ] || fail "$(ours_on) paging files still on ${t_rel}s after the reset ($(ours_used) MiB used)"
  [ "$(( $(oom_kills) - kills0 ))" -eq 0 ] || fail "OOM kills in the partition: $(( $(oom_kills) - kills0 ))"
  local i=0 c
  for g in "${guests[@]}"; do
    c=$("$vm" console-log "$g")
    [ "$(grep -c 'Killed process' "$c" || true)" -eq "${guest_kills0[$i]}" ] ||
      fail "$g: the guest's OOM killer ran: $(grep 'Killed process' "$c" | tail -n 1)"
    i=$((i + 1))
  done
  [ -z "$(ls -A "$paging")" ] || fail "files left in $paging: $(ls "$paging")"
  if [ -n "$kill9" ]; then
    [ $killed -gt 0 ] || fail "no paging file came on to kill tided over"
    local found=$(( $(grep -c 'found on' "$work/tided.log" || true) - found0 ))
    [ "$found" -eq "$on_at_kill" ] || fail "the restarted tided adopted $found of the $on_at_kill files on"
    adopted=$found
  fi
}

# 2. Smart Paging.
if [[ " $steps " == *" 2 "* ]]; then
paged_storm 2
log "2. with paging: every guest's boot load in after ${t_in}s; paging peak ${peak_used} MiB; every file released ${t_rel}s after the reset; no OOM kill"
passed=$((passed + 1))
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
fi

# 3. The same storm with tided killed -9 in the middle of it.
if [[ " $steps " == *" 3 "* ]]; then
paged_storm 3 kill9
log "3. tided killed -9 mid-storm; every boot load in after ${t_in}s; paging peak ${peak_used} MiB; released ${t_rel}s after the reset"
log "3. checked: the restarted tided adopted all $adopted paging files that were on and released them; no policy lost (the $n guests' policies in tidectl and their domains' metadata as before the kill); no guest below its minimum 128 MiB while it ran (lowest $((min_seen / 1024)) MiB); every boot load in; no OOM kill; nothing left in $paging"
passed=$((passed + 1))
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
fi

# 4. A full paging directory (a 1 MiB tmpfs): one guest reset on the tight partition cannot
# page; it boots anyway, tided says why, and the host shows overcommitted meanwhile.
if [[ " $steps " == *" 4 "* ]]; then
mkdir -p "$full"
mount -t tmpfs -o size=1m,mode=0700 tide-e2e-full "$full" || fail "cannot mount a tmpfs at $full"
"$vm" partition-limit "$part" 4GiB
for g in "${guests[@]}"; do
  virsh -q -c "$uri" domstate "$g" | grep -q running || virsh -q -c "$uri" start "$g" >/dev/null
done
conf restart
sed -i "s|^paging_dir = .*|paging_dir = $full|" "$work/tided.conf"
start_tided
for g in "${guests[@]}"; do ctl policy set "$g" --minimum 128MiB --startup 384MiB --maximum 384MiB >/dev/null; done
wait_for 300 "all $n guests settle at their minimum" settled
use=$(( $(cat "$pdir/memory.usage_in_bytes") / 1048576 ))
# 128 MiB, not 256: one guest's boot alone must be short, and nothing is released here.
"$vm" partition-limit "$part" "$((use + 128))MiB" || fail "cannot tighten the partition"
name=${guests[0]} # the guest lib.sh's fail() shows
ups=$(grep -c 'tide-guest: up' "$("$vm" console-log "$name")" || true)
virsh -q -c "$uri" reset "$name" >/dev/null
wait_for 60 "tided says it could not page $name" grep -q "$name: Failed to page: .*No space left on device" "$work/tided.log"
failed_shown() { # the guest shows its paging failed, the host overcommitted by what it lacks
  read -r st over unfunded <<<"$(stats_json | python3 -c '
import json, sys
s = json.load(sys.stdin)
d = [x for x in s["domains"] if x["name"] == sys.argv[1]][0]
print(d["paging"], s["host"]["overcommitted"], s["host"]["unfunded_kib"] // 1024)' "$name")"
  [ "$st" = failed ] && [ "$over" = True ] && [ "$unfunded" -gt 0 ]
}
wait_for 30 "$name shown as paging failed on an overcommitted host" failed_shown
"$vm" partition-limit "$part" 4GiB # the shortage is shown: let the guest through
"$vm" wait-up "$name" 300 --boots $((ups + 1)) >/dev/null || fail "$name did not boot after its paging failed"
[ -z "$(ls -A "$full")" ] || fail "left in the full paging directory: $(ls "$full")"
log "4. checked: full paging directory: $name booted unpaged; tided: '$(grep -o "Failed to page: .*" "$work/tided.log" | tail -n 1)'; shown as paging $st, host overcommitted (${unfunded} MiB unfunded)"
passed=$((passed + 1))
fi
echo "$test_name: $passed passed, 0 failed"
