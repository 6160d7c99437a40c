#!/usr/bin/env bash
# End to end: growing above the boot size with virtio-mem, on a real guest.
#   1. idle: the balloon shrinks it below its 512 MiB boot size
#   2. 600 MiB of load: tide deflates the balloon to the boot size first, then plugs virtio-mem,
#      and the guest's MemTotal grows
#   3. load gone: tide unplugs virtio-mem first, then inflates the balloon, never below minimum
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-vmem-$$
test_name=virtio-mem-e2e
. "$(dirname "$0")/lib.sh"

requested_kib() {
  virsh -c "$uri" dumpxml "$name" | python3 -c '
import sys, xml.etree.ElementTree as ET
d = ET.parse(sys.stdin).getroot()
m = d.find("./devices/memory[@model=\"virtio-mem\"]/target/requested")
print(int(m.text) if m is not None else -1)'
}

"$vm" libvirt-up >/dev/null
log "booting $name (512 MiB + virtio-mem up to 1 GiB; 600 MiB of load once it is ballooned down)"
"$vm" create "$name" --memory 512MiB --virtio-mem 1GiB >/dev/null
up=$("$vm" wait-up "$name" 300) || fail "guest did not boot"
log "$up"
start_tided
ctl policy set "$name" --minimum 256MiB --startup 512MiB --maximum 1536MiB --buffer 25 >/dev/null || fail "policy set"
min=$((256 * 1024)); boot=$((512 * 1024))

wait_for 40 "balloon shrinks below the boot size" below $((boot - 64 * 1024))
[ "$(requested_kib)" -le 0 ] || fail "virtio-mem plugged while idle"
log "1. idle: balloon at $(( $(actual_kib) / 1024 )) MiB, nothing plugged"; passed=$((passed + 1))

load "$(chunks 12)"
plugged() { [ "$(requested_kib)" -ge $((64 * 1024)) ]; }
wait_for 90 "virtio-mem plugged under load" plugged
a=$(actual_kib)
[ "$a" -ge $((boot - 8 * 1024)) ] || fail "plugged with the balloon still inflated (actual $a KiB)"
assigned_grew() { [ "$(stat_kib assigned_kib)" -ge $((boot + 64 * 1024)) ]; }
wait_for 20 "assigned above the boot size" assigned_grew
log "2. load: balloon deflated ($((a / 1024)) MiB), virtio-mem requested $(( $(requested_kib) / 1024 )) MiB, assigned $(( $(stat_kib assigned_kib) / 1024 )) MiB"
passed=$((passed + 1))

load free
unplugged() { [ "$(requested_kib)" -eq 0 ]; }
wait_for 120 "virtio-mem unplugged after the load is freed" unplugged
wait_for 60 "balloon back below the boot size" below $((boot - 64 * 1024))
a=$(actual_kib); [ "$a" -ge $((min - 4096)) ] || fail "below minimum: $a KiB"
grep -q "Failed" "$work/tided.log" && fail "tided reported a failed call"
log "3. freed: unplugged, then ballooned to $((a / 1024)) MiB"; passed=$((passed + 1))
echo "$test_name: $passed passed, 0 failed"
