#!/usr/bin/env bash
# tided under a stand-in for systemd (Type=notify), on libvirt's test driver: READY=1 only once
# the control socket answers, WATCHDOG=1 at half of $WATCHDOG_USEC while ticks finish,
# RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM; a start that fails says so and
# never READY=1. (A tick that stalls stopping the pings, under a real systemd:
# tests/packaging/deb-install.sh.)
set -euo pipefail
bin=${1:?usage: tided-notify.sh BINDIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
sock=$work/tided.sock
notes=$work/notify.log
port=$((20000 + RANDOM % 20000))
# Smart Paging off: on the test driver no real paging file's domain exists, and tided would
# switch off whatever it found in the host's /var/lib/tide/smartpaging.
printf '[tided]\nmetrics = 127.0.0.1:%s\n[paging]\nsmart_paging = off\n[parking]\nmode = off\nirqbalance = no\n' \
  "$port" > "$work/tided.conf"
fail() { echo "FAIL: $*"; echo "--- notifications"; cat "$notes" || true; echo "--- tided"; cat "$work/tided.log" || true; exit 1; }
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
  [ -n "${listener:-}" ] && kill "$listener" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
# Waits up to ~20 s for a line matching $1 in the notifications.
wait_note() { for _ in $(seq 200); do grep -q -- "$1" "$notes" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
count() { grep -c -- "$1" "$notes" 2>/dev/null || true; }

python3 "$here/notify-listen.py" "$work/notify.sock" "$notes" &
listener=$!
for _ in $(seq 50); do [ -S "$work/notify.sock" ] && break; sleep 0.1; done
[ -S "$work/notify.sock" ] || fail "the stand-in notification socket did not appear"

# 1. A start that fails (a control socket in a directory that does not exist): no READY=1.
if NOTIFY_SOCKET=$work/notify.sock "$bin/tided" --connect test:///default --config "$work/tided.conf" \
     --socket "$work/no/such/dir/tided.sock" >"$work/tided.log" 2>&1; then
  fail "tided started with an impossible control socket"
fi
wait_note 'STATUS=Failed to start|ERRNO=' || fail "a failed start did not tell systemd why"
[ "$(count 'READY=1')" -eq 0 ] || fail "a failed start said READY=1"
echo "checked: a failed start sends '$(grep -o 'STATUS=Failed.*' "$notes")', no READY=1"
: > "$notes"

# 2. A good start, watched: WATCHDOG_USEC=1s means a ping every 0.5 s.
NOTIFY_SOCKET=$work/notify.sock WATCHDOG_USEC=1000000 \
  "$bin/tided" --connect test:///default --config "$work/tided.conf" --socket "$sock" \
  >"$work/tided.log" 2>&1 &
pid=$!
wait_note 'READY=1' || fail "no READY=1"
# READY=1 comes after the socket is listening: a client may connect as soon as systemd says started.
[ -S "$sock" ] || fail "READY=1 before the control socket exists"
"$bin/tidectl" stats --socket "$sock" >/dev/null || fail "the control socket does not answer after READY=1"
grep -q 'READY=1|STATUS=Ticking every 1000 ms on test:///default' "$notes" || fail "READY=1 without its STATUS"
echo "checked: READY=1 with '$(grep -o 'STATUS=Ticking[^|]*' "$notes")', the control socket answers by then"

# Pings: at least 4 in the ~2.5 s after the fifth appears, i.e. one every ~0.5 s.
for _ in $(seq 100); do [ "$(count 'WATCHDOG=1')" -ge 5 ] && break; sleep 0.1; done
[ "$(count 'WATCHDOG=1')" -ge 5 ] || fail "fewer than 5 watchdog pings"
gaps=$(grep 'WATCHDOG=1' "$notes" | awk 'NR > 1 { printf "%.2f\n", $1 - prev } { prev = $1 }' | sort -n)
max_gap=$(tail -n 1 <<<"$gaps")
awk -v g="$max_gap" 'BEGIN { exit !(g < 1.0) }' || fail "a gap of ${max_gap}s between pings, WatchdogSec is 1s"
echo "checked: $(count 'WATCHDOG=1') watchdog pings, the longest gap ${max_gap}s (< WatchdogSec 1s)"

# A second tided on the same socket stops before it adopts or gives back anything of the running
# one's: a record beside the socket (as core parking keeps) is left as it is.
echo 3 > "$work/parking-irqbalance.state"
if "$bin/tided" --connect test:///default --config "$work/tided.conf" --socket "$sock" >"$work/second.log" 2>&1; then
  fail "a second tided started on a live tided's socket"
fi
grep -q 'another tided is running' "$work/second.log" || fail "the second tided said: $(cat "$work/second.log")"
[ "$(cat "$work/parking-irqbalance.state")" = 3 ] || fail "the second tided touched the running one's record"
grep -q 'Connected to' "$work/second.log" && fail "the second tided connected to libvirt before it checked the socket"
"$bin/tidectl" stats --socket "$sock" >/dev/null || fail "the running tided stopped answering"
rm "$work/parking-irqbalance.state"
echo "checked: a second tided on the socket exits ('$(grep -o '[^:]*another tided[^;]*' "$work/second.log")'), touching nothing of the running one's"

# 3. SIGHUP: RELOADING=1 (with the monotonic time systemd 253+ wants), then READY=1 again, with
# what came of it; a file with an error is refused and said so, tided runs on.
kill -HUP "$pid"
wait_note 'RELOADING=1|MONOTONIC_USEC=[0-9]' || fail "no RELOADING=1 at SIGHUP"
wait_note 'READY=1|STATUS=Configuration reloaded' || fail "no READY=1 after the reload"
awk '/RELOADING=1/ { r = NR } /READY=1\|STATUS=Configuration reloaded/ { if (r && NR > r) ok = 1 } END { exit !ok }' "$notes" ||
  fail "READY=1 did not follow RELOADING=1"
echo "checked: SIGHUP sends RELOADING=1 (with MONOTONIC_USEC), then READY=1 with 'STATUS=Configuration reloaded'"
cp "$work/tided.conf" "$work/good.conf"
printf '[memory]\nreserve = lots\n' >> "$work/tided.conf"
kill -HUP "$pid"
wait_note 'READY=1|STATUS=Reload refused' || fail "a refused reload was not told to systemd"
cp "$work/good.conf" "$work/tided.conf"
"$bin/tidectl" stats --socket "$sock" >/dev/null || fail "tided does not answer after a refused reload"
echo "checked: a file with an error: READY=1 with '$(grep -o 'STATUS=Reload refused[^|]*' "$notes" | head -n 1 | cut -c1-60)...', tided runs on"

# 4. SIGTERM: STOPPING=1, and a clean exit.
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "tided exited $rc after SIGTERM"
wait_note 'STOPPING=1' || fail "no STOPPING=1 at SIGTERM"
echo "checked: SIGTERM sends STOPPING=1 and tided exits 0"

# 5. Without $NOTIFY_SOCKET (by hand, from a shell) sd_notify() has nowhere to send: tided runs
# in the foreground all the same and answers.
env -u NOTIFY_SOCKET -u WATCHDOG_USEC "$bin/tided" --connect test:///default --config "$work/tided.conf" \
  --socket "$sock" >"$work/tided.log" 2>&1 &
pid=$!
for _ in $(seq 100); do "$bin/tidectl" stats --socket "$sock" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/tidectl" stats --socket "$sock" >/dev/null || fail "tided without NOTIFY_SOCKET does not answer"
kill -TERM "$pid"; wait "$pid" || fail "tided without NOTIFY_SOCKET did not exit 0 at SIGTERM"; pid=
echo "checked: without \$NOTIFY_SOCKET or \$WATCHDOG_USEC tided runs in the foreground, answers and exits 0"
echo "PASS"
