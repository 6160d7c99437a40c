#!/usr/bin/env bash
# End to end on a real guest: a guest that runs out of memory takes pages back from its balloon
# (deflate-on-oom, the image's autodeflate='on'), and tided sees it.
#   1. policy minimum 256 MiB, maximum 512 MiB on a 1 GiB guest: the idle guest is ballooned down
#   2. the guest allocates 700 MiB, more than its maximum: its driver deflates the balloon past
#      tided's target instead of the OOM killer killing it; tided counts it, logs it, and the
#      allocation survives
#   3. freed: tided brings the balloon back within its maximum
# Needs root, libvirt (tools/vm libvirt-up) and the guest image (tools/guest-image/build).
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-oom-$$
test_name=oom-e2e
. "$(dirname "$0")/lib.sh"

"$vm" libvirt-up >/dev/null
log "booting $name (1 GiB; once it is ballooned down the test has it allocate 700 MiB, then free them)"
"$vm" create "$name" --memory 1GiB >/dev/null
up=$("$vm" wait-up "$name" 300) || fail "guest did not boot"
log "$up"
start_tided
ctl policy set "$name" --minimum 256MiB --startup 512MiB --maximum 512MiB --buffer 20 >/dev/null || fail "policy set"
min=$((256 * 1024)); max=$((512 * 1024))

# 1. the idle guest goes down to its minimum.
wait_for 50 "balloon shrinks toward the minimum" below $((min + 16 * 1024))
[ "$(stat_kib guest_oom_deflates)" -eq 0 ] || fail "an OOM deflate was counted before any load"
log "1. idle: actual $(( $(actual_kib) / 1024 )) MiB"; passed=$((passed + 1))

# 2. 700 MiB in a guest allowed 512: the guest deflates its balloon past tided's target.
load alloc:700
oom_seen() { [ "$(stat_kib guest_oom_deflates)" -gt 0 ]; }
wait_for 120 "tided counts the guest's own deflate" oom_seen
peak=0
over() { a=$(actual_kib); [ "$a" -gt "$peak" ] && peak=$a; [ "$a" -gt $((max + 64 * 1024)) ]; }
wait_for 60 "the guest holds more than its maximum to keep its allocation" over
grep -q "$name: guest deflated its balloon" "$work/tided.log" || fail "the deflate was not logged"
log "2. OOM: the guest deflated to $((peak / 1024)) MiB (maximum 512 MiB); tided counted $(stat_kib guest_oom_deflates) samples"
passed=$((passed + 1))

# 3. freed: back within the maximum; the allocation was never OOM-killed. memload reads the
# port between steps, so 'free' is taken once the 700 MiB allocation is complete.
load free --timeout 300
wait_for 120 "back within the maximum after the free" below $((max + 4 * 1024))
console=$("$vm" console-log "$name")
if grep -q "Killed process" "$console" 2>/dev/null; then fail "the guest's OOM killer ran: $(grep -m1 'Killed process' "$console")"; fi
kill -0 "$pid" || fail "tided died"
log "3. freed: actual $(( $(actual_kib) / 1024 )) MiB, no process OOM-killed"; passed=$((passed + 1))
echo "$test_name: $passed passed, 0 failed"
