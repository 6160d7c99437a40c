#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/units.h"
#include "sim/internal.h"
#include "sim/sim.h"

int sim_init(struct sim *s, const struct tide_config *cfg, uint64_t total_kib, uint64_t start_usec) {
        *s = (struct sim){ .cfg = *cfg,
                           .now_usec = start_usec,
                           .start_usec = start_usec,
                           .total_kib = total_kib,
                           .balloon_kib_per_sec = SIM_BALLOON_KIB_PER_SEC };
        s->metrics.all_booted_usec = -1;
        /* A simulated VM's QEMU holds nothing of its own (its RSS is its guest memory), so Smart
         * Paging wants no overhead resident beyond the startup memory. */
        s->cfg.qemu_overhead_kib = 0;
        s->core = core_new();
        return s->core ? 0 : -ENOMEM;
}

void sim_use_peer(struct sim *s, enum peer_rule r) {
        s->peer_mode = true;
        s->peer = r;
}

void sim_done(struct sim *s) {
        core_free(s->core);
        free(s->awake);
        free(s->scratch);
        free(s->heap);
        core_frame_done(&s->one);
        free(s->vms);
        free(s->peer_vms);
        free(s->peer_targets);
        free(s->peer_index);
        free(s->peer_pg);
        free(s->peer_pg_out);
        core_frame_done(&s->frame);
        *s = (struct sim){ 0 };
}

uint64_t sim_vm_assigned_kib(const struct sim_vm *v) {
        return v->actual_kib + v->info.virtio_mem_current_kib;
}

uint64_t sim_vm_view_kib(const struct sim_vm *v) {
        return v->actual_kib + v->pg.on_disk_kib;
}

void sim_paging_host(const struct sim *s, struct core_host_obs *host) {
        host->can_page = s->paging_kib_per_sec > 0;
        /* No swap cache here: every page on disk comes back when its file goes. */
        host->swap_known = true;
        host->swapped_kib = s->metrics.now_paging_kib;
        /* Every paging file's room: a file is as big as its VM's shortfall, and holds only
         * that VM's pages here. */
        host->swap_free_kib = 0;
        for (size_t i = 0; i < s->n_vms; i++)
                host->swap_free_kib += sat_sub_u64(s->vms[i].pg.file_kib, s->vms[i].pg.on_disk_kib);
}

uint64_t sim_trace_at(const struct sim_trace *tr, uint64_t t, size_t *pos) {
        size_t k = 0;

        t = sat_sub_u64(t, tr->offset_usec);

        if (tr->n == 0)
                return 0;
        if (pos && *pos < tr->n && tr->t_usec[*pos] <= t)
                k = *pos;
        else if (tr->t_usec[0] <= t) {
                size_t lo = 0, hi = tr->n; /* the last sample <= t lies in [lo, hi) */
                while (hi - lo > 1) {
                        size_t mid = lo + (hi - lo) / 2;
                        if (tr->t_usec[mid] <= t)
                                lo = mid;
                        else
                                hi = mid;
                }
                k = lo;
        }
        while (k + 1 < tr->n && tr->t_usec[k + 1] <= t)
                k++;
        if (pos)
                *pos = k;
        if (t <= tr->t_usec[0] || k + 1 >= tr->n || tr->hold)
                return tr->kib[k];
        double f = (double) (t - tr->t_usec[k]) / (double) (tr->t_usec[k + 1] - tr->t_usec[k]);
        return (uint64_t) llround((double) tr->kib[k] + ((double) tr->kib[k + 1] - (double) tr->kib[k]) * f);
}

uint64_t sim_demand_at(const struct sim_demand *d, uint64_t t_usec) {
        uint64_t kib = d->base_kib;

        switch (d->kind) {
        case SIM_DEMAND_STEPS:
                for (size_t k = 0; k < d->n_steps && k < SIM_STEPS_MAX; k++)
                        if (t_usec >= d->steps[k].at_usec)
                                kib = d->steps[k].kib;
                return kib;
        case SIM_DEMAND_RAMP:
                if (t_usec <= d->from_usec)
                        return kib;
                if (d->len_usec == 0 || t_usec >= d->from_usec + d->len_usec)
                        return d->to_kib;
                double f = (double) (t_usec - d->from_usec) / (double) d->len_usec;
                return (uint64_t) llround((double) d->base_kib + ((double) d->to_kib - (double) d->base_kib) * f);
        case SIM_DEMAND_TRACE:
                return sim_trace_at(&d->trace, t_usec, NULL);
        case SIM_DEMAND_CONSTANT:
        case SIM_DEMAND_WALK: /* the walk's state is the VM's: sim_advance() steps it */
        default:
                return kib;
        }
}

uint64_t sim_rng_next(uint64_t *x) {
        /* splitmix64: small, seedable, and the same sequence everywhere. */
        uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}


int sim_add_vm(struct sim *s, const struct sim_vm_spec *spec) {
        char err[256];

        if (!spec->name[0] || spec->boot_kib == 0 || (spec->vmem_max_kib && spec->vmem_block_kib == 0) ||
            (spec->demand.kind == SIM_DEMAND_TRACE && (spec->demand.trace.n == 0 || !spec->demand.trace.t_usec ||
                                                       !spec->demand.trace.kib)))
                return -EINVAL;
        if (spec->have_policy && policy_validate(&spec->policy, err, sizeof(err)) < 0)
                return -EINVAL;
        uint64_t assigned = spec->assigned_kib ? spec->assigned_kib : spec->boot_kib;
        if (assigned > spec->boot_kib + spec->vmem_max_kib)
                return -EINVAL;
        if (s->n_vms == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 16;
                struct sim_vm *vms = realloc(s->vms, cap * sizeof(*vms));
                if (!vms)
                        return -ENOMEM;
                s->vms = vms;
                s->cap = cap;
        }
        struct sim_vm *v = &s->vms[s->n_vms];
        *v = (struct sim_vm){ .spec = *spec };
        struct hv_domain *d = &v->info;
        snprintf(d->uuid, sizeof(d->uuid), "00000000-0000-4000-8000-%012zx", s->n_vms);
        snprintf(d->name, sizeof(d->name), "%s", spec->name);
        d->id = (int) s->n_vms + 1;
        d->active = d->persistent = d->has_balloon = true;
        d->max_kib = spec->boot_kib;
        d->balloon_deflate_on_oom = spec->deflate_on_oom;
        d->numa_node = spec->node;
        if (spec->vmem_max_kib) {
                d->has_virtio_mem = true;
                snprintf(d->virtio_mem_alias, sizeof(d->virtio_mem_alias), "virtiomem0");
                d->virtio_mem_max_kib = spec->vmem_max_kib;
                d->virtio_mem_block_kib = spec->vmem_block_kib;
                uint64_t plugged = sat_sub_u64(assigned, spec->boot_kib);
                plugged -= plugged % spec->vmem_block_kib;
                d->virtio_mem_requested_kib = d->virtio_mem_current_kib = plugged;
        }
        if (spec->agent != SIM_AGENT_NONE)
                snprintf(d->agent_socket, sizeof(d->agent_socket), "sim:%s", spec->name);
        v->actual_kib = min_u64(assigned, spec->boot_kib);
        v->balloon_target_kib = v->actual_kib;
        d->current_kib = v->actual_kib;
        v->running = !spec->stopped;
        /* Memory is finite from the start: a VM found running holds at most what was free. */
        /* The VMs added since the last step are counted once each, so adding n VMs is O(n). */
        if (s->added_stamp != s->now_usec || s->added_n > s->n_vms) {
                s->added_held_kib = 0;
                s->added_n = 0;
        }
        for (; s->added_n < s->n_vms; s->added_n++)
                s->added_held_kib += sim_vm_assigned_kib(&s->vms[s->added_n]);
        s->added_stamp = s->now_usec;
        uint64_t room = sat_sub_u64(s->total_kib, s->other_kib + s->reserve_kib + s->added_held_kib);
        if (sim_vm_assigned_kib(v) > room) {
                v->actual_kib = v->balloon_target_kib = d->current_kib = min_u64(v->actual_kib, room);
                d->virtio_mem_requested_kib = d->virtio_mem_current_kib = 0;
        }
        if (spec->stopped) {
                /* It holds nothing until it starts. */
                d->active = false;
                v->actual_kib = v->balloon_target_kib = d->current_kib = 0;
                d->virtio_mem_requested_kib = d->virtio_mem_current_kib = 0;
        }
        v->boot_start_usec = sat_sub_u64(s->now_usec, spec->uptime_usec);
        v->boot_progress_usec = spec->uptime_usec;
        v->start_pending = spec->booting;
        v->demand_kib = sim_demand_at(&spec->demand, 0);
        v->walk_state = spec->demand.seed;
        for (size_t k = 0; k < SIM_HISTORY; k++)
                v->history_kib[k] = v->demand_kib;
        core_vm_init(&v->state, s->now_usec);
        /* A guest already running has reported before tided looks; one whose agent fell silent
         * before the start, for the last time then. */
        sim_report(v, spec->agent == SIM_AGENT_SILENT ? min_u64(spec->silent_usec, s->now_usec) : s->now_usec);
        if (spec->node >= 0)
                s->node_bound = true;
        if (s->fast && sim_sleep_add(s, s->n_vms) < 0)
                return -ENOMEM;
        return (int) s->n_vms++;
}

static uint64_t boot_len(const struct sim_vm *v) {
        return v->spec.boot_usec ? v->spec.boot_usec : SIM_DRIVER_UP_USEC;
}

bool sim_driver_up(const struct sim_vm *v) {
        return v->running && v->boot_progress_usec >= boot_len(v);
}

void sim_guest_meminfo(const struct hv_domain *d, uint64_t actual_kib, uint64_t kernel_kib, uint64_t used_kib,
                       uint64_t *ret_total_kib, uint64_t *ret_available_kib) {
        /* With deflate-on-oom the balloon stays inside MemTotal and counts as used. */
        uint64_t visible = (d->balloon_deflate_on_oom ? max_u64(d->max_kib, actual_kib) : actual_kib) +
                           (d->has_virtio_mem ? d->virtio_mem_current_kib : 0);
        uint64_t balloon = d->balloon_deflate_on_oom ? sat_sub_u64(d->max_kib, actual_kib) : 0;
        uint64_t total = sat_sub_u64(visible, kernel_kib);
        *ret_total_kib = total;
        *ret_available_kib = sat_sub_u64(total, used_kib + balloon);
}

void sim_vm_meminfo(const struct sim_vm *v, uint64_t used_kib, uint64_t *ret_total, uint64_t *ret_avail) {
        /* The guest sees its balloon's actual, what Smart Paging holds on disk included. */
        sim_guest_meminfo(&v->info, sim_vm_view_kib(v), v->spec.kernel_kib, sat_sub_u64(used_kib, v->spec.kernel_kib),
                          ret_total, ret_avail);
}

void sim_vm_stats_at(const struct sim_vm *v, uint64_t need_kib, uint64_t now_usec, struct hv_mem_stats *ret) {
        memset(ret, 0xff, sizeof(*ret));
        ret->actual_kib = sim_vm_view_kib(v);
        /* A guest touched what it holds: QEMU's resident set. */
        ret->rss_kib = sim_vm_assigned_kib(v);
        /* Once its driver is up the guest refreshes its statistics every second; with
         * balloon_stats false they carry no memory figures (as a driver without them). */
        ret->last_update_sec = sim_driver_up(v) ? now_usec / USEC_PER_SEC : 0;
        if (v->spec.balloon_stats && sim_driver_up(v))
                sim_vm_meminfo(v, need_kib, &ret->available_kib, &ret->usable_kib);
}

void sim_vm_stats(const struct sim *s, const struct sim_vm *v, struct hv_mem_stats *ret) {
        sim_vm_stats_at(v, v->demand_kib, s->now_usec, ret);
}

void sim_observe_vm(struct sim_vm *v, uint64_t now_usec, struct core_vm_obs *o) {
        /* The qemu driver shows the balloon's actual as <currentMemory>. */
        v->info.current_kib = sim_vm_view_kib(v);
        *o = (struct core_vm_obs){ .info = &v->info,
                                   .have_policy = v->spec.have_policy,
                                   .policy = v->spec.policy,
                                   .start = !v->start_pending ? CORE_START_NONE
                                            : v->start_reboot ? CORE_START_REBOOT
                                                              : CORE_START_BOOT,
                                   .fresh_stats = v->running,
                                   .stats_ok = v->running,
                                   .has_report = v->has_report,
                                   .report = v->report,
                                   .report_usec = v->report_usec,
                                   .report_fresh = v->report_fresh,
                                   .paging_used_kib = v->pg.on_disk_kib,
                                   .state = &v->state };
        sim_vm_stats_at(v, v->demand_kib, now_usec, &o->stats);
}

int sim_observe(struct sim *s, struct core_host_obs *host) {
        int r = core_frame_reserve(&s->frame, s->n_vms);
        if (r < 0)
                return r;
        uint64_t held = 0, node_held[CORE_NODE_MAX] = { 0 };

        for (size_t i = 0; i < s->n_vms; i++) {
                struct sim_vm *v = &s->vms[i];
                uint64_t assigned = sim_vm_assigned_kib(v);

                held += assigned;
                if (v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX)
                        node_held[v->info.numa_node] += assigned;
                sim_observe_vm(v, s->now_usec, &s->frame.obs[i]);
        }
        *host = (struct core_host_obs){ .total_kib = s->total_kib,
                                        .available_kib = sat_sub_u64(s->total_kib, s->other_kib + held),
                                        .n_nodes = s->n_nodes };
        sim_paging_host(s, host);
        for (unsigned k = 0; k < s->n_nodes && k < CORE_NODE_MAX; k++)
                host->node_free_kib[k] = sat_sub_u64(s->node_total_kib[k], node_held[k]);
        return 0;
}

static void paging_done(struct sim *s, struct sim_vm *v) {
        v->pg = (struct sim_paging){ 0 };
        paging_released(&v->state.paging, true, 0, s->now_usec);
}

/* Smart Paging's action, carried out as tided's manager does, without its failures: the file
 * is made and on, the limit set, raised, lifted; a release ends once its pages are back. */
static void apply_paging(struct sim *s, struct sim_vm *v, const struct paging_action *a) {
        struct sim_paging *pg = &v->pg;
        if (a->start) {
                *pg = (struct sim_paging){ .file_kib = a->file_kib, .grant_kib = a->grant_kib, .limited = true };
                s->metrics.paging_starts++;
                paging_started(&v->state.paging, a, 0);
        }
        if (a->raise) {
                pg->grant_kib = a->grant_kib;
                paging_started(&v->state.paging, a, 0);
        }
        if (a->lift_limits && !a->release) {
                pg->limited = false;
                paging_lifted(&v->state.paging, 0, s->now_usec);
        }
        if (a->release) {
                pg->limited = false;
                pg->releasing = true;
                if (!v->running || !pg->on_disk_kib)
                        paging_done(s, v);
        }
}

static void apply(struct sim *s, struct sim_vm *v, const struct core_vm_out *o) {
        apply_paging(s, v, &o->paging);
        if (o->release) {
                v->info.virtio_mem_requested_kib = 0;
                v->balloon_target_kib = v->info.max_kib;
                s->releases++;
                core_vm_released(&v->state, true);
                return;
        }
        if (o->set_vmem) {
                v->info.virtio_mem_requested_kib = o->vmem_kib;
                s->vmem_ops++;
                core_vm_applied(&v->state, o, true, true, 0, s->now_usec);
        }
        if (o->set_balloon) {
                v->balloon_target_kib = o->balloon_kib;
                s->balloon_ops++;
                core_vm_applied(&v->state, o, false, true, sim_vm_view_kib(v), s->now_usec);
        }
}

void sim_apply_vm(struct sim *s, struct sim_vm *v, const struct core_vm_out *o, const struct core_host_out *ho) {
        apply(s, v, o);
        v->report_fresh = false;
        v->start_pending = false; /* the core has seen it */
        /* Whether it may sleep on this decision (sleep.c), asked only where it could. */
        v->hold = s->fast && sim_sleep_candidate(v) && core_vm_settled(&v->state, o, ho);
}

void sim_apply(struct sim *s) {
        for (size_t i = 0; i < s->n_vms; i++)
                sim_apply_vm(s, &s->vms[i], &s->frame.out[i], &s->host_out);
        s->ticks++;
}

/* Hyper-V's Smart Paging (../shared/PEERS.md): a restart the host cannot fund pages its
 * shortfall, whatever the scenario sets for tide. The plan is the one tide's core runs
 * (smartpaging/plan.c), on what Hyper-V sees; what the others give back within reclaim_time is
 * counted at tide's shrink pace (Hyper-V does not publish its own). held: what the VMs hold. */
static int peer_paging(struct sim *s, uint64_t held) {
        if (!s->paging_kib_per_sec)
                return 0;
        if (s->peer_pg_cap < s->n_vms) {
                size_t cap = s->n_vms + s->n_vms / 4 + 16;
                if (realloc_array(&s->peer_pg, cap, sizeof(*s->peer_pg)) < 0 ||
                    realloc_array(&s->peer_pg_out, cap, sizeof(*s->peer_pg_out)) < 0)
                        return -ENOMEM;
                s->peer_pg_cap = cap;
        }
        struct tide_config cfg = s->cfg;
        cfg.smart_paging = CONFIG_PAGING_RESTART;
        for (size_t i = 0; i < s->n_vms; i++) {
                struct sim_vm *v = &s->vms[i];
                bool managed = v->running && v->spec.have_policy;
                s->peer_pg[i] = (struct paging_vm){
                        .state = &v->state.paging,
                        .active = v->running,
                        .managed = managed,
                        .dynamic = v->spec.policy.dynamic,
                        .start = !managed || !v->start_pending ? PAGING_START_NONE
                                 : v->start_reboot            ? PAGING_START_RESTART
                                                              : PAGING_START_COLD,
                        .booting = v->running && !sim_driver_up(v),
                        .reporting = sim_driver_up(v),
                        .startup_kib = sim_vm_startup_kib(v),
                        .minimum_kib = v->spec.policy.minimum_kib,
                        .weight = v->spec.policy.weight,
                        .assigned_kib = sim_vm_view_kib(v) + v->info.virtio_mem_current_kib,
                        .held_kib = sim_vm_assigned_kib(v),
                        .file_used_kib = v->pg.on_disk_kib,
                };
        }
        /* Hyper-V's Smart Paging files are the VM's own, not host-wide swap: no file ever holds
         * another VM's pages, so none waits for swap room. */
        struct paging_host ph = { .free_kib = sat_sub_u64(s->total_kib, s->other_kib + s->reserve_kib + held),
                                  .can_page = true,
                                  .swap_known = true,
                                  .swapped_kib = s->metrics.now_paging_kib,
                                  .swap_free_kib = UINT64_MAX };
        int r = paging_plan(&cfg, &ph, s->peer_pg, s->n_vms, s->now_usec, s->peer_pg_out, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_vms; i++)
                apply_paging(s, &s->vms[i], &s->peer_pg_out[i]);
        return 0;
}

/* swap-anytime's hypervisor (ESXi, ../shared/PEERS.md): every dynamic VM has a swap file of its
 * ceiling less its reservation (the policy's minimum) from its first tick, when the host has a
 * paging disk; the rule's balloon target is also the most it may hold in RAM. What its balloon
 * does not give back in time, or cannot (a guest still booting), page_step() swaps out. */
static void swap_anytime_limit(struct sim *s, struct sim_vm *v, uint64_t balloon_kib) {
        struct sim_paging *pg = &v->pg;
        if (!s->paging_kib_per_sec || !v->spec.policy.dynamic)
                return;
        if (!pg->file_kib) {
                uint64_t file = sat_sub_u64(v->info.max_kib, v->spec.policy.minimum_kib);
                if (!file)
                        return;
                *pg = (struct sim_paging){ .file_kib = file, .limited = true, .anytime = true };
                s->metrics.paging_starts++;
        }
        pg->grant_kib = balloon_kib;
}

/* A peer's tick: what that system sees of each running VM, its rule, its targets applied as
 * libvirt would (balloon up to the boot size, virtio-mem above). */
static int peer_step(struct sim *s) {
        uint64_t held = 0;
        size_t n = 0;

        if (s->peer_cap < s->n_vms) {
                size_t cap = s->n_vms + s->n_vms / 4 + 16;
                if (realloc_array(&s->peer_vms, cap, sizeof(*s->peer_vms)) < 0 ||
                    realloc_array(&s->peer_targets, cap, sizeof(*s->peer_targets)) < 0 ||
                    realloc_array(&s->peer_index, cap, sizeof(*s->peer_index)) < 0)
                        return -ENOMEM;
                s->peer_cap = cap;
        }
        /* When every VM runs, peer_vms[i] is VM i's home for its policy and the rule's memo, and
         * only what changes is written each tick (a memo is ~300 bytes: copying it in and out
         * for every VM was half of a peer's tick). Otherwise the running VMs are gathered. */
        bool all = true;
        for (size_t i = 0; i < s->n_vms && all; i++)
                all = s->vms[i].running;
        if (!all && s->peer_home_n) {
                for (size_t i = 0; i < s->peer_home_n; i++)
                        s->vms[i].peer_memo = s->peer_vms[i].memo;
                s->peer_home_n = 0;
        }
        for (; all && s->peer_home_n < s->n_vms; s->peer_home_n++) {
                const struct sim_vm *v = &s->vms[s->peer_home_n];
                s->peer_vms[s->peer_home_n] = (struct peer_vm){ .policy = v->spec.policy, .memo = v->peer_memo };
        }
        for (size_t i = 0; i < s->n_vms; i++) {
                const struct sim_vm *v = &s->vms[i];
                if (!v->running)
                        continue;
                uint64_t assigned = sim_vm_assigned_kib(v);
                held += assigned;
                struct peer_vm *pv = &s->peer_vms[n];
                if (!all)
                        *pv = (struct peer_vm){ .policy = v->spec.policy, .memo = v->peer_memo };
                pv->assigned_kib = assigned;
                pv->reachable_kib = balloon_reachable_kib(&v->info);
                pv->reporting = sim_driver_up(v);
                pv->uptime_usec = s->now_usec - v->boot_start_usec;
                pv->used_kib = min_u64(v->demand_kib, assigned);
                pv->cache_kib = 0;
                pv->committed_kib = v->demand_kib;
                pv->demand_kib = v->demand_kib;
                s->peer_index[n++] = i;
        }
        struct peer_host h = { .total_kib = s->total_kib,
                               .free_kib = sat_sub_u64(s->total_kib, s->other_kib + held),
                               .reserve_kib = s->reserve_kib };
        int r = peer_tick(s->peer, &h, s->peer_vms, n, s->now_usec, s->peer_targets);
        if (r < 0)
                return r;
        for (size_t k = 0; k < n; k++) {
                struct sim_vm *v = &s->vms[s->peer_index[k]];
                uint64_t target = s->peer_targets[k];
                if (!all)
                        v->peer_memo = s->peer_vms[k].memo;
                if (target == PEER_NO_CHANGE)
                        continue;
                struct balloon_split sp = balloon_split_target(target, &v->info);
                if (sp.balloon_kib != v->balloon_target_kib) {
                        v->balloon_target_kib = sp.balloon_kib;
                        s->balloon_ops++;
                }
                if (v->info.has_virtio_mem && sp.vmem_requested_kib != v->info.virtio_mem_requested_kib) {
                        v->info.virtio_mem_requested_kib = sp.vmem_requested_kib;
                        s->vmem_ops++;
                }
                if (s->peer == PEER_SWAP_ANYTIME)
                        swap_anytime_limit(s, v, sp.balloon_kib);
                /* The oracle is a bound, not a balloon: it holds the demand at once. */
                if (s->peer == PEER_ORACLE) {
                        v->actual_kib = sp.balloon_kib;
                        v->info.virtio_mem_current_kib = sp.vmem_requested_kib;
                }
        }
        if (s->peer == PEER_HYPERV && (r = peer_paging(s, held)) < 0)
                return r;
        for (size_t i = 0; i < s->n_vms; i++)
                s->vms[i].start_pending = false;
        s->ticks++;
        return 0;
}

int sim_tick(struct sim *s) {
        struct core_host_obs host;
        int r;

        if (s->peer_mode)
                return peer_step(s);
        if (sim_fast_active(s))
                return sim_sleep_tick(s);
        /* The fast path stopped with VMs asleep (a node-bound VM arrived): they are brought up
         * to now before anything reads them. */
        if (s->n_asleep)
                sim_sleep_wake_all(s, s->now_usec, false);
        if ((r = sim_observe(s, &host)) < 0)
                return r;
        r = core_tick(s->core, &s->cfg, &host, s->frame.obs, s->n_vms, s->now_usec, false, s->frame.out, &s->host_out);
        if (r < 0)
                return r;
        sim_apply(s);
        return 0;
}

/* Moves `from` toward `to` by at most rate x dt (rate 0: at once). */
static uint64_t move_toward(uint64_t from, uint64_t to, uint64_t kib_per_sec, uint64_t dt_usec) {
        if (kib_per_sec == 0)
                return to;
        uint64_t step = (uint64_t) ((double) kib_per_sec * (double) dt_usec / (double) USEC_PER_SEC);
        if (from < to)
                return min_u64(to, from + step);
        return max_u64(to, sat_sub_u64(from, step));
}

static void step_demand(struct sim *s, struct sim_vm *v, uint64_t from_usec) {
        const struct sim_demand *d = &v->spec.demand;
        uint64_t t = s->now_usec - s->start_usec;

        /* A booting guest uses what it has touched so far. */
        if (v->running && v->spec.boot_touch_kib && !sim_driver_up(v)) {
                uint64_t since = s->now_usec - v->boot_start_usec;
                uint64_t touched = v->spec.boot_touch_kib_per_sec
                                           ? (uint64_t) ((double) v->spec.boot_touch_kib_per_sec * (double) since / 1e6)
                                           : v->spec.boot_touch_kib;
                v->demand_kib = min_u64(touched, v->spec.boot_touch_kib);
                return;
        }
        if (d->kind == SIM_DEMAND_TRACE) {
                v->demand_kib = sim_trace_at(&d->trace, t, &v->trace_pos);
                return;
        }
        if (d->kind != SIM_DEMAND_WALK) {
                v->demand_kib = sim_demand_at(d, t);
                return;
        }
        /* One step per whole second of virtual time passed. */
        for (uint64_t sec = from_usec / USEC_PER_SEC; sec < s->now_usec / USEC_PER_SEC; sec++)
                v->demand_kib = sim_walk_step(d, &v->walk_state, v->demand_kib);
}

uint64_t sim_walk_step(const struct sim_demand *d, uint64_t *state, uint64_t kib) {
        uint64_t x = sim_rng_next(state);
        uint64_t step = d->step_kib ? x % (2 * d->step_kib + 1) : 0;
        uint64_t next = sat_sub_u64(kib + step, d->step_kib);
        return clamp_u64(next, d->min_kib, d->max_kib ? d->max_kib : UINT64_MAX);
}

/* What the agent says now: its use (host frame) and PSI, or false when it says nothing.
 * A guest cannot use more than it holds: one that needs more uses all it has and stalls on
 * memory, its PSI some avg10 the share it is short by (capped at 100 %), so the demand model
 * (use x (1 + PSI/100), policy/demand.h) gives its need back. Under the PSI its spec gives, it
 * uses less than it needs by that share, for the same reason. */
static bool agent_use(struct sim_vm *v, uint64_t need, uint64_t at_usec, uint64_t *ret_used_kib, double *ret_psi) {
        const struct sim_vm_spec *sp = &v->spec;
        /* What the guest has: on disk too (slow, not missing). */
        uint64_t held = sim_vm_assigned_kib(v) + v->pg.on_disk_kib;

        switch (sp->agent) {
        case SIM_AGENT_HONEST:
        case SIM_AGENT_LIAR:
        case SIM_AGENT_FLOOD:
                break;
        case SIM_AGENT_LATE:
                need = v->history_kib[(v->history_pos + SIM_HISTORY -
                                       min_u64(sp->lag_usec / USEC_PER_SEC, SIM_HISTORY - 1)) %
                                      SIM_HISTORY];
                break;
        case SIM_AGENT_SILENT:
                /* Its last report is the one at silent_usec. */
                if (at_usec > sp->silent_usec)
                        return false;
                break;
        case SIM_AGENT_NONE:
        default:
                return false;
        }
        double psi = fmin(fmax(sp->psi_some_avg10, 0), 100);
        uint64_t used = (uint64_t) llround((double) need / (1.0 + psi / 100.0));
        if (used > held && held > 0) {
                psi = fmin(100.0, ((double) need / (double) held - 1.0) * 100.0);
                used = held;
        }
        if (sp->agent == SIM_AGENT_LIAR)
                used = (uint64_t) llround((double) used * sp->lie_factor);
        /* Of its many reports since the last tick, the last accepted one counts. */
        if (sp->agent == SIM_AGENT_FLOOD && (sim_rng_next(&v->walk_state) & 1))
                used *= 2;
        *ret_used_kib = used;
        *ret_psi = psi;
        return true;
}

bool sim_agent_report(struct sim_vm *v, uint64_t need_kib, uint64_t at_usec, struct agent_report *ret) {
        uint64_t used;
        double psi;

        if (!sim_driver_up(v) || !agent_use(v, need_kib, at_usec, &used, &psi))
                return false;
        uint64_t total, avail;
        sim_vm_meminfo(v, used, &total, &avail);
        *ret = (struct agent_report){
                .seq = v->report_seq + 1,
                .uptime_ms = (at_usec - v->boot_start_usec) / 1000,
                /* A liar claims whatever it likes, its total included. */
                .total_kib = max_u64(total, used),
                .available_kib = used > total ? 0 : avail,
                .has_psi = psi > 0,
                .some_avg10 = psi,
                .floor_kib = v->spec.floor_kib,
        };
        return true;
}

void sim_report(struct sim_vm *v, uint64_t at_usec) {
        if (!sim_agent_report(v, v->demand_kib, at_usec, &v->report))
                return;
        v->report_seq = v->report.seq;
        v->has_report = true;
        v->report_fresh = true;
        v->report_usec = at_usec;
}

/* Memory is finite: what a VM gains comes out of what the host (and its node, when bound) has
 * free; a balloon or virtio-mem asked to grow past that stops there. The held totals are
 * counted once per step and kept up to date as VMs move, so a step is O(VMs). */
struct held {
        uint64_t total;
        uint64_t node[CORE_NODE_MAX];
};

static uint64_t host_free(const struct sim *s, const struct held *h, int node) {
        /* The host keeps its reserve for itself whoever decides: no VM grows into it. */
        uint64_t free_kib = sat_sub_u64(s->total_kib, s->other_kib + s->reserve_kib + h->total);
        if (node >= 0 && (unsigned) node < s->n_nodes && node < CORE_NODE_MAX)
                free_kib = min_u64(free_kib, sat_sub_u64(s->node_total_kib[node], h->node[node]));
        return free_kib;
}

/* What more RAM a VM may take: none past its grant while a paging limit is on (the cgroup's
 * hard limit holds whatever the guest does), else up to `want`. */
static uint64_t ram_room(const struct sim_vm *v, uint64_t want) {
        return v->pg.limited ? min_u64(want, sat_sub_u64(v->pg.grant_kib, v->actual_kib)) : want;
}

/* A guest left with less than it uses: with deflate-on-oom it takes pages back from its balloon
 * (Linux virtio_balloon's OOM notifier); without, or with no balloon left, it is out of memory. */
static void run_guest(struct sim *s, struct held *h, struct sim_vm *v, uint64_t dt_usec) {
        uint64_t assigned = sim_vm_assigned_kib(v);
        int node = v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX ? v->info.numa_node : -1;

        /* A boot goes at the pace of the memory it gets: a guest holding half of what it has
         * touched spends its time waiting on it (page reclaim, or a host paging for it). */
        if (!sim_driver_up(v)) {
                /* What its file took is touched too: it went there at the disk's pace. */
                uint64_t have = assigned + v->pg.on_disk_kib;
                double pace = v->demand_kib > have ? (double) have / (double) v->demand_kib : 1.0;
                v->boot_progress_usec += (uint64_t) ((double) dt_usec * pace);
        }

        /* Pages the guest takes back from its balloon are the host's to find. */
        uint64_t room = host_free(s, h, node);
        if (v->spec.oom_at_start && !v->oom_done && v->state.set_balloon_kib && sim_driver_up(v)) {
                uint64_t took = ram_room(v, min_u64(min_u64(v->info.max_kib - v->actual_kib, assigned / 10), room));
                v->oom_done = true;
                v->actual_kib += took;
                h->total += took;
                if (node >= 0)
                        h->node[node] += took;
                v->oom_deflates++;
                return;
        }
        if (v->demand_kib <= assigned) {
                v->in_oom = false;
                return;
        }
        v->warning_usec += dt_usec;
        /* A booting guest short of what it touches waits for it (its boot slows, above); a
         * paging one has the rest on disk: slow, not out of memory. */
        if (!sim_driver_up(v) || v->demand_kib <= assigned + v->pg.on_disk_kib) {
                v->in_oom = false;
                return;
        }
        if (v->info.balloon_deflate_on_oom && v->actual_kib < v->info.max_kib && room > 0) {
                uint64_t took =
                        ram_room(v, min_u64(min_u64(v->info.max_kib - v->actual_kib, v->demand_kib - assigned), room));
                v->actual_kib += took;
                h->total += took;
                if (node >= 0)
                        h->node[node] += took;
                v->oom_deflates++;
                if (v->demand_kib <= sim_vm_assigned_kib(v))
                        return;
        }
        if (!v->in_oom) {
                v->oom_events++;
                s->metrics.oom_events++;
        }
        v->in_oom = true;
}

static uint64_t move_one(const struct sim *s, struct held *h, int node, uint64_t from, uint64_t to, uint64_t dt_usec) {
        uint64_t next = move_toward(from, to, s->balloon_kib_per_sec, dt_usec);
        if (next > from)
                next = from + min_u64(next - from, host_free(s, h, node));
        return next;
}

/* Where a paging VM's RAM goes this step for its balloon target (which counts what is on disk
 * too): a balloon inflating takes the pages on disk first (a guest's free pages are its cold
 * ones, the ones paged out), then RAM; a deflating one grows RAM, never past the grant while
 * the limit is on. */
static uint64_t paging_ram_target(const struct sim *s, struct sim_vm *v, uint64_t dt_usec) {
        struct sim_paging *pg = &v->pg;
        uint64_t view = sim_vm_view_kib(v), target = v->balloon_target_kib;
        uint64_t ram = sat_sub_u64(target, pg->on_disk_kib);
        if (target < view) {
                /* This step's inflation, from disk first; RAM gives only what the disk did not. */
                uint64_t step = view - move_toward(view, target, s->balloon_kib_per_sec, dt_usec);
                uint64_t cut = min_u64(pg->on_disk_kib, step);
                pg->on_disk_kib -= cut;
                ram = max_u64(sat_sub_u64(target, pg->on_disk_kib), sat_sub_u64(v->actual_kib, step - cut));
        }
        return pg->limited ? min_u64(ram, max_u64(pg->grant_kib, v->actual_kib)) : ram;
}

static void move_memory(struct sim *s, struct held *h, struct sim_vm *v, uint64_t dt_usec) {
        int node = v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX ? v->info.numa_node : -1;
        uint64_t before = sim_vm_assigned_kib(v);
        uint64_t target = v->pg.file_kib ? paging_ram_target(s, v, dt_usec) : v->balloon_target_kib;

        v->actual_kib = move_one(s, h, node, v->actual_kib, target, dt_usec);
        uint64_t held_now = v->actual_kib + v->info.virtio_mem_current_kib;
        h->total = h->total - before + held_now;
        if (node >= 0)
                h->node[node] = h->node[node] - before + held_now;
        before = held_now;

        uint64_t plugged = move_one(s, h, node, v->info.virtio_mem_current_kib, v->info.virtio_mem_requested_kib, dt_usec);
        if (v->info.virtio_mem_block_kib)
                plugged -= plugged % v->info.virtio_mem_block_kib;
        v->info.virtio_mem_current_kib = plugged;
        held_now = sim_vm_assigned_kib(v);
        h->total = h->total - before + held_now;
        if (node >= 0)
                h->node[node] = h->node[node] - before + held_now;
}

/* A (re)start: the guest boots with its balloon reset to the boot size and virtio-mem
 * unplugged. Its memory comes from what the host has free; what it cannot get is the shortfall
 * (what Smart Paging will cover). */
static void boot(struct sim *s, struct held *h, struct sim_vm *v, bool reboot) {
        int node = v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX ? v->info.numa_node : -1;
        uint64_t before = sim_vm_assigned_kib(v);

        v->info.virtio_mem_current_kib = 0;
        h->total -= before;
        if (node >= 0)
                h->node[node] -= before;
        /* A file still on keeps its limit: RAM stops at the grant, the rest is a shortfall. */
        v->actual_kib = 0;
        v->actual_kib = ram_room(v, min_u64(v->info.max_kib, host_free(s, h, node)));
        v->shortfall_kib = v->info.max_kib - v->actual_kib;
        v->balloon_target_kib = v->info.max_kib;
        h->total += v->actual_kib;
        if (node >= 0)
                h->node[node] += v->actual_kib;
        v->running = v->info.active = true;
        /* A reboot overwrites what its last boot had on disk; a file it still has stays. */
        v->pg.on_disk_kib = 0;
        v->boot_start_usec = s->now_usec;
        v->boot_progress_usec = 0;
        v->start_pending = true;
        v->start_reboot = reboot;
        v->has_report = v->report_fresh = false;
        v->oom_done = false;
        v->in_oom = false;
        /* A storm's clock: from the first start of a burst until every VM has booted. */
        if (s->metrics.all_booted_usec >= 0 || !s->metrics.storm_usec) {
                s->metrics.storm_usec = s->now_usec;
                s->metrics.all_booted_usec = -1;
        }
}

/* What a paging guest touches beyond its RAM, up to its file: no more than its balloon leaves
 * it (a guest squeezed below its demand runs short, as without paging); a guest still booting
 * has no balloon driver, so all its memory. */
static uint64_t paging_want_kib(const struct sim_vm *v) {
        uint64_t balloon = sim_driver_up(v) ? v->balloon_target_kib : v->info.max_kib;
        uint64_t touchable = min_u64(v->demand_kib, balloon + v->info.virtio_mem_current_kib);
        return min_u64(sat_sub_u64(touchable, sim_vm_assigned_kib(v)), v->pg.file_kib);
}

/* Whether a VM moves pages to or from its file this step (the disk is shared by these). */
static bool moves_pages(const struct sim_vm *v) {
        const struct sim_paging *pg = &v->pg;
        if (pg->anytime && (v->actual_kib > pg->grant_kib || (pg->on_disk_kib && v->actual_kib < pg->grant_kib)))
                return true;
        return pg->file_kib && (pg->releasing ? pg->on_disk_kib > 0 : paging_want_kib(v) > pg->on_disk_kib);
}

/* Smart Paging's disk for one VM this step, bw_kib its share: a guest touching more than its
 * RAM (a boot) has the rest go to its file as fast as the disk takes it; RAM it gains while it
 * boots takes back what it touched there; a file being switched off brings its pages back as
 * the host has room. */
static void page_step(struct sim *s, struct held *h, struct sim_vm *v, uint64_t bw_kib) {
        struct sim_paging *pg = &v->pg;
        int node = v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX ? v->info.numa_node : -1;

        if (!pg->file_kib)
                return;
        if (pg->releasing) {
                uint64_t back = min_u64(min_u64(pg->on_disk_kib, bw_kib), host_free(s, h, node));
                pg->on_disk_kib -= back;
                v->actual_kib += back;
                h->total += back;
                if (node >= 0)
                        h->node[node] += back;
                if (!pg->on_disk_kib)
                        paging_done(s, v);
                return;
        }
        if (pg->anytime && v->actual_kib > pg->grant_kib) {
                /* ESXi swaps RAM above the target out; what the guest uses of it is written,
                 * pages it never touched are dropped [assumed: ESXi's zero-page detection]. */
                uint64_t out = min_u64(v->actual_kib - pg->grant_kib, bw_kib);
                v->actual_kib -= out;
                h->total -= out;
                if (node >= 0)
                        h->node[node] -= out;
                pg->on_disk_kib = max_u64(pg->on_disk_kib, min_u64(paging_want_kib(v), pg->on_disk_kib + out));
                return;
        }
        if (pg->anytime && pg->on_disk_kib && v->actual_kib < pg->grant_kib) {
                /* Pages the guest touches come back as its target and the host allow. */
                uint64_t in = min_u64(min_u64(pg->on_disk_kib, pg->grant_kib - v->actual_kib),
                                      min_u64(bw_kib, host_free(s, h, node)));
                pg->on_disk_kib -= in;
                v->actual_kib += in;
                h->total += in;
                if (node >= 0)
                        h->node[node] += in;
        }
        uint64_t want = paging_want_kib(v);
        if (want > pg->on_disk_kib)
                pg->on_disk_kib += min_u64(want - pg->on_disk_kib, bw_kib);
        else if (!sim_driver_up(v))
                pg->on_disk_kib = want;
}

/* The VMs a step takes: vms[idx[k]] for k < n, or vms[k] when idx is NULL. */
static struct sim_vm *nth(struct sim *s, const size_t *idx, size_t k) {
        return &s->vms[idx ? idx[k] : k];
}

static void run_events(struct sim *s, struct held *h, const size_t *idx, size_t n) {
        uint64_t t = s->now_usec - s->start_usec;
        for (size_t k = 0; k < n; k++) {
                struct sim_vm *v = nth(s, idx, k);
                if (!v->running && v->spec.stopped && t >= v->spec.start_at_usec)
                        boot(s, h, v, false);
                else if (v->running && v->spec.restart_at_usec && !v->restarted && t >= v->spec.restart_at_usec) {
                        v->restarted = true;
                        boot(s, h, v, true);
                }
        }
}

/* What the run measures, over this step: the VMs stepped, and the sleepers as the constants
 * they are (running, booted, holding what they hold, no less than their demand). */
static void measure(struct sim *s, const size_t *idx, size_t n, uint64_t dt_usec) {
        struct sim_metrics *m = &s->metrics;
        uint64_t sum = s->asleep_held_kib, demand = 0, running = s->n_asleep, booted = s->n_asleep, warning = 0,
                 on_disk = 0;
        bool all_up = true;

        m->vm_usec += s->n_asleep * dt_usec;
        m->assigned_kib_usec += (unsigned __int128) s->asleep_held_kib * dt_usec;
        m->startup_kib_usec += (unsigned __int128) s->asleep_startup_kib * dt_usec;
        for (size_t k = 0; k < n; k++) {
                const struct sim_vm *v = nth(s, idx, k);
                if (!v->running) {
                        /* A storm is not over while a VM still waits for its turn to start. */
                        all_up &= !(v->spec.stopped && s->now_usec - s->start_usec <= v->spec.start_at_usec);
                        continue;
                }
                uint64_t a = sim_vm_assigned_kib(v);
                sum += a;
                demand += v->demand_kib;
                running++;
                booted += sim_driver_up(v);
                warning += a < v->demand_kib;
                m->vm_usec += dt_usec;
                m->assigned_kib_usec += (unsigned __int128) a * dt_usec;
                m->startup_kib_usec += (unsigned __int128) sim_vm_startup_kib(v) * dt_usec;
                if (a < v->demand_kib)
                        m->warning_vm_usec += dt_usec;
                all_up &= sim_driver_up(v);
                on_disk += v->pg.on_disk_kib;
                m->paging_kib_usec += (unsigned __int128) v->pg.on_disk_kib * dt_usec;
        }
        m->paging_peak_kib = max_u64(m->paging_peak_kib, on_disk);
        m->now_paging_kib = on_disk;
        m->peak_assigned_kib = max_u64(m->peak_assigned_kib, sum);
        m->now_running = running;
        m->now_booted = booted;
        m->now_warning = warning;
        m->now_demand_kib = demand + (s->n_asleep && s->demand_rows ? sim_sleep_demand(s) : 0);
        m->now_assigned_kib = sum;
        if (all_up && m->storm_usec && m->all_booted_usec < 0)
                m->all_booted_usec = (int64_t) (s->now_usec - m->storm_usec);
}

uint64_t sim_vm_startup_kib(const struct sim_vm *v) {
        return v->spec.have_policy ? v->spec.policy.startup_kib : v->info.max_kib;
}

void sim_advance(struct sim *s, uint64_t dt_usec) {
        uint64_t from = s->now_usec;
        bool fast = sim_fast_active(s) && dt_usec % USEC_PER_SEC == 0;

        /* The sleepers follow the VMs stepped; a step the fast path cannot take wakes them. */
        if (s->n_asleep && (!fast || (dt_usec && dt_usec != s->fast_dt)))
                sim_sleep_wake_all(s, from, true);
        if (fast && dt_usec) {
                s->fast_dt = dt_usec;
                sim_sleep_wake_due(s, from + dt_usec);
        }
        const size_t *idx = fast ? s->awake : NULL;
        size_t n = fast ? s->n_awake : s->n_vms;

        s->now_usec += dt_usec;
        struct held h = { .total = s->asleep_held_kib };
        size_t paging = 0;
        for (size_t k = 0; k < n; k++) {
                const struct sim_vm *v = nth(s, idx, k);
                paging += moves_pages(v);
                h.total += sim_vm_assigned_kib(v);
                if (v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX)
                        h.node[v->info.numa_node] += sim_vm_assigned_kib(v);
        }
        /* Shrinks first, so memory given back this step can fund another VM's growth. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t k = 0; k < n; k++) {
                        struct sim_vm *v = nth(s, idx, k);
                        bool grows = v->balloon_target_kib > v->actual_kib ||
                                     v->info.virtio_mem_requested_kib > v->info.virtio_mem_current_kib;
                        /* Without its driver the balloon does not move (a booting guest)... */
                        if (grows == (pass == 1) && sim_driver_up(v))
                                move_memory(s, &h, v, dt_usec);
                        /* ...but its balloon is all out: what the host could not back at its
                         * start, it backs as memory frees up. */
                        else if (pass == 1 && v->running && !sim_driver_up(v) && v->shortfall_kib) {
                                int node = v->info.numa_node >= 0 && v->info.numa_node < CORE_NODE_MAX
                                                   ? v->info.numa_node
                                                   : -1;
                                /* A paging guest's RAM stops at its grant: the rest is its file's. */
                                uint64_t got = ram_room(v, min_u64(v->shortfall_kib, host_free(s, &h, node)));
                                v->actual_kib += got;
                                v->shortfall_kib -= got;
                                h.total += got;
                                if (node >= 0)
                                        h.node[node] += got;
                        }
                }
        for (size_t k = 0; k < n; k++) {
                struct sim_vm *v = nth(s, idx, k);
                if (!v->running)
                        continue;
                step_demand(s, v, from);
                for (uint64_t sec = from / USEC_PER_SEC; sec < s->now_usec / USEC_PER_SEC; sec++) {
                        v->history_pos = (v->history_pos + 1) % SIM_HISTORY;
                        v->history_kib[v->history_pos] = v->demand_kib;
                }
                /* The oracle is a bound: it holds the demand at every instant, host or not. */
                if (s->peer_mode && s->peer == PEER_ORACLE) {
                        /* Exactly the demand: no balloon page or virtio-mem block rounds it. */
                        uint64_t want = clamp_u64(v->demand_kib, KIB_PER_MIB, balloon_reachable_kib(&v->info));
                        uint64_t before = sim_vm_assigned_kib(v);
                        v->actual_kib = v->balloon_target_kib = min_u64(want, v->info.max_kib);
                        v->info.virtio_mem_current_kib = v->info.virtio_mem_requested_kib = want - v->actual_kib;
                        h.total = h.total - before + sim_vm_assigned_kib(v);
                }
                if (v->pg.file_kib)
                        page_step(s, &h, v,
                                  move_toward(0, UINT64_MAX, s->paging_kib_per_sec, dt_usec) / max_u64(paging, 1));
                run_guest(s, &h, v, dt_usec);
                sim_report(v, s->now_usec);
        }
        measure(s, idx, n, dt_usec);
        /* Starts and restarts happen at the end of the step, so a boot counts from now. */
        run_events(s, &h, idx, n);
        if (fast && dt_usec)
                sim_sleep_settle(s);
}

uint64_t sim_oom_events(const struct sim *s) {
        uint64_t n = 0;
        for (size_t i = 0; i < s->n_vms; i++)
                n += s->vms[i].oom_events;
        return n;
}
