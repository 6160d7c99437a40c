/* The simulator's hypervisor: one host, its domains and the guests in them, on a virtual clock,
 * driven by the controller core tided runs (core/core.h). It produces what tided would observe
 * (meminfo, balloon statistics, agent reports, lifecycle events) and absorbs the core's actions
 * (balloon targets, virtio-mem sizes, releases) the way a host does: balloons move at a
 * configurable rate, virtio-mem plugs in blocks, guests follow a demand over time, and a guest
 * left with less than it needs deflates its balloon (deflate-on-oom) or counts an OOM.
 *
 * `tidectl plan --settle` and the benchmarks run through it; nothing here decides what tide does:
 * that is core_tick(). No I/O, no clock: time is sim->now_usec. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sim/peers.h"

/* Measured here under TCG (ENVIRONMENT.md): a Linux guest's balloon went 512 -> 200 MiB in ~0.8 s. */
#define SIM_BALLOON_KIB_PER_SEC (UINT64_C(390) * 1024)
/* How long a booting guest runs before its balloon driver and agent report (tiny test guests
 * here: 11-22 s from create to the agent's first report under TCG; a KVM guest is faster). */
#define SIM_DRIVER_UP_USEC (UINT64_C(5) * 1000000)
#define SIM_STEPS_MAX 16
/* Seconds of demand a VM remembers, for an agent that reports late (lag at most this - 1 s). */
#define SIM_HISTORY 64
#define SIM_NAME_MAX 64

/* What the guest uses over time (host frame: comparable with what the VM holds). */
enum sim_demand_kind {
        SIM_DEMAND_CONSTANT, /* base_kib */
        SIM_DEMAND_STEPS,    /* base_kib, then steps[k].kib from steps[k].at_usec on */
        SIM_DEMAND_RAMP,     /* base_kib to to_kib, linearly over [from_usec, from_usec + len_usec] */
        SIM_DEMAND_WALK,     /* base_kib, each second +-step_kib at random (seed), within [min_kib, max_kib] */
        SIM_DEMAND_TRACE,    /* a recorded VM's use (trace), interpolated between samples or held */
};

/* One VM's recorded use: samples at times relative to the simulation's start, increasing. Not
 * owned by the simulator (the trace reader keeps it). Before the first sample the first value
 * holds, after the last the last. */
struct sim_trace {
        size_t n;
        const uint64_t *t_usec;
        const uint64_t *kib;
        bool hold;           /* hold each sample until the next instead of interpolating */
        uint64_t offset_usec; /* the samples come this much later (a copy of a trace VM) */
};

struct sim_demand {
        enum sim_demand_kind kind;
        uint64_t base_kib;
        size_t n_steps;
        struct {
                uint64_t at_usec, kib;
        } steps[SIM_STEPS_MAX];
        uint64_t to_kib, from_usec, len_usec;
        uint64_t step_kib, min_kib, max_kib, seed;
        struct sim_trace trace;
};

/* How the guest's tide-agent behaves. */
enum sim_agent {
        SIM_AGENT_NONE,   /* no agent: balloon statistics only (when the driver reports them) */
        SIM_AGENT_HONEST, /* reports its use every second */
        SIM_AGENT_LATE,   /* reports every second what it used lag_usec ago */
        SIM_AGENT_LIAR,   /* reports its use times lie_factor */
        SIM_AGENT_FLOOD,  /* many reports between two ticks, alternating its use and twice it: the
                           * last one the channel accepted is what the core sees */
        SIM_AGENT_SILENT, /* reported until silent_usec (may be before the start), then never */
};

struct sim_vm_spec {
        char name[SIM_NAME_MAX];
        uint64_t boot_kib;             /* the domain's boot size (<memory>) */
        uint64_t vmem_max_kib, vmem_block_kib; /* virtio-mem device; 0: none */
        bool deflate_on_oom;
        int node;                      /* NUMA node the memory is bound to, -1 none */
        bool have_policy;
        struct vm_policy policy;
        struct sim_demand demand;
        double psi_some_avg10;         /* the guest's memory PSI (agent reports only) */
        uint64_t floor_kib;            /* the agent's safe floor */
        uint64_t kernel_kib;           /* kept by the guest kernel outside MemTotal (part of its use) */
        enum sim_agent agent;
        uint64_t lag_usec, silent_usec;
        double lie_factor;
        bool balloon_stats;            /* the balloon driver reports statistics */
        /* At the start: running since uptime_usec (found by tided), or booting (a start event
         * at the first tick; its drivers report after SIM_DRIVER_UP_USEC - uptime_usec). */
        bool booting;
        uint64_t uptime_usec;
        uint64_t assigned_kib;         /* what it holds at the start; 0: its boot size */
        /* How a boot goes: its drivers (balloon, agent) report boot_usec after it began (0:
         * SIM_DRIVER_UP_USEC); meanwhile it touches boot_touch_kib at boot_touch_kib_per_sec
         * (0: its demand profile from the start). */
        uint64_t boot_usec, boot_touch_kib, boot_touch_kib_per_sec;
        /* Events, relative to the simulation's start: a VM stopped at the start that starts cold
         * at start_at_usec, and a restart (reboot: the balloon resets to the boot size) at
         * restart_at_usec (0: none). */
        bool stopped;
        uint64_t start_at_usec, restart_at_usec;
        bool oom_at_start;             /* the guest deflates its balloon by a tenth of what it holds
                                        * once tided has set a target (deflate-on-oom) */
};

/* Smart Paging as tided carries it out (smartpaging/plan.h), on a host whose paging disk moves
 * sim.paging_kib_per_sec, shared by the VMs moving pages. The balloon's actual is then what the
 * guest sees, RAM (sim_vm.actual_kib) plus what is on disk. */
struct sim_paging {
        uint64_t file_kib;    /* its file's size; 0: not paging */
        uint64_t grant_kib;   /* while limited: the most RAM its guest memory may hold */
        uint64_t on_disk_kib; /* its pages in the file */
        bool limited;         /* its hard limit is on */
        bool releasing;       /* the file is being switched off: its pages come back into RAM */
        bool anytime;         /* swap-anytime's file (ESXi's .vswp): made at power-on, kept for
                               * the VM's life; grant_kib is the rule's target, and RAM above it
                               * is swapped out at the disk's pace, as ESXi does */
};

struct sim_vm {
        struct sim_vm_spec spec;
        struct hv_domain info;          /* as libvirt would describe it */
        uint64_t actual_kib;            /* the balloon's actual, in RAM (sim_vm_view_kib(): with
                                         * what Smart Paging holds on disk) */
        struct sim_paging pg;
        uint64_t balloon_target_kib;    /* where the host set it */
        uint64_t demand_kib;            /* what the guest uses now */
        uint64_t walk_state;            /* the random walk's (and a flooding agent's) generator */
        uint64_t history_kib[SIM_HISTORY]; /* demand, one a second, for late reports */
        size_t history_pos;
        uint64_t boot_start_usec;       /* when it (re)booted */
        uint64_t boot_progress_usec;    /* how far its boot has come: time, slowed while it is
                                         * short of the memory it touched; booted at boot_usec */
        bool running;
        bool restarted;                 /* its restart_at_usec has come */
        size_t trace_pos;               /* the trace sample at or before now */
        bool start_pending;
        bool start_reboot;              /* ... and it is a reboot (its restart), not a cold start */
        struct agent_report report;     /* the last report tided received */
        bool has_report, report_fresh;
        uint64_t report_usec, report_seq;
        bool oom_done;
        /* What happened to it. */
        uint64_t warning_usec;          /* time it held less than its demand */
        uint64_t shortfall_kib;         /* boot memory the host could not give at its last (re)start */
        uint64_t oom_events;            /* a guest OOM: less than it needs and no balloon to take back */
        uint64_t oom_deflates;          /* it took pages back from its balloon */
        bool in_oom;
        struct core_vm state;           /* what the core carries for it */
        struct peer_memo peer_memo;     /* what a peer's rule carries for it (in sim.peer_vms[i]
                                         * instead while every VM runs) */
        /* The fast path (sim_set_fast()). hold: its last tick rested on its demand alone
         * (core_vm_settled()): once it holds that tick's target it stays there while its demand
         * is within [hold_lo_kib, hold_hi_kib] (core_vm_hold_range(), engine frame; found when
         * it goes to sleep). */
        bool hold;
        int64_t hold_lo_kib, hold_hi_kib;
        uint64_t hold_for_kib;          /* the target the range was found for, 0: none kept */
        bool hold_found;                /* there is one */
        bool asleep;                    /* skipped by ticks and steps until wake_usec */
        uint64_t asleep_usec;           /* the step it fell asleep after (its first tick skipped) */
        uint64_t wake_usec;             /* the step it takes part in again */
        uint64_t asleep_desired_kib;    /* the most it may desire meanwhile */
        uint64_t asleep_walk_state, asleep_demand_kib, asleep_report_seq;
        uint64_t walk_at_usec, walk_at_state, walk_at_kib; /* a sleeping walk, stepped this far */
};

/* What a run measured (issue 9's report), over running VMs, integrated over virtual time. In
 * integers (KiB x microseconds), so a sum does not depend on the order it was added in: the
 * fast path adds a sleeping VM's share as one product, the full loop a step at a time. */
struct sim_metrics {
        unsigned __int128 assigned_kib_usec, startup_kib_usec;
        uint64_t peak_assigned_kib;     /* the highest sum of what the VMs held at once */
        uint64_t vm_usec;               /* VM-microseconds running */
        uint64_t warning_vm_usec;       /* VM-microseconds holding less than the demand */
        uint64_t oom_events;            /* guests out of memory (an episode counts once; as
                                         * sim_oom_events(), kept as they happen) */
        unsigned __int128 paging_kib_usec; /* Smart Paging: what the VMs held on disk, over time */
        uint64_t paging_peak_kib;       /* the most on disk at once */
        uint64_t paging_starts;         /* paging files made (a start that paged) */
        uint64_t storm_usec;            /* when the last storm's first start began, 0 none */
        int64_t all_booted_usec;        /* from it until every VM that is to start has booted,
                                         * -1 not yet */
        /* This step's state, after time passed and before the next starts: */
        uint64_t now_running, now_booted, now_warning, now_demand_kib, now_assigned_kib, now_paging_kib;
        /* now_demand_kib leaves out the fast path's sleepers unless sim.demand_rows is set. */
};

struct sim {
        struct tide_config cfg;
        /* Who decides: the controller core (tide, peer false) or a peer's rule. */
        bool peer_mode;
        enum peer_rule peer;
        struct peer_vm *peer_vms;       /* the running VMs, as the rule sees them this tick */
        uint64_t *peer_targets;
        size_t *peer_index;             /* peer_vms[k] is vms[peer_index[k]] */
        size_t peer_cap;
        size_t peer_home_n;             /* peer_vms[i < this] hold VM i's policy and memo (every
                                         * VM running); vms[i].peer_memo is stale meanwhile */
        struct paging_vm *peer_pg;      /* Hyper-V's Smart Paging: its plan's view of every VM */
        struct paging_action *peer_pg_out;
        size_t peer_pg_cap;
        /* What the host keeps for itself: no VM grows into it, whoever decides (tide's core
         * reads its own from cfg; the peers that keep one get this). 0 by default. */
        uint64_t reserve_kib;
        struct sim_metrics metrics;
        uint64_t now_usec, start_usec;
        uint64_t total_kib;             /* host memory */
        uint64_t other_kib;             /* held by the host itself, outside the VMs */
        unsigned n_nodes;
        uint64_t node_total_kib[CORE_NODE_MAX];
        uint64_t balloon_kib_per_sec;   /* 0: a balloon reaches its target at once */
        /* The paging disk's bandwidth, shared by the VMs moving pages to or from their files;
         * 0: the host cannot page (a shortfall is only reported, as tided with no paging_dir). */
        uint64_t paging_kib_per_sec;
        struct sim_vm *vms;
        size_t n_vms, cap;
        /* What the VMs hold, summed by sim_add_vm() over the VMs added at added_stamp. */
        uint64_t added_held_kib, added_stamp;
        size_t added_n;
        uint64_t ticks;
        uint64_t balloon_ops, vmem_ops, releases;
        /* The core's last tick. */
        struct core *core;
        struct core_frame frame;        /* its observations and decisions (frame.out[k] for the
                                         * k-th VM ticked: vms[k], or vms[awake[k]] when fast) */
        struct core_host_out host_out;
        /* The fast path: only the awake VMs are ticked and stepped, in index order; the others
         * sleep, counted as constants, until their wake time (a heap) comes. */
        bool fast;
        bool demand_rows;               /* this step's now_demand_kib counts the sleepers too: their
                                         * demand is worked out from their profiles, O(VMs) */
        bool node_bound;                /* a VM is bound to a NUMA node: no fast path */
        uint64_t fast_dt;               /* the step the sleepers' wake times are on */
        size_t *awake, n_awake, *scratch;
        size_t awake_cap;
        struct sim_wake {
                uint64_t usec;
                size_t vm;
        } *heap;
        size_t n_heap;
        size_t n_asleep;
        uint64_t asleep_held_kib, asleep_desired_kib, asleep_startup_kib;
        uint64_t backoff_until_usec, backoff_usec; /* no sleeping after the host turned short */
        struct core_frame one;          /* a sleeper's replayed tick */
        uint64_t wakes, full_ticks;     /* how often VMs woke, how often every VM was woken */
        uint64_t slept_steps;           /* VM-steps not taken (counted when a sleeper wakes) */
        uint64_t replay_mismatches;     /* a replayed tick that was not the hold it slept on: 0 */
};

/* A host of total_kib at virtual time start_usec (> 0), decided by the controller core.
 * Returns 0 or -ENOMEM. */
int sim_init(struct sim *s, const struct tide_config *cfg, uint64_t total_kib, uint64_t start_usec);
/* Decided by a peer's rule instead (before the first tick). */
void sim_use_peer(struct sim *s, enum peer_rule r);
/* The fast path, for the controller core (a peer's rule always steps every VM): a VM whose last
 * decision is a hold that rests on its demand sleeps until that demand leaves its range or an
 * event comes; only the awake VMs are observed, decided and stepped, and a tick on which the
 * host turns short wakes them all. The results are the full loop's, number for number (a test
 * runs both). Needs a tick of whole seconds (the guests' statistics advance once a second) and
 * no VM bound to a NUMA node; otherwise every VM is stepped as without it. Before the first
 * tick; returns 0, -EBUSY after it, -ENOMEM. */
int sim_set_fast(struct sim *s, bool on);

void sim_done(struct sim *s);

/* Adds a domain. Returns its index, -EINVAL for a spec that cannot exist (no name, boot size 0,
 * a policy that does not validate, assigned above what it can hold), -ENOMEM. */
int sim_add_vm(struct sim *s, const struct sim_vm_spec *spec);

/* A demand profile's value t_usec after the simulation began (a walk's is its base: the walk
 * itself is stepped per VM by sim_advance()). */
uint64_t sim_demand_at(const struct sim_demand *d, uint64_t t_usec);

/* One tick of tided at s->now_usec: sim_observe(), core_tick() into s->frame.out, sim_apply().
 * Returns 0, or core_tick()'s or sim_observe()'s -errno. */
int sim_tick(struct sim *s);
/* Its parts, for a benchmark that times the decision alone: what tided would observe now into
 * s->frame.obs and *host (-ENOMEM), and s->frame.out applied to the simulated host. */
int sim_observe(struct sim *s, struct core_host_obs *host);
void sim_apply(struct sim *s);
/* Time passes: balloons and virtio-mem move toward their targets, guests boot, use what their
 * demand says, report, and run out of memory. */
void sim_advance(struct sim *s, uint64_t dt_usec);

/* The guest's side of balloon/collect.h's frame: the MemTotal and MemAvailable a guest shows
 * with this balloon actual (and d's plugged virtio-mem) when it uses used_kib of MemTotal and its
 * kernel keeps kernel_kib outside it. One guest model for the simulator and the daemon's tests. */
void sim_guest_meminfo(const struct hv_domain *d, uint64_t actual_kib, uint64_t kernel_kib, uint64_t used_kib,
                       uint64_t *ret_total_kib, uint64_t *ret_available_kib);

/* The balloon statistics QEMU would report for the VM now. */
void sim_vm_stats(const struct sim *s, const struct sim_vm *v, struct hv_mem_stats *ret);

/* The simulated host behind hv_ops (sim_hv.c), so tided's own manager runs on simulated domains
 * (bench_manager): listing, stats, balloon, virtio-mem and policy metadata act on s; the VMs'
 * agents are not reachable there (no channel socket). s must outlive the hv. */
struct hv sim_hv(struct sim *s);

/* Guest OOM episodes over all VMs so far. */
uint64_t sim_oom_events(const struct sim *s);

/* What a VM holds in RAM: balloon actual + plugged virtio-mem. */
uint64_t sim_vm_assigned_kib(const struct sim_vm *v);
/* The balloon's actual as the guest (and QEMU's statistics) see it: in RAM and on disk. */
uint64_t sim_vm_view_kib(const struct sim_vm *v);
