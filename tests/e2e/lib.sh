# Shared by the end-to-end tests: one real guest (tools/vm), one tided on qemu:///system with a
# private socket and config, helpers to read both sides. Source it after setting `name` and
# `bin`; it installs the cleanup trap.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vm=$repo/tools/vm
uri=qemu:///system
work=$(mktemp -d)
sock=$work/tided.sock
t0=$(date +%s)
passed=0
test_name=${test_name:-e2e}

log() { printf '[%4ds] %s\n' $(( $(date +%s) - t0 )) "$*"; }
fail() {
  echo "FAIL: $*"
  echo "--- tided log"; tail -n 40 "$work/tided.log" || true
  echo "--- guest console"; tail -n 20 "$("$vm" console-log "$name" 2>/dev/null)" 2>/dev/null || true
  echo "$test_name: $passed passed, 1 failed"
  exit 1
}
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  "$vm" destroy "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The quiet period is shortened and shrink steps enlarged so a test takes minutes; the rules
# are the ones tided runs with the defaults. Core parking is off: each test proves one thing,
# and parking.sh proves parking (turning it on there).
cat > "$work/tided.conf" <<CONF
[tided]
metrics = off
[memory]
quiet_period = 5s
shrink_step = 10
[parking]
mode = off
CONF

# More tided options for a test (faults.sh: -v, so its log says what each tick did).
tided_flags=()
start_tided() {
  "$bin/tided" --foreground "${tided_flags[@]}" --connect "$uri" --config "$work/tided.conf" --socket "$sock" >>"$work/tided.log" 2>&1 &
  pid=$!
  # Until it answers: after a kill -9 the dead tided's socket file is still there.
  for _ in $(seq 600); do
    "$bin/tidectl" stats --socket "$sock" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "tided did not start"
}
ctl() { "$bin/tidectl" "$@" --socket "$sock"; }
stat_kib() { # stat_kib FIELD [VM]: a field from tidectl stats --json for VM ($name; -1 when null)
  ctl stats "${2:-$name}" --json | python3 -c '
import json,sys; d=json.load(sys.stdin)["domains"][0]; v=d[sys.argv[1]]; print(v if v is not None else -1)' "$1"
}
actual_kib() { virsh -c "$uri" dommemstat "${1:-$name}" | awk '$1=="actual"{print $2}'; } # actual_kib [VM]
below() { [ "$(actual_kib)" -le "$1" ]; } # below KIB: $name's balloon actual is at most KIB
above() { [ "$(actual_kib)" -ge "$1" ]; } # above KIB: at least KIB
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 2))); do "$@" && return 0; sleep 0.5; done
  fail "timed out after ${secs}s: $what"
}
chunks() { # chunks N: a memload script allocating N x 50 MiB, one step every 2 s
  local s=""; for _ in $(seq "$1"); do s="$s,alloc:50,sleep:2"; done; echo "${s#,}"
}
# load SCRIPT [--wait] [--timeout S]: the guest ($name) starts SCRIPT now (tools/vm load). Load
# is started by the test when it is ready for it, never on guest uptime: boot takes from seconds
# to minutes depending on the machine and how warm libvirt is.
load() { "$vm" load "$name" "$@" >/dev/null || fail "guest $name did not take load '$1'"; }

# agent_image: guests from here on boot the image with tide-agent in it. The guest needs a static
# agent (it has no libc); the sanitizer build's agent is dynamic, so fall back to the plain build's.
agent_image() {
  agent=$bin/tide-agent
  static() { ! readelf -d "$1" 2>/dev/null | grep -q NEEDED; }
  static "$agent" || agent=$repo/build/bin/tide-agent
  [ -x "$agent" ] && static "$agent" || fail "no static tide-agent (build the plain tree first: make)"
  image=$repo/build-guest-agent
  "$repo/tools/guest-image/build" --agent "$agent" "$image" >/dev/null
  export TIDE_GUEST_IMAGE=$image TIDE_GUEST_AGENT=$agent
}
