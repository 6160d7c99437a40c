/* Per-CPU load for the parking plan: each CPU's busy share of the time since the last read, from
 * /proc/stat through libproc2. I/O (parking_load_*); the share itself is pure
 * (parking_busy_share()). */
#pragma once

#include <stdbool.h>

/* One CPU's /proc/stat tics over an interval (deltas). guest and guest_nice are inside user and
 * nice already (proc(5)); steal is time the CPU was not ours to run (a host that is itself a
 * VM), counted neither busy nor idle. */
struct parking_tics {
        long user, nice, system, idle, iowait, irq, softirq, steal;
};

/* busy / (busy + idle), busy = user + nice + system + irq + softirq, idle = idle + iowait; in
 * [0, 1]; -1 when the interval holds no tic (or a counter went backwards: a CPU that went
 * offline and came back). */
double parking_busy_share(const struct parking_tics *d);

struct parking_load;

/* Returns 0 or -errno (-ENOMEM, or what libproc2 says when /proc/stat cannot be read). */
int parking_load_new(struct parking_load **ret);
struct parking_load *parking_load_free(struct parking_load *l);

/* Reads /proc/stat: busy[cpu] for cpu < n (-1 for a CPU not listed: offline). The first read
 * has nothing to compare with: *ret_known false and every entry -1. Returns the highest CPU
 * number listed + 1 (entries past n are not written), or -errno. */
int parking_load_read(struct parking_load *l, double *busy, unsigned n, bool *ret_known);
