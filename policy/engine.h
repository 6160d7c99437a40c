/* The dynamic-memory engine: each VM's policy, demand and the host's capacity in, one target,
 * status and reason per VM out. Pure: no I/O, no clock reads (`now_usec` is passed in), no
 * allocation after engine_new(). docs/POLICY.md states every rule so a person can predict the
 * targets; the rule numbers below refer to it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"
#include "policy/policy.h"

#define ENGINE_NODE_MAX 64
#define ENGINE_NODE_NONE (-1)

enum engine_vm_state {
        ENGINE_VM_RUNNING, /* guest up; dynamic memory applies */
        ENGINE_VM_BOOTING, /* (re)starting: holds startup memory, as Hyper-V does */
};

/* What the engine remembers about a VM between ticks. The caller keeps it with the VM and hands
 * the previous decision's `memo` back in; a zeroed memo means "first tick". Rebuildable: losing
 * it (tided restart) only means one tick without PSI back-off history. */
struct engine_memo {
        uint64_t last_demand_usec;   /* sample time of the last accepted demand */
        uint64_t last_pressure_usec; /* last tick the guest's PSI was above psi_calm_pct */
        bool pressured;              /* under Senpai-style back-off: no shrink until calm */
        uint64_t last_reclaim_usec;  /* last tick the guest deflated its own balloon, 0 never */
};

struct engine_vm {
        struct vm_policy policy;
        enum engine_vm_state state;
        uint64_t assigned_kib;     /* what the VM holds now (balloon actual + plugged) */
        uint64_t uptime_usec;      /* time since the guest (re)booted */
        bool has_demand;           /* false: no agent report and no usable balloon stats */
        int64_t demand_kib;        /* what the guest needs now, without buffer; signed because
                                    * a collector's arithmetic (available - usable) can go below 0 */
        uint64_t demand_usec;      /* monotonic time the demand sample was taken */
        uint64_t guest_total_kib;  /* guest's own MemTotal, 0 when unknown: demand above it is insane */
        double psi_some_avg10;     /* guest memory PSI, percent; 0 when unknown */
        bool guest_reclaimed;      /* since the last tick the guest took pages back from its
                                    * balloon on its own (deflate-on-oom): it ran out of memory,
                                    * whatever its demand says (rule 5) */
        int node;                  /* NUMA node the VM's memory is bound to, or ENGINE_NODE_NONE */
        struct engine_memo memo;   /* from the previous tick's decision */
};

struct engine_host {
        uint64_t usable_kib;  /* memory the VMs and the reserve share: MemAvailable + all assigned */
        uint64_t reserve_kib; /* kept for the host itself */
        unsigned n_nodes;     /* 0 when no VM is bound to a node */
        uint64_t node_usable_kib[ENGINE_NODE_MAX]; /* per node, for node-bound VMs */
        /* VMs left out of this step (the simulator's settled VMs, engine_hold_range()): what they
         * hold, and the most they may desire. Their targets are what they hold as long as the
         * host is not short with them counted; summary.short_host says when it is (then the
         * step must be taken over every VM). 0 for tided, which hands in every VM. */
        uint64_t others_assigned_kib, others_desired_kib;
};

enum engine_status {
        ENGINE_STATUS_OK,      /* available buffer > 80 % of the configured buffer */
        ENGINE_STATUS_LOW,     /* 0-80 % */
        ENGINE_STATUS_WARNING, /* assigned < demand */
        ENGINE_STATUS_UNKNOWN, /* no usable demand */
        ENGINE_STATUS_PAGING,  /* Smart Paging in use (set by the core, never by the engine) */
};

/* Why a target is what it is. engine_reason_format() turns it and the decision's numbers into
 * the sentence people read; the engine stores codes so a tick over 10,000 VMs formats nothing. */
enum engine_reason {
        ENGINE_REASON_STATIC,          /* dynamic off: startup */
        ENGINE_REASON_BOOTING,         /* restart: startup memory */
        ENGINE_REASON_GROW,            /* grow to demand + buffer */
        ENGINE_REASON_SHRINK,          /* shrink toward demand + buffer, bounded step */
        ENGINE_REASON_STEADY,          /* at demand + buffer already */
        ENGINE_REASON_AT_MINIMUM,      /* demand + buffer is below minimum */
        ENGINE_REASON_AT_MAXIMUM,      /* demand + buffer is above maximum */
        ENGINE_REASON_DEADBAND,        /* change too small to make */
        ENGINE_REASON_QUIET,           /* no shrink in the post-boot quiet period */
        ENGINE_REASON_PRESSURE_GROW,   /* guest PSI above psi_grow: grow now */
        ENGINE_REASON_PRESSURE_HOLD,   /* guest was pressured recently: no shrink */
        ENGINE_REASON_RECLAIM_GROW,    /* guest deflated its own balloon (out of memory): grow now */
        ENGINE_REASON_STALE,           /* demand too old: hold */
        ENGINE_REASON_NO_DEMAND,       /* no demand at all: hold */
        ENGINE_REASON_INSANE,          /* demand rejected: hold */
        ENGINE_REASON_WEIGHT_SHARE,    /* host short: capped by weight share */
        ENGINE_REASON_NODE_SHARE,      /* NUMA node short: capped by weight share on the node */
        ENGINE_REASON_HOST_FULL,       /* grow limited by what the host has free now */
        ENGINE_REASON_OVERCOMMITTED,   /* even the minimums do not fit: holding minimum */
        ENGINE_REASON_RAISE_TO_MINIMUM,/* below its minimum (e.g. after a reboot): back up to it */
        ENGINE_REASON_LOWER_TO_MAXIMUM,/* above its maximum (policy lowered): down to it */
};

/* Flags a person should see next to the status. */
#define ENGINE_FLAG_INSANE_DEMAND (1u << 0) /* demand negative, above guest total, or time went back */
#define ENGINE_FLAG_STALE_DEMAND (1u << 1)
#define ENGINE_FLAG_OVERCOMMITTED (1u << 2)
#define ENGINE_FLAG_PRESSURED (1u << 3)
#define ENGINE_FLAG_GUEST_OOM (1u << 4) /* the guest deflated its own balloon this tick */

struct engine_decision {
        uint64_t target_kib;
        uint64_t desired_kib;  /* rule 1: clamp(demand x (1 + buffer), minimum, maximum) */
        uint64_t entitled_kib; /* after sharing a short host (rules 2-3) */
        enum engine_status status;
        enum engine_reason reason;
        uint64_t reason_arg;   /* the number the reason's sentence needs (a size, seconds...) */
        unsigned flags;
        struct engine_memo memo; /* hand back as engine_vm.memo next tick */
};

/* Host-wide outcome of a tick. */
struct engine_summary {
        uint64_t capacity_kib;   /* usable - reserve */
        uint64_t floor_kib;      /* sum of what no VM can go below this tick */
        uint64_t desired_kib;    /* sum of desired */
        uint64_t target_kib;     /* sum of targets */
        bool short_host;         /* desired did not fit: weights decided */
        bool overcommitted;      /* even the floors did not fit */
};

/* Scratch space for n VMs, so engine_step() allocates nothing. */
struct engine;
struct engine *engine_new(size_t max_vms);
struct engine *engine_free(struct engine *e); /* accepts NULL, returns NULL */

/* Decides one tick for vms[0..n) into out[0..n). Returns 0, or -E2BIG when n exceeds the
 * engine's max_vms, -EINVAL on NULL arguments. `summary` may be NULL. */
int engine_step(struct engine *e, const struct engine_host *host, const struct engine_vm *vms, size_t n,
                const struct tide_config *cfg, uint64_t now_usec, struct engine_decision *out,
                struct engine_summary *summary);

/* The demands for which, once the decision d on vm is carried out (the VM holding d's target),
 * every later tick holds it there: [*ret_lo, *ret_hi] in KiB. True only for a decision that
 * rests on the demand alone: a hold, or a plain grow or shrink, of a dynamic, running VM within
 * its bounds, with a usable demand, no pressure or reclaim, no flags, on a host that was not
 * short (the caller checks the summary) and stays so. A demand above the target is left out.
 * Rule 4's quiet period only widens a hold, so the range is within the true one while it lasts
 * and equal to it after. Pure. */
bool engine_hold_range(const struct engine_vm *vm, const struct engine_decision *d, const struct tide_config *cfg,
                       int64_t *ret_lo, int64_t *ret_hi);
/* engine_hold_range()'s first half: whether d rests on the demand alone. The range itself then
 * depends only on the policy, d's target and the dead-band (a caller may keep it). */
bool engine_holds_on_demand(const struct engine_vm *vm, const struct engine_decision *d);

/* Rule 1 alone: demand x (1 + buffer/100), aligned up to 2 MiB, clamped to [minimum, maximum]. */
uint64_t engine_desired_kib(const struct vm_policy *p, uint64_t demand_kib);

/* Rule 4's shrink over `ticks` ticks: where a VM holding assigned_kib is once the bounded steps
 * have taken it toward floor_kib (never below it). Smart Paging counts on no more than this from
 * the others in the time it gives them (smartpaging/plan.h). */
uint64_t engine_shrink_reach_kib(uint64_t assigned_kib, uint64_t floor_kib, uint64_t ticks,
                                 const struct tide_config *cfg);

/* Rule 7: status of a VM holding assigned_kib with this demand and buffer. *ret_avail_pct gets
 * the available buffer in percent (may be NULL; negative under warning; capped at 1e6). */
enum engine_status engine_status_of(uint64_t assigned_kib, bool has_demand, uint64_t demand_kib,
                                    unsigned buffer_pct, double *ret_avail_pct);

const char *engine_status_to_string(enum engine_status s);

/* Writes the decision's reason as a sentence ("grow: demand 1.9GiB + 20%"). vm is the input
 * the decision was made from. Returns buf. */
char *engine_reason_format(const struct engine_decision *d, const struct engine_vm *vm, char *buf, size_t len);
