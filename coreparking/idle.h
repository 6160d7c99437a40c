/* What parking is measured by: each CPU's cpuidle states (how long it spent in each, how often
 * it entered) and, where the kernel has it, RAPL's energy counter. Read under an injectable root
 * (tests/fixtures/sys/<scenario>/...; "/" or NULL in production). The residency over an
 * interval is pure (parking_idle_residency()). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/hv.h"
#include "coreparking/measure.h"
#include "coreparking/plan.h"

/* Idle states a CPU may have (intel_idle lists up to ~10; the kernel's CPUIDLE_STATE_MAX is 10). */
#define PARKING_IDLE_STATES 10
#define PARKING_IDLE_NAME_MAX 32

struct parking_idle_state {
        char name[PARKING_IDLE_NAME_MAX]; /* "POLL", "C1", "C6", "haltpoll idle" */
        uint64_t latency_usec;            /* its exit latency */
        uint64_t time_usec;               /* spent in it since boot */
        uint64_t usage;                   /* entries since boot */
};

struct parking_idle {
        unsigned n; /* states listed; 0: no cpuidle for this CPU (then nothing can be measured) */
        struct parking_idle_state s[PARKING_IDLE_STATES];
};

/* Reads cpu's states under root (/sys/devices/system/cpu/cpuN/cpuidle/stateK/). A CPU without a
 * cpuidle directory reads as n = 0, returns 0. Returns -errno for a state that cannot be read or
 * holds what is not a number (-EINVAL), or -ERANGE past PARKING_IDLE_STATES. */
int parking_idle_read(const char *root, unsigned cpu, struct parking_idle *ret);

/* A state is deep when its exit latency is at least this: past POLL and the HLT-like C1 (1-2 us
 * on Intel's intel_idle tables, 1 us for haltpoll), where the core's clocks stop and the
 * savings are. */
#define PARKING_DEEP_LATENCY_USEC 10

/* The share of the interval between two reads of one CPU (elapsed_usec apart) spent in any idle
 * state (*ret_idle) and in deep ones (*ret_deep), each in [0, 1]; entries over the interval in
 * *ret_entries (may be NULL). Returns false when the reads cannot be compared (different state
 * lists, a counter that went back, no time elapsed). */
bool parking_idle_residency(const struct parking_idle *before, const struct parking_idle *after,
                            uint64_t elapsed_usec, double *ret_idle, double *ret_deep, uint64_t *ret_entries);

/* RAPL: the sum of every package's energy counter (µJ) under root
 * (/sys/class/powercap/intel-rapl:N/energy_uj), the smallest range one wraps at, and how many
 * packages. Each package wraps on its own: a sum lower than the last one read means one did, and
 * that interval is not measured. -ENOENT: no RAPL (a VM, a part the kernel has no powercap driver
 * for): then tide estimates from its energy model. */
int parking_rapl_read(const char *root, uint64_t *ret_uj, uint64_t *ret_range_uj, unsigned *ret_packages);

/* The host's CPUs read interval after interval (tided, every regular tick): each CPU's last read,
 * so the next gives the residency since. */
struct parking_idle_host {
        unsigned n;                 /* CPUs 0..n) */
        struct parking_idle *prev;  /* each CPU's last read */
        bool *prev_ok;              /* ... when it could be read */
        double *idle, *deep;        /* each CPU's shares of the last interval, < 0: not measured */
        uint64_t read_usec;         /* when they were read; 0: never */
        bool rapl_ok;               /* RAPL read last time */
        uint64_t rapl_prev_uj, rapl_range_uj;
        bool has_deep;              /* some CPU read lists a deep state (PARKING_DEEP_LATENCY_USEC) */
        uint64_t reads;             /* calls so far */
};
/* Between two reads of a CPU's whole state list, only its counters are read (time, usage). */
#define PARKING_IDLE_FULL_EVERY 64

/* For CPUs 0..n). Returns 0 or -ENOMEM. */
int parking_idle_host_init(struct parking_idle_host *h, unsigned n);
void parking_idle_host_done(struct parking_idle_host *h);

/* Reads every CPU of cores[0..n_cores) (those below h->n) and RAPL under root at now_usec into
 * *ret: the host over the interval since the last call (seconds 0 on the first, or when the clock
 * did not move: nothing to compare), per core: a core is idle, and deep idle, no more than its
 * busiest sibling lets it be (the least of their shares), and busy as its busiest sibling.
 * busy[cpu] (0..h->n), each CPU's busy share from the load (< 0 unknown: not counted), prices
 * the busy time; NULL: none. A core with a CPU that cannot be read this time is left out of this
 * interval and the next (each CPU's own shares, h->idle and h->deep, are kept). RAPL that wrapped
 * is counted once around its range; without RAPL ret->rapl_joules is -1. Returns 0, or -EINVAL
 * for NULL arguments. */
int parking_idle_host_read(struct parking_idle_host *h, const char *root, const struct parking_core *cores,
                           size_t n_cores, const double *busy, uint64_t now_usec, struct parking_sample *ret);
