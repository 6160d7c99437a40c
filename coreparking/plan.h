/* Core parking's plan (pure: no I/O, no clock; tided, `tidectl plan` and the simulator drive it).
 *
 * Hyper-V parks cores so the scheduler keeps work off them and they reach deep idle states; it
 * unparks them as load rises. tide does it for the VMs of a KVM host: the VMs that float (no
 * pinning of their own, not latency-sensitive) are confined to the unparked CPUs. Every tick the
 * plan looks at the host's per-CPU load and decides which whole cores (SMT siblings together)
 * are parked:
 *   - load L = the host's busy CPUs (sum of per-CPU busy shares over the last interval);
 *     needed = ceil(L / (1 - headroom)), never fewer than the minimum per NUMA node;
 *   - overloaded (the unparked CPUs busier on average than over_util): unpark at once, as many
 *     cores as `needed` asks; all of them when the unparked CPUs are saturated (then the load
 *     seen is capped by them and says nothing of what is wanted);
 *   - idle enough (the unparked CPUs, less the next core to park, still hold `needed`): park
 *     one core, no sooner than `dwell` after the last change, and no sooner than
 *     `reversal_hold` after the last unpark (at most one reversal per that time in a steady
 *     load: a park that an unpark follows, then a park again);
 *   - a core is never parked when it holds a CPU that an administrator pinned a VM to, or one
 *     listed as reserved, or when its NUMA node would keep fewer than `min_per_node` unparked
 *     cores; of the others the most performant kind goes first (a hybrid part keeps its
 *     efficient cores for the light load), then the least busy, then the highest-numbered (CPU
 *     0, where the host's own housekeeping runs, stays);
 *   - unparking takes the most performant kind first, then the lowest-numbered;
 *   - capacity is the unparked CPUs measured this interval (an offline CPU holds no load).
 * Windows' own knobs (../shared/PEERS.md): headroom 50 %, over-utilisation 85 % (Balanced). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/hv.h"
#include "common/macro.h"

/* One core: its CPUs (SMT siblings), where it is and what kind it is. */
struct parking_core {
        struct hv_cpuset cpus;
        int node;    /* NUMA node; -1 unknown (counted as one node) */
        int package; /* -1 unknown */
        int kind;    /* 0 = the most power-efficient kind; higher = more performant (hwloc's
                      * cpukinds efficiency); 0 on a homogeneous host */
};

/* The host's cores, in the order of their first CPU. At most PARKING_CORES_MAX. */
#define PARKING_CORES_MAX HV_CPUSET_MAX
struct parking_topology {
        const struct parking_core *cores;
        size_t n_cores;
};

enum parking_mode {
        PARKING_OFF,       /* nothing parked; every VM's affinity as its own */
        PARKING_PIN,       /* floating VMs' vCPUs and emulator pinned to the unparked CPUs */
        PARKING_PARTITION, /* the machine partition's cpuset confined to them instead */
        PARKING_MODES,
};
/* "off", "pin", "partition"; NULL for an unknown mode. */
const char *parking_mode_to_string(enum parking_mode m);

struct parking_config {
        enum parking_mode mode;
        unsigned min_per_node;      /* unparked cores kept per NUMA node, >= 1 */
        double headroom_pct;        /* the share of the unparked CPUs left free, [0, 95] */
        double over_util_pct;       /* unparked CPUs busier than this on average: unpark, (0, 100] */
        uint64_t dwell_usec;        /* between two parks, >= 10 s */
        uint64_t reversal_hold_usec; /* no park this long after an unpark */
        struct hv_cpuset reserved;  /* never parked */
        bool irqbalance;            /* tell a running irqbalance to keep interrupts off the parked
                                     * CPUs (tided; coreparking/irq.h) */
};

/* The defaults: pin, 1 core per node, headroom 50 %, over-utilisation 85 %, dwell 10 s,
 * reversal hold 10 min, nothing reserved, irqbalance told. */
void parking_config_init(struct parking_config *c);

/* The fewest and most the config may set (parking_plan() refuses others). */
#define PARKING_DWELL_MIN_USEC (10 * USEC_PER_SEC)
#define PARKING_HEADROOM_MAX_PCT 95.0

/* A CPU list as the kernel and libvirt write it ("0-3,8,10-11"; "none" or "" for no CPU) into
 * *ret. Returns 0, or -EINVAL with *err (static text) naming what is wrong: not a list, a range
 * backwards, a CPU past HV_CPUSET_MAX. */
int parking_cpulist_parse(const char *s, struct hv_cpuset *ret, const char **err);
/* The shortest list for s ("none" when empty) into buf; returns buf, or NULL when it does not
 * fit in len. */
char *parking_cpulist_format(const struct hv_cpuset *s, char *buf, size_t len);

/* What the plan sees this tick. */
struct parking_obs {
        const double *busy;     /* busy[cpu]: the CPU's busy share of the last interval, 0..1;
                                 * a CPU that is offline or was not measured: < 0 */
        unsigned n_cpus;        /* entries in busy */
        bool load_known;        /* false until two samples of /proc/stat have been taken */
        struct hv_cpuset pinned; /* CPUs an administrator pinned some VM (vCPU or emulator) to */
        bool affinity_unknown;   /* some running VM's own affinity is not known yet: it may be
                                  * pinned anywhere, so nothing new is parked (unparking goes on) */
        bool exempt_running;     /* mode partition: a VM that must not be packed (latency-sensitive)
                                  * runs in the partition, which confines every VM in it: nothing
                                  * is parked while it runs */
};

/* What it carries from tick to tick. Zero: nothing parked, no change yet. */
struct parking_state {
        struct hv_cpuset parked;
        uint64_t last_change_usec; /* last park or unpark; 0: none */
        uint64_t last_unpark_usec; /* 0: none */
        uint64_t reversals;        /* unparks that undid a park */
};

enum parking_reason {
        PARKING_REASON_OFF,        /* mode off: everything unparked */
        PARKING_REASON_NO_LOAD,    /* no load measured yet: nothing changes */
        PARKING_REASON_PARK,       /* idle enough: one core parked */
        PARKING_REASON_UNPARK,     /* overloaded: cores unparked */
        PARKING_REASON_SATURATED,  /* the unparked CPUs saturated: every core unparked */
        PARKING_REASON_DWELL,      /* would park, but the last change is too recent */
        PARKING_REASON_REVERSAL,   /* would park, but the last unpark is too recent (anti-flap) */
        PARKING_REASON_NOTHING,    /* would park, but no core may be (pinned, reserved, minimum) */
        PARKING_REASON_STEADY,     /* the load fits the unparked cores as they are */
        PARKING_REASON_CLAIMED,    /* a parked core was since pinned to or reserved: given back */
        PARKING_REASON_UNKNOWN_VM, /* would park, but a VM's own CPUs are not known yet */
        PARKING_REASON_EXEMPT_VM,  /* mode partition with a latency-sensitive VM running: none */
        PARKING_REASONS,
};
/* A few words for each reason ("idle: one core parked"). */
const char *parking_reason_to_string(enum parking_reason r);

struct parking_decision {
        struct hv_cpuset parked;   /* after this tick */
        struct hv_cpuset unparked; /* the host's CPUs not parked: where floating VMs run */
        struct hv_cpuset changed;  /* CPUs parked or unparked this tick */
        enum parking_reason reason;
        double load_cpus;          /* L */
        unsigned needed_cpus;      /* ceil(L / (1 - headroom)) */
        unsigned unparked_cpus;    /* CPUs in `unparked` */
        double unparked_busy_pct;  /* the unparked CPUs' average busy share, before this tick */
};

/* Decides this tick at now_usec: fills *ret and updates *state (its parked set is ret->parked).
 * CPUs that the topology does not name are never parked. Returns 0; -EINVAL for a NULL argument,
 * a topology of no core or over PARKING_CORES_MAX, a config out of its ranges, or an obs whose
 * busy is NULL while load_known. */
int parking_plan(const struct parking_config *cfg, const struct parking_topology *topo,
                 const struct parking_obs *obs, struct parking_state *state, uint64_t now_usec,
                 struct parking_decision *ret);

/* What to do with one VM's affinity. */
enum parking_vm_action {
        PARKING_VM_LEAVE,   /* pinned by its administrator, or latency-sensitive: never touched */
        PARKING_VM_CONFINE, /* floats: pin its vCPUs and emulator to the unparked CPUs */
        PARKING_VM_RESTORE, /* floats, nothing parked: its own affinity back */
};
/* For a VM that floats (no pinning of its own) or not, latency-sensitive or not, under d (mode
 * pin; partition and off confine no VM one by one). */
enum parking_vm_action parking_vm_action(const struct parking_config *cfg, const struct parking_decision *d,
                                         bool floats, bool latency_sensitive);
