#!/usr/bin/env bash
# The Debian package on a fresh Debian 12, as an operator would take it:
#   1. a fresh bookworm root (debootstrap minbase + systemd), `apt install ./tide_*.deb`: the
#      dependencies resolve from Debian, the unit is enabled the Debian way, the files are there
#      (binaries that run, manual pages, the example configuration as a conffile, the static
#      tide-agent for guests, dashboard and alert rules);
#   2. that root booted with systemd (systemd-nspawn, the host's libvirt socket bound in): tided
#      is started by the enablement alone and reaches active only through READY=1 (Type=notify);
#      killed -9 it comes back by itself; `systemctl reload` reloads it;
#   3. a tick that stalls: the host's libvirtd is stopped (SIGSTOP) under it, the watchdog
#      (WatchdogSec, shortened to 4 s by a drop-in) fires, systemd restarts tided, and once
#      libvirtd runs again tided is active again;
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
  [ -n "${stopped_libvirtd:-}" ] && kill -CONT "$stopped_libvirtd" 2>/dev/null
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

# 2. Booted with systemd: started by the enablement alone.
"$repo/tools/vm" libvirt-up >/dev/null || fail "no libvirtd on the host to bind in"
libvirtd_pid=$(pgrep -xo libvirtd) || fail "no libvirtd process"
log "booting the root with systemd (systemd-nspawn), the host's /run/libvirt bound in"
systemd-nspawn -q -b -D "$root" --register=no --keep-unit --bind=/run/libvirt --machine=tide-deb-test \
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
in_ct journalctl -u tided --no-pager | grep -q 'Configuration reloaded' || fail "no reload in the journal"
[ "$(in_ct systemctl show -p MainPID --value tided)" = "$pid2" ] && active || fail "reload changed the process or its state"
echo "checked: systemctl reload: the configuration reloaded in place (RELOADING=1, READY=1), same pid"

# 3. A stalled tick: libvirtd stopped under tided; the watchdog restarts it.
mkdir -p "$root/etc/systemd/system/tided.service.d"
printf '[Service]\nWatchdogSec=4s\n' > "$root/etc/systemd/system/tided.service.d/watchdog-test.conf"
in_ct systemctl daemon-reload
in_ct systemctl restart tided
wait_for 60 active || fail "tided not active with WatchdogSec=4s"
pid3=$(in_ct systemctl show -p MainPID --value tided)
log "stopping the host's libvirtd (SIGSTOP): tided's next tick blocks in a libvirt call"
kill -STOP "$libvirtd_pid"; stopped_libvirtd=$libvirtd_pid
fired() { in_ct journalctl -u tided --no-pager | grep -q 'Watchdog timeout'; }
wait_for 60 fired || fail "the watchdog did not fire while a tick was stuck"
kill -CONT "$libvirtd_pid"; stopped_libvirtd=
restarted() { local p; p=$(in_ct systemctl show -p MainPID --value tided); [ "$p" != 0 ] && [ "$p" != "$pid3" ] && active; }
wait_for 90 restarted || fail "tided did not come back after the watchdog fired"
echo "checked: a tick stuck on a stopped libvirtd: systemd's watchdog fired ('$(in_ct journalctl -u tided --no-pager | grep -o 'Watchdog timeout[^!]*' | head -n 1)'), tided restarted and active again once libvirtd ran"
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
echo "checked: apt remove stopped tided and kept the configuration; apt purge removed it and the enablement"
log "PASS"
