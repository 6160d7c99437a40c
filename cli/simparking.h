/* tidectl simulate --parking: core parking on a simulated host (sim/cpu.h), the VMs' CPU demand
 * from a trace, no parking against tide's plan and an intel-lpmd-like rule. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "sim/trace.h"

struct simparking_options {
        const char *trace;
        double hours;          /* 0: the whole trace */
        size_t vms;            /* 0: each trace VM once */
        unsigned cores, smt, nodes; /* 0: sized from the VMs (docs/SIMULATOR.md) */
        unsigned long long seed;
        bool hold, json;
};

/* Runs every rule and prints the comparison (a table, or JSON). Returns a TIDECTL_EXIT_* code;
 * errors name the option or the trace line. */
int simulate_parking(const struct simparking_options *o, FILE *out, FILE *err);

/* Reads a trace (gzip or plain) into *t, keeping the first `hours` (0: all). Returns 0 or a
 * negative errno, with the reason on err (cli/simulate.c). */
int simulate_load_trace(const char *path, double hours, struct sim_trace_set *t, FILE *err);
