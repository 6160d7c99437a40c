/* tidectl simulate: boot storms and real traces on simulated hosts, tide (the controller core
 * tided runs) against the rules of Hyper-V, oVirt MOM, Proxmox and static sizing, and the
 * oracle bound, on the same demand. docs/SIMULATOR.md has the model and every definition. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include "cli/commands.h"
#include "cli/simparking.h"
#include "cli/simspec.h"
#include "common/macro.h"
#include "common/units.h"
#include "sim/cpu.h"
#include "sim/sim.h"
#include "sim/trace.h"

/* Virtual time starts late enough that nothing computed from it goes below zero. */
#define SIM_EPOCH_USEC (UINT64_C(1000) * USEC_PER_SEC)
/* Without a scenario's duration or a trace: one hour. */
#define DEFAULT_DURATION_USEC (UINT64_C(3600) * USEC_PER_SEC)
/* --vms: how much later each further copy of a trace VM runs its trace (a prime number of
 * seconds, so copies fall between the trace's 5-minute samples). */
#define TRACE_COPY_SHIFT_USEC (UINT64_C(61) * USEC_PER_SEC)
/* --find-host's bar: warning time at most this share of VM-seconds, and no guest OOM. */
#define FIND_HOST_WARNING_PCT 0.1

enum { POLICY_TIDE = PEER_RULES, POLICIES }; /* tide, then the peers' rules by their enum */

static const char *policy_name(int p) {
        return p == POLICY_TIDE ? "tide" : peer_rule_to_string((enum peer_rule) p);
}

/* The order of the report: tide first, the bound last. */
static const int policy_order[] = { POLICY_TIDE,  PEER_HYPERV, PEER_SWAP_ANYTIME, PEER_MOM,
                                     PEER_PROXMOX, PEER_STATIC, PEER_ORACLE };

struct options {
        const char *scenario, *trace, *csv_dir, *plot;
        double hours;
        bool json, find_host, hold, seed_set, full_loop;
        size_t trace_vms;               /* --vms: this many VMs from the trace, 0: each once */
        uint64_t seed;
        bool policies[POLICIES];
};

/* What one policy did over one run. */
struct result {
        int policy;
        struct sim_metrics m;           /* summed over hosts; peak over the cluster */
        uint64_t balloon_ops, oom_events;
        int64_t booted_usec;            /* after the last storm, -1: none, or not all booted */
        bool storm;
        double wall_s;
        double vm_ticks;                /* VMs x ticks simulated (the simulator's work) */
        uint64_t wakes, full_ticks, replay_mismatches; /* the fast path's (sim.h) */
        bool storm_open;                /* some host's storm had not ended when the run did */
        uint64_t host_peak_kib;         /* the highest sum held on one host */
        bool failed_early;              /* a --find-host probe stopped: it could not pass */
        bool host_found;                /* --find-host: a host size passed */
        uint64_t host_needed_kib;
};

/* The run over time, for --csv (every tick) and --plot (at most PLOT_POINTS points). */
#define PLOT_POINTS 2000
struct series {
        FILE *csv;                      /* NULL: not written */
        uint64_t stride;                /* plot one tick in this many */
        size_t n;
        double t_h[PLOT_POINTS + 1], demand_gib[PLOT_POINTS + 1], assigned_gib[PLOT_POINTS + 1];
        double booted[PLOT_POINTS + 1], warning[PLOT_POINTS + 1];
};

/* One tick's row over every live host. */
struct tick_row {
        uint64_t running, booted, warning;
        uint64_t demand_kib, assigned_kib, paging_kib;
};

/* Every VM of the run, with the host it starts on (-1: placed by free memory). */
struct world {
        const struct simspec *spec;
        struct sim_vm_spec *vms;
        int *host;
        size_t n;
        uint64_t duration_usec;
        uint64_t startup_sum_kib;
        struct simspec_host hosts[SIMSPEC_HOSTS_MAX];
        size_t n_hosts;
        struct simspec_event failures[SIMSPEC_EVENTS_MAX]; /* host failures, in time order */
        size_t n_failures;
        bool full_loop;                 /* --full-loop: no fast path (sim_set_fast()) */
};

static uint64_t align_up(uint64_t kib) {
        return (kib + POLICY_ALIGN_KIB - 1) / POLICY_ALIGN_KIB * POLICY_ALIGN_KIB;
}

/* A host that fits every VM at its startup memory and the auto reserve (512 MiB + 1/32 of the
 * host, docs/POLICY.md): total = (startups + 512 MiB) x 32/31, rounded up to a GiB. Static sizing
 * always fits it, so memory returned is measured against a host that needs none. */
static uint64_t host_for(uint64_t startup_sum_kib) {
        uint64_t total = (startup_sum_kib + 512 * KIB_PER_MIB) * 32 / 31 + 1;
        return (total + KIB_PER_GIB - 1) / KIB_PER_GIB * KIB_PER_GIB;
}

static int world_add(struct world *w, const struct sim_vm_spec *vm, int host) {
        size_t k = w->n;
        w->vms[k] = *vm;
        w->host[k] = host;
        snprintf(w->vms[k].name, sizeof(w->vms[k].name), "%.40s-%zu", vm->name, k);
        w->startup_sum_kib += vm->policy.startup_kib;
        w->n++;
        return 0;
}

/* Groups and trace VMs, then the events written into each VM's spec. */
static int world_build(struct world *w, const struct simspec *spec, const struct sim_trace_set *tr,
                       const struct options *o, char *err, size_t errlen) {
        size_t from_trace = 0;
        for (size_t i = 0; tr && i < tr->n; i++)
                from_trace += tr->vms[i].n > 0; /* no sample within --hours: not a VM */
        if (tr && o->trace_vms && from_trace)
                from_trace = o->trace_vms;
        size_t n = simspec_vms(spec) + from_trace;

        *w = (struct world){ .spec = spec, .full_loop = o->full_loop };
        if (n > SIMSPEC_VMS_MAX) {
                snprintf(err, errlen, "%zu VMs from the scenario and the trace, at most %d", n, SIMSPEC_VMS_MAX);
                return -EINVAL;
        }
        w->vms = calloc(n ? n : 1, sizeof(*w->vms));
        w->host = calloc(n ? n : 1, sizeof(*w->host));
        if (!w->vms || !w->host)
                return -ENOMEM;
        for (size_t g = 0; g < spec->n_groups; g++)
                for (size_t k = 0; k < spec->groups[g].count; k++) {
                        struct sim_vm_spec vm = spec->groups[g].vm;
                        /* Each VM walks its own way, the same way in every run of a seed. */
                        vm.demand.seed = (o->seed_set ? o->seed : vm.demand.seed) + w->n;
                        world_add(w, &vm, spec->groups[g].host);
                }
        /* --vms: the trace's VMs in turn; copy k of each runs its trace k x TRACE_COPY_SHIFT
         * later, so the copies do not move in step. */
        for (size_t i = 0, k = 0; tr && k < from_trace; i++) {
                const struct sim_trace_vm *t = &tr->vms[i % tr->n];
                if (t->n == 0)
                        continue;
                uint64_t copy = i / tr->n;
                k++;
                const struct simspec_trace_defaults *d = &spec->trace;
                struct sim_vm_spec vm = { .node = -1, .have_policy = true, .balloon_stats = true,
                                          .uptime_usec = UINT64_C(86400) * USEC_PER_SEC };
                snprintf(vm.name, sizeof(vm.name), "trace%ld", t->id);
                policy_init(&vm.policy);
                vm.policy.startup_kib = vm.policy.maximum_kib = vm.boot_kib = align_up(t->provisioned_kib);
                vm.policy.minimum_kib =
                        min_u64(align_up(max_u64(d->minimum_floor_kib, t->provisioned_kib / d->minimum_divisor)),
                                vm.policy.startup_kib);
                vm.policy.minimum_kib = max_u64(vm.policy.minimum_kib, POLICY_MINIMUM_FLOOR_KIB);
                vm.policy.buffer_pct = d->buffer_pct;
                vm.policy.weight = d->weight;
                vm.demand = (struct sim_demand){ .kind = SIM_DEMAND_TRACE, .trace = sim_trace_of(t, o->hold) };
                vm.demand.trace.offset_usec = copy * TRACE_COPY_SHIFT_USEC;
                world_add(w, &vm, -1);
        }
        if (w->n == 0) {
                snprintf(err, errlen, "nothing to simulate: no groups in the scenario and no trace");
                return -EINVAL;
        }
        /* Events become each VM's own: a restart time, or a cold start in turn. */
        for (size_t e = 0; e < spec->n_events; e++) {
                const struct simspec_event *ev = &spec->events[e];
                size_t first = 0, count = w->n, turn = 0;
                if (ev->kind == SIMSPEC_HOST_FAILURE)
                        continue; /* the run loop moves the VMs */
                if (ev->group >= 0) {
                        for (int g = 0; g < ev->group; g++)
                                first += spec->groups[g].count;
                        count = spec->groups[ev->group].count;
                }
                for (size_t k = first; k < first + count; k++, turn++) {
                        if (ev->kind == SIMSPEC_RESTART) {
                                if (w->vms[k].restart_at_usec) {
                                        snprintf(err, errlen, "events[%zu]: %s already restarts once; a VM restarts at "
                                                              "most once a run", e, w->vms[k].name);
                                        return -EINVAL;
                                }
                                w->vms[k].restart_at_usec = max_u64(ev->at_usec, 1);
                        } else {
                                /* Ten years at most, as every time in a scenario. */
                                if (ev->every_usec && turn > (UINT64_C(315360000000000) - ev->at_usec) / ev->every_usec) {
                                        snprintf(err, errlen, "events[%zu]: the last start would come after ten years", e);
                                        return -EINVAL;
                                }
                                w->vms[k].stopped = true;
                                w->vms[k].start_at_usec = ev->at_usec + turn * ev->every_usec;
                        }
                }
        }
        /* Host failures in time order, and never the last host standing. */
        bool fails[SIMSPEC_HOSTS_MAX] = { false };
        size_t failing = 0;
        for (size_t e = 0; e < spec->n_events; e++) {
                if (spec->events[e].kind != SIMSPEC_HOST_FAILURE)
                        continue;
                size_t k = w->n_failures++;
                while (k > 0 && w->failures[k - 1].at_usec > spec->events[e].at_usec) {
                        w->failures[k] = w->failures[k - 1];
                        k--;
                }
                w->failures[k] = spec->events[e];
                failing += !fails[spec->events[e].host];
                fails[spec->events[e].host] = true;
        }
        if (spec->n_hosts && failing >= spec->n_hosts) {
                snprintf(err, errlen, "events: every host fails; the last one's VMs would have nowhere to go");
                return -EINVAL;
        }
        memcpy(w->hosts, spec->hosts, sizeof(w->hosts));
        w->n_hosts = spec->n_hosts;
        if (w->n_hosts == 0) {
                w->hosts[0] = (struct simspec_host){ .reserve_auto = true, .memory_kib = host_for(w->startup_sum_kib) };
                snprintf(w->hosts[0].name, sizeof(w->hosts[0].name), "host");
                w->n_hosts = 1;
        }
        w->duration_usec = spec->duration_usec;
        if (!w->duration_usec && tr)
                w->duration_usec = (tr->t_end_s - tr->t0_s) * USEC_PER_SEC;
        if (o->hours > 0 && (!w->duration_usec || w->duration_usec > (uint64_t) (o->hours * 3600e6)))
                w->duration_usec = (uint64_t) (o->hours * 3600e6);
        if (!w->duration_usec)
                w->duration_usec = DEFAULT_DURATION_USEC;
        return 0;
}

static void world_done(struct world *w) {
        free(w->vms);
        free(w->host);
        *w = (struct world){ 0 };
}

/* The host a cluster manager would pick: the live one with the most memory not yet promised to
 * its VMs' startup sizes (a capacity-aware placement, as Pacemaker's "balanced" strategy or
 * oVirt's scheduler would). */
static int place(const struct world *w, const bool *alive, const uint64_t *promised, uint64_t host_kib) {
        int best = -1;
        int64_t best_room = 0;
        for (size_t h = 0; h < w->n_hosts; h++) {
                if (!alive[h])
                        continue;
                uint64_t mem = host_kib ? host_kib : w->hosts[h].memory_kib;
                /* Signed: once every survivor is promised more than it has (a failover onto
                 * overcommitted hosts), the least overcommitted still wins; a floor at 0 would
                 * send every VM left to the first host. Sizes are bounded far below 2^63 KiB. */
                int64_t room = (int64_t) mem - (int64_t) promised[h];
                if (best < 0 || room > best_room) {
                        best = (int) h;
                        best_room = room;
                }
        }
        return best;
}

/* Whether the row of the tick ending at t_usec is written (every row to a CSV file, one in
 * `stride` to the plot). */
static bool series_wants(const struct series *ser, uint64_t t_usec) {
        uint64_t tick = t_usec / USEC_PER_SEC;
        return ser->csv || (ser->n <= PLOT_POINTS && !(ser->stride && tick % ser->stride));
}

static void record(struct series *ser, uint64_t t_usec, const struct tick_row *row) {
        if (ser->csv)
                fprintf(ser->csv, "%.0f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
                        (double) t_usec / 1e6, row->running, row->booted, row->warning, row->demand_kib,
                        row->assigned_kib, row->paging_kib);
        uint64_t tick = t_usec / USEC_PER_SEC;
        if (ser->n > PLOT_POINTS || (ser->stride && tick % ser->stride))
                return;
        ser->t_h[ser->n] = (double) t_usec / 3600e6;
        ser->demand_gib[ser->n] = (double) row->demand_kib / (double) KIB_PER_GIB;
        ser->assigned_gib[ser->n] = (double) row->assigned_kib / (double) KIB_PER_GIB;
        ser->booted[ser->n] = (double) row->booted;
        ser->warning[ser->n] = (double) row->warning;
        ser->n++;
}

/* What a host's simulator measured, into the run's result (a host that fails is added when it
 * fails, the others at the end). */
static void collect(struct result *res, struct sim *s, bool alive) {
        const struct sim_metrics *m = &s->metrics;
        res->m.assigned_kib_usec += m->assigned_kib_usec;
        res->m.startup_kib_usec += m->startup_kib_usec;
        res->m.vm_usec += m->vm_usec;
        res->m.warning_vm_usec += m->warning_vm_usec;
        res->m.paging_kib_usec += m->paging_kib_usec;
        res->m.paging_starts += m->paging_starts;
        res->wakes += s->wakes;
        res->full_ticks += s->full_ticks;
        res->replay_mismatches += s->replay_mismatches;
        res->m.paging_peak_kib = max_u64(res->m.paging_peak_kib, m->paging_peak_kib);
        res->host_peak_kib = max_u64(res->host_peak_kib, m->peak_assigned_kib);
        res->balloon_ops += s->balloon_ops + s->vmem_ops;
        res->oom_events += sim_oom_events(s);
        /* The storm is over when every host that had one has booted all its VMs. */
        if (m->storm_usec && alive) {
                res->storm = true;
                if (m->all_booted_usec < 0)
                        res->storm_open = true;
                else
                        res->booted_usec = res->booted_usec > m->all_booted_usec ? res->booted_usec : m->all_booted_usec;
        }
}

/* VMs running from the start on a host that cannot hold all their startup memory: each first
 * gets what it uses now (or its share of the room when even that does not fit), then the room
 * left goes out in proportion to what each still lacks of its startup. A state no policy's rule
 * made, so every policy starts from the same fair one. */
static void fair_start(const struct world *w, const int *where, size_t host, uint64_t room, uint64_t *ret) {
        double need_sum = 0, lack_sum = 0;
        for (size_t i = 0; i < w->n; i++) {
                if (where[i] != (int) host || w->vms[i].stopped)
                        continue;
                uint64_t want = w->vms[i].assigned_kib ? w->vms[i].assigned_kib : w->vms[i].boot_kib;
                uint64_t need = min_u64(want, sim_demand_at(&w->vms[i].demand, 0));
                need_sum += (double) need;
                lack_sum += (double) (want - need);
        }
        for (size_t i = 0; i < w->n; i++) {
                if (where[i] != (int) host || w->vms[i].stopped)
                        continue;
                uint64_t want = w->vms[i].assigned_kib ? w->vms[i].assigned_kib : w->vms[i].boot_kib;
                uint64_t need = min_u64(want, sim_demand_at(&w->vms[i].demand, 0));
                double got = need_sum + lack_sum <= (double) room ? (double) want
                             : need_sum >= (double) room
                                     ? (double) need * (double) room / need_sum
                                     : (double) need + (double) (want - need) * ((double) room - need_sum) / lack_sum;
                ret[i] = max_u64((uint64_t) got, KIB_PER_MIB);
        }
}

/* One run of one policy: every host a simulator, stepped together a tick at a time. */
static int run(const struct world *w, int policy, uint64_t host_kib, const struct tide_config *base,
               struct series *ser, bool probe, struct result *res) {
        struct sim sims[SIMSPEC_HOSTS_MAX];
        bool alive[SIMSPEC_HOSTS_MAX];
        uint64_t promised[SIMSPEC_HOSTS_MAX] = { 0 };
        size_t next_failure = 0;
        int r = 0;
        struct timespec t0, t1;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        *res = (struct result){ .policy = policy, .booted_usec = -1 };
        for (size_t h = 0; h < w->n_hosts; h++) {
                struct tide_config cfg = *base;
                const struct simspec_host *hs = &w->hosts[h];
                uint64_t mem = host_kib ? host_kib : hs->memory_kib;
                cfg.reserve_auto = hs->reserve_auto;
                cfg.reserve_kib = hs->reserve_kib;
                if ((r = sim_init(&sims[h], &cfg, mem, SIM_EPOCH_USEC)) < 0) {
                        for (size_t k = 0; k < h; k++)
                                sim_done(&sims[k]);
                        return r;
                }
                sims[h].reserve_kib = config_reserve_kib(&cfg, mem);
                sims[h].paging_kib_per_sec = hs->paging_kib_per_sec;
                if (w->spec->smart_paging >= 0)
                        sims[h].cfg.smart_paging = (enum config_paging) w->spec->smart_paging;
                if (policy != POLICY_TIDE)
                        sim_use_peer(&sims[h], (enum peer_rule) policy);
                else if (!w->full_loop && (r = sim_set_fast(&sims[h], true)) < 0) {
                        for (size_t k = 0; k <= h; k++)
                                sim_done(&sims[k]);
                        return r;
                }
                alive[h] = true;
        }
        int *where = calloc(w->n ? w->n : 1, sizeof(*where));
        uint64_t *start = calloc(w->n ? w->n : 1, sizeof(*start));
        if (!where || !start)
                r = -ENOMEM;
        for (size_t i = 0; i < w->n && r >= 0; i++) {
                where[i] = w->host[i] >= 0 ? w->host[i] : place(w, alive, promised, host_kib);
                promised[where[i]] += w->vms[i].policy.startup_kib;
        }
        for (size_t h = 0; h < w->n_hosts && r >= 0; h++)
                fair_start(w, where, h, sat_sub_u64(sims[h].total_kib, sims[h].reserve_kib), start);
        for (size_t i = 0; i < w->n && r >= 0; i++) {
                struct sim_vm_spec vm = w->vms[i];
                if (!vm.stopped)
                        vm.assigned_kib = start[i];
                r = sim_add_vm(&sims[where[i]], &vm);
        }
        free(where);
        free(start);
        /* What is due at 0 s (a staggered start's first VM) starts before the first tick. */
        for (size_t h = 0; h < w->n_hosts && r >= 0; h++)
                sim_advance(&sims[h], 0);
        uint64_t tick = base->interval_usec;
        /* A --find-host probe stops once it cannot pass: an OOM, or more warning time than the
         * bar allows even if every VM ran all the time. */
        uint64_t warning_bar = (uint64_t) ((double) w->n * (double) w->duration_usec * FIND_HOST_WARNING_PCT / 100.0);
        for (uint64_t t = 0; r >= 0 && t < w->duration_usec; t += tick) {
                if (probe) {
                        uint64_t ooms = res->oom_events, warned = res->m.warning_vm_usec;
                        for (size_t h = 0; h < w->n_hosts; h++)
                                if (alive[h]) {
                                        ooms += sims[h].metrics.oom_events;
                                        warned += sims[h].metrics.warning_vm_usec;
                                }
                        if (ooms || warned > warning_bar) {
                                res->failed_early = true;
                                break;
                        }
                }
                /* A host that fails takes its VMs down; the cluster starts them cold elsewhere,
                 * those still waiting for their turn at their turn. */
                for (; next_failure < w->n_failures && w->failures[next_failure].at_usec <= t; next_failure++) {
                        size_t dead = (size_t) w->failures[next_failure].host;
                        if (!alive[dead])
                                continue;
                        alive[dead] = false;
                        for (size_t i = 0; i < sims[dead].n_vms && r >= 0; i++) {
                                const struct sim_vm *v = &sims[dead].vms[i];
                                struct sim_vm_spec vm = v->spec;
                                int h = place(w, alive, promised, host_kib);
                                vm.stopped = true;
                                vm.start_at_usec = v->running ? t + tick : max_u64(vm.start_at_usec, t + tick);
                                vm.restart_at_usec = 0;
                                promised[h] += vm.policy.startup_kib;
                                r = sim_add_vm(&sims[h], &vm);
                        }
                        /* Its numbers so far count; its memory goes back now. */
                        collect(res, &sims[dead], false);
                        sim_done(&sims[dead]);
                }
                for (size_t h = 0; h < w->n_hosts && r >= 0; h++)
                        if (alive[h])
                                r = sim_tick(&sims[h]);
                struct tick_row row = { 0 };
                bool recorded = ser && series_wants(ser, t + tick);
                for (size_t h = 0; h < w->n_hosts; h++) {
                        if (!alive[h])
                                continue;
                        sims[h].demand_rows = recorded;
                        sim_advance(&sims[h], tick);
                        const struct sim_metrics *m = &sims[h].metrics;
                        row.running += m->now_running;
                        row.booted += m->now_booted;
                        row.warning += m->now_warning;
                        row.demand_kib += m->now_demand_kib;
                        row.assigned_kib += m->now_assigned_kib;
                        row.paging_kib += m->now_paging_kib;
                }
                res->m.peak_assigned_kib = max_u64(res->m.peak_assigned_kib, row.assigned_kib);
                if (recorded)
                        record(ser, t + tick, &row);
        }
        for (size_t h = 0; h < w->n_hosts; h++)
                if (alive[h]) {
                        collect(res, &sims[h], true);
                        sim_done(&sims[h]);
                }
        if (res->storm_open)
                res->booted_usec = -1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        res->wall_s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        res->vm_ticks = (double) w->n * (double) (w->duration_usec / tick);
        return r < 0 ? r : 0;
}

static double warning_pct(const struct result *r) {
        return r->m.vm_usec > 0 ? 100.0 * (double) r->m.warning_vm_usec / (double) r->m.vm_usec : 0;
}

static double returned_pct(const struct result *r) {
        return r->m.startup_kib_usec > 0
                       ? 100.0 * (1.0 - (double) r->m.assigned_kib_usec / (double) r->m.startup_kib_usec)
                       : 0;
}

static double warning_s(const struct result *r) {
        return (double) r->m.warning_vm_usec / 1e6;
}

static double paging_gib_s(const struct result *r) {
        return (double) r->m.paging_kib_usec / 1e6 / (double) KIB_PER_GIB;
}

static bool passes(const struct result *r) {
        return !r->failed_early && warning_pct(r) <= FIND_HOST_WARNING_PCT && r->oom_events == 0;
}

/* The smallest host memory, to a GiB, on which the policy keeps warning time within the bar with
 * no guest OOM: a binary search between 1 GiB and the hosts as given (or sized). Each probe is a
 * whole run. */
static int find_host(const struct world *w, int policy, const struct tide_config *cfg, struct result *res) {
        uint64_t hi = 0;
        struct result probe;
        int r;

        /* The oracle holds the demand whatever the host: its host is the peak demand and the
         * reserve that host keeps. */
        if (policy == PEER_ORACLE) {
                struct tide_config c = *cfg;
                c.reserve_auto = w->hosts[0].reserve_auto;
                c.reserve_kib = w->hosts[0].reserve_kib;
                uint64_t need = res->host_peak_kib;
                need += config_reserve_kib(&c, need);
                res->host_found = true;
                res->host_needed_kib = (need + KIB_PER_GIB - 1) / KIB_PER_GIB * KIB_PER_GIB;
                return 0;
        }
        /* From the hosts as given, or one that holds every startup if that is larger. */
        for (size_t h = 0; h < w->n_hosts; h++)
                hi = max_u64(hi, w->hosts[h].memory_kib);
        hi = max_u64(hi, host_for((w->startup_sum_kib + w->n_hosts - 1) / w->n_hosts));
        hi = (hi + KIB_PER_GIB - 1) / KIB_PER_GIB;
        /* When every host already has that size, the run just made was that probe. */
        bool same = true;
        for (size_t h = 0; h < w->n_hosts; h++)
                same &= w->hosts[h].memory_kib == hi * KIB_PER_GIB;
        if (same)
                probe = *res;
        else if ((r = run(w, policy, hi * KIB_PER_GIB, cfg, NULL, true, &probe)) < 0)
                return r;
        if (!passes(&probe))
                return 0; /* not even on the hosts as given */
        uint64_t lo = 1, best = hi;
        while (lo < best) {
                uint64_t mid = lo + (best - lo) / 2;
                if ((r = run(w, policy, mid * KIB_PER_GIB, cfg, NULL, true, &probe)) < 0)
                        return r;
                if (passes(&probe))
                        best = mid;
                else
                        lo = mid + 1;
        }
        res->host_found = true;
        res->host_needed_kib = best * KIB_PER_GIB;
        return 0;
}

int simulate_load_trace(const char *path, double hours, struct sim_trace_set *t, FILE *err) {
        char line[512], msg[256];
        gzFile f = gzopen(path, "rb");
        int r = 0;

        if (!f) {
                fprintf(err, "tidectl: %s: %s\n", path, strerror(errno ? errno : ENOENT));
                return -ENOENT;
        }
        gzbuffer(f, 1 << 17);
        while (gzgets(f, line, sizeof(line))) {
                size_t len = strlen(line);
                if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
                        fprintf(err, "tidectl: %s: line %zu: longer than %zu bytes\n", path, t->lines + 1, sizeof(line) - 2);
                        r = -EINVAL;
                        break;
                }
                if ((r = sim_trace_feed(t, line, msg, sizeof(msg))) < 0) {
                        if (r == -EINVAL)
                                fprintf(err, "tidectl: %s: %s\n", path, msg);
                        else
                                fprintf(err, "tidectl: %s: %s\n", path, strerror(-r));
                        break;
                }
        }
        int zerr = 0;
        const char *zmsg = gzerror(f, &zerr);
        if (r >= 0 && zerr != Z_OK && zerr != Z_STREAM_END) {
                fprintf(err, "tidectl: %s: cannot read: %s\n", path, zerr == Z_ERRNO ? strerror(errno) : zmsg);
                r = -EIO;
        }
        gzclose(f);
        if (r >= 0 && t->lines == 0) {
                fprintf(err, "tidectl: %s: empty (expected the header %s)\n", path, SIM_TRACE_HEADER);
                r = -EINVAL;
        }
        if (r >= 0 && (r = sim_trace_finish(t, hours > 0 ? (uint64_t) (hours * 3600e6) : 0, msg, sizeof(msg))) < 0)
                fprintf(err, "tidectl: %s: %s\n", path, msg);
        return r;
}

static void print_table(const struct world *w, const struct result *res, size_t n, double wall, bool any_find,
                        FILE *out) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX];
        uint64_t host_sum = 0;

        for (size_t h = 0; h < w->n_hosts; h++)
                host_sum += w->hosts[h].memory_kib;
        double ticks = 0, stepped = 0;
        for (size_t i = 0; i < n; i++) {
                ticks += res[i].vm_ticks;
                stepped += res[i].wall_s;
        }
        fprintf(out, "%zu VMs, %.3g h simulated in %.1f s on %zu host%s of %s (startup memory of all VMs: %s);"
                     " %.1f M VM-ticks/s\n",
                w->n, (double) w->duration_usec / 3600e6, wall, w->n_hosts, w->n_hosts == 1 ? "" : "s",
                size_format_human(host_sum, a), size_format_human(w->startup_sum_kib, b),
                stepped > 0 ? ticks / stepped / 1e6 : 0);
        fprintf(out, "%-12s  %9s  %9s  %9s  %8s  %5s  %11s  %9s  %11s", "POLICY", "RETURNED", "PEAK", "WARNING", "WARN%",
                "OOM", "PAGING-GiBs", "BOOTED", "BALLOON-OPS");
        if (any_find)
                fprintf(out, "  %11s", "HOST-NEEDED");
        fputc('\n', out);
        for (size_t i = 0; i < n; i++) {
                const struct result *r = &res[i];
                char booted[32] = "-";
                if (r->storm && r->booted_usec >= 0)
                        snprintf(booted, sizeof(booted), "%.0f s", (double) r->booted_usec / 1e6);
                else if (r->storm)
                        snprintf(booted, sizeof(booted), "never");
                fprintf(out, "%-12s  %8.1f%%  %9s  %8.0fs  %7.3f%%  %5" PRIu64 "  %11.1f  %9s  %11" PRIu64,
                        policy_name(r->policy), returned_pct(r), size_format_human(r->m.peak_assigned_kib, a),
                        warning_s(r), warning_pct(r), r->oom_events, paging_gib_s(r),
                        booted, r->balloon_ops);
                if (any_find)
                        fprintf(out, "  %11s", r->host_found ? size_format_human(r->host_needed_kib, c) : "none");
                fputc('\n', out);
        }
}

static void print_json(const struct world *w, const struct result *res, size_t n, double wall, bool find, FILE *out) {
        json_object *root = json_object_new_object(), *pols = json_object_new_array();
        uint64_t startups = w->startup_sum_kib;

        json_object_object_add(root, "vms", json_object_new_int64((int64_t) w->n));
        json_object_object_add(root, "simulated_seconds", json_object_new_double((double) w->duration_usec / 1e6));
        json_object_object_add(root, "wall_seconds", json_object_new_double(wall));
        json_object_object_add(root, "startup_sum_kib", json_object_new_int64((int64_t) startups));
        for (size_t i = 0; i < n; i++) {
                const struct result *r = &res[i];
                json_object *p = json_object_new_object();
                json_object_object_add(p, "policy", json_object_new_string(policy_name(r->policy)));
                json_object_object_add(p, "memory_returned_pct", json_object_new_double(returned_pct(r)));
                json_object_object_add(p, "peak_assigned_kib", json_object_new_int64((int64_t) r->m.peak_assigned_kib));
                json_object_object_add(p, "warning_vm_seconds", json_object_new_double(warning_s(r)));
                json_object_object_add(p, "warning_pct", json_object_new_double(warning_pct(r)));
                json_object_object_add(p, "oom_events", json_object_new_int64((int64_t) r->oom_events));
                json_object_object_add(p, "paging_gib_seconds",
                                       json_object_new_double(paging_gib_s(r)));
                json_object_object_add(p, "paging_peak_kib", json_object_new_int64((int64_t) r->m.paging_peak_kib));
                json_object_object_add(p, "paging_files", json_object_new_int64((int64_t) r->m.paging_starts));
                json_object_object_add(p, "time_to_all_booted_s",
                                       r->storm && r->booted_usec >= 0
                                               ? json_object_new_double((double) r->booted_usec / 1e6)
                                               : NULL);
                json_object_object_add(p, "balloon_ops", json_object_new_int64((int64_t) r->balloon_ops));
                json_object_object_add(p, "wall_seconds", json_object_new_double(r->wall_s));
                json_object_object_add(p, "vm_ticks_per_second",
                                       json_object_new_double(r->wall_s > 0 ? r->vm_ticks / r->wall_s : 0));
                if (find) {
                        json_object_object_add(p, "host_needed_kib",
                                               r->host_found ? json_object_new_int64((int64_t) r->host_needed_kib) : NULL);
                        /* What that host saves against one sized for every VM's startup memory. */
                        json_object_object_add(p, "host_saved_pct",
                                               r->host_found ? json_object_new_double(100.0 * (1.0 - (double) r->host_needed_kib /
                                                                                                         (double) host_for(startups / w->n_hosts)))
                                                             : NULL);
                }
                json_object_array_add(pols, p);
        }
        json_object_object_add(root, "policies", pols);
        fprintf(out, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
        json_object_put(root);
}

/* DIR/POLICY.csv, the directory made when missing. */
static FILE *csv_open(const char *dir, const char *policy, FILE *err) {
        char path[4096];
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                fprintf(err, "tidectl simulate: --csv: cannot create %s: %s\n", dir, strerror(errno));
                return NULL;
        }
        snprintf(path, sizeof(path), "%s/%s.csv", dir, policy);
        FILE *f = fopen(path, "we");
        if (!f) {
                fprintf(err, "tidectl simulate: --csv: cannot write %s: %s\n", path, strerror(errno));
                return NULL;
        }
        fprintf(f, "t_s,vms_running,vms_booted,vms_in_warning,demand_kib,assigned_kib,paging_kib\n");
        return f;
}

static void plot_block(FILE *g, const char *name, const struct series *s, const double *y) {
        fprintf(g, "$%s << EOD\n", name);
        for (size_t k = 0; k < s->n; k++)
                fprintf(g, "%.6f %.6f\n", s->t_h[k], y[k]);
        fprintf(g, "EOD\n");
}

/* Two panels drawn by gnuplot: the VMs' summed demand against what each policy assigned, and the
 * storm's timeline (VMs booted, VMs short of their demand) per policy. */
static int plot(const char *path, const struct series *ser, const struct result *res, size_t n, const struct world *w,
                FILE *err) {
        const char *ext = strrchr(path, '.');
        bool png = ext && streq(ext, ".png");
        /* gnuplot dying early must not kill tidectl with SIGPIPE: its status says it. */
        void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
        FILE *g = popen("gnuplot", "w");
        if (!g) {
                fprintf(err, "tidectl simulate: --plot needs gnuplot (Debian: gnuplot-nox): %s\n", strerror(errno));
                signal(SIGPIPE, old_pipe);
                return -ENOENT;
        }
        fprintf(g, "set terminal %s size 1200,900 %s\n", png ? "pngcairo" : "svg", png ? "" : "dynamic");
        fprintf(g, "set output '%s'\n", path);
        fprintf(g, "set multiplot layout 2,1 title 'tidectl simulate: %zu VMs, %.1f h'\n", w->n,
                (double) w->duration_usec / 3600e6);
        for (size_t i = 0; i < n; i++) {
                char name[32];
                snprintf(name, sizeof(name), "a%zu", i);
                plot_block(g, name, &ser[i], ser[i].assigned_gib);
                snprintf(name, sizeof(name), "b%zu", i);
                plot_block(g, name, &ser[i], ser[i].booted);
                snprintf(name, sizeof(name), "w%zu", i);
                plot_block(g, name, &ser[i], ser[i].warning);
        }
        plot_block(g, "demand", &ser[0], ser[0].demand_gib);
        fprintf(g, "set grid\nset key outside right\nset xlabel 'hours'\nset ylabel 'GiB'\n"
                   "set title 'memory: summed demand, and what each policy assigned'\nplot $demand with lines lw 3 "
                   "dt 2 title 'demand (sum)'");
        for (size_t i = 0; i < n; i++)
                fprintf(g, ", $a%zu with lines title '%s'", i, policy_name(res[i].policy));
        fprintf(g, "\nset ylabel 'VMs'\nset title 'timeline: VMs booted (solid) and VMs short of their demand (dashed)'\nplot ");
        for (size_t i = 0; i < n; i++)
                fprintf(g, "%s$b%zu with lines lt %zu title '%s booted', $w%zu with lines lt %zu dt 3 title '%s warning'",
                        i ? ", " : "", i, i + 1, policy_name(res[i].policy), i, i + 1, policy_name(res[i].policy));
        fprintf(g, "\nunset multiplot\n");
        int status = pclose(g);
        signal(SIGPIPE, old_pipe);
        if (status != 0) {
                fprintf(err, "tidectl simulate: --plot: gnuplot failed (%s %d) writing %s\n",
                        WIFEXITED(status) ? "exit" : "status", WIFEXITED(status) ? WEXITSTATUS(status) : status, path);
                return -EIO;
        }
        return 0;
}

/* Before minutes of simulation: gnuplot runs, and the picture can be written. */
static int plot_check(const char *path, FILE *err) {
        FILE *f = fopen(path, "we");
        if (!f) {
                fprintf(err, "tidectl simulate: --plot: cannot write %s: %s\n", path, strerror(errno));
                return -errno;
        }
        fclose(f);
        void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
        FILE *g = popen("gnuplot --version >/dev/null 2>&1", "r");
        int status = g ? pclose(g) : -1;
        signal(SIGPIPE, old_pipe);
        if (status != 0) {
                fprintf(err, "tidectl simulate: --plot needs gnuplot (Debian: gnuplot-nox; scripts/install-deps installs it)\n");
                return -ENOENT;
        }
        return 0;
}

static int parse_policies(const char *list, bool *ret, FILE *err) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", list);
        memset(ret, 0, POLICIES * sizeof(*ret));
        for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
                enum peer_rule rule;
                if (streq(p, "tide"))
                        ret[POLICY_TIDE] = true;
                else if (peer_rule_from_string(p, &rule) == 0)
                        ret[rule] = true;
                else {
                        fprintf(err, "tidectl simulate: --policies: unknown policy '%s' (known: tide, hyperv, swap-anytime, "
                                     "mom, proxmox, static, oracle)\n",
                                p);
                        return -EINVAL;
                }
        }
        return 0;
}

/* One policy's work: its run, then --find-host's probes. Jobs share nothing but the world
 * they read, so they run on separate threads. */
struct job {
        const struct world *w;
        const struct tide_config *cfg;
        const struct options *o;
        int policy;
        struct series *ser;
        struct result *res;
        FILE *err;
        int r;
};

static void job_run(struct job *j) {
        j->ser->stride = (j->w->duration_usec / USEC_PER_SEC + PLOT_POINTS - 1) / PLOT_POINTS;
        if (j->o->csv_dir && !(j->ser->csv = csv_open(j->o->csv_dir, policy_name(j->policy), j->err))) {
                j->r = -EIO;
                return;
        }
        /* Rows only for a reader: working out the sleepers' demand for them costs the fast path. */
        struct series *ser = j->o->csv_dir || j->o->plot ? j->ser : NULL;
        j->r = run(j->w, j->policy, 0, j->cfg, ser, false, j->res);
        if (j->ser->csv && fclose(j->ser->csv) != 0 && j->r >= 0) {
                fprintf(j->err, "tidectl simulate: --csv: cannot write %s/%s.csv: %s\n", j->o->csv_dir,
                        policy_name(j->policy), strerror(errno));
                j->r = -EIO;
        }
        j->ser->csv = NULL;
        if (j->r >= 0 && j->o->find_host)
                j->r = find_host(j->w, j->policy, j->cfg, j->res);
}

struct pool {
        struct job *jobs;
        size_t n;
        atomic_size_t next;
};

static void *worker(void *userdata) {
        struct pool *p = userdata;
        for (size_t k; (k = atomic_fetch_add(&p->next, 1)) < p->n;)
                job_run(&p->jobs[k]);
        return NULL;
}

/* The policies' runs on as many threads as there are CPUs (each run is one thread's: the
 * numbers do not depend on how many there are). Returns the first job's error, or 0. */
static int run_jobs(struct job *jobs, size_t n) {
        struct pool p = { .jobs = jobs, .n = n };
        pthread_t threads[POLICIES];
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t want = cpus > 1 ? min_u64((uint64_t) cpus, n) : 1, started = 0;

        atomic_init(&p.next, 0);
        for (; started + 1 < want; started++)
                if (pthread_create(&threads[started], NULL, worker, &p) != 0)
                        break;
        worker(&p); /* this thread works too */
        for (size_t t = 0; t < started; t++)
                pthread_join(threads[t], NULL);
        for (size_t k = 0; k < n; k++)
                if (jobs[k].r < 0)
                        return jobs[k].r;
        return 0;
}

static int simulate_run(const struct options *o, FILE *out, FILE *err) {
        _cleanup_free_ struct simspec *spec = malloc(sizeof(*spec));
        struct sim_trace_set trace = { 0 };
        struct world w = { 0 };
        struct result res[POLICIES];
        struct tide_config cfg;
        char msg[512];
        size_t n = 0;
        int r;

        if (!spec)
                return TIDECTL_EXIT_FAIL;
        config_init(&cfg);
        simspec_init(spec);
        if (o->scenario && simspec_load(o->scenario, spec, msg, sizeof(msg)) < 0) {
                fprintf(err, "tidectl: %s\n", msg);
                return TIDECTL_EXIT_FAIL;
        }
        if (o->trace && simulate_load_trace(o->trace, o->hours, &trace, err) < 0) {
                sim_trace_set_done(&trace);
                return TIDECTL_EXIT_FAIL;
        }
        if ((r = world_build(&w, spec, o->trace ? &trace : NULL, o, msg, sizeof(msg))) < 0) {
                if (r == -EINVAL)
                        fprintf(err, "tidectl: %s: %s\n", o->scenario ? o->scenario : o->trace, msg);
                else
                        fprintf(err, "tidectl simulate: %s\n", strerror(-r));
                world_done(&w);
                sim_trace_set_done(&trace);
                return TIDECTL_EXIT_FAIL;
        }
        _cleanup_free_ struct series *ser = calloc(POLICIES, sizeof(*ser));
        if (!ser || (o->plot && plot_check(o->plot, err) < 0)) {
                world_done(&w);
                sim_trace_set_done(&trace);
                return TIDECTL_EXIT_FAIL;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct job jobs[POLICIES];
        for (size_t k = 0; k < ELEMENTSOF(policy_order); k++) {
                int p = policy_order[k];
                if (!o->policies[p])
                        continue;
                jobs[n] = (struct job){ .w = &w, .cfg = &cfg, .o = o, .policy = p, .ser = &ser[n], .res = &res[n],
                                        .err = err };
                n++;
        }
        r = run_jobs(jobs, n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double wall = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        bool plotted = r < 0 || !o->plot || n == 0 || plot(o->plot, ser, res, n, &w, err) >= 0;
        if (r < 0 && r != -EIO)
                fprintf(err, "tidectl simulate: the simulation failed: %s\n", strerror(-r));
        else if (r < 0)
                ; /* said where it happened */
        else if (o->json)
                print_json(&w, res, n, wall, o->find_host, out);
        else
                print_table(&w, res, n, wall, o->find_host, out);
        if (!plotted)
                r = -EIO; /* the numbers are out; the picture is not */
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (res[i].replay_mismatches) {
                        /* The fast path's own check (sim/sleep.c): a woken VM's replayed tick was
                         * not the hold it slept on. A defect, not the user's; --full-loop avoids it. */
                        fprintf(err, "tidectl simulate: %s: the fast path diverged from the full loop %" PRIu64
                                     " times; rerun with --full-loop and report it\n",
                                policy_name(res[i].policy), res[i].replay_mismatches);
                        r = -EIO;
                }
        world_done(&w);
        sim_trace_set_done(&trace);
        return r < 0 ? TIDECTL_EXIT_FAIL : TIDECTL_EXIT_OK;
}

int cmd_simulate(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = {
                { "trace", required_argument, NULL, 't' },  { "hours", required_argument, NULL, 'H' },
                { "policies", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
                { "find-host", no_argument, NULL, 'f' },    { "seed", required_argument, NULL, 's' },
                { "hold", no_argument, NULL, 'o' },         { "csv", required_argument, NULL, 'c' },
                { "plot", required_argument, NULL, 'P' },   { "full-loop", no_argument, NULL, 'F' },
                { "vms", required_argument, NULL, 'V' },
                { "parking", no_argument, NULL, 'k' },      { "cores", required_argument, NULL, 'C' },
                { "smt", required_argument, NULL, 'T' },    { "nodes", required_argument, NULL, 'N' },
                TIDECTL_GLOBAL_OPTIONS,
                { 0 },
        };
        struct options o = { 0 };
        struct simparking_options pk = { 0 };
        bool parking = false, host_given = false, other_given = false;
        char *end;
        int c;

        for (int p = 0; p < POLICIES; p++)
                o.policies[p] = true;
        while ((c = tidectl_getopt(argc, argv, options, false, "simulate", g, out)) != -1) {
                switch (c) {
                case TIDECTL_OPT_DONE:
                        return TIDECTL_EXIT_OK;
                case 't':
                        o.trace = optarg;
                        break;
                case 'H':
                        errno = 0;
                        o.hours = strtod(optarg, &end);
                        if (errno || end == optarg || *end || !(o.hours > 0) || o.hours > 24.0 * 366 * 10) {
                                fprintf(err, "tidectl simulate: --hours: '%s' is not a number of hours (> 0)\n", optarg);
                                return TIDECTL_EXIT_USAGE;
                        }
                        break;
                case 'p':
                        if (parse_policies(optarg, o.policies, err) < 0)
                                return TIDECTL_EXIT_USAGE;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 'f':
                        o.find_host = true;
                        break;
                case 'o': /* not 'h': that is --help's */
                        o.hold = true;
                        break;
                case 'F':
                        o.full_loop = true;
                        break;
                case 'V': {
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > SIMSPEC_VMS_MAX) {
                                fprintf(err, "tidectl simulate: --vms: '%s' is not a number of VMs (1-%d)\n", optarg,
                                        SIMSPEC_VMS_MAX);
                                return TIDECTL_EXIT_USAGE;
                        }
                        o.trace_vms = (size_t) v;
                        break;
                }
                case 'c':
                        o.csv_dir = optarg;
                        break;
                case 'P': {
                        const char *ext = strrchr(optarg, '.');
                        /* The path goes into gnuplot's script between single quotes. */
                        if (!ext || (!streq(ext, ".svg") && !streq(ext, ".png")) || strpbrk(optarg, "'\n\\")) {
                                fprintf(err, "tidectl simulate: --plot: '%s' must end in .svg or .png (and hold no quote, "
                                             "backslash or newline)\n",
                                        optarg);
                                return TIDECTL_EXIT_USAGE;
                        }
                        o.plot = optarg;
                        break;
                }
                case 'k':
                        parking = true;
                        break;
                case 'C':
                case 'T':
                case 'N': {
                        static const unsigned max[] = { ['C'] = SIM_CPU_MAX_CPUS, ['T'] = 8, ['N'] = 64 };
                        const char *name = c == 'C' ? "--cores" : c == 'T' ? "--smt" : "--nodes";
                        errno = 0;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > max[c]) {
                                fprintf(err, "tidectl simulate: %s: '%s' is not a whole number from 1 to %u\n", name,
                                        optarg, max[c]);
                                return TIDECTL_EXIT_USAGE;
                        }
                        *(c == 'C' ? &pk.cores : c == 'T' ? &pk.smt : &pk.nodes) = (unsigned) v;
                        host_given = true;
                        break;
                }
                case 's':
                        errno = 0;
                        o.seed = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-') {
                                fprintf(err, "tidectl simulate: --seed: '%s' is not a whole number\n", optarg);
                                return TIDECTL_EXIT_USAGE;
                        }
                        o.seed_set = true;
                        break;
                default:
                        fprintf(err, "tidectl simulate: unknown or incomplete option '%s' (see 'tidectl help simulate')\n",
                                argv[optind - 1]);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        if (argc - optind > 1) {
                fprintf(err, "tidectl simulate: expected at most one scenario file (see 'tidectl help simulate')\n");
                return TIDECTL_EXIT_USAGE;
        }
        o.scenario = argc - optind == 1 ? argv[optind] : NULL;
        other_given = o.scenario || o.find_host || o.csv_dir || o.plot || o.full_loop;
        if (host_given && !parking) {
                fprintf(err, "tidectl simulate: --cores, --smt and --nodes describe the host of --parking\n");
                return TIDECTL_EXIT_USAGE;
        }
        if (parking) {
                if (other_given) {
                        fprintf(err, "tidectl simulate: --parking takes a --trace, --hours, --vms, --seed, --hold, "
                                     "--json and the host (--cores, --smt, --nodes), not a scenario, --find-host, "
                                     "--csv, --plot or --full-loop\n");
                        return TIDECTL_EXIT_USAGE;
                }
                pk.trace = o.trace;
                pk.hours = o.hours;
                pk.vms = o.trace_vms;
                pk.seed = o.seed;
                pk.hold = o.hold;
                pk.json = o.json;
                return simulate_parking(&pk, out, err);
        }
        if (o.trace_vms && !o.trace) {
                fprintf(err, "tidectl simulate: --vms takes VMs from a --trace\n");
                return TIDECTL_EXIT_USAGE;
        }
        if (!o.scenario && !o.trace) {
                fprintf(err, "tidectl simulate: give a scenario file, a --trace, or both (see 'tidectl help simulate')\n");
                return TIDECTL_EXIT_USAGE;
        }
        return simulate_run(&o, out, err);
}
