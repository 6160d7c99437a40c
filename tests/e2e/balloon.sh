#!/usr/bin/env bash
# End to end on a real QEMU guest (TCG here, KVM where it works): tided moves a real balloon.
#   1. a policy set with tidectl moves the balloon to demand + buffer (never below minimum)
#   2. load in the guest -> assigned grows
#   3. load gone -> shrinks slowly back, never below minimum
#   4. tided killed (-9) and restarted -> the VM stays where it was, no move on old stats
#   5. virsh dommemstat agrees with tidectl stats
# Needs root, libvirt (tools/vm libvirt-up) and the guest image (tools/guest-image/build).
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-balloon-$$
test_name=balloon-e2e
. "$(dirname "$0")/lib.sh"

"$vm" libvirt-up >/dev/null
log "booting $name (1 GiB; once it is ballooned down the test has it allocate 300 MiB in 50 MiB steps, then free them)"
"$vm" create "$name" --memory 1GiB >/dev/null
up=$("$vm" wait-up "$name" 300) || fail "guest did not boot"
log "$up"
start_tided
ctl policy set "$name" --minimum 256MiB --startup 1GiB --maximum 1GiB --buffer 20 >/dev/null || fail "policy set"
min=$((256 * 1024))

# 1. down to demand + buffer (the idle guest needs ~40 MiB, so: its minimum).
wait_for 50 "balloon shrinks toward the minimum" below $((min + 16 * 1024))
a=$(actual_kib); [ "$a" -ge $((min - 4096)) ] || fail "actual $a KiB went below the minimum $min KiB"
log "1. policy applied: actual $((a / 1024)) MiB (minimum 256 MiB)"; passed=$((passed + 1))

# 5. tidectl agrees with virsh (the snapshot is at most a tick old, so allow it a few ticks).
agree() {
  s=$(stat_kib assigned_kib); v=$(actual_kib)
  [ $(( s > v ? s - v : v - s )) -le $((4 * 1024)) ]
}
wait_for 10 "tidectl stats assigned agrees with virsh dommemstat actual" agree
log "5. tidectl stats assigned $((s / 1024)) MiB = virsh dommemstat actual $((v / 1024)) MiB"; passed=$((passed + 1))

# 2. the guest allocates 300 MiB: assigned grows to cover it plus buffer.
load "$(chunks 6)"
wait_for 90 "assigned grows under load" above $((300 * 1024 + min / 2))
log "2. load: actual grew to $(( $(actual_kib) / 1024 )) MiB"; passed=$((passed + 1))

# 3. freed: shrinks slowly (several steps, not one), and never below the minimum.
load free
peak=$(actual_kib)
wait_for 60 "shrink starts after the load is freed" below $((peak - 8 * 1024))
steps=0; prev=$(actual_kib)
for _ in $(seq 60); do
  sleep 1; cur=$(actual_kib)
  [ "$cur" -ge $((min - 4096)) ] || fail "went below minimum: $cur KiB"
  [ "$cur" -lt "$prev" ] && steps=$((steps + 1))
  prev=$cur
  [ "$cur" -le $((min + 16 * 1024)) ] && break
done
[ "$steps" -ge 3 ] || fail "shrank in $steps steps: not slowly"
log "3. freed: shrank back to $((prev / 1024)) MiB in $steps+ steps"; passed=$((passed + 1))

# 4. kill -9 tided: the VM stays; a new tided rebuilds and does not move it on old stats.
before=$(actual_kib)
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
sleep 3
after=$(actual_kib)
d=$(( before > after ? before - after : after - before ))
[ "$d" -le 4096 ] || fail "VM moved while tided was down: $before -> $after KiB"
start_tided
sleep 3
grep -q "$name: managed" "$work/tided.log" || fail "restarted tided did not find the policy in metadata"
now=$(actual_kib)
d=$(( before > now ? before - now : now - before ))
[ "$d" -le 16384 ] || fail "restarted tided moved the VM: $before -> $now KiB"
log "4. tided restart (kill -9): VM held at $((now / 1024)) MiB, policy rebuilt from metadata"; passed=$((passed + 1))

echo "balloon-e2e: $passed passed, 0 failed"
