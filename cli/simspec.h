/* `tidectl simulate`'s scenario file: hosts, VM groups (policy, boot profile, demand profile,
 * agent), events (restart all, staggered starts, a host failure), the run's length, and the
 * defaults for VMs taken from a trace. Format in docs/SIMULATOR.md; every field is untrusted and
 * an error names the file, the field and what is wrong. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"
#include "sim/sim.h"

#define SIMSPEC_NAME_MAX 48
#define SIMSPEC_HOSTS_MAX 64
#define SIMSPEC_GROUPS_MAX 256
#define SIMSPEC_EVENTS_MAX 256
#define SIMSPEC_VMS_MAX 100000
#define SIMSPEC_FILE_MAX (16u * 1024 * 1024)

struct simspec_host {
        char name[SIMSPEC_NAME_MAX];
        uint64_t memory_kib;
        bool reserve_auto;
        uint64_t reserve_kib;
        unsigned cores;
        uint64_t paging_kib_per_sec;  /* the paging disk's bandwidth (Smart Paging); 0: no paging */
};

struct simspec_group {
        char name[SIMSPEC_NAME_MAX];
        size_t count;
        int host;                     /* index into hosts, -1: placed by free memory */
        struct sim_vm_spec vm;        /* name is the group's; policy, boot, demand, agent */
};

enum simspec_event_kind {
        SIMSPEC_RESTART,              /* the VMs (of a group, or all) reboot at `at` */
        SIMSPEC_STAGGERED_START,      /* the VMs (of a group, or all) start cold, one every `every` from `at` */
        SIMSPEC_HOST_FAILURE,         /* `host` fails at `at`; its VMs start cold on the survivors */
};

struct simspec_event {
        enum simspec_event_kind kind;
        uint64_t at_usec, every_usec;
        int group;                    /* -1: all VMs */
        int host;
};

/* VMs from a trace: startup = maximum = provisioned (aligned up to 2 MiB), minimum =
 * max(minimum_floor, provisioned / minimum_divisor), buffer, weight. */
struct simspec_trace_defaults {
        uint64_t minimum_floor_kib;
        unsigned minimum_divisor, buffer_pct, weight;
};

struct simspec {
        struct simspec_host hosts[SIMSPEC_HOSTS_MAX];
        size_t n_hosts;
        struct simspec_group groups[SIMSPEC_GROUPS_MAX];
        size_t n_groups;
        struct simspec_event events[SIMSPEC_EVENTS_MAX];
        size_t n_events;
        uint64_t duration_usec;       /* 0: the trace's length, or one hour */
        int smart_paging;             /* enum config_paging for tide's runs; -1: tided's default */
        struct simspec_trace_defaults trace;
};

/* The defaults: no host (the caller sizes one), no groups, trace defaults 256 MiB, 16, 20, 50. */
void simspec_init(struct simspec *s);
/* Parses a scenario. Returns 0, or -EINVAL with "source: field: what" in err. */
int simspec_parse(const char *text, size_t len, const char *source, struct simspec *ret, char *err, size_t errlen);
int simspec_load(const char *path, struct simspec *ret, char *err, size_t errlen);
/* Sum of the VMs' counts. */
size_t simspec_vms(const struct simspec *s);
