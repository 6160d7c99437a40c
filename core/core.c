#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "core/core.h"
#include "policy/demand.h"

struct core {
        struct engine *engine;
        size_t cap;
        struct engine_vm *vms;
        struct engine_decision *out;
        size_t *vm_index; /* engine index -> caller's index */
        struct core_vm *saved; /* the VMs' states before a tick with others, for -EAGAIN (cap
                                * of them, allocated on the first such tick) */
        struct paging_vm *paging; /* Smart Paging's view of every domain */
        struct paging_action *paging_out;
        struct parking_core *cores; /* the host's topology; NULL: no parking */
        size_t n_cores;
        struct parking_state parking;
};

struct core *core_new(void) {
        return calloc(1, sizeof(struct core));
}

struct core *core_free(struct core *c) {
        if (!c)
                return NULL;
        engine_free(c->engine);
        free(c->vms);
        free(c->out);
        free(c->vm_index);
        free(c->saved);
        free(c->paging);
        free(c->paging_out);
        free(c->cores);
        free(c);
        return NULL;
}

int core_set_topology(struct core *c, const struct parking_core *cores, size_t n) {
        if (!c || (n && !cores) || n > PARKING_CORES_MAX)
                return -EINVAL;
        struct parking_core *copy = NULL;
        if (n && !(copy = malloc(n * sizeof(*copy))))
                return -ENOMEM;
        if (n)
                memcpy(copy, cores, n * sizeof(*copy));
        free(c->cores);
        c->cores = copy;
        c->n_cores = n;
        return 0;
}

const struct parking_state *core_parking_state(const struct core *c) {
        return c ? &c->parking : NULL;
}

/* Core parking after memory: which cores are parked, and each running VM's affinity. The CPUs
 * administrators pinned VMs to are never parked. */
static int park(struct core *c, const struct tide_config *cfg, const struct core_host_obs *h,
                const struct core_vm_obs *vms, size_t n, uint64_t now_usec, struct core_vm_out *out,
                struct core_host_out *host_out) {
        struct parking_obs po = { .busy = h->cpu_busy, .n_cpus = h->n_cpus, .load_known = h->cpu_load_known && h->cpu_busy };
        /* mode = partition confines every VM the partition starts: a stopped VM's configured pins
         * must stay unparked too, or its start would fail (pinned outside the partition's CPUs). */
        bool stopped_too = cfg->parking.mode == PARKING_PARTITION;
        for (size_t i = 0; i < n; i++) {
                if ((vms[i].info->active || stopped_too) && vms[i].pinned)
                        hv_cpuset_or(&po.pinned, &vms[i].pinned_cpus);
                po.affinity_unknown |= vms[i].info->active && vms[i].affinity_unknown;
                po.exempt_running |= vms[i].info->active && vms[i].have_policy && vms[i].policy.latency_sensitive;
        }
        struct parking_topology t = { c->cores, c->n_cores };
        int r = parking_plan(&cfg->parking, &t, &po, &c->parking, now_usec, &host_out->parking);
        if (r < 0)
                return r;
        host_out->parking_on = true;
        for (size_t i = 0; i < n; i++)
                if (vms[i].info->active)
                        out[i].parking = parking_vm_action(&cfg->parking, &host_out->parking, !vms[i].pinned,
                                                           vms[i].have_policy && vms[i].policy.latency_sensitive);
        return 0;
}

/* Scratch grows by doubling, so a host that adds domains one by one reallocates log(n) times. */
static int ensure_capacity(struct core *c, size_t n) {
        if (n <= c->cap && c->engine)
                return 0;
        size_t cap = n < 16 ? 16 : n * 2;
        struct engine *e = engine_new(cap);
        struct engine_vm *vms = calloc(cap, sizeof(*vms));
        struct engine_decision *out = calloc(cap, sizeof(*out));
        size_t *idx = calloc(cap, sizeof(*idx));
        struct paging_vm *pg = calloc(cap, sizeof(*pg));
        struct paging_action *pa = calloc(cap, sizeof(*pa));
        if (!e || !vms || !out || !idx || !pg || !pa) {
                engine_free(e);
                free(vms);
                free(out);
                free(idx);
                free(pg);
                free(pa);
                return -ENOMEM;
        }
        engine_free(c->engine);
        free(c->vms);
        free(c->out);
        free(c->vm_index);
        free(c->saved);
        free(c->paging);
        free(c->paging_out);
        /* What is not per VM stays: the topology and what is parked. */
        *c = (struct core){ .engine = e, .cap = cap, .vms = vms, .out = out, .vm_index = idx, .paging = pg,
                            .paging_out = pa, .cores = c->cores, .n_cores = c->n_cores, .parking = c->parking };
        return 0;
}

int core_frame_reserve(struct core_frame *f, size_t n) {
        if (f->obs && n <= f->cap)
                return 0;
        size_t cap = n < 16 ? 16 : n + n / 4;
        struct core_vm_obs *obs = calloc(cap, sizeof(*obs));
        struct core_vm_out *out = calloc(cap, sizeof(*out));
        if (!obs || !out) {
                free(obs);
                free(out);
                return -ENOMEM;
        }
        core_frame_done(f);
        *f = (struct core_frame){ .obs = obs, .out = out, .cap = cap };
        return 0;
}

void core_frame_done(struct core_frame *f) {
        free(f->obs);
        free(f->out);
        *f = (struct core_frame){ 0 };
}

uint64_t core_actual_kib(const struct core_vm *s, const struct hv_domain *d) {
        return s->stats_ok && s->stats.actual_kib != UINT64_MAX ? s->stats.actual_kib : d->current_kib;
}

struct balloon_split core_release_split(const struct hv_domain *d) {
        return (struct balloon_split){ .balloon_kib = d->max_kib, .vmem_requested_kib = 0 };
}

void core_vm_init(struct core_vm *s, uint64_t found_usec) {
        *s = (struct core_vm){ .found_usec = found_usec };
}

char *core_reason_format(const struct core_vm *s, char *buf, size_t len) {
        if (!s->decided) {
                if (len)
                        buf[0] = '\0';
                return buf;
        }
        return engine_reason_format(&s->decision, &s->input, buf, len);
}

/* No target being watched, nothing reported about it. */
static void forget_balloon_progress(struct core_vm *s) {
        s->watch = (struct balloon_watch){ 0 };
        s->balloon = BALLOON_STATE_OK;
        s->balloon_logged = false;
}

/* A new run of the guest: a boot (booting: startup memory until its balloon driver reports), or
 * an arrival with its memory. What was known of its balloon, its stats baseline and the engine's
 * memory belong to the previous run; when it booted is known only for a boot that was seen. */
static void new_run(struct core_vm *s, uint64_t now_usec, bool boot) {
        s->booting = boot;
        s->boot_usec = now_usec;
        s->boot_known = boot;
        s->stats_advanced = false;
        s->last_update_seen = 0;
        s->memo = (struct engine_memo){ 0 };
        s->set_balloon_kib = 0;
        s->early_above_kib = INT64_MAX; /* the last run's use says nothing of this one's */
        forget_balloon_progress(s);
}

/* Starts, stops and policies coming and going, before anything of this tick's sample counts. */
static void track_lifecycle(const struct core_vm_obs *o, uint64_t now_usec) {
        struct core_vm *s = o->state;
        bool active = o->info->active;

        if (o->stopped || !active) {
                s->stats_ok = false;
                s->decided = false;
        }
        if (active) {
                if (o->start == CORE_START_BOOT || o->start == CORE_START_REBOOT)
                        new_run(s, now_usec, true);
                else if (o->start == CORE_START_RESUME)
                        new_run(s, now_usec, false);
                else if (!s->known && s->paging.phase == PAGING_ACTIVE)
                        /* Found running with a paging file on (tided restarted mid-storm,
                         * paging_adopt()): its boot may not be over, and the balloon's actual
                         * QEMU shows may be the one from before its reset (kept until the new
                         * driver moves it). It boots, as far as tide knows, until the boot-end
                         * rule says otherwise: its file is not released on that stale actual
                         * (a kill -9 mid-storm here released four on it, and QEMUs died). */
                        new_run(s, now_usec, true);
                else if (!s->known)
                        /* Found running (tided started, or the domain came between two
                         * listings with no event): when it booted is unknown and may have been
                         * a second ago. The quiet period counts from when it was found unless
                         * its agent tells a longer uptime; the cost is one quiet period without
                         * shrinking. */
                        s->boot_usec = s->found_usec ? s->found_usec : now_usec;
                else if (!s->was_active)
                        new_run(s, now_usec, true); /* a start whose event was lost */
        }
        if (o->have_policy && !s->was_managed && s->known) {
                /* Newly managed: do not act on stats older than this moment. */
                s->stats_advanced = false;
                s->memo = (struct engine_memo){ 0 };
                s->early_above_kib = INT64_MAX;
        }
        if (o->have_policy || !active)
                s->release_pending = false;
        else if (s->was_managed)
                s->release_pending = true;
        if (!o->have_policy)
                s->decided = false;
        if (!s->known)
                s->early_above_kib = INT64_MAX;
        s->known = true;
        s->was_active = active;
        s->was_managed = o->have_policy;
}

/* Takes this tick's balloon statistics sample, if one was read. */
static void take_sample(const struct core_vm_obs *o, const struct tide_config *cfg, uint64_t now_usec,
                        struct core_vm_out *out) {
        struct core_vm *s = o->state;

        if (!o->fresh_stats)
                return;
        if (!o->stats_ok) {
                if (s->stats_ok)
                        out->logs |= CORE_LOG_STATS_LOST;
                s->stats_ok = false;
                return;
        }
        s->stats = o->stats;
        if (s->stats.rss_kib != UINT64_MAX)
                s->rss_seen_kib = s->stats.rss_kib;
        if (balloon_stats_clamp(&s->stats, o->info))
                out->logs |= CORE_LOG_CLAMPED;
        s->stats_ok = true;
        /* last_update is QEMU's wall-clock second of the guest's last report. A change means a
         * fresh sample, timed on tided's monotonic clock, never on the guest's word. */
        uint64_t lu = s->stats.last_update_sec;
        if (lu != UINT64_MAX && lu != 0 && lu != s->last_update_seen) {
                /* The first value seen is only a baseline: it may predate a reboot or tided. */
                if (s->last_update_seen != 0) {
                        s->stats_advanced = true;
                        s->demand_usec = now_usec;
                }
                s->last_update_seen = lu;
        }
        /* The balloon driver is up once it reports; and after a reboot, once it has also taken
         * the boot target tided set (QEMU reports the old actual until the new driver deflates:
         * a boot ended on that stale figure was held there, squeezing a guest still filling its
         * memory, as a real storm here showed). A driver that never gets there ends the boot
         * after the quiet period, so nothing is held at startup for good. */
        if (s->booting && s->stats_advanced &&
            (!s->set_balloon_kib || s->stats.actual_kib == UINT64_MAX ||
             s->stats.actual_kib + POLICY_ALIGN_KIB >= s->set_balloon_kib || now_usec - s->boot_usec >= cfg->quiet_usec))
                s->booting = false;
}

/* Whether the guest deflated its own balloon since the last sample because it ran out of memory
 * (balloon/collect.h). Only a deflate-on-oom balloon may do that; on another a rising actual is
 * a guest driver misbehaving, reported but not believed. */
static bool guest_oom(const struct core_vm_obs *o, uint64_t now_usec, struct core_vm_out *out) {
        struct core_vm *s = o->state;

        if (s->stats.actual_kib == UINT64_MAX || !o->fresh_stats)
                return false;
        uint64_t took = balloon_watch_reclaimed(&s->watch, s->stats.actual_kib);
        /* A rebooting guest's balloon device resets to the full boot size before its new driver
         * inflates again: a rise that is no OOM. Until the driver reports, only follow it. */
        if (took == 0 || s->booting)
                return false;
        s->guest_oom_deflates++;
        /* What was set is no longer where the balloon is: the next decision is sent even if it
         * names the same target (a maximum the guest rose above is enforced again). */
        s->set_balloon_kib = 0;
        if (!s->oom_logged_usec || now_usec - s->oom_logged_usec >= CORE_LOG_EVERY_USEC) {
                s->oom_logged_usec = now_usec;
                out->logs |= o->info->balloon_deflate_on_oom ? CORE_LOG_GUEST_OOM : CORE_LOG_BALLOON_RISE;
                out->oom_took_kib = took;
        }
        return o->info->balloon_deflate_on_oom;
}

/* How much a guest's used memory may rise between ticks before it is worth an early tick. */
static uint64_t early_margin_kib(const struct tide_config *cfg) {
        return max_u64(cfg->deadband_kib, POLICY_ALIGN_KIB);
}

/* What each demand source says; policy/demand.h chooses. */
static struct demand_pick pick_demand(const struct core_vm_obs *o, const struct tide_config *cfg, uint64_t now_usec,
                                      struct core_vm_out *out) {
        struct core_vm *s = o->state;
        struct demand_sources src = { 0 };

        if (o->has_report && balloon_used_host_frame(o->report.total_kib, o->report.available_kib, s->stats.actual_kib,
                                                     o->info, &src.agent.used_kib, &src.agent_total_kib) == 0) {
                /* A fresh report of more in use (host frame: ballooned pages are already out)
                 * than QEMU has resident is a lie: balloon statistics instead. */
                if (o->report_fresh && s->stats.rss_kib != UINT64_MAX && src.agent.used_kib > 0 &&
                    !demand_agent_plausible((uint64_t) src.agent.used_kib, s->stats.rss_kib)) {
                        snprintf(out->distrust_why, sizeof(out->distrust_why),
                                 "reports %" PRIu64 " KiB in use but QEMU has only %" PRIu64 " KiB resident",
                                 (uint64_t) src.agent.used_kib, s->stats.rss_kib);
                        out->logs |= CORE_LOG_DISTRUST;
                } else {
                        src.has_agent = true;
                        src.agent_usec = o->report_usec;
                        src.agent.floor_kib = o->report.floor_kib;
                        src.agent.has_psi = o->report.has_psi;
                        src.agent.psi_some_avg10 = o->report.some_avg10;
                }
        }
        src.balloon = s->stats_advanced &&
                      balloon_demand_from_stats(&s->stats, o->info, &src.balloon_demand_kib, &src.balloon_total_kib) == 0;
        src.balloon_usec = s->demand_usec;
        struct demand_pick pick = demand_pick(&src, now_usec, cfg->stale_usec, s->memo.last_demand_usec);

        /* Without the agent's word this tick, the last threshold the agent gave stands. */
        s->agent_demand = pick.source == DEMAND_SOURCE_AGENT;
        if (s->agent_demand)
                s->early_above_kib = (int64_t) (o->report.total_kib - min_u64(o->report.available_kib, o->report.total_kib)) +
                                     (int64_t) early_margin_kib(cfg);
        return pick;
}

/* The engine's input for a managed, running VM with a sample. */
static void engine_input(const struct core_vm_obs *o, const struct tide_config *cfg, int node, uint64_t now_usec,
                         struct engine_vm *vm, struct core_vm_out *out) {
        struct core_vm *s = o->state;
        uint64_t assigned = o->info->current_kib;

        /* The guest's own uptime may only end the quiet period sooner: a guest claiming a fresh
         * boot forever gains nothing, it was found running. */
        if (o->has_report && !s->boot_known) {
                uint64_t up_ms = min_u64(o->report.uptime_ms, UINT64_MAX / 1000);
                uint64_t guest_boot = sat_sub_u64(o->report_usec, up_ms * 1000);
                s->boot_usec = min_u64(s->boot_usec, max_u64(guest_boot, 1));
                s->boot_known = true;
        }
        (void) balloon_assigned_kib(&s->stats, o->info, &assigned);
        bool oom = guest_oom(o, now_usec, out);
        *vm = (struct engine_vm){
                /* The engine must not aim at memory the balloon cannot give. */
                .policy = policy_within_reach(&o->policy, balloon_reachable_kib(o->info)),
                .state = s->booting ? ENGINE_VM_BOOTING : ENGINE_VM_RUNNING,
                .assigned_kib = assigned,
                .uptime_usec = sat_sub_u64(now_usec, s->boot_usec),
                .node = node,
                .memo = s->memo,
                .guest_reclaimed = oom,
        };
        struct demand_pick pick = pick_demand(o, cfg, now_usec, out);
        vm->has_demand = pick.source != DEMAND_SOURCE_NONE;
        vm->demand_kib = pick.demand_kib;
        vm->guest_total_kib = pick.total_kib;
        vm->demand_usec = pick.usec;
        vm->psi_some_avg10 = pick.psi_some_avg10;
        s->has_demand = vm->has_demand;
        s->demand_kib = vm->demand_kib;
}

/* From a target to calls: up to the boot size the balloon, above it virtio-mem. Grow deflates
 * before plugging, shrink unplugs before inflating (as Hyper-V does). A target the balloon is
 * already set to is not sent again, unless the guest deflated past it. */
static void plan_actions(const struct core_vm_obs *o, uint64_t target_kib, bool grow_only, struct core_vm_out *out) {
        const struct core_vm *s = o->state;
        const struct hv_domain *d = o->info;
        uint64_t actual = core_actual_kib(s, d);
        struct balloon_split sp = balloon_split_target(target_kib, d);

        /* Between ticks only growth is urgent; shrinking keeps its pace of one step per tick. */
        if (grow_only && target_kib <= actual + (d->has_virtio_mem ? d->virtio_mem_current_kib : 0))
                return;
        if (d->has_virtio_mem && sp.vmem_requested_kib != d->virtio_mem_requested_kib) {
                out->set_vmem = true;
                out->vmem_kib = sp.vmem_requested_kib;
                out->vmem_first = sp.vmem_requested_kib < d->virtio_mem_requested_kib;
        }
        /* Within a page of what is already set, the balloon is where we want it. */
        uint64_t current = s->set_balloon_kib ? s->set_balloon_kib : d->current_kib;
        if (sp.balloon_kib == current && (s->set_balloon_kib || actual == sp.balloon_kib))
                return;
        out->set_balloon = true;
        out->balloon_kib = sp.balloon_kib;
        out->resend = sp.balloon_kib == current;
}

/* Whether the balloon moves toward the target it was given; a stuck one is reported once an
 * episode. A target about to be sent resets the watch when it is applied (core_vm_applied). */
static void watch_balloon(struct core_vm *s, uint64_t now_usec, struct core_vm_out *out) {
        enum balloon_state st = balloon_watch_update(&s->watch, s->stats.actual_kib, now_usec);
        if (st != s->balloon && st != BALLOON_STATE_OK && !s->balloon_logged) {
                out->logs |= CORE_LOG_BALLOON_STUCK;
                s->balloon_logged = true;
        }
        if (st == BALLOON_STATE_OK)
                s->balloon_logged = false;
        s->balloon = st;
}

/* What a snapshot row shows of a VM, after this tick's decision. */
static void describe(const struct core_vm_obs *o, struct core_vm_out *out) {
        const struct core_vm *s = o->state;
        const struct hv_domain *d = o->info;
        uint64_t assigned = d->active ? d->current_kib : 0, total;
        int64_t demand = 0;
        bool has = false;

        if (s->stats_ok) {
                if (balloon_assigned_kib(&s->stats, d, &assigned) < 0)
                        assigned = d->current_kib;
                out->rss_kib = s->stats.rss_kib == UINT64_MAX ? 0 : s->stats.rss_kib;
        }
        if (s->decided && o->have_policy && d->active) {
                has = s->has_demand;
                demand = s->demand_kib;
        } else if (s->stats_ok)
                has = balloon_demand_from_stats(&s->stats, d, &demand, &total) == 0;
        out->assigned_kib = assigned;
        out->status = ENGINE_STATUS_UNKNOWN;
        if (has && demand >= 0) {
                out->has_demand = true;
                out->demand_kib = (uint64_t) demand;
        }
        if (s->decided && o->have_policy && d->active)
                out->status = engine_status_of(assigned, out->has_demand, out->demand_kib, o->policy.buffer_pct,
                                               &out->available_buffer_pct);
        /* Hyper-V shows "Paging" while a VM's Smart Paging file is in use, whatever its buffer. */
        if (paging_in_use(&s->paging))
                out->status = ENGINE_STATUS_PAGING;
}

/* Smart Paging's view of one domain this tick. */
static struct paging_vm paging_input(const struct core_vm_obs *o) {
        struct core_vm *s = o->state;
        const struct hv_domain *d = o->info;
        uint64_t assigned = d->current_kib;
        bool managed = d->active && o->have_policy;

        if (s->stats_ok)
                (void) balloon_assigned_kib(&s->stats, d, &assigned);
        return (struct paging_vm){
                .state = &s->paging,
                .active = d->active,
                .managed = managed,
                .dynamic = o->policy.dynamic,
                /* A stop seen with a start in one tick is a new QEMU: a cold start. A resume
                 * (migrated in, restored, woken up) brings its memory with it: nothing to fund,
                 * no file, no limit (with QEMU's RSS still small while a migration copies, it
                 * would have looked like a whole startup to page). */
                .start = !managed                                     ? PAGING_START_NONE
                         : o->start == CORE_START_REBOOT && !o->stopped ? PAGING_START_RESTART
                         : o->start == CORE_START_BOOT || o->start == CORE_START_REBOOT
                                 ? PAGING_START_COLD
                                 : PAGING_START_NONE,
                .booting = s->booting,
                .reporting = s->stats_ok && s->stats_advanced,
                .startup_kib = o->policy.startup_kib,
                .minimum_kib = o->policy.minimum_kib,
                .weight = o->policy.weight,
                .assigned_kib = assigned,
                /* A reset's first sample may lack the RSS (seen here): the last one known stands,
                 * or the hard limit would land below what QEMU holds already. */
                .held_kib = s->stats_ok && s->stats.rss_kib != UINT64_MAX ? s->stats.rss_kib : s->rss_seen_kib,
                .file_used_kib = o->paging_used_kib,
        };
}

/* Usable memory for the VMs is what the host has available plus what the managed VMs hold
 * resident now: memory a VM was given but never touched counts as taken, so it is never handed
 * out twice. Inside a cgroup partition with a limit, the VMs can hold at most what the
 * partition has left plus what they hold: the smaller of the two bounds counts (the host
 * reserve is the host's, so it is added back to the partition's bound). */
static struct engine_host host_capacity(const struct core_host_obs *h, const struct tide_config *cfg, uint64_t rss_sum,
                                        const uint64_t *node_rss, bool node_bound) {
        rss_sum += h->others_held_kib;
        struct engine_host host = {
                .usable_kib = h->available_kib + rss_sum,
                .reserve_kib = config_reserve_kib(cfg, h->total_kib),
                .others_assigned_kib = h->others_held_kib,
                .others_desired_kib = h->others_desired_kib,
        };
        if (h->partition_limited) {
                uint64_t part = sat_sub_u64(h->partition_limit_kib, h->partition_usage_kib) + rss_sum + host.reserve_kib;
                host.usable_kib = min_u64(host.usable_kib, part);
        }
        /* A VM bound to a node can only have that node's memory: its free memory plus what the
         * VMs bound there already hold. The host reserve is kept globally, not per node. */
        if (node_bound) {
                host.n_nodes = (unsigned) min_u64(h->n_nodes, ENGINE_NODE_MAX);
                for (unsigned k = 0; k < host.n_nodes; k++)
                        host.node_usable_kib[k] = h->node_free_kib[k] + node_rss[k];
        }
        return host;
}

int core_tick(struct core *c, const struct tide_config *cfg, const struct core_host_obs *h,
              const struct core_vm_obs *vms, size_t n, uint64_t now_usec, bool grow_only, struct core_vm_out *out,
              struct core_host_out *host_out) {
        uint64_t node_rss[CORE_NODE_MAX] = { 0 }, rss_sum = 0;
        bool node_bound = false;
        size_t k = 0;
        int r;

        if (!c || !cfg || !h || (n && (!vms || !out)) || !host_out)
                return -EINVAL;
        if ((r = ensure_capacity(c, n)) < 0)
                return r;
        /* Only the simulator hands in others: tided never pays for the copies. */
        bool others = h->others_held_kib || h->others_desired_kib;
        /* Funding a start looks at what every VM can give back: not a partial tick's. */
        for (size_t i = 0; others && i < n; i++)
                if (vms[i].start != CORE_START_NONE)
                        return -EAGAIN;
        if (others && !c->saved && !(c->saved = calloc(c->cap, sizeof(*c->saved))))
                return -ENOMEM;
        for (size_t i = 0; others && i < n; i++)
                c->saved[i] = *vms[i].state;

        for (size_t i = 0; i < n; i++) {
                const struct core_vm_obs *o = &vms[i];
                struct core_vm *s = o->state;

                out[i] = (struct core_vm_out){ .status = ENGINE_STATUS_UNKNOWN };
                track_lifecycle(o, now_usec);
                if (s->release_pending) {
                        out[i].release = true;
                        continue;
                }
                if (!o->info->active || !o->have_policy)
                        continue;
                take_sample(o, cfg, now_usec, &out[i]);
                if (!s->stats_ok)
                        continue;
                int node = o->info->numa_node >= 0 && (unsigned) o->info->numa_node < h->n_nodes &&
                                           o->info->numa_node < CORE_NODE_MAX
                                   ? o->info->numa_node
                                   : ENGINE_NODE_NONE;
                if (s->stats.rss_kib != UINT64_MAX) {
                        rss_sum += s->stats.rss_kib;
                        if (node != ENGINE_NODE_NONE)
                                node_rss[node] += s->stats.rss_kib;
                }
                node_bound |= node != ENGINE_NODE_NONE;
                out[i].agent_max_total_kib = balloon_visible_kib(core_actual_kib(s, o->info), o->info);
                engine_input(o, cfg, node, now_usec, &c->vms[k], &out[i]);
                c->vm_index[k++] = i;
        }

        *host_out = (struct core_host_out){ .host = host_capacity(h, cfg, rss_sum, node_rss, node_bound) };

        /* Smart Paging before the engine: what is free now is what the host has less what the
         * VMs hold resident, above the reserve. What paging VMs keep on disk is capacity the
         * engine may count: their startup is a floor it must fund, and their files fund part
         * of it (without this a storm the files cover would read as overcommitted, and the
         * first guest to boot would be squeezed to its minimum while it still fills its memory). */
        for (size_t i = 0; i < n; i++)
                c->paging[i] = paging_input(&vms[i]);
        struct paging_host ph = {
                .free_kib = sat_sub_u64(sat_sub_u64(host_out->host.usable_kib, host_out->host.reserve_kib),
                                        rss_sum + h->others_held_kib),
                .can_page = h->can_page,
                .swap_known = h->swap_known,
                .swapped_kib = h->swapped_kib,
                .swap_free_kib = h->swap_free_kib,
        };
        if ((r = paging_plan(cfg, &ph, c->paging, n, now_usec, c->paging_out, &host_out->paging)) < 0)
                return r;
        host_out->host.usable_kib += host_out->paging.on_disk_kib;

        r = engine_step(c->engine, &host_out->host, c->vms, k, cfg, now_usec, c->out, &host_out->summary);
        if (r < 0)
                return r;
        if (others && host_out->summary.short_host) {
                for (size_t i = 0; i < n; i++)
                        *vms[i].state = c->saved[i];
                return -EAGAIN;
        }

        for (size_t j = 0; j < k; j++) {
                size_t i = c->vm_index[j];
                const struct core_vm_obs *o = &vms[i];
                struct core_vm *s = o->state;
                const struct engine_decision *dec = &c->out[j];

                s->input = c->vms[j];
                s->decision = *dec;
                s->decided = true;
                s->memo = dec->memo;
                out[i].managed_running = true;
                /* Once per episode of rejected demand, when the reason says so (an OOM grow may
                 * take the reason on the tick the flag appears). */
                if (!(dec->flags & ENGINE_FLAG_INSANE_DEMAND))
                        s->insane_logged = false;
                else if (!s->insane_logged && dec->reason == ENGINE_REASON_INSANE) {
                        out[i].logs |= CORE_LOG_INSANE;
                        s->insane_logged = true;
                }
                plan_actions(o, dec->target_kib, grow_only, &out[i]);
                if (!out[i].set_balloon)
                        watch_balloon(s, now_usec, &out[i]);
        }
        for (size_t i = 0; i < n; i++) {
                out[i].paging = c->paging_out[i];
                describe(&vms[i], &out[i]);
                if (vms[i].info->active)
                        host_out->assigned_kib += out[i].assigned_kib;
        }
        /* Early ticks are for memory a guest asked for; cores move on the regular ones. */
        if (c->n_cores && !grow_only && (r = park(c, cfg, h, vms, n, now_usec, out, host_out)) < 0)
                return r;
        return 0;
}

bool core_vm_settled(const struct core_vm *s, const struct core_vm_out *out, const struct core_host_out *host_out) {
        return s->decided && !s->booting && !s->release_pending && out->managed_running && !out->release &&
               !out->logs && s->balloon == BALLOON_STATE_OK && !host_out->summary.short_host &&
               !host_out->summary.overcommitted && s->paging.phase == PAGING_NONE &&
               !host_out->paging.unfunded_kib && !host_out->paging.files;
}

bool core_vm_holds_on_demand(const struct core_vm *s) {
        return s->decided && engine_holds_on_demand(&s->input, &s->decision);
}

bool core_vm_hold_range(const struct core_vm *s, const struct tide_config *cfg, int64_t *ret_lo, int64_t *ret_hi) {
        return s->decided && engine_hold_range(&s->input, &s->decision, cfg, ret_lo, ret_hi);
}

void core_vm_applied(struct core_vm *s, const struct core_vm_out *out, bool vmem, bool ok, uint64_t actual_kib,
                     uint64_t now_usec) {
        if (!ok)
                return;
        s->actions++;
        if (vmem)
                return;
        s->set_balloon_kib = out->balloon_kib;
        balloon_watch_target(&s->watch, out->balloon_kib, actual_kib, now_usec);
        s->balloon = balloon_watch_update(&s->watch, s->stats.actual_kib, now_usec);
        if (s->balloon == BALLOON_STATE_OK)
                s->balloon_logged = false;
}

void core_vm_released(struct core_vm *s, bool ok) {
        if (!ok)
                return;
        s->release_pending = false;
        s->was_managed = false;
        s->set_balloon_kib = 0;
        forget_balloon_progress(s);
}
