#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/collect.h"
#include "balloon/metadata.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/meminfo.h"
#include "common/units.h"
#include "daemon/channel.h"
#include "daemon/manager.h"
#include "policy/demand.h"
#include "policy/engine.h"

/* The domain list is re-read on every lifecycle event; this is the safety net for events lost
 * while libvirtd restarted. */
#define REFRESH_EVERY_USEC (UINT64_C(30) * USEC_PER_SEC)
/* A guest short of memory may deflate its balloon every second: one log line a minute. */
#define LOG_EVERY_USEC (UINT64_C(60) * USEC_PER_SEC)

struct dom {
        struct hv_domain info;
        bool have_policy;
        struct vm_policy policy;       /* as stored in metadata */
        char pending[SNAPSHOT_REASON_MAX];
        bool seen;                     /* mark for the refresh sweep */

        struct hv_mem_stats stats;
        bool stats_ok;
        uint64_t last_update_seen;     /* stats last_update at the previous tick */
        bool stats_advanced;           /* last_update changed at least once since discovery */
        uint64_t demand_usec;          /* monotonic time the current stats sample was first seen */

        bool booting;                  /* (re)started; until its balloon driver reports */
        uint64_t boot_usec;            /* monotonic time of the start/reboot, or when tided found
                                        * it running (see boot_known) */
        bool boot_known;               /* boot_usec is a start tided saw or the agent's uptime */
        struct engine_memo memo;
        struct engine_decision decision;
        bool decided;
        struct balloon_watch watch;
        enum balloon_state balloon;
        bool balloon_logged;
        uint64_t actions;
        uint64_t set_balloon_kib;      /* last balloon target tided set, 0 when none */
        uint64_t guest_oom_deflates;   /* samples in which the guest took balloon pages back */
        uint64_t oom_logged_usec;      /* when that was last logged (once a minute at most) */
        bool insane_logged;            /* the current episode of rejected demand was logged */
        bool release_pending;          /* policy cleared: deflate to boot size once */
        char reason[SNAPSHOT_REASON_MAX];
        struct channel *chan;          /* tide-agent channel; NULL without one. Heap: the event
                                        * loop holds its address while doms[] moves. */
        bool agent_demand;             /* this tick's demand came from the agent */
        int64_t demand_now_kib_at_decide; /* raw used of the agent report the last tick decided on */
        bool has_demand_now;           /* what the engine got this tick, for stats */
        int64_t demand_now_kib;
};

struct manager {
        struct hv *hv;
        struct tide_config cfg;
        manager_host_fn host_fn;
        void *host_userdata;

        struct dom *doms;
        size_t n_doms;
        bool dirty;
        uint64_t last_refresh_usec;
        uint64_t start_usec;
        uint64_t ticks;

        struct engine *engine;
        size_t engine_cap;
        struct engine_vm *vms;
        struct engine_decision *out;
        size_t *vm_dom; /* engine index -> doms index */

        struct snapshot snap;
};

int manager_host_live(struct manager_host *ret, void *userdata) {
        struct meminfo mi;
        int r = meminfo_read_live(&mi);
        if (r < 0)
                return r;
        *ret = (struct manager_host){ .total_kib = mi.total_kib, .available_kib = mi.available_kib };
        /* libnuma: free memory per node, for VMs whose memory is bound to one node. */
        if (numa_available() >= 0) {
                int max = numa_max_node();
                for (int n = 0; n <= max && n < MANAGER_NODE_MAX; n++) {
                        long long free_bytes = 0;
                        if (numa_node_size64(n, &free_bytes) < 0 || free_bytes < 0)
                                free_bytes = 0; /* a node without memory (CPU-only) */
                        ret->node_free_kib[n] = (uint64_t) free_bytes / 1024;
                        ret->n_nodes = (unsigned) n + 1;
                }
        }
        return 0;
}

int manager_new(struct hv *hv, const struct tide_config *cfg, manager_host_fn host, void *host_userdata,
                struct manager **ret) {
        struct manager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->hv = hv;
        m->cfg = *cfg;
        m->host_fn = host;
        m->host_userdata = host_userdata;
        m->dirty = true;
        *ret = m;
        return 0;
}

static void drop_channel(struct dom *d) {
        if (!d->chan)
                return;
        channel_close(d->chan);
        free(d->chan);
        d->chan = NULL;
}

/* A managed, running domain with an agent channel gets a channel; others lose theirs. */
static void sync_channel(struct dom *d) {
        bool want = d->info.active && d->have_policy && d->info.agent_socket[0];
        if (!want) {
                drop_channel(d);
                return;
        }
        if (d->chan && streq(d->chan->path, d->info.agent_socket))
                return;
        drop_channel(d);
        d->chan = calloc(1, sizeof(*d->chan));
        if (d->chan)
                channel_init(d->chan, d->info.name, d->info.agent_socket);
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_doms; i++)
                drop_channel(&m->doms[i]);
        free(m->doms);
        engine_free(m->engine);
        free(m->vms);
        free(m->out);
        free(m->vm_dom);
        snapshot_done(&m->snap);
        free(m);
        return NULL;
}

void manager_set_config(struct manager *m, const struct tide_config *cfg) {
        m->cfg = *cfg;
}

static struct dom *find_dom(struct manager *m, const char *key) {
        for (size_t i = 0; i < m->n_doms; i++)
                if (streq(m->doms[i].info.uuid, key))
                        return &m->doms[i];
        for (size_t i = 0; i < m->n_doms; i++)
                if (streq(m->doms[i].info.name, key))
                        return &m->doms[i];
        return NULL;
}

/* Reads a domain's policy from its metadata: live for a running domain, config otherwise. */
static void load_policy(struct manager *m, struct dom *d) {
        _cleanup_free_ char *xml = NULL;
        char err[HV_ERR_MAX] = "";
        struct vm_policy p;
        int r;

        r = m->hv->ops->get_metadata(m->hv->h, d->info.uuid, d->info.active ? HV_LIVE : HV_CONFIG, &xml, err,
                                     sizeof(err));
        if (r == -ENODATA) {
                if (d->have_policy)
                        log_info("%s: policy removed, now unmanaged", d->info.name);
                d->have_policy = false;
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "%s: cannot read policy metadata: %s, keeping what we had", d->info.name, err);
                return;
        }
        r = metadata_parse(xml, &p, err, sizeof(err));
        if (r < 0) {
                /* Someone wrote our metadata by hand and got it wrong: do not guess, stop managing. */
                if (d->have_policy || !d->seen)
                        log_warning("%s: invalid tide policy in metadata (%s), not managing it", d->info.name, err);
                d->have_policy = false;
                return;
        }
        d->policy = p;
        d->have_policy = true;
}

/* No target being watched, nothing logged about it. */
static void forget_balloon_progress(struct dom *d) {
        d->watch = (struct balloon_watch){ 0 };
        d->balloon = BALLOON_STATE_OK;
        d->balloon_logged = false;
}

/* A new run of the guest: a boot (booting: startup memory until its balloon driver reports), or
 * an arrival with its memory (migrated in, restored). What tided knew of its balloon, its stats
 * baseline and the engine's memory belong to the previous run; when it booted is known only for
 * a boot tided saw. */
static void new_run(struct dom *d, uint64_t now_usec, bool boot) {
        d->booting = boot;
        d->boot_usec = now_usec;
        d->boot_known = boot;
        d->stats_advanced = false;
        d->last_update_seen = 0;
        d->memo = (struct engine_memo){ 0 };
        d->set_balloon_kib = 0;
        forget_balloon_progress(d);
}

int manager_refresh(struct manager *m, uint64_t now_usec) {
        _cleanup_free_ struct hv_domain *list = NULL;
        char err[HV_ERR_MAX] = "";
        size_t n = 0;
        int r;

        if (!m->hv->ops)
                return -ENOTCONN; /* libvirt went away; tided reconnects and refreshes then */

        r = m->hv->ops->list_domains(m->hv->h, &list, &n, err, sizeof(err));
        if (r < 0)
                return log_error_errno(r, "Failed to list domains: %s", err);

        for (size_t i = 0; i < m->n_doms; i++)
                m->doms[i].seen = false;

        for (size_t i = 0; i < n; i++) {
                struct dom *d = find_dom(m, list[i].uuid);
                if (list[i].undescribed) {
                        /* It exists but could not be read this time: what tided knew of it stays,
                         * and a new one is adopted once it can be read. */
                        log_warning("%s: cannot read its description (%s), keeping what tided knew, ignoring",
                                    list[i].name, err);
                        if (d)
                                d->seen = true;
                        continue;
                }
                if (!d) {
                        struct dom *grown = realloc(m->doms, (m->n_doms + 1) * sizeof(*grown));
                        if (!grown)
                                return log_error_errno(-ENOMEM, "Out of memory tracking domains");
                        m->doms = grown;
                        d = &m->doms[m->n_doms++];
                        *d = (struct dom){ 0 };
                        d->info = list[i];
                        /* Found running (tided started or restarted): when it booted is unknown,
                         * and it may have been a second ago. The quiet period counts from now
                         * unless its agent tells a longer uptime; the cost is at most one quiet
                         * period without shrinking after a tided restart. */
                        d->boot_usec = now_usec;
                        load_policy(m, d);
                        if (d->have_policy && d->info.active)
                                log_info("%s: managed (minimum %" PRIu64 " KiB, maximum %" PRIu64 " KiB)",
                                         d->info.name, d->policy.minimum_kib, d->policy.maximum_kib);
                } else {
                        bool was_active = d->info.active;
                        d->info = list[i];
                        if (!was_active && d->info.active)
                                new_run(d, now_usec, true); /* a start whose event was lost */
                        load_policy(m, d);
                }
                d->seen = true;
                sync_channel(d);
                if (d->info.active && d->have_policy && d->info.has_balloon) {
                        /* Our staleness clock is this period: the guest refreshes once a second. */
                        r = m->hv->ops->set_stats_period(m->hv->h, d->info.uuid, 1, err, sizeof(err));
                        if (r < 0)
                                log_debug("%s: cannot set the balloon stats period: %s", d->info.name, err);
                }
        }

        /* Sweep domains that are gone. */
        size_t k = 0;
        for (size_t i = 0; i < m->n_doms; i++) {
                if (m->doms[i].seen)
                        m->doms[k++] = m->doms[i];
                else
                        drop_channel(&m->doms[i]);
        }
        m->n_doms = k;
        m->dirty = false;
        m->last_refresh_usec = now_usec;
        return 0;
}

void manager_on_event(struct manager *m, enum hv_event_kind kind, const char *uuid, uint64_t now_usec) {
        struct dom *d = find_dom(m, uuid);

        m->dirty = true;
        if (!d)
                return;
        switch (kind) {
        case HV_EVENT_STARTED:
        case HV_EVENT_REBOOTED:
                /* The guest restarts with its balloon driver not loaded yet: it must get its
                 * startup memory (Hyper-V semantics), then the quiet period runs. Marked
                 * active so that the refresh does not take it for a second start. */
                d->info.active = true;
                new_run(d, now_usec, true);
                if (d->have_policy)
                        log_info("%s: %s, giving it its startup memory", d->info.name,
                                 kind == HV_EVENT_STARTED ? "started" : "rebooted");
                break;
        case HV_EVENT_RESUMED:
                /* Its memory came with it: no startup memory (a migrated VM must not jump to
                 * startup on arrival), but the stats baseline and the balloon target tided knew
                 * are from before. When it booted is unknown: the quiet period counts from now
                 * unless its agent says otherwise. Marked active so that the refresh does not
                 * take the inactive -> active change for a boot. */
                d->info.active = true;
                new_run(d, now_usec, false);
                if (d->have_policy)
                        log_info("%s: started with its memory (migrated in, restored or woken up); not a boot",
                                 d->info.name);
                break;
        case HV_EVENT_STOPPED:
                drop_channel(d);
                d->info.active = false;
                d->stats_ok = false;
                d->decided = false;
                break;
        default:
                break;
        }
}

static int ensure_capacity(struct manager *m, size_t n) {
        if (n <= m->engine_cap && m->engine)
                return 0;
        size_t cap = n < 16 ? 16 : n * 2;
        struct engine *e = engine_new(cap);
        struct engine_vm *vms = calloc(cap, sizeof(*vms));
        struct engine_decision *out = calloc(cap, sizeof(*out));
        size_t *idx = calloc(cap, sizeof(*idx));
        if (!e || !vms || !out || !idx) {
                engine_free(e);
                free(vms);
                free(out);
                free(idx);
                return -ENOMEM;
        }
        engine_free(m->engine);
        free(m->vms);
        free(m->out);
        free(m->vm_dom);
        m->engine = e;
        m->vms = vms;
        m->out = out;
        m->vm_dom = idx;
        m->engine_cap = cap;
        return 0;
}

static void collect(struct manager *m, struct dom *d, uint64_t now_usec) {
        char err[HV_ERR_MAX] = "";
        struct hv_mem_stats st;
        int r;

        /* The guest plugs virtio-mem blocks at its own pace; how much it has plugged is in the
         * domain XML only (<current>), so a domain with virtio-mem is re-read every tick. */
        if (d->info.has_virtio_mem) {
                struct hv_domain fresh;
                r = m->hv->ops->get_domain(m->hv->h, d->info.uuid, &fresh, err, sizeof(err));
                if (r >= 0)
                        d->info = fresh;
                else
                        log_debug("%s: cannot re-read the domain: %s", d->info.name, err);
        }

        r = m->hv->ops->memory_stats(m->hv->h, d->info.uuid, &st, err, sizeof(err));
        if (r < 0) {
                if (d->stats_ok)
                        log_warning_errno(r, "%s: cannot read balloon statistics: %s, holding", d->info.name, err);
                d->stats_ok = false;
                return;
        }
        if (balloon_stats_clamp(&st, &d->info))
                log_debug("%s: balloon actual above the boot size %" PRIu64 " KiB; taken as the boot size",
                          d->info.name, d->info.max_kib);
        d->stats = st;
        d->stats_ok = true;
        /* last_update is QEMU's wall-clock second of the guest's last report. A change means a
         * fresh sample; we time it on our monotonic clock, never on the guest's word. */
        if (st.last_update_sec != UINT64_MAX && st.last_update_sec != 0 && st.last_update_sec != d->last_update_seen) {
                /* The first value seen is only a baseline: it may predate a reboot or tided. */
                if (d->last_update_seen != 0) {
                        d->stats_advanced = true;
                        d->demand_usec = now_usec;
                }
                d->last_update_seen = st.last_update_sec;
                if (d->booting && d->stats_advanced)
                        d->booting = false; /* the balloon driver is up */
        }
}

/* Whether the guest deflated its own balloon since the last sample because it ran out of memory
 * (balloon/collect.h). Only a deflate-on-oom balloon may do that; on another a rising actual is a
 * guest driver misbehaving, logged but not believed. */
/* The balloon's actual from the last stats, or what libvirt last said without them. */
static uint64_t dom_actual_kib(const struct dom *d) {
        return d->stats.actual_kib == UINT64_MAX ? d->info.current_kib : d->stats.actual_kib;
}

static bool guest_oom(struct dom *d, uint64_t now_usec) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX];

        if (d->stats.actual_kib == UINT64_MAX)
                return false;
        uint64_t took = balloon_watch_reclaimed(&d->watch, d->stats.actual_kib);
        /* A rebooting guest's balloon device resets to the full boot size before its new driver
         * inflates again: a rise that is no OOM. Until the driver reports, only follow it. */
        if (took == 0 || d->booting)
                return false;
        d->guest_oom_deflates++;
        /* What tided set is no longer where the balloon is: the next decision is sent even if
         * it names the same target (a maximum the guest rose above is enforced again). */
        d->set_balloon_kib = 0;
        if (!d->oom_logged_usec || now_usec - d->oom_logged_usec >= LOG_EVERY_USEC) {
                d->oom_logged_usec = now_usec;
                if (d->info.balloon_deflate_on_oom)
                        log_warning("%s: guest deflated its balloon by %s to %s (out of memory; target %s)",
                                    d->info.name, size_format_human(took, a), size_format_human(d->stats.actual_kib, b),
                                    size_format_human(d->watch.target_kib, c));
                else
                        log_warning("%s: balloon rose by %s above its target without deflate-on-oom; ignoring",
                                    d->info.name, size_format_human(took, a));
        }
        return d->info.balloon_deflate_on_oom;
}

static void act(struct manager *m, struct dom *d, uint64_t now_usec, bool grow_only) {
        const struct engine_decision *dec = &d->decision;
        char err[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        uint64_t actual = dom_actual_kib(d);
        struct balloon_split sp = balloon_split_target(dec->target_kib, &d->info);
        int r;

        /* Between ticks only growth is urgent; shrinking keeps its pace of one step per tick. */
        if (grow_only && dec->target_kib <= (actual + (d->info.has_virtio_mem ? d->info.virtio_mem_current_kib : 0)))
                return;

        /* Shrink: unplug before inflating; grow: deflate before plugging (as Hyper-V does). */
        bool vmem_first = d->info.has_virtio_mem && sp.vmem_requested_kib < d->info.virtio_mem_requested_kib;
        for (int pass = 0; pass < 2; pass++) {
                bool do_vmem = (pass == 0) == vmem_first;
                if (do_vmem) {
                        if (!d->info.has_virtio_mem || sp.vmem_requested_kib == d->info.virtio_mem_requested_kib)
                                continue;
                        r = m->hv->ops->set_virtio_mem(m->hv->h, d->info.uuid, sp.vmem_requested_kib, err, sizeof(err));
                        if (r < 0) {
                                log_error_errno(r, "%s: Failed to set virtio-mem to %s: %s, ignoring", d->info.name,
                                                size_format_human(sp.vmem_requested_kib, a), err);
                                continue;
                        }
                        log_info("%s: virtio-mem %s -> %s (%s)", d->info.name,
                                 size_format_human(d->info.virtio_mem_requested_kib, a),
                                 size_format_human(sp.vmem_requested_kib, b), d->reason);
                        d->info.virtio_mem_requested_kib = sp.vmem_requested_kib;
                        d->actions++;
                } else {
                        /* Within a page of what is already set, the balloon is where we want it. */
                        uint64_t current = d->set_balloon_kib ? d->set_balloon_kib : d->info.current_kib;
                        if (sp.balloon_kib == current && (d->set_balloon_kib || actual == sp.balloon_kib))
                                continue;
                        r = m->hv->ops->set_balloon(m->hv->h, d->info.uuid, sp.balloon_kib, err, sizeof(err));
                        if (r < 0) {
                                log_error_errno(r, "%s: Failed to set balloon to %s: %s, ignoring", d->info.name,
                                                size_format_human(sp.balloon_kib, a), err);
                                continue;
                        }
                        if (sp.balloon_kib == current)
                                /* Re-sent after the guest deflated past it: once a tick at most,
                                 * and the deflate itself is logged (once a minute). */
                                log_debug("%s: balloon target %s sent again (%s)", d->info.name,
                                          size_format_human(sp.balloon_kib, b), d->reason);
                        else if (d->agent_demand && d->chan && sp.balloon_kib > actual)
                                /* Reaction latency: the agent's report to this call (bench/agent-latency.sh). */
                                log_info("%s: %s -> %s (%s; %" PRIu64 " ms after the agent's report)", d->info.name,
                                         size_format_human(actual, a), size_format_human(sp.balloon_kib, b), d->reason,
                                         (now_usec - d->chan->report_usec) / 1000);
                        else
                                log_info("%s: %s -> %s (%s)", d->info.name, size_format_human(actual, a),
                                         size_format_human(sp.balloon_kib, b), d->reason);
                        d->info.current_kib = sp.balloon_kib;
                        d->set_balloon_kib = sp.balloon_kib;
                        balloon_watch_target(&d->watch, sp.balloon_kib, actual, now_usec);
                        d->actions++;
                }
        }
}

/* Releases a domain whose policy was cleared: back to its full boot size, once. */
static void release(struct manager *m, struct dom *d) {
        char err[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX];
        int r;

        d->release_pending = false;
        forget_balloon_progress(d);
        if (!d->info.active)
                return;
        if (d->info.has_virtio_mem && d->info.virtio_mem_requested_kib > 0) {
                r = m->hv->ops->set_virtio_mem(m->hv->h, d->info.uuid, 0, err, sizeof(err));
                if (r < 0)
                        log_warning_errno(r, "%s: cannot unplug virtio-mem: %s, ignoring", d->info.name, err);
        }
        r = m->hv->ops->set_balloon(m->hv->h, d->info.uuid, d->info.max_kib, err, sizeof(err));
        if (r < 0)
                log_warning_errno(r, "%s: cannot release the balloon: %s, ignoring", d->info.name, err);
        else
                log_info("%s: unmanaged, balloon released to %s", d->info.name, size_format_human(d->info.max_kib, a));
}

/* A snapshot row's policy columns (zero for an unmanaged domain) and the status they imply
 * before a decision. */
static void snapshot_set_policy(struct snapshot_domain *o, const struct dom *d) {
        struct vm_policy none = { 0 };
        const struct vm_policy *p = d->have_policy ? &d->policy : &none;

        o->managed = d->have_policy;
        o->status = d->have_policy ? "unknown" : "unmanaged";
        snprintf(o->pending, sizeof(o->pending), "%s", d->pending);
        o->dynamic = p->dynamic;
        o->minimum_kib = p->minimum_kib;
        o->startup_kib = p->startup_kib;
        o->maximum_kib = p->maximum_kib;
        o->buffer_pct = p->buffer_pct;
        o->weight = p->weight;
}

/* The tick's duration is filled in afterwards by manager_note_tick_duration(). */
static int build_snapshot(struct manager *m, const struct engine_host *host, const struct engine_summary *sum,
                          uint64_t total_kib, uint64_t available_kib, uint64_t now_usec) {
        struct snapshot s = { 0 };

        s.domains = calloc(m->n_doms ? m->n_doms : 1, sizeof(*s.domains));
        if (!s.domains)
                return -ENOMEM;
        s.n_domains = m->n_doms;
        s.host = (struct snapshot_host){
                .total_kib = total_kib,
                .available_kib = available_kib,
                .usable_kib = host->usable_kib,
                .reserve_kib = host->reserve_kib,
                .capacity_kib = sum->capacity_kib,
                .target_kib = sum->target_kib,
                .short_host = sum->short_host,
                .overcommitted = sum->overcommitted,
                .ticks = m->ticks,
                .uptime_usec = now_usec - m->start_usec,
        };

        for (size_t i = 0; i < m->n_doms; i++) {
                const struct dom *d = &m->doms[i];
                struct snapshot_domain *o = &s.domains[i];
                uint64_t assigned = 0;

                snprintf(o->uuid, sizeof(o->uuid), "%s", d->info.uuid);
                snprintf(o->name, sizeof(o->name), "%s", d->info.name);
                snapshot_set_policy(o, d);
                o->active = d->info.active;
                o->agent = "none";
                o->balloon = balloon_state_to_string(d->balloon);
                o->balloon_actions = d->actions;
                o->guest_oom_deflates = d->guest_oom_deflates;
                if (d->stats_ok) {
                        if (balloon_assigned_kib(&d->stats, &d->info, &assigned) < 0)
                                assigned = d->info.current_kib;
                        o->rss_kib = d->stats.rss_kib == UINT64_MAX ? 0 : d->stats.rss_kib;
                } else
                        assigned = d->info.active ? d->info.current_kib : 0;
                o->assigned_kib = assigned;
                s.host.assigned_kib += d->info.active ? assigned : 0;

                int64_t demand = 0;
                uint64_t total;
                bool has = false;
                if (d->decided && d->have_policy && d->info.active) {
                        has = d->has_demand_now;
                        demand = d->demand_now_kib;
                } else if (d->stats_ok)
                        has = balloon_demand_from_stats(&d->stats, &d->info, &demand, &total) == 0;
                if (has && demand >= 0) {
                        o->has_demand = true;
                        o->demand_kib = (uint64_t) demand;
                        o->pressure_pct = assigned ? (double) demand / (double) assigned * 100.0 : 0;
                }
                o->agent_report_age_ms = -1;
                if (d->chan) {
                        o->agent = channel_state_to_string(d->chan->state);
                        o->agent_demand = d->agent_demand;
                        o->agent_rejected = d->chan->session.rejected;
                        o->agent_rate_dropped = d->chan->session.rate_dropped;
                        snprintf(o->agent_error, sizeof(o->agent_error), "%s", d->chan->last_error);
                        if (d->chan->have_report)
                                o->agent_report_age_ms = (int64_t) ((now_usec - d->chan->report_usec) / 1000);
                }
                if (!d->have_policy)
                        continue;
                if (!d->info.active) {
                        o->status = "off";
                        continue;
                }
                if (d->decided) {
                        o->target_kib = d->decision.target_kib;
                        o->flags = d->decision.flags;
                        snprintf(o->reason, sizeof(o->reason), "%s", d->reason);
                        o->status = engine_status_to_string(
                                engine_status_of(assigned, o->has_demand, o->demand_kib, d->policy.buffer_pct,
                                                 &o->available_buffer_pct));
                }
        }
        snapshot_done(&m->snap);
        m->snap = s;
        return 0;
}

/* How much a guest's used memory may rise between ticks before it is worth an early tick. */
static uint64_t cfg_deadband(const struct manager *m) {
        return max_u64(m->cfg.deadband_kib, POLICY_ALIGN_KIB);
}

static int tick(struct manager *m, uint64_t now_usec, bool grow_only) {
        struct manager_host hm = { 0 };
        size_t n = 0;
        int r;

        if (m->start_usec == 0)
                m->start_usec = now_usec;
        if (m->dirty || now_usec - m->last_refresh_usec >= REFRESH_EVERY_USEC)
                (void) manager_refresh(m, now_usec); /* logged inside; keep ticking on what we know */

        r = m->host_fn(&hm, m->host_userdata);
        if (r < 0)
                return log_error_errno(r, "Failed to read host memory: %m");
        uint64_t total = hm.total_kib, available = hm.available_kib;
        uint64_t node_rss[MANAGER_NODE_MAX] = { 0 };
        bool node_bound = false;

        if ((r = ensure_capacity(m, m->n_doms)) < 0)
                return log_error_errno(r, "Out of memory for %zu domains", m->n_doms);

        /* Collect. Usable memory for the VMs is what the host has available plus what the
         * managed VMs hold resident now: memory a VM was given but never touched is counted
         * as taken, so the engine never hands it out twice. */
        uint64_t rss_sum = 0;
        for (size_t i = 0; i < m->n_doms; i++) {
                struct dom *d = &m->doms[i];
                if (d->release_pending)
                        release(m, d);
                if (!d->info.active || !d->have_policy)
                        continue;
                /* Connects and resumes the agent channel whether or not stats can be read. */
                if (d->chan)
                        channel_tick(d->chan, now_usec);
                collect(m, d, now_usec);
                if (!d->stats_ok)
                        continue;
                int node = d->info.numa_node >= 0 && (unsigned) d->info.numa_node < hm.n_nodes ? d->info.numa_node
                                                                                                : ENGINE_NODE_NONE;
                if (d->stats.rss_kib != UINT64_MAX) {
                        rss_sum += d->stats.rss_kib;
                        if (node != ENGINE_NODE_NONE)
                                node_rss[node] += d->stats.rss_kib;
                }
                node_bound |= node != ENGINE_NODE_NONE;

                struct channel *ch = d->chan;
                if (ch) /* what tided knows that the guest cannot fake: the most it can hold */
                        ch->limits.max_total_kib = balloon_visible_kib(dom_actual_kib(d), &d->info);
                if (ch && ch->have_report && !d->boot_known) {
                        /* The guest's own uptime may only end the quiet period sooner: a guest
                         * claiming a fresh boot forever gains nothing, it was found running. */
                        uint64_t up_ms = min_u64(ch->report.uptime_ms, UINT64_MAX / 1000);
                        uint64_t guest_boot = sat_sub_u64(ch->report_usec, up_ms * 1000);
                        d->boot_usec = min_u64(d->boot_usec, max_u64(guest_boot, 1));
                        d->boot_known = true;
                }

                struct engine_vm *vm = &m->vms[n];
                uint64_t assigned = d->info.current_kib;

                (void) balloon_assigned_kib(&d->stats, &d->info, &assigned);
                bool oom = guest_oom(d, now_usec);
                *vm = (struct engine_vm){
                        /* The engine must not aim at memory the balloon cannot give. */
                        .policy = policy_within_reach(&d->policy, balloon_reachable_kib(&d->info)),
                        .state = d->booting ? ENGINE_VM_BOOTING : ENGINE_VM_RUNNING,
                        .assigned_kib = assigned,
                        .uptime_usec = sat_sub_u64(now_usec, d->boot_usec),
                        .node = node,
                        .memo = d->memo,
                        .guest_reclaimed = oom,
                };

                /* What each source says; policy/demand.h chooses. */
                struct demand_sources src = { 0 };
                if (ch && ch->have_report &&
                    balloon_used_host_frame(ch->report.total_kib, ch->report.available_kib, d->stats.actual_kib,
                                            &d->info, &src.agent.used_kib, &src.agent_total_kib) == 0) {
                        /* A fresh report of more in use (host frame: ballooned pages are already
                         * out) than QEMU has resident is a lie: balloon statistics instead. */
                        if (ch->fresh && d->stats.rss_kib != UINT64_MAX && src.agent.used_kib > 0 &&
                            !demand_agent_plausible((uint64_t) src.agent.used_kib, d->stats.rss_kib)) {
                                char why[160];
                                snprintf(why, sizeof(why),
                                         "reports %" PRIu64 " KiB in use but QEMU has only %" PRIu64 " KiB resident",
                                         (uint64_t) src.agent.used_kib, d->stats.rss_kib);
                                channel_distrust(ch, why, now_usec);
                        } else {
                                src.has_agent = true;
                                src.agent_usec = ch->report_usec;
                                src.agent.floor_kib = ch->report.floor_kib;
                                src.agent.has_psi = ch->report.has_psi;
                                src.agent.psi_some_avg10 = ch->report.some_avg10;
                        }
                }
                src.balloon = d->stats_advanced && balloon_demand_from_stats(&d->stats, &d->info, &src.balloon_demand_kib,
                                                                             &src.balloon_total_kib) == 0;
                src.balloon_usec = d->demand_usec;
                struct demand_pick pick = demand_pick(&src, now_usec, m->cfg.stale_usec, d->memo.last_demand_usec);
                vm->has_demand = pick.source != DEMAND_SOURCE_NONE;
                vm->demand_kib = pick.demand_kib;
                vm->guest_total_kib = pick.total_kib;
                vm->demand_usec = pick.usec;
                vm->psi_some_avg10 = pick.psi_some_avg10;
                d->agent_demand = pick.source == DEMAND_SOURCE_AGENT;
                if (d->agent_demand)
                        d->demand_now_kib_at_decide =
                                (int64_t) (ch->report.total_kib - min_u64(ch->report.available_kib, ch->report.total_kib)) +
                                (int64_t) cfg_deadband(m);
                d->has_demand_now = vm->has_demand;
                d->demand_now_kib = vm->demand_kib;
                m->vm_dom[n++] = i;
        }

        struct engine_host host = {
                .usable_kib = available + rss_sum,
                .reserve_kib = config_reserve_kib(&m->cfg, total),
        };
        /* A VM bound to a node can only have that node's memory: its free memory plus what the
         * VMs bound there already hold. The host reserve is kept globally, not per node. */
        if (node_bound) {
                host.n_nodes = min_u64(hm.n_nodes, ENGINE_NODE_MAX);
                for (unsigned k = 0; k < host.n_nodes; k++)
                        host.node_usable_kib[k] = hm.node_free_kib[k] + node_rss[k];
        }
        struct engine_summary sum = { 0 };
        r = engine_step(m->engine, &host, m->vms, n, &m->cfg, now_usec, m->out, &sum);
        if (r < 0)
                return log_error_errno(r, "Engine failed: %m");

        for (size_t k = 0; k < n; k++) {
                struct dom *d = &m->doms[m->vm_dom[k]];
                d->decision = m->out[k];
                d->decided = true;
                d->memo = m->out[k].memo;
                engine_reason_format(&d->decision, &m->vms[k], d->reason, sizeof(d->reason));
                /* Once per episode of rejected demand, with the reason that says so (an OOM
                 * grow may take the reason on the tick the flag appears). */
                if (!(d->decision.flags & ENGINE_FLAG_INSANE_DEMAND))
                        d->insane_logged = false;
                else if (!d->insane_logged && d->decision.reason == ENGINE_REASON_INSANE) {
                        log_warning("%s: %s", d->info.name, d->reason);
                        d->insane_logged = true;
                }
                act(m, d, now_usec, grow_only);

                enum balloon_state st = balloon_watch_update(&d->watch, d->stats.actual_kib, now_usec);
                if (st != d->balloon && st != BALLOON_STATE_OK && !d->balloon_logged) {
                        log_warning("%s: balloon %s: target %" PRIu64 " KiB, actual %" PRIu64 " KiB", d->info.name,
                                    balloon_state_to_string(st), d->watch.target_kib, d->stats.actual_kib);
                        d->balloon_logged = true;
                }
                if (st == BALLOON_STATE_OK)
                        d->balloon_logged = false;
                d->balloon = st;
        }

        for (size_t i = 0; i < m->n_doms; i++)
                if (m->doms[i].chan)
                        m->doms[i].chan->fresh = false;
        m->ticks++;
        return build_snapshot(m, &host, &sum, total, available, now_usec);
}

const struct snapshot *manager_snapshot(const struct manager *m) {
        return &m->snap;
}

/* Reflects a policy change in the published snapshot at once, so `tidectl policy show` right
 * after `policy set` shows it; the numbers that need a tick come with the next one. */
static void snapshot_policy(struct manager *m, const struct dom *d) {
        for (size_t i = 0; i < m->snap.n_domains; i++) {
                struct snapshot_domain *o = &m->snap.domains[i];
                if (!streq(o->uuid, d->info.uuid))
                        continue;
                snapshot_set_policy(o, d);
                if (!d->have_policy)
                        o->reason[0] = '\0';
        }
}

int manager_policy_set(struct manager *m, const char *domain, const struct policy_change *c,
                       uint64_t now_usec, char *note, size_t notelen, char *err, size_t errlen) {
        char xml[METADATA_XML_MAX], herr[HV_ERR_MAX] = "", a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX];
        struct vm_policy p;
        struct dom *d;
        int r;

        if (!m->hv->ops) {
                snprintf(err, errlen, "tided is not connected to libvirt right now; try again shortly");
                return -ENOTCONN;
        }
        if (m->dirty)
                (void) manager_refresh(m, now_usec);
        d = find_dom(m, domain);
        if (!d) {
                snprintf(err, errlen, "no domain named '%s'", domain);
                return -ENOENT;
        }

        p = policy_apply_change(d->have_policy ? &d->policy : NULL, d->info.max_kib, balloon_reachable_kib(&d->info),
                                c);
        if ((r = policy_validate(&p, err, errlen)) < 0)
                return r;

        r = metadata_format(&p, xml, sizeof(xml));
        if (r < 0) {
                snprintf(err, errlen, "cannot format policy metadata");
                return r;
        }
        unsigned flags = (d->info.active ? HV_LIVE : 0) | (d->info.persistent ? HV_CONFIG : 0);
        r = m->hv->ops->set_metadata(m->hv->h, d->info.uuid, xml, flags, herr, sizeof(herr));
        if (r < 0) {
                snprintf(err, errlen, "cannot store the policy in the domain's metadata: %s", herr);
                return r;
        }

        /* What cannot apply now. */
        size_t off = 0;
        note[0] = '\0';
        d->pending[0] = '\0';
        if (d->info.persistent) {
                r = m->hv->ops->set_boot_memory(m->hv->h, d->info.uuid, p.startup_kib, herr, sizeof(herr));
                if (r < 0)
                        off += (size_t) snprintf(note + off, notelen - off, "boot size not changed (%s); ", herr);
                else if (d->info.active && p.startup_kib != d->info.max_kib)
                        off += (size_t) snprintf(note + off, notelen > off ? notelen - off : 0,
                                                 "startup %s applies at the next start; ",
                                                 size_format_human(p.startup_kib, a));
        } else
                off += (size_t) snprintf(note + off, notelen > off ? notelen - off : 0,
                                         "transient domain: startup is not stored; ");
        uint64_t reach = balloon_reachable_kib(&d->info);
        if (p.maximum_kib > reach && off < notelen) {
                off += (size_t) snprintf(note + off, notelen - off,
                                         "maximum %s is above what this domain can reach (%s = boot size%s): capped "
                                         "there until it is given more memory or a virtio-mem device; ",
                                         size_format_human(p.maximum_kib, a), size_format_human(reach, b),
                                         d->info.has_virtio_mem ? " + virtio-mem" : "");
                snprintf(d->pending, sizeof(d->pending), "maximum capped at %s", size_format_human(reach, a));
        }
        if (off > 1 && off < notelen)
                note[off - 2] = '\0'; /* drop the trailing "; " */
        if (!note[0])
                snprintf(note, notelen, "applied live");

        log_info("%s: policy set: startup %" PRIu64 " KiB, minimum %" PRIu64 " KiB, maximum %" PRIu64
                 " KiB, buffer %u%%, weight %u, %s",
                 d->info.name, p.startup_kib, p.minimum_kib, p.maximum_kib, p.buffer_pct, p.weight,
                 p.dynamic ? "dynamic" : "static");
        d->policy = p;
        if (!d->have_policy) {
                /* Newly managed: do not act on stats older than this moment. */
                d->stats_advanced = false;
                d->memo = (struct engine_memo){ 0 };
        }
        d->have_policy = true;
        d->release_pending = false;
        sync_channel(d);
        snapshot_policy(m, d);
        return 0;
}

int manager_policy_clear(struct manager *m, const char *domain, char *note, size_t notelen, char *err,
                         size_t errlen) {
        char herr[HV_ERR_MAX] = "";
        struct dom *d = find_dom(m, domain);
        int r;

        if (!m->hv->ops) {
                snprintf(err, errlen, "tided is not connected to libvirt right now; try again shortly");
                return -ENOTCONN;
        }
        if (!d) {
                snprintf(err, errlen, "no domain named '%s'", domain);
                return -ENOENT;
        }
        if (!d->have_policy) {
                snprintf(err, errlen, "'%s' has no tide policy", domain);
                return -ENODATA;
        }
        unsigned flags = (d->info.active ? HV_LIVE : 0) | (d->info.persistent ? HV_CONFIG : 0);
        r = m->hv->ops->set_metadata(m->hv->h, d->info.uuid, NULL, flags, herr, sizeof(herr));
        if (r < 0) {
                snprintf(err, errlen, "cannot remove the policy metadata: %s", herr);
                return r;
        }
        d->have_policy = false;
        d->decided = false;
        drop_channel(d);
        d->pending[0] = '\0';
        d->release_pending = d->info.active;
        snapshot_policy(m, d);
        log_info("%s: policy cleared", d->info.name);
        snprintf(note, notelen, d->info.active ? "unmanaged; its balloon is released to its boot size at the next tick"
                                               : "unmanaged");
        return 0;
}

void manager_note_tick_duration(struct manager *m, uint64_t usec) {
        m->snap.host.tick_usec = usec;
}

int manager_tick(struct manager *m, uint64_t now_usec) {
        return tick(m, now_usec, false);
}

bool manager_wants_early_tick(const struct manager *m) {
        for (size_t i = 0; i < m->n_doms; i++) {
                const struct dom *d = &m->doms[i];
                /* A report whose used memory rose past what the VM was given room for: act now
                 * rather than at the next tick. Anything else waits for the tick. */
                if (d->chan && d->chan->fresh && d->decided && d->chan->have_report &&
                    d->chan->report.total_kib >= d->chan->report.available_kib &&
                    (int64_t) (d->chan->report.total_kib - d->chan->report.available_kib) > d->demand_now_kib_at_decide)
                        return true;
        }
        return false;
}

int manager_tick_early(struct manager *m, uint64_t now_usec) {
        return tick(m, now_usec, true);
}
