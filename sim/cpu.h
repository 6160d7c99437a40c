/* Core parking on a simulated host (pure: no I/O, no clock). The VMs' CPU demand comes from a
 * trace (cores x cpu_pct, ../shared/traces), second by second, on a host of whole cores; a rule
 * decides which cores are parked: none, tide's (coreparking/plan.h: the code tided runs, every
 * tided tick) or an intel-lpmd-like threshold rule. Each run reports the energy (the model tided
 * estimates with, coreparking/measure.h, and an idle-depth model), the cores parked over time,
 * the CPU demand above the unparked capacity (time a VM would wait for a CPU) and the reversals.
 * docs/SIMULATOR.md "Core parking" has the model, its assumptions and its sources. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coreparking/plan.h"

enum sim_cpu_rule {
        SIM_CPU_NONE, /* nothing parked: the demand spreads over every CPU */
        SIM_CPU_TIDE, /* tide's plan, at tided's tick */
        SIM_CPU_LPMD, /* intel-lpmd-like: every second, into low-power mode (only the first core
                       * of each NUMA node unparked) at system utilisation <= 10 %, out when the
                       * busiest of those CPUs passes 95 % (../shared/PEERS.md) */
        SIM_CPU_RULES,
};
/* "none", "tide", "lpmd"; NULL for an unknown rule. */
const char *sim_cpu_rule_to_string(enum sim_cpu_rule r);

/* The host: cores x threads_per_core CPUs (siblings numbered together: core k holds CPUs
 * k*T .. k*T+T-1), the cores split evenly over nodes (one package each). */
struct sim_cpu_host {
        unsigned cores, threads_per_core, nodes;
};
#define SIM_CPU_MAX_CPUS HV_CPUSET_MAX

/* One VM's CPU use: n samples at t_usec (relative to the run's start, increasing) of cpu_pct
 * (% of its cores), from offset_usec on (a copy of a trace VM runs later). */
struct sim_cpu_vm {
        size_t n;
        const uint64_t *t_usec;
        const double *cpu_pct;
        unsigned cores;
        uint64_t offset_usec;
};

/* The VMs' summed CPU demand (CPUs wanted), second by second over duration_usec, into a new
 * array of *ret_n entries (*ret; the caller frees it): each VM's sample (held, or interpolated to
 * the next) times a factor for the second, uniform in [0.5, 1.5] from a generator seeded with
 * seed (mean 1: the trace's average holds; the variation a 5-minute sample hides), at most its
 * cores. Every rule runs on the same demand. Returns 0, -EINVAL (no duration; n > 0 with no
 * vms), -ENOMEM. */
int sim_cpu_demand(const struct sim_cpu_vm *vms, size_t n, uint64_t duration_usec, uint64_t seed, bool hold,
                   double **ret, size_t *ret_n);

struct sim_cpu_options {
        enum sim_cpu_rule rule;
        struct sim_cpu_host host;
        struct parking_config parking; /* tide's rule ([parking] in tided.conf) */
        uint64_t tick_usec;            /* tide's rule decides this often (tided's interval) */
};

struct sim_cpu_result {
        double seconds;
        double joules;             /* the host's cores, estimated */
        double demand_cpu_s;       /* what the VMs asked for */
        double wait_cpu_s;         /* CPU demand above the unparked CPUs, summed each second: the
                                    * work that has to wait for a CPU (it runs later, as CPUs come
                                    * free, and is counted once) */
        double wait_seconds;       /* seconds in which the demand was above them */
        double parked_core_s;      /* cores parked, over time */
        unsigned max_parked_cores;
        double deep_core_s;        /* cores in deep idle, over time */
        uint64_t parks, unparks;   /* changes that parked or unparked cores */
        uint64_t reversals;        /* unparks that undid a park (tide: its own count; lpmd: exits
                                    * from low-power mode) */
};

/* Runs one rule over demand[0..n) (sim_cpu_demand(): one entry per second). Returns 0; -EINVAL
 * for a bad host (no core, more CPUs than SIM_CPU_MAX_CPUS, more nodes than cores), no demand,
 * tick_usec 0 for tide, or a config parking_plan() refuses; -ENOMEM. */
int sim_cpu_run(const struct sim_cpu_options *o, const double *demand, size_t n, struct sim_cpu_result *ret);

/* The idle-depth model: the share of a core's idle time in deep states when the core is active
 * for `active` of the time running VMs' work (wake-ups cut its idle into pieces too short for a
 * deep state), and when it is parked. An assumption, not a measurement (docs/SIMULATOR.md). */
double sim_cpu_deep_share(double active);
#define SIM_CPU_PARKED_DEEP 0.98
