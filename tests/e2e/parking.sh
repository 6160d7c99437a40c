#!/usr/bin/env bash
# End to end on real guests: core parking (mode = pin) on this 2-CPU host.
#   Two guests with one vCPU each and no pinning of their own, and a third its administrator
#   pinned to CPU 0 (vCPU and emulator, live) before tided starts.
#   1. idle: within 60 s both floating guests are confined to CPU 0 (CPU 1's core is parked; CPU
#      0 holds the pinned guest, so it is never the parked one): `virsh vcpupin` and
#      `emulatorpin` and the Cpus_allowed_list of every thread of their QEMU agree, and each
#      carries tide's parking record in its live metadata
#   2. a busy loop in both (memload spin, started by the test): unparked, every thread of theirs
#      back on CPUs 0-1; prints how long after the load started
#   3. tided stopped (SIGTERM): every floating guest on every CPU, no record left; the pinned
#      guest never touched (its pins as its administrator set them, throughout)
# Prints the parked CPU's idle residency from its cpuidle states during the idle phase, and
# whether it reached a deep state (these test machines are KVM guests with cpuidle-haltpoll:
# POLL and a 1 us halt, no deep state, so parking cannot pay here; the test proves the
# mechanism). Needs root, libvirt (tools/vm libvirt-up), 2 CPUs and the guest image.
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-park-$$-a
test_name=parking-e2e
. "$(dirname "$0")/lib.sh"

a=tide-e2e-park-$$-a
b=tide-e2e-park-$$-b
p=tide-e2e-park-$$-pinned
parking_cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  pid=
  for g in "$a" "$b" "$p"; do "$vm" destroy "$g" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap parking_cleanup EXIT

[ "$(nproc)" -eq 2 ] || { echo "$test_name: needs a 2-CPU host (this one has $(nproc)); skipped"; echo "$test_name: 0 passed, 0 failed"; exit 0; }

sed -i 's/^mode = off$/mode = pin/' "$work/tided.conf"
grep -q '^mode = pin$' "$work/tided.conf" || fail "cannot turn parking on in the test's config"

qemu_pid() { cat "/run/libvirt/qemu/$1.pid"; }
# The CPUs every thread of guest $1's QEMU may run on, as one list when they all agree.
threads_on() {
  local pid; pid=$(qemu_pid "$1")
  awk '$1 == "Cpus_allowed_list:" {print $2}' /proc/"$pid"/task/*/status | sort -u | paste -sd' '
}
vcpu_pin() { virsh -q -c "$uri" vcpupin "$1" --live | awk '{print $2}' | sort -u | paste -sd' '; }
emu_pin() { virsh -q -c "$uri" emulatorpin "$1" --live | awk 'NF {print $NF}'; }
record() { virsh -q -c "$uri" metadata "$1" urn:x-tide:parking:1 --live >/dev/null 2>&1; }
all_on() { # all_on CPUS GUEST...: libvirt and the kernel agree every thread of each is on CPUS
  local cpus=$1 g; shift
  for g in "$@"; do
    [ "$(vcpu_pin "$g")" = "$cpus" ] && [ "$(emu_pin "$g")" = "$cpus" ] && [ "$(threads_on "$g")" = "$cpus" ] || return 1
  done
}
has_deep=0 # whether CPU 1 lists an idle state with an exit latency of 10 us or more
for l in /sys/devices/system/cpu/cpu1/cpuidle/state*/latency; do
  [ -r "$l" ] && [ "$(cat "$l")" -ge 10 ] && has_deep=1
done
idle_time() { # idle_time CPU: microseconds in any idle state since boot, and in deep ones (latency >= 10 us)
  local s t=0 deep=0 d=/sys/devices/system/cpu/cpu$1/cpuidle
  for s in "$d"/state*; do
    [ -d "$s" ] || continue
    t=$((t + $(cat "$s/time")))
    [ "$(cat "$s/latency")" -ge 10 ] && deep=$((deep + $(cat "$s/time")))
  done
  echo "$t $deep"
}

"$vm" libvirt-up >/dev/null
log "booting $a, $b (floating) and $p (pinned to CPU 0 by its administrator), 256 MiB and 1 vCPU each"
for g in "$a" "$b" "$p"; do "$vm" create "$g" --memory 256MiB --vcpus 1 --tb-cache 16MiB >/dev/null & done
wait
for g in "$a" "$b" "$p"; do "$vm" wait-up "$g" 600 >/dev/null || fail "guest $g did not boot"; done
virsh -q -c "$uri" vcpupin "$p" 0 0 --live >/dev/null || fail "cannot pin $p"
virsh -q -c "$uri" emulatorpin "$p" 0 --live >/dev/null || fail "cannot pin $p's emulator"
all_on 0-1 "$a" "$b" || fail "the floating guests do not start on every CPU: $(vcpu_pin "$a") / $(threads_on "$a")"
pinned_before="$(vcpu_pin "$p") $(emu_pin "$p")"

# 1. idle: confined to CPU 0.
start_tided
idle0=($(idle_time 1)); tidle0=$(date +%s%N)
wait_for 60 "both floating guests confined to CPU 0" all_on 0 "$a" "$b"
record "$a" && record "$b" || fail "a confined guest carries no parking record"
parked=$(ctl stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["host"]["parking"]["parked"])')
[ "$parked" = 1 ] || fail "stats show CPUs '$parked' parked, not 1"
sleep 10 # an idle stretch to measure the parked CPU over
idle1=($(idle_time 1)); tidle1=$(date +%s%N)
span=$(( (tidle1 - tidle0) / 1000 ))
log "1. idle: $a and $b confined to CPU 0 (vcpupin, emulatorpin, every QEMU thread); CPU 1 parked:" \
    "idle $(( (idle1[0] - idle0[0]) * 100 / span ))% of ${span}us, deep idle $(( (idle1[1] - idle0[1]) * 100 / span ))%" \
    "($(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo no cpuidle) driver)"
# tided's own measure of the same CPU, and whether it knows this host can have deep idle at all.
measured=$(ctl stats --json | python3 -c '
import json, sys
m = json.load(sys.stdin)["host"]["parking"]["measured"]
c = [c for c in m["cpus"] if c["cpu"] == 1][0]
if not c["parked"] or c["idle"] is None:
    sys.exit("CPU 1 not shown parked and measured: %r" % c)
print("1" if m["has_deep_state"] else "0", "%.0f%%" % (100 * c["idle"]), "%.0f%%" % (100 * c["deep"]),
      "does not pay here" if m["never_pays"] else "may pay")') || fail "tided does not measure the parked CPU"
read -r t_deep t_idle t_dp t_pays <<<"$measured"
[ "$t_deep" = "$has_deep" ] || fail "tided says deep idle states exist: $t_deep; cpuidle says $has_deep"
log "   tided measured CPU 1 over its last tick: idle $t_idle, deep idle $t_dp; parking $t_pays"
passed=$((passed + 1))

# 2. load: unparked.
t_load=$(date +%s%N)
"$vm" load "$a" spin:600 >/dev/null || fail "$a did not take the busy loop"
"$vm" load "$b" spin:600 >/dev/null || fail "$b did not take the busy loop"
wait_for 60 "both guests back on every CPU" all_on 0-1 "$a" "$b"
latency=$(( ($(date +%s%N) - t_load) / 1000000 ))
ctl stats >/dev/null
log "2. load: unparked, $a and $b back on CPUs 0-1 ${latency} ms after the busy loops were started" \
    "(tided: '$(grep -o 'unparked ([^)]*)' "$work/tided.log" | tail -n 1)')"
passed=$((passed + 1))

# Parked again once idle, then tided stops while they are confined.
"$vm" load "$a" free >/dev/null; "$vm" load "$b" free >/dev/null
# The anti-flap hold keeps the cores unparked for 10 minutes after an unpark: the test stops
# tided now, with both back on every CPU, and checks that nothing is left behind.
[ "$(vcpu_pin "$p") $(emu_pin "$p")" = "$pinned_before" ] || fail "the pinned guest was touched: $(vcpu_pin "$p") $(emu_pin "$p")"

# 3. tided stopped while confined: a fresh tided confines them, SIGTERM gives everything back.
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
start_tided
wait_for 60 "confined again by a new tided" all_on 0 "$a" "$b"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
all_on 0-1 "$a" "$b" || fail "after tided stopped: $a on $(vcpu_pin "$a") / threads $(threads_on "$a")"
record "$a" && fail "a parking record left on $a"
record "$b" && fail "a parking record left on $b"
[ "$(vcpu_pin "$p") $(emu_pin "$p")" = "$pinned_before" ] || fail "the pinned guest was touched: $(vcpu_pin "$p") $(emu_pin "$p")"
grep -q "$p: pinned by its administrator" "$work/tided.log" || fail "tided did not say it leaves $p alone"
log "3. tided stopped: $a and $b on every CPU again, no record left; $p pinned as its administrator set it throughout ($pinned_before)"
passed=$((passed + 1))
echo "$test_name: $passed passed, 0 failed"
