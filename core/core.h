/* The controller core: everything tided decides in a tick, from what it observed, in one pure
 * place. tided (daemon/manager.c), `tidectl plan` and the simulator (sim/) are shells around it:
 * they gather observations, call core_tick(), apply the actions it returns and publish.
 *
 * Pure: no I/O, no clock reads (`now_usec` is passed in), no libvirt, no logging; the log
 * events it wants written are returned as flags with their numbers. Allocation only when the
 * number of VMs grows past what core_tick() has seen (scratch for the engine).
 *
 * It owns every per-VM state machine of dynamic memory: boot and quiet-period tracking (events,
 * a start seen only as a change of `active`, the agent's uptime), balloon-statistics baselines
 * and freshness, the choice of demand source and the agent-vs-RSS check, deflate-on-OOM
 * detection, the engine, the balloon progress watch, the release of a VM whose policy went
 * away, and which guest reports are worth an early tick. The state of one VM is a `struct
 * core_vm` the caller keeps beside its own record of the domain and hands in every tick. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balloon/collect.h"
#include "balloon/hv.h"
#include "guest-agent/protocol.h"
#include "policy/config.h"
#include "policy/engine.h"
#include "policy/policy.h"
#include "smartpaging/plan.h"
#include "coreparking/plan.h"

#define CORE_NODE_MAX ENGINE_NODE_MAX

/* A guest short of memory may deflate its balloon every second: one log event a minute. */
#define CORE_LOG_EVERY_USEC (UINT64_C(60) * 1000000)

/* The host as observed this tick. */
struct core_host_obs {
        uint64_t total_kib, available_kib; /* /proc/meminfo MemTotal, MemAvailable */
        unsigned n_nodes;                  /* NUMA nodes; 0 when NUMA is not available */
        uint64_t node_free_kib[CORE_NODE_MAX];
        /* The memory limit of the cgroup partition the VMs run in (libvirt's /machine by default)
         * and what the partition uses now, when it has a limit. */
        bool partition_limited;
        uint64_t partition_limit_kib, partition_usage_kib;
        /* Managed VMs not handed to this tick (the simulator's settled VMs, core_vm_hold_range()):
         * what they hold, all of it resident, and the most they may desire. tided hands in every
         * domain and leaves these 0. */
        uint64_t others_held_kib, others_desired_kib;
        /* The caller can page a start's shortfall (tided: its paging directory works). false:
         * a shortfall is only reported (core_host_out.paging.unfunded_kib). */
        bool can_page;
        /* What is out in swap and not also in RAM, host-wide (/proc/meminfo SwapTotal - SwapFree -
         * SwapCached), when swap_known: a paging file cannot bring back more than this. Free swap
         * (SwapFree): where a limited VM's pages go when a file holding them is switched off. */
        bool swap_known;
        uint64_t swapped_kib, swap_free_kib;
        /* Core parking (coreparking/plan.h): cpu_busy[cpu] for cpu < n_cpus, each CPU's busy
         * share of the last interval (< 0: not measured); cpu_load_known false until two samples
         * were taken. Nothing is parked without a topology (core_set_topology()). */
        const double *cpu_busy;
        unsigned n_cpus;
        bool cpu_load_known;
};

/* How the domain (re)started since the previous tick; the last start wins. */
enum core_start {
        CORE_START_NONE,
        CORE_START_BOOT,   /* started: a boot, startup memory until its balloon driver reports */
        CORE_START_REBOOT, /* rebooted or reset, the same QEMU: a boot too (Smart Paging's restart) */
        CORE_START_RESUME, /* started with its memory (migrated in, restored, woken up): not a boot */
};

/* What carries from tick to tick for one VM. All zero is a domain never seen before. The caller
 * keeps it with the domain, hands it to every core_tick() and core_vm_applied(), and does not
 * edit it. Rebuildable: a restarted tided starts from zero and moves nothing on old data. */
struct core_vm {
        bool known;                /* seen by a tick before */
        uint64_t found_usec;       /* when the caller first listed it (core_vm_init), 0 unknown */
        bool was_active, was_managed;
        bool release_pending;      /* lost its policy while running: back to the boot size, until done */

        /* The balloon statistics sample: QEMU's last_update changes when the guest reports. */
        bool stats_ok;
        struct hv_mem_stats stats; /* the last sample read, actual clamped to the boot size */
        uint64_t rss_seen_kib;     /* QEMU's RSS in the last sample that had it, 0 none yet */
        uint64_t last_update_seen; /* last_update at the previous sample */
        bool stats_advanced;       /* last_update changed at least once since this run began */
        uint64_t demand_usec;      /* when the current sample was first seen */

        bool booting;              /* (re)started; until its balloon driver reports */
        uint64_t boot_usec;        /* the start tided saw, or when it found the VM running */
        bool boot_known;           /* boot_usec is a start tided saw or the agent's uptime */

        struct engine_memo memo;
        bool decided;              /* the decision below is this run's */
        struct engine_vm input;    /* what the engine was given (for the reason's sentence) */
        struct engine_decision decision;
        bool agent_demand;         /* the last decision's demand came from tide-agent */
        bool has_demand;
        int64_t demand_kib;        /* what the engine got, for stats */
        /* An agent report showing more in use than this (MemTotal - MemAvailable, the guest's
         * frame) is worth an early tick: the use the last decision made room for. */
        int64_t early_above_kib;

        struct balloon_watch watch;
        enum balloon_state balloon;
        bool balloon_logged;       /* this episode of a stuck balloon was reported */
        uint64_t set_balloon_kib;  /* last balloon target applied, 0 when none */
        uint64_t actions;          /* balloon and virtio-mem changes applied */
        uint64_t guest_oom_deflates;
        uint64_t oom_logged_usec;
        bool insane_logged;        /* this episode of rejected demand was reported */

        /* Smart Paging (smartpaging/plan.h): the caller reports what it did with
         * paging_started() and paging_released(), and a file found in use with paging_adopt(). */
        struct paging_vm_state paging;
};

/* One VM as observed this tick. Every domain the caller knows is handed in, managed or not,
 * running or not, so the core sees policies come and go and domains stop and start. */
struct core_vm_obs {
        const struct hv_domain *info;   /* the domain's facts now */
        bool have_policy;
        struct vm_policy policy;
        enum core_start start;          /* events since the previous tick */
        bool stopped;
        /* Balloon statistics, read this tick (only for a managed, running domain). fresh_stats
         * false: not read this tick (an early tick reads only the VMs that asked), the last
         * sample stands; stats_ok false with fresh_stats: the read failed. */
        bool fresh_stats, stats_ok;
        struct hv_mem_stats stats;
        /* tide-agent: the last report the channel accepted (guest-agent/protocol.h checks). */
        bool has_report;
        struct agent_report report;
        uint64_t report_usec;           /* when it arrived */
        bool report_fresh;              /* it arrived since the previous tick */
        /* Smart Paging: how much of its paging file is in use now (/proc/swaps; 0 unknown). */
        uint64_t paging_used_kib;
        /* Core parking: its affinity is its administrator's (some vCPU or its emulator pinned off
         * a host CPU before tide touched it), on pinned_cpus; such a VM is never confined, and its
         * CPUs are never parked. */
        bool pinned;
        struct hv_cpuset pinned_cpus;
        /* Its own affinity is not known yet (not read, or the read failed): it may be pinned to
         * CPUs nobody knows, so no new core is parked while it is. */
        bool affinity_unknown;
        struct core_vm *state;
};

/* What core_tick() asks of the caller for one VM, in this order, and what it shows. */
enum core_vm_log {
        CORE_LOG_GUEST_OOM = 1u << 0,     /* the guest deflated its balloon (oom_took_kib) */
        CORE_LOG_BALLOON_RISE = 1u << 1,  /* the balloon rose above its target without deflate-on-oom */
        CORE_LOG_BALLOON_STUCK = 1u << 2, /* the balloon stopped moving toward its target (state->balloon) */
        CORE_LOG_INSANE = 1u << 3,        /* demand rejected: the reason says why */
        CORE_LOG_CLAMPED = 1u << 4,       /* the balloon's actual was above the boot size */
        CORE_LOG_DISTRUST = 1u << 5,      /* the agent reported more in use than QEMU has resident */
        CORE_LOG_STATS_LOST = 1u << 6,    /* balloon statistics could not be read: holding */
};

struct core_vm_out {
        /* Actions. release: unplug virtio-mem (when plugged) and set the balloon to the boot
         * size; report the outcome with core_vm_released(). set_vmem / set_balloon: in the
         * order vmem_first says; report each outcome with core_vm_applied(). */
        bool release;
        bool set_vmem, set_balloon, vmem_first;
        uint64_t vmem_kib, balloon_kib;
        bool resend;                /* the balloon target is the one already set, sent again
                                     * because the guest deflated past it */
        /* What tided shows. */
        bool managed_running;       /* active with a policy: decided this tick */
        uint64_t assigned_kib;      /* balloon actual + plugged, or libvirt's current */
        bool has_demand;
        uint64_t demand_kib;
        uint64_t rss_kib;           /* QEMU's resident memory, 0 when unknown */
        enum engine_status status;  /* ENGINE_STATUS_UNKNOWN without a decision */
        double available_buffer_pct;
        /* For the agent channel: the most MemTotal the guest may claim (what tided knows it
         * can hold), and a report found to be a lie (distrust_why, for the channel's count). */
        uint64_t agent_max_total_kib;
        char distrust_why[160];
        unsigned logs;              /* CORE_LOG_* */
        uint64_t oom_took_kib;
        /* Smart Paging: start, raise, release (in that order, before the balloon changes). */
        struct paging_action paging;
        /* Core parking: its affinity this tick (only when core_host_out.parking_on). */
        enum parking_vm_action parking;
};

struct core_host_out {
        struct engine_host host;    /* what the engine was given */
        struct engine_summary summary;
        uint64_t assigned_kib;      /* sum over running domains */
        struct paging_summary paging; /* unfunded_kib > 0: the host is overcommitted */
        /* Core parking decided this tick (a topology is set, not an early tick), and what. */
        bool parking_on;
        struct parking_decision parking;
};

/* The arrays a shell hands to core_tick(), one entry per domain, grown as domains come. */
struct core_frame {
        struct core_vm_obs *obs;
        struct core_vm_out *out;
        size_t cap;
};
/* Room for n domains (n + n/4 when it grows, so a host adding one at a time reallocates
 * rarely). Returns 0 or -ENOMEM, leaving the frame as it was. */
int core_frame_reserve(struct core_frame *f, size_t n);
void core_frame_done(struct core_frame *f);

/* A domain the caller lists for the first time at found_usec. */
void core_vm_init(struct core_vm *s, uint64_t found_usec);

struct core;
struct core *core_new(void);
struct core *core_free(struct core *c); /* accepts NULL, returns NULL */

/* The host's cores for core parking (coreparking/topology.h), copied; n = 0 turns parking off.
 * A new topology (a CPU taken offline) keeps only the parked cores it still has whole. Returns 0,
 * -EINVAL past PARKING_CORES_MAX, -ENOMEM. */
int core_set_topology(struct core *c, const struct parking_core *cores, size_t n);
/* What parking carries between ticks: what is parked, since when. */
const struct parking_state *core_parking_state(const struct core *c);

/* Decides one tick for vms[0..n) into out[0..n) and *host_out. grow_only: an early tick between
 * regular ones: only growth is acted on (shrinking keeps its pace of one bounded step per regular
 * tick). Returns 0, -ENOMEM (nothing decided, states untouched), -EINVAL on NULL arguments, or,
 * with others in the host, -EAGAIN when the host is short with them counted: the weights must
 * decide over every VM, so the tick is to be taken again with all of them (states untouched);
 * likewise when a VM starts: funding its startup memory looks at every VM (smartpaging/plan.h).
 * Smart Paging's actions come in out[i].paging; a VM paging shows status ENGINE_STATUS_PAGING. */
int core_tick(struct core *c, const struct tide_config *cfg, const struct core_host_obs *host,
              const struct core_vm_obs *vms, size_t n, uint64_t now_usec, bool grow_only, struct core_vm_out *out,
              struct core_host_out *host_out);

/* The outcome of applying out's balloon or virtio-mem change: ok false when the call failed (the
 * same change is asked again next tick). actual_kib: the balloon's actual the change was made
 * from (for the progress watch). */
void core_vm_applied(struct core_vm *s, const struct core_vm_out *out, bool vmem, bool ok, uint64_t actual_kib,
                     uint64_t now_usec);
/* The outcome of a release: a failed one is asked again every tick until it succeeds or the
 * domain stops. */
void core_vm_released(struct core_vm *s, bool ok);

/* Whether this VM's tick (out, host_out) rests on its demand alone: decided, no release, no
 * log, its balloon watch content, the host not short. Its balloon and virtio-mem targets may
 * have changed (see core_vm_hold_range()). */
bool core_vm_settled(const struct core_vm *s, const struct core_vm_out *out, const struct core_host_out *host_out);
/* For a VM whose last tick was core_vm_settled(): the demands (engine frame, policy/engine.h)
 * for which, once it holds that tick's target (state.decision.target_kib), every later tick
 * holds it there while the host stays roomy, in [*ret_lo, *ret_hi]; false when the decision
 * rests on more than the demand. The simulator lets such a VM sleep until its demand leaves the
 * range (docs/SIMULATOR.md, sim/sleep.c). */
bool core_vm_hold_range(const struct core_vm *s, const struct tide_config *cfg, int64_t *ret_lo, int64_t *ret_hi);
/* Its first half (engine_holds_on_demand()): the range then depends only on the VM's policy and
 * the decision's target, so a caller asking every tick may keep it. */
bool core_vm_holds_on_demand(const struct core_vm *s);

/* What releasing a domain means: virtio-mem unplugged, the balloon at the boot size. */
struct balloon_split core_release_split(const struct hv_domain *d);

/* The reason of the VM's last decision as a sentence ("grow: demand 1.9GiB + 20%"). */
char *core_reason_format(const struct core_vm *s, char *buf, size_t len);

/* The balloon's actual from the last stats, or what libvirt last said without them. */
uint64_t core_actual_kib(const struct core_vm *s, const struct hv_domain *d);
