#!/usr/bin/env bash
# tide-agent's footprint: RSS and CPU of the agent reporting once a second for SECONDS.
#   bench/agent-footprint.sh [SECONDS=60] [AGENT=build/bin/tide-agent]
# Runs on the host, as a fair proxy for a guest: the agent reads the host's real /proc through
# the same code (libproc2 meminfo + vmstat, /proc/pressure/memory), and talks to a raw pty
# instead of a virtio-serial port; this script plays tided (answers hello with welcome,
# interval_ms 1000, and reads every report). CPU is the agent's on-CPU time from
# /proc/PID/schedstat (ns; /proc/PID/stat ticks when absent) over the measured window, which
# starts after the first report; RSS is VmRSS at the end (VmHWM, the peak, goes to stderr).
# Prints one line: rss_kib N cpu_pct X   (X: percent of one CPU)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
agent=${2:-$repo/build/bin/tide-agent}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "agent-footprint: SECONDS must be a positive integer" >&2; exit 2; }
[ -x "$agent" ] || { echo "agent-footprint: $agent not found (build the tide-agent target)" >&2; exit 2; }

exec python3 - "$agent" "$secs" <<'PY'
import os, pty, select, signal, subprocess, sys, tempfile, time, tty

agent, secs = sys.argv[1], int(sys.argv[2])
master, slave = pty.openpty()
tty.setraw(slave)  # no echo, no line discipline: bytes through as on a virtio port
log = tempfile.TemporaryFile()
proc = subprocess.Popen([agent, "--port", os.ttyname(slave)], stderr=log)
# slave stays open here too: with no slave fd at all, reading the master fails with EIO

def cpu_ns(pid):
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")

def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1

buf, reports, start, c0, t0 = b"", 0, None, 0, 0.0
deadline = time.monotonic() + 15  # to the first report; the measured window comes after it
try:
    while True:
        now = time.monotonic()
        if start is not None and now - t0 >= secs:
            break
        if start is None and now > deadline:
            log.seek(0)
            sys.exit("agent-footprint: no report within 15 s; agent stderr: " + log.read().decode(errors="replace"))
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            continue
        buf += os.read(master, 65536)
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b'{"type":"hello"'):
                os.write(master, b'{"type":"welcome","protocol":1,"interval_ms":1000}\n')
            elif line.startswith(b'{"type":"report"'):
                reports += 1
                if start is None:
                    start, t0, c0 = True, time.monotonic(), cpu_ns(proc.pid)
    c1, t1 = cpu_ns(proc.pid), time.monotonic()
    rss, hwm = status(proc.pid, "VmRSS"), status(proc.pid, "VmHWM")
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
print(f"agent-footprint: {reports} reports in {t1 - t0:.1f} s, cpu {(c1 - c0) / 1e6:.1f} ms, "
      f"VmHWM {hwm} KiB, agent exit {proc.returncode}", file=sys.stderr)
print(f"rss_kib {rss} cpu_pct {100 * (c1 - c0) / 1e9 / (t1 - t0):.4f}")
PY
