#!/usr/bin/env bash
# The Debian package on a fresh Debian 12, as an operator would take it:
#   1. a fresh bookworm root (debootstrap minbase + systemd), `apt install ./tide_*.deb`: the
#      dependencies resolve from Debian, the unit is enabled the Debian way, the files are there
#      (binaries that run, manual pages, the example configuration as a conffile, the static
#      tide-agent for guests, dashboard and alert rules);
#   2. that root booted with systemd (systemd-nspawn; tided on libvirt's test driver, set in
#      /etc/tide/tided.conf as an operator would): tided is started by the enablement alone
#      and reaches active only through READY=1 (Type=notify), with the unit's whole sandbox
#      (a system call it denies would kill it here); killed -9 it comes back by itself;
#      `systemctl reload` reloads it; reinstalling (an upgrade) restarts it;
#   3. a tick that stalls: tided on the host's libvirtd through a relay the test can hang
#      (stall-proxy.py; the host's libvirtd itself never stops), parking and paging off so it
#      touches nothing; with WatchdogSec=4s (a drop-in) it runs 12 s without a watchdog
#      timeout, then the relay hangs, the watchdog fires, systemd restarts tided, and it is
#      active again once the relay moves;
#   4. `apt remove`: tided is stopped; `apt purge`: nothing of it is left enabled.
# Usage: deb-install.sh PACKAGE.deb (as root; needs debootstrap, systemd-nspawn and the network)
set -euo pipefail
deb=$(realpath "${1:?usage: deb-install.sh PACKAGE.deb}")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mirror=${TIDE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d -p /var/tmp tide-deb.XXXXXX)
root=$work/root
t0=$(date +%s)
log() { echo "[$(($(date +%s) - t0))s] $*"; }
fail() {
  echo "FAIL: $*"
  if [ -n "${leader:-}" ]; then echo "--- journal of tided.service"; in_ct journalctl -u tided --no-pager | tail -n 40 || true; fi
  exit 1
}
cleanup() {
  [ -n "${proxy:-}" ] && kill "$proxy" 2>/dev/null
  if [ -n "${nspawn:-}" ]; then kill "$nspawn" 2>/dev/null; wait "$nspawn" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || fail "run as root"
in_root() { chroot "$root" "$@"; }
# Bounded waits on what the container says, never a fixed sleep.
wait_for() { # seconds command...
  local n=$(($1 * 10)); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# 1. A fresh Debian 12 and the package installed the way the README says.
log "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log"; fail "debootstrap"; }
in_root apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus >"$work/apt.log" 2>&1 ||
  { tail -n 20 "$work/apt.log"; fail "installing systemd in the fresh root"; }
cp "$deb" "$root/root/"
log "apt install ./$(basename "$deb") (recommends left out: libvirt-daemon-system is the host's)"
if ! in_root sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ./$(basename "$deb")" \
     >"$work/install.log" 2>&1; then
  tail -n 30 "$work/install.log"; fail "apt install of the package"
fi
pulled=$(awk '/NEW packages will be installed/ { f = 1; next } f && /^  / { printf "%s", $0; next } f { exit }' "$work/install.log" | tr -s ' ')
echo "checked: apt install resolved the dependencies from Debian:$pulled"

[ -L "$root/etc/systemd/system/multi-user.target.wants/tided.service" ] ||
  fail "tided.service is not enabled after install"
echo "checked: tided.service enabled (multi-user.target.wants), by the package's postinst"
for f in /usr/sbin/tided /usr/bin/tidectl /usr/lib/tide/tide-agent /usr/lib/tide/tide-agent.service \
         /lib/systemd/system/tided.service /etc/tide/tided.conf \
         /usr/share/man/man8/tided.8.gz /usr/share/man/man8/tidectl.8.gz /usr/share/man/man8/tide-agent.8.gz \
         /usr/share/man/man5/tided.conf.5.gz /usr/share/tide/grafana/tide-dashboard.json \
         /usr/share/tide/prometheus/tide-alerts.yml /usr/share/doc/tide/README.md; do
  [ -e "$root$f" ] || fail "the package did not install $f"
done
in_root /usr/sbin/tided --version >/dev/null || fail "tided does not run in the fresh root"
in_root /usr/bin/tidectl --version >/dev/null || fail "tidectl does not run in the fresh root"
! readelf -d "$root/usr/lib/tide/tide-agent" 2>/dev/null | grep -q NEEDED || fail "the shipped tide-agent is not static"
: > "$work/empty.conf"; cp "$work/empty.conf" "$root/root/empty.conf"
diff <(in_root /usr/sbin/tided --check-config /etc/tide/tided.conf) <(in_root /usr/sbin/tided --check-config /root/empty.conf) \
  >/dev/null || fail "the shipped /etc/tide/tided.conf does not parse to the defaults"
in_root dpkg-query -W -f='${Conffiles}\n' tide | grep -q '/etc/tide/tided.conf' || fail "/etc/tide/tided.conf is not a conffile"
echo "checked: binaries run, tide-agent static, 4 manual pages, dashboard, alert rules, /etc/tide/tided.conf a conffile parsing to the defaults"

# 2. Booted with systemd: started by the enablement alone. tided runs on the test driver (no
# daemon, no VMs); the relay's directory stands in for /run/libvirt, for step 3.
sed -i 's|^# *libvirt_uri = .*|libvirt_uri = test:///default|' "$root/etc/tide/tided.conf"
grep -q '^libvirt_uri = test:///default$' "$root/etc/tide/tided.conf" || fail "no libvirt_uri line in the shipped tided.conf"
mkdir -p "$work/libvirt"
log "booting the root with systemd (systemd-nspawn)"
systemd-nspawn -q -b -D "$root" --register=no --keep-unit --bind="$work/libvirt:/run/libvirt" --machine=tide-deb-test \
  >"$work/console.log" 2>&1 </dev/null &
nspawn=$!
leader_of() { pgrep -P "$nspawn" | head -n 1; }
wait_for 60 leader_of || fail "the container did not start"
leader=$(leader_of)
in_ct() { nsenter -t "$leader" -a "$@"; }
booted() { case "$(in_ct systemctl is-system-running 2>/dev/null)" in running|degraded) return 0;; esac; return 1; }
wait_for 120 booted || fail "the container did not finish booting: $(in_ct systemctl is-system-running || true)"
active() { [ "$(in_ct systemctl is-active tided)" = active ]; }
wait_for 60 active || fail "tided.service is not active after boot: $(in_ct systemctl is-active tided || true)"
[ "$(in_ct systemctl show -p Type --value tided)" = notify ] || fail "tided.service is not Type=notify"
in_ct tidectl stats >/dev/null || fail "tidectl stats does not answer inside"
pid1=$(in_ct systemctl show -p MainPID --value tided)
echo "checked: booted, tided.service active (Type=notify: only after READY=1), pid $pid1, tidectl stats answers"

# Killed -9: back by itself (Restart=on-failure, RestartSec=5s).
k=$(date +%s.%N)
in_ct systemctl kill -s KILL tided
back() { local p; p=$(in_ct systemctl show -p MainPID --value tided); [ "$p" != 0 ] && [ "$p" != "$pid1" ] && active; }
wait_for 60 back || fail "tided did not come back after kill -9"
pid2=$(in_ct systemctl show -p MainPID --value tided)
echo "checked: killed -9, tided came back by itself as pid $pid2 in $(awk -v a="$k" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

in_ct systemctl reload tided || fail "systemctl reload"
reloaded() { in_ct journalctl -u tided --no-pager | grep -q 'Configuration reloaded'; }
wait_for 30 reloaded || fail "no reload in the journal"
[ "$(in_ct systemctl show -p MainPID --value tided)" = "$pid2" ] && active || fail "reload changed the process or its state"
echo "checked: systemctl reload: the configuration reloaded in place (RELOADING=1, READY=1), same pid"

# An upgrade (the same package again): postinst restarts tided, and it is still enabled.
in_ct sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall ./$(basename "$deb")" \
  >"$work/reinstall.log" 2>&1 || { tail "$work/reinstall.log"; fail "reinstalling the package"; }
upgraded() { local p; p=$(in_ct systemctl show -p MainPID --value tided); [ "$p" != 0 ] && [ "$p" != "$pid2" ] && active; }
wait_for 60 upgraded || fail "tided was not restarted by the upgrade"
[ -L "$root/etc/systemd/system/multi-user.target.wants/tided.service" ] || fail "the upgrade disabled tided"
grep -q '^libvirt_uri = test:///default$' "$root/etc/tide/tided.conf" || fail "the upgrade overwrote the edited conffile"
echo "checked: an upgrade restarted tided (pid $(in_ct systemctl show -p MainPID --value tided)), kept it enabled and the edited /etc/tide/tided.conf"

# 3. A stalled tick. tided is pointed at the host's libvirtd through the relay, touching nothing:
# parking and paging off, and no VM there has a tide policy (tided leaves those alone).
"$repo/tools/vm" libvirt-up >/dev/null || fail "no libvirtd on the host"
for d in $(virsh -c qemu:///system list --name --all); do
  ! virsh -c qemu:///system metadata "$d" urn:x-tide:policy:1 >/dev/null 2>&1 ||
    fail "domain $d on this host has a tide policy: this test would run a second tided on it"
done
python3 "$here/stall-proxy.py" "$work/libvirt/libvirt-sock" /run/libvirt/libvirt-sock &
proxy=$!
wait_for 10 test -S "$work/libvirt/libvirt-sock" || fail "the relay did not start"
sed -i 's|^libvirt_uri = test:///default$|libvirt_uri = qemu:///system|' "$root/etc/tide/tided.conf"
printf '[paging]\nsmart_paging = off\n[parking]\nmode = off\n' >> "$root/etc/tide/tided.conf"
mkdir -p "$root/etc/systemd/system/tided.service.d"
printf '[Service]\nWatchdogSec=4s\n' > "$root/etc/systemd/system/tided.service.d/watchdog-test.conf"
in_ct systemctl daemon-reload
in_ct systemctl restart tided
wait_for 60 active || fail "tided not active on qemu:///system with WatchdogSec=4s"
in_ct journalctl -u tided --no-pager | grep -q 'Connected to qemu:///system' || fail "tided did not connect through the relay"
pid3=$(in_ct systemctl show -p MainPID --value tided)
restarts=$(in_ct systemctl show -p NRestarts --value tided)
fired() { in_ct journalctl -u tided --no-pager | grep -q 'Watchdog timeout'; }
# The control: three watchdog periods of ticks on a moving relay, no timeout, no restart.
for _ in $(seq 12); do sleep 1; done
! fired || fail "the watchdog fired while ticks were finishing"
[ "$(in_ct systemctl show -p MainPID --value tided)" = "$pid3" ] &&
  [ "$(in_ct systemctl show -p NRestarts --value tided)" = "$restarts" ] || fail "tided restarted while ticks were finishing"
log "hanging the relay: tided's next libvirt call blocks inside a tick"
kill -USR1 "$proxy"
wait_for 60 fired || fail "the watchdog did not fire while a tick was stuck"
kill -USR2 "$proxy"
restarted() { local p; p=$(in_ct systemctl show -p MainPID --value tided); [ "$p" != 0 ] && [ "$p" != "$pid3" ] && active; }
wait_for 90 restarted || fail "tided did not come back after the watchdog fired"
echo "checked: 12 s of ticks with WatchdogSec=4s: no timeout; a tick stuck on a hung libvirt socket: systemd's watchdog fired ('$(in_ct journalctl -u tided --no-pager | grep -o 'Watchdog timeout[^!]*' | head -n 1)'), tided restarted and active again once it moved"
rm -r "$root/etc/systemd/system/tided.service.d"
in_ct systemctl daemon-reload

# 4. Removal stops it; purge forgets it.
in_ct sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y tide' >"$work/remove.log" 2>&1 || { tail "$work/remove.log"; fail "apt remove"; }
[ "$(in_ct systemctl is-active tided || true)" != active ] || fail "tided still active after apt remove"
in_ct sh -c 'for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = tided ] && exit 0; done; exit 1' &&
  fail "a tided process is left after apt remove"
[ -e "$root/etc/tide/tided.conf" ] || fail "apt remove took the conffile (only purge may)"
in_ct sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y tide' >"$work/purge.log" 2>&1 || { tail "$work/purge.log"; fail "apt purge"; }
[ ! -e "$root/etc/tide/tided.conf" ] || fail "apt purge left /etc/tide/tided.conf"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/tided.service" ] || fail "apt purge left the unit enabled"
[ ! -e "$root/var/lib/tide" ] || fail "apt purge left /var/lib/tide: $(ls -A "$root/var/lib/tide")"
echo "checked: apt remove stopped tided and kept the configuration; apt purge removed it and the enablement"
log "PASS"
