/* What the benchmarks share: a monotonic nanosecond clock, medians, this process's memory, and
 * the simulated host they run on. Header-only: each bench is one file plus this. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "common/units.h"
#include "sim/sim.h"

static inline uint64_t bench_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Sorts samples[0..n) and returns the value at percentile p (0-100). */
static inline uint64_t bench_percentile(uint64_t *samples, size_t n, unsigned p) {
        qsort(samples, n, sizeof(*samples), bench_cmp_u64);
        return samples[n * p / 100 < n ? n * p / 100 : n - 1];
}

/* VmRSS or VmHWM (peak) of this process in KiB, from /proc/self/status; 0 when unreadable. */
static inline long bench_status_kib(const char *field) {
        char line[256];
        long v = 0;
        size_t len = strlen(field);
        FILE *f = fopen("/proc/self/status", "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, len) == 0 && line[len] == ':') {
                        v = strtol(line + len + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

/* n managed guests of 1-8 GiB (minimum a quarter), demand on a seeded random walk between a
 * sixteenth and nine tenths of the boot size; every other one with tide-agent, the rest on
 * balloon statistics; running for an hour, so no quiet period hides the work. at_minimum: each
 * starts at its minimum (a host that could not hold their boot sizes). */
static inline int bench_add_guests(struct sim *s, size_t n, uint64_t seed, bool at_minimum) {
        for (size_t i = 0; i < n; i++) {
                uint64_t mem = (UINT64_C(1) << (i % 4)) * KIB_PER_GIB;
                struct sim_vm_spec g = {
                        .boot_kib = mem,
                        .node = -1,
                        .have_policy = true,
                        .agent = i % 2 ? SIM_AGENT_HONEST : SIM_AGENT_NONE,
                        .balloon_stats = true,
                        .uptime_usec = UINT64_C(3600) * USEC_PER_SEC,
                        .assigned_kib = at_minimum ? mem / 4 : mem,
                        .demand = { .kind = SIM_DEMAND_WALK, .base_kib = mem / 3, .step_kib = mem / 64,
                                    .min_kib = mem / 16, .max_kib = mem * 9 / 10, .seed = seed + i },
                };
                snprintf(g.name, sizeof(g.name), "vm%zu", i);
                policy_init(&g.policy);
                g.policy.startup_kib = g.policy.maximum_kib = mem;
                g.policy.minimum_kib = mem / 4;
                int r = sim_add_vm(s, &g);
                if (r < 0)
                        return r;
        }
        return 0;
}
