/* VM traces for the simulator: the format of ../shared/traces/ (CSV with the header
 * vm,t_s,cores,cpu_pct,mem_provisioned_kib,mem_used_kib; one row per VM per sample), parsed line
 * by line so the caller streams a file of any size (gzip included) through it. Pure: the caller
 * reads; every field is checked and an error names the line and the field. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

#define SIM_TRACE_HEADER "vm,t_s,cores,cpu_pct,mem_provisioned_kib,mem_used_kib"
/* A trace VM larger than this is a typo or an attack on our memory, not a VM (64 TiB). */
#define SIM_TRACE_MAX_KIB (UINT64_C(64) << 30)
#define SIM_TRACE_MAX_VMS 100000

struct sim_trace_vm {
        long id;                    /* the trace's VM number */
        unsigned cores;             /* the largest seen */
        uint64_t provisioned_kib;   /* the largest seen */
        size_t n, cap;
        uint64_t *t_s;              /* sample times, Unix seconds, increasing */
        uint64_t *used_kib;
        uint64_t *t_usec;           /* after sim_trace_finish(): relative to the trace's first sample */
        double *cpu_pct;
};

struct sim_trace_set {
        struct sim_trace_vm *vms;
        size_t n, cap;
        size_t lines;               /* lines fed, the header included */
        size_t gaps;                /* rows with 0 KiB provisioned: no sample (the VM reported nothing) */
        size_t duplicates;          /* rows at a VM's previous sample time: the later replaced it */
        size_t capped;              /* rows using more than provisioned: taken as provisioned */
        uint64_t t0_s, t_end_s;     /* first and last sample over all VMs */
        bool have_t0;
        size_t last;                /* the VM the previous row was for (rows come grouped by VM) */
        size_t *index, index_cap;   /* id -> VM, open addressing, SIZE_MAX empty */
};

/* Feeds one line (without or with its newline). The first must be the header. Returns 0, or
 * -EINVAL with "line N: FIELD: what is wrong" in err, -ENOMEM, -E2BIG past SIM_TRACE_MAX_VMS. */
int sim_trace_feed(struct sim_trace_set *t, const char *line, char *err, size_t errlen);
/* After the last line: times relative to the first sample over all VMs, keeping only samples in
 * the first max_usec (0: all). Returns 0, or -EINVAL when the trace holds no sample. */
int sim_trace_finish(struct sim_trace_set *t, uint64_t max_usec, char *err, size_t errlen);
/* One VM's use as the simulator's demand (valid while t lives). */
struct sim_trace sim_trace_of(const struct sim_trace_vm *v, bool hold);
void sim_trace_set_done(struct sim_trace_set *t);
