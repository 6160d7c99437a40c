#!/usr/bin/env bash
# End to end on a real guest with tide-agent: faults tided must survive. One guest (1 GiB,
# policy minimum 512 MiB, buffer 50 %, weight 70) serves every step, so the suite pays one boot:
#   1. tided killed -9 inside a tick, while its balloon call is in flight: gdb stops it in
#      libvirt's virDomainSetMemoryFlags called from the tick (the backtrace is printed), once
#      before libvirt has the call and once after libvirt applied it but before tided knew; the
#      kill is sent while it is stopped there. Each time a new tided is started and must have
#      lost no policy (tidectl and the domain's metadata as before), find the memory where the
#      dead one left it (the unsent call: where it was; the applied one: what it asked) and move
#      on from there (its first move starts from it and is a shrink, never a jump back up)
#   2. control clients that connect and never speak (one silent, one stopping mid-request): the
#      others are served and tided ticks meanwhile; both are dropped after tided's timeout (5 s)
#   3. the in-guest tide-agent crashes (SIGKILL on the host's cue, through memload's `agent`
#      step): demand falls back from the agent to balloon statistics once its last report is
#      stale (stale_after 10 s), counted in ticks; started again, it is the source again
#   4. libvirtd stopped and started again under tided: tided notices, holds, answers stats and
#      refuses policy changes meanwhile; the guest takes 200 MiB while libvirt is away (tided
#      cannot act on it); once libvirtd answers again tided reconnects within 10 s (measured)
#      and grows the VM for the load from where it was (nothing moved during the outage, nor on
#      pre-outage data after it)
#   Throughout: the balloon never goes below the minimum (sampled every 0.5 s).
# Needs root, libvirt (tools/vm libvirt-up), gdb, and the guest image with tide-agent.
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
name=tide-e2e-faults-$$
test_name=faults-e2e
. "$(dirname "$0")/lib.sh"
tided_flags=(-v) # debug lines too: the log is what steps 1 and 4 read
# lib.sh's, with 5 % shrink steps (1 GiB to 512 MiB in ~14 ticks: step 1 needs balloon calls to
# kill tided in, after its restarts too) and stale_after written out (step 3 counts on it).
port=$((20000 + RANDOM % 20000))
cat >"$work/tided.conf" <<CONF
[tided]
metrics = 127.0.0.1:$port
[memory]
quiet_period = 5s
shrink_step = 5
stale_after = 10s
[parking]
mode = off
CONF

command -v gdb >/dev/null || fail "gdb is needed to stop tided inside a tick (apt-get install gdb)"
agent_image

faults_cleanup() {
  [ -n "${gdbpid:-}" ] && kill "$gdbpid" 2>/dev/null
  [ -n "${watcher:-}" ] && kill "$watcher" 2>/dev/null
  # A failure in step 4 may leave libvirtd stopped: the guest cannot be destroyed without it.
  "$vm" libvirt-up >/dev/null 2>&1 || true
  cleanup
}
trap faults_cleanup EXIT

min=$((512 * 1024))
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; } # secs LATER EARLIER
# view: this VM's row and the host's tick count from tidectl stats, as shell variables v_*.
view() {
  eval "$(ctl stats "$name" --json | python3 -c '
import json, shlex, sys
s = json.load(sys.stdin); d = s["domains"][0]
for k in ("assigned_kib", "target_kib", "demand_source", "agent", "agent_report_age_ms", "reason",
          "guest_oom_deflates", "balloon_actions"):
    print(f"v_{k}={shlex.quote(str(d[k]))}")
print("v_ticks=" + str(s["host"]["ticks"]))')"
}
policy_ctl() { # the policy as tided shows it
  ctl policy show "$name" --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["policies"][0]
print(" ".join(f"{k}={p[k]}" for k in ("startup_kib", "minimum_kib", "maximum_kib", "buffer_pct", "weight",
                                        "dynamic", "latency_sensitive")))'
}
# What the policy set below gives, as tidectl shows it. tided cannot be asked before the kills
# (gdb may have it stopped), so step 1 compares with this and with libvirt's own copy.
policy_set="startup_kib=1048576 minimum_kib=524288 maximum_kib=1048576 buffer_pct=50 weight=70 dynamic=True latency_sensitive=False"
policy_meta() { virsh -c "$uri" metadata "$name" urn:x-tide:policy:1 | tr -s ' \n' ' '; } # as libvirt stores it
policy_same() { # policy_same STEP
  local c m
  c=$(policy_ctl); m=$(policy_meta)
  [ "$c" = "$policy_set" ] || fail "$1: tided shows the policy as '$c', not '$policy_set'"
  [ "$m" = "$meta0" ] || fail "$1: the policy in the domain's metadata is '$m', was '$meta0'"
}
log_from() { tail -n +"$(($1 + 1))" "$work/tided.log"; } # log_from N: tided's log after line N
log_lines() { wc -l <"$work/tided.log"; }
# The balloon changes tided logged after line N: "FROM TO" in KiB, one per line.
moves_from() {
  log_from "$1" | python3 -c '
import re, sys
unit = {"KiB": 1, "MiB": 1024, "GiB": 1024 ** 2, "TiB": 1024 ** 3}
kib = lambda s: round(float(re.match(r"[0-9.]+", s).group()) * unit[re.search(r"[KMGT]iB", s).group()])
for line in sys.stdin:
    m = re.match(re.escape(sys.argv[1]) + r": ([0-9.]+[KMGT]iB) -> ([0-9.]+[KMGT]iB) \(", line)
    if m:
        print(kib(m.group(1)), kib(m.group(2)))' "$name"
}
first_move_line() { log_from "$1" | grep "^$name: .* -> " | awk '!n++'; } # first_move_line N: its log line
near() { [ $(($1 > $2 ? $1 - $2 : $2 - $1)) -le $((${3:-4} * 1024)) ]; } # near A B [MIB]: within MIB (4)

# The balloon's lowest actual, sampled every 0.5 s for the whole test (virsh fails while
# libvirtd is away: those samples are skipped).
floor_watch() {
  while :; do
    a=$(actual_kib 2>/dev/null) && [ -n "$a" ] && echo "$a" >>"$work/actual.log"
    sleep 0.5
  done
}
check_floor() { # check_floor STEP: never below the minimum so far (4 MiB: the balloon's granularity); sets low
  low=$(awk 'NR == 1 || $1 < m {m = $1} END {print m + 0}' "$work/actual.log" 2>/dev/null || echo 0)
  [ "$low" -gt 0 ] || fail "$1: no balloon sample taken"
  [ "$low" -ge $((min - 4096)) ] || fail "$1: the balloon went to $((low / 1024)) MiB, below the minimum $((min / 1024)) MiB"
}

"$vm" libvirt-up >/dev/null
log "booting $name (1 GiB, tide-agent; policy minimum 512 MiB, startup/maximum 1 GiB, buffer 50 %, weight 70)"
"$vm" create "$name" --memory 1GiB >/dev/null
up=$("$vm" wait-up "$name" 300) || fail "guest did not boot"
log "$up"
# Its console log and memload port, found now: tools/vm asks libvirt, which step 4 stops.
console_log=$("$vm" console-log "$name")
console() { echo "$console_log"; }
memload_sock=$(dirname "$console_log")/memload.sock
floor_watch &
watcher=$!

# ---- 1. kill -9 inside a tick ----------------------------------------------------------------
# gdb_arm MODE OUT: gdb attaches to tided and stops it at its next live balloon call
# (virDomainSetMemoryFlags with VIR_DOMAIN_AFFECT_LIVE, i.e. flags == 1: the policy-set path's
# boot-size call is CONFIG and does not count). MODE entry: stopped as it enters libvirt, before
# the call is sent; MODE return: stopped once libvirt returned (the balloon target applied),
# before tided's own code has seen the result. gdb then keeps it stopped there until the test
# has sent it SIGKILL (gdb_killed).
gdb_arm() {
  local mode=$1 out=$2
  {
    echo "set pagination off"
    echo "set confirm off"
    echo 'break *virDomainSetMemoryFlags if $rdx == 1'
    echo "continue"
    echo 'printf "REQUESTED_KIB %lu\n", $rsi'
    echo "bt"
    [ "$mode" = entry ] || { echo "finish"; echo 'printf "RETURNED %d\n", (int) $rax'; }
    echo 'printf "STOPPED\n"'
    echo "shell while [ ! -e $work/gdb.killed ]; do sleep 0.1; done"
  } >"$work/gdb.cmd"
  rm -f "$work/gdb.killed"
  timeout 120 gdb -batch -nx -p "$pid" -x "$work/gdb.cmd" >"$out" 2>&1 &
  gdbpid=$!
  wait_for 60 "gdb attached to tided" grep -qs '^Breakpoint 1 at' "$out"
}
# gdb_killed OUT STEP: once gdb has tided stopped, kills it -9 there; sets requested (KiB),
# at_stop (the balloon's actual while tided was stopped) and chain (the frames from libvirt up
# to the tick).
gdb_killed() {
  local out=$1 step=$2
  wait_for 60 "$step: tided stopped at a balloon call" grep -q '^STOPPED' "$out"
  at_stop=$(actual_kib)
  kill -9 "$pid"
  touch "$work/gdb.killed"
  wait "$gdbpid" 2>/dev/null || true # gdb sees its inferior die and ends
  gdbpid=
  wait "$pid" 2>/dev/null || true
  kill -0 "$pid" 2>/dev/null && fail "$step: tided still runs after kill -9"
  pid=
  requested=$(awk '$1 == "REQUESTED_KIB" {print $2}' "$out")
  chain=$(sed -n 's/^#[0-9]* *\(0x[0-9a-f]* in \)\{0,1\}\([A-Za-z_][A-Za-z0-9_]*\) .*/\2/p' "$out" |
          awk '!seen[$0]++' | sed -n '1,/^on_tick$/p' | paste -sd '<' | sed 's/</ <- /g')
  [ -n "$requested" ] && [ -n "$at_stop" ] || fail "$step: gdb did not report the call: $(cat "$out")"
  [[ $chain == *"act_balloon"* && $chain == *"manager_tick"* && $chain == *"on_tick" ]] ||
    fail "$step: tided was not stopped inside a tick: $chain"
}
# moved LINES: tided moved the VM after log line LINES (a call naming the balloon's own size,
# "880MiB -> 880MiB", moves nothing and does not count)
moved() { [ -n "$(moves_from "$1" | awk '$1 != $2')" ]; }
# restarted STEP LEFT_KIB LINES: the new tided lost no policy, found the VM at LEFT_KIB, and its
# first move (after log line LINES) starts there and is a shrink toward the policy. Sets
# first_line (that move's log line) and resent (calls before it that named the balloon's size).
restarted() {
  local step=$1 left=$2 lines=$3 first from to
  start_tided
  policy_same "$step"
  wait_for 60 "$step: the new tided moves the VM on fresh demand" moved "$lines"
  # Before its first move, a call may name where the balloon is: a found VM's hold re-sends its
  # size while libvirt's currentMemory still lags its actual (balloon/hv.h). It must be where
  # the dead tided left it.
  resent=$(moves_from "$lines" | awk '$1 != $2 {exit} {print $1}')
  for r in $resent; do
    near "$r" "$left" 2 || fail "$step: before it had demand the new tided set the balloon to $((r / 1024)) MiB; the dead one left it at $((left / 1024)) MiB"
  done
  first=$(moves_from "$lines" | awk '$1 != $2 && !n++')
  read -r from to <<<"$first"
  near "$from" "$left" 2 || fail "$step: the new tided's first move starts at $((from / 1024)) MiB, not where the dead one left the VM ($((left / 1024)) MiB)"
  [ "$to" -lt "$from" ] && [ "$to" -ge "$min" ] ||
    fail "$step: the new tided's first move is $((from / 1024)) -> $((to / 1024)) MiB, not a shrink toward the policy"
  first_line=$(log_from "$lines" | grep "^$name: .* -> " | awk -v n="$(printf '%s\n' $resent | grep -c .)" 'NR == n + 1')
  [ -z "$resent" ] || resent=" (before it, on data it did not have yet, it re-sent the balloon's own size as its target: '$(first_move_line "$lines")')"
}

start_tided
gdb_arm entry "$work/gdb-entry.out"
ctl policy set "$name" --minimum 512MiB --startup 1GiB --maximum 1GiB --buffer 50 --weight 70 >/dev/null ||
  fail "policy set"
meta0=$(policy_meta)
gdb_killed "$work/gdb-entry.out" "1a"
# The call never reached libvirt: the balloon stays where it was, which the new tided reads.
lines=$(log_lines)
near "$requested" "$at_stop" 16 && fail "1a: nothing to show: the call asked $((requested / 1024)) MiB, the balloon was there already"
restarted "1a" "$at_stop" "$lines"
log "1a. killed -9 in $chain (asking $((requested / 1024)) MiB, not sent)"
log "1a. checked: policy unchanged over the restart ($policy_set, and the same in the domain's metadata); the new tided found the VM where the dead one left it ($((at_stop / 1024)) MiB) and moved on from there: '$first_line'$resent"
passed=$((passed + 1))

# The new tided is still shrinking the VM (5 % a tick): its next balloon call is the one.
[ "$(actual_kib)" -ge $((min + 48 * 1024)) ] || fail "1b: the VM is at its minimum already: no balloon call left to kill tided in"
gdb_arm return "$work/gdb-return.out"
gdb_killed "$work/gdb-return.out" "1b"
grep -q '^RETURNED 0' "$work/gdb-return.out" || fail "1b: libvirt refused the balloon call: $(grep RETURNED "$work/gdb-return.out")"
# libvirt applied it: the balloon goes to what the dead tided asked, with nobody to say so.
wait_for 30 "1b: the balloon reaches what the dead tided asked ($((requested / 1024)) MiB)" eval 'near "$(actual_kib)" "$requested"'
lines=$(log_lines)
restarted "1b" "$requested" "$lines"
log "1b. killed -9 in $chain after libvirt applied $((requested / 1024)) MiB (tided had not seen it return)"
log "1b. checked: policy unchanged; the new tided found the VM at the $((requested / 1024)) MiB the dead one set and moved on from there: '$first_line'$resent"
passed=$((passed + 1))

wait_for 90 "the VM settles at its minimum" below $((min + 16 * 1024))
check_floor 1
log "1. checked: the VM never went below its minimum over both kills (lowest $((low / 1024)) MiB); settled at $(( $(actual_kib) / 1024 )) MiB"

# ---- 2. control clients that never speak ------------------------------------------------------
python3 - "$sock" >"$work/silent.out" <<'PY' &
import select, socket, sys, time
silent = socket.socket(socket.AF_UNIX); silent.connect(sys.argv[1])   # says nothing at all
partial = socket.socket(socket.AF_UNIX); partial.connect(sys.argv[1])
partial.sendall(b'{"cmd":"sta')                                       # and this one stops mid-request
t0 = time.monotonic()
print("connected", flush=True)
left, got = {silent: "silent", partial: "partial"}, {}
while left and time.monotonic() - t0 < 60:
    for s in select.select(list(left), [], [], 1)[0]:
        data = s.recv(4096)
        got[left.pop(s)] = (time.monotonic() - t0, data)
for k in ("silent", "partial"):
    t, data = got.get(k, (None, None))
    print(k, "none" if t is None else f"{t:.1f}", "closed" if data == b"" else repr(data), flush=True)
PY
holder=$!
wait_for 10 "the silent clients connected" grep -q '^connected' "$work/silent.out"
view; k0=$v_ticks
s0=$(date +%s%N); ctl stats >/dev/null || fail "2: tidectl stats failed while a client sat silent"; s1=$(date +%s%N)
served_ms=$(( (s1 - s0) / 1000000 ))
ticking() { view; [ "$v_ticks" -gt "$k0" ]; }
wait_for 10 "2: tided ticks while the clients sit silent" ticking
wait "$holder" || fail "2: the silent clients' script failed: $(cat "$work/silent.out")"
holder=
line=$(grep '^silent ' "$work/silent.out" || true); read -r _ t_silent how_silent <<<"$line"
line=$(grep '^partial ' "$work/silent.out" || true); read -r _ t_partial how_partial <<<"$line"
[ "$how_silent" = closed ] && [ "$how_partial" = closed ] || fail "2: silent clients not dropped: $(cat "$work/silent.out")"
# tided's timeout is 5 s (daemon/control.h), looked at every tick.
for t in "$t_silent" "$t_partial"; do
  awk -v t="$t" 'BEGIN { exit !(t >= 4.5 && t <= 15) }' || fail "2: a silent client was dropped after $t s (tided's timeout: 5 s)"
done
kill -0 "$pid" || fail "2: tided died"
log "2. checked: a client that never spoke was dropped after ${t_silent} s, one that stopped mid-request after ${t_partial} s (timeout 5 s); meanwhile tidectl stats was answered in ${served_ms} ms and tided kept ticking ($k0 -> $v_ticks)"
passed=$((passed + 1))

# ---- 3. the agent crashes, and comes back ------------------------------------------------------
from_agent() { view; [ "$v_demand_source" = agent ]; }
from_balloon() { view; [ "$v_demand_source" = balloon ]; }
wait_for 30 "3: demand from tide-agent before the crash" from_agent
kills=$(grep -c 'agent kill: SIGKILL' "$(console)" || true)
load agent:kill
wait_for 20 "3: the guest killed its agent" eval '[ "$(grep -c "agent kill: SIGKILL" "$(console)")" -gt "$kills" ]'
view; k0=$v_ticks; t_kill=$(now)
wait_for 60 "3: demand falls back to balloon statistics" from_balloon
k1=$v_ticks; age=$v_agent_report_age_ms
# stale_after (10 s) at one tick a second: ten ticks, and a few for the snapshot and tick jitter.
[ $((k1 - k0)) -le 14 ] || fail "3: fell back after $((k1 - k0)) ticks (stale_after is 10 ticks)"
view
log "3. agent killed in the guest: demand from balloon statistics after $((k1 - k0)) ticks ($(secs "$(now)" "$t_kill") s; the agent's last report ${age} ms old, stale_after 10 s); agent state '$v_agent', target $((v_target_kib / 1024)) MiB ($v_reason)"
starts=$(grep -c 'agent start: pid' "$(console)" || true)
load agent:start
wait_for 20 "3: the guest started its agent" eval '[ "$(grep -c "agent start: pid" "$(console)")" -gt "$starts" ]'
view; k2=$v_ticks
wait_for 60 "3: demand from the restarted agent" from_agent
[ $((v_ticks - k2)) -le 10 ] || fail "3: the restarted agent was believed after $((v_ticks - k2)) ticks"
check_floor 3
log "3. checked: fallback to balloon statistics $((k1 - k0)) ticks after the crash (bound 14); the restarted agent is the source again after $((v_ticks - k2)) ticks (report ${v_agent_report_age_ms} ms old); never below the minimum (lowest $((low / 1024)) MiB)"
passed=$((passed + 1))

# ---- 4. libvirtd restarted under tided ---------------------------------------------------------
wait_for 60 "4: the VM at its minimum before the outage" below $((min + 16 * 1024))
view; oom0=$v_guest_oom_deflates
before=$(actual_kib)
lpid=$(cat /run/libvirtd.pid 2>/dev/null) && kill -0 "$lpid" 2>/dev/null ||
  fail "4: no libvirtd pid in /run/libvirtd.pid (this step restarts the libvirtd tools/vm started)"
lines=$(log_lines)
kill -TERM "$lpid"
wait_for 60 "4: libvirtd exits" eval '! kill -0 "$lpid" 2>/dev/null'
t_down=$(now)
wait_for 30 "4: tided notices libvirtd is gone" eval 'log_from "$lines" | grep -q "Lost the connection"'
lost=$(( lines + $(log_from "$lines" | awk '/Lost the connection/ && !n++ {print NR}') ))
s0=$(date +%s%N); ctl stats >/dev/null || fail "4: tidectl stats failed while libvirtd was away"; s1=$(date +%s%N)
if out=$(ctl policy set "$name" --weight 10 2>&1); then fail "4: a policy change was accepted while libvirtd was away"; fi
grep -q "not connected to libvirt" <<<"$out" || fail "4: policy change refused with: $out"
metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
[ "$(metric tide_libvirt_connected)" = 0 ] || fail "4: /metrics says tide_libvirt_connected $(metric tide_libvirt_connected) while libvirtd is away"
# The guest takes 200 MiB now (straight to its memload port: tools/vm needs libvirt), well inside
# what it holds (no deflate-on-OOM), yet above what its buffer allows: tided would grow it.
python3 - "$memload_sock" <<'PY' || fail "4: the guest did not take its load"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1])
s.sendall(b"alloc:200\n")
buf = b""
while b"\n" not in buf:
    d = s.recv(4096)
    if not d: sys.exit(1)
    buf += d
sys.exit(0 if buf.startswith(b"ok id=") else 1)
PY
wait_for 60 "4: the guest allocated 200 MiB during the outage" grep -q 'alloc 200 MiB done' "$(console)"
"$vm" libvirt-up >/dev/null 2>"$work/libvirt-up.err" || fail "4: libvirtd did not start again: $(cat "$work/libvirt-up.err")"
t_back=$(now)
wait_for 30 "4: tided reconnects" eval 'log_from "$lost" | grep -q "^Connected to"'
t_conn=$(now)
reconnect=$(secs "$t_conn" "$t_back")
awk -v r="$reconnect" 'BEGIN { exit !(r <= 10) }' || fail "4: tided reconnected ${reconnect} s after libvirtd was back (bound: 10 s)"
conn=$(( lost + $(log_from "$lost" | awk '/^Connected to/ && !n++ {print NR}') ))
# Nothing moved while libvirt was away: no balloon call, and the first after the reconnect
# starts where the VM was before the outage and grows it for the load.
during=$(sed -n "$((lost + 1)),$((conn - 1))p" "$work/tided.log" | grep -E "^$name: .* -> |Failed to set" || true)
[ -z "$during" ] || fail "4: tided acted while libvirtd was away: $during"
connected_again() { [ "$(metric tide_libvirt_connected)" = 1 ]; }
wait_for 10 "4: /metrics says connected again" connected_again
[ "$(metric tide_libvirt_disconnects_total)" = 1 ] || fail "4: tide_libvirt_disconnects_total $(metric tide_libvirt_disconnects_total), want 1"
wait_for 60 "4: tided grows the VM for the load taken during the outage" above $((min + 32 * 1024))
first=$(moves_from "$conn" | awk '!n++')
read -r from to <<<"$first"
near "$from" "$before" 4 || fail "4: the first move after the reconnect starts at $((from / 1024)) MiB; the VM held $((before / 1024)) MiB before the outage"
[ "$to" -gt "$from" ] || fail "4: the first move after the reconnect is not a grow: $((from / 1024)) -> $((to / 1024)) MiB"
first_line=$(first_move_line "$conn")
# On the agent's report (fresh: within stale_after), not on what tided knew before the outage.
report_ms=$(grep -o '[0-9]* ms after the agent' <<<"$first_line" | grep -o '^[0-9]*' || true)
[ -z "$report_ms" ] || [ "$report_ms" -lt 10000 ] || fail "4: grew on an agent report ${report_ms} ms old"
view
[ "$v_guest_oom_deflates" -eq "$oom0" ] || fail "4: the guest deflated its balloon (OOM) during the outage: the step's load was too large"
check_floor 4
policy_same 4
log "4. libvirtd stopped for $(secs "$t_back" "$t_down") s; tided answered stats in $(( (s1 - s0) / 1000000 )) ms and refused a policy change meanwhile"
log "4. checked: /metrics said tide_libvirt_connected 0 while libvirtd was away, 1 after, one disconnect counted"
log "4. checked: tided reconnected ${reconnect} s after libvirtd answered again (bound 10 s); no balloon call while it was away; first move after it: '$first_line' (from the $((before / 1024)) MiB held before the outage, for the load taken during it); policy unchanged; never below the minimum (lowest $((low / 1024)) MiB)"
passed=$((passed + 1))

kill -0 "$pid" || fail "tided died"
echo "$test_name: $passed passed, 0 failed"
