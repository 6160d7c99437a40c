/* tidectl plan: what tided decides for a scenario file: one tick of the engine on the scenario's
 * inputs, or with --settle tided's ticks on a simulated host (sim/) through the controller core,
 * until nothing moves. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/scenario.h"
#include "common/macro.h"
#include "common/units.h"
#include "policy/engine.h"
#include "sim/sim.h"

#define REASON_MAX 160
#define DEFAULT_MAX_TICKS 100000

/* Simulated monotonic clock start: later than any demand_age a scenario may give (10 years),
 * so "now - age" never goes below zero. */
#define PLAN_EPOCH_USEC (UINT64_C(20) * 365 * 86400 * USEC_PER_SEC)

struct plan_options {
        bool settle, json;
        const char *config_path;
        uint64_t max_ticks;
};

struct plan_result {
        struct engine_vm *vm;       /* what each decision was made from */
        struct engine_decision *d;
        struct engine_summary summary;
        uint64_t ticks;
        bool settled;
};

/* One tick of the engine on the scenario as it stands: what tided decides with these inputs. */
static int decide_once(struct scenario *s, const struct tide_config *cfg, struct plan_result *res) {
        uint64_t now = PLAN_EPOCH_USEC;
        struct engine *e = engine_new(s->n_vms);
        /* The engine takes a contiguous engine_vm array; the scenario keeps names beside them. */
        struct engine_vm *vms = calloc(s->n_vms ? s->n_vms : 1, sizeof(*vms));
        int r = -ENOMEM;

        if (e && vms) {
                for (size_t i = 0; i < s->n_vms; i++) {
                        s->vms[i].vm.demand_usec = now - s->vms[i].demand_age_usec;
                        vms[i] = s->vms[i].vm;
                }
                r = engine_step(e, &s->host, vms, s->n_vms, cfg, now, res->d, &res->summary);
                for (size_t i = 0; i < s->n_vms; i++)
                        res->vm[i] = vms[i];
        }
        free(vms);
        engine_free(e);
        return r;
}

/* A scenario VM as a guest on the simulated host: it holds what the scenario says, its agent
 * reports the demand (the used memory that, raised by the guest's PSI as the demand model
 * does, is that demand), and its history (uptime, a boot under way, a silent agent, an OOM
 * deflate) becomes events the core sees as tided would. */
static void scenario_guest(const struct scenario_vm *sv, uint64_t now, struct sim_vm_spec *g) {
        const struct engine_vm *vm = &sv->vm;

        *g = (struct sim_vm_spec){
                .boot_kib = vm->policy.startup_kib,
                .node = vm->node,
                .have_policy = true,
                .policy = vm->policy,
                .demand = { .kind = SIM_DEMAND_CONSTANT, .base_kib = vm->has_demand ? (uint64_t) vm->demand_kib : 0 },
                .psi_some_avg10 = vm->psi_some_avg10,
                .agent = vm->has_demand ? SIM_AGENT_HONEST : SIM_AGENT_NONE,
                .booting = vm->state == ENGINE_VM_BOOTING,
                .uptime_usec = vm->uptime_usec,
                .assigned_kib = vm->assigned_kib,
                .deflate_on_oom = vm->guest_reclaimed,
                .oom_at_start = vm->guest_reclaimed,
        };
        snprintf(g->name, sizeof(g->name), "%s", sv->name);
        /* Above the startup memory, a virtio-mem device makes up the maximum, or what the VM
         * holds when that is more (a maximum lowered below it). */
        uint64_t reach = vm->policy.maximum_kib > vm->assigned_kib ? vm->policy.maximum_kib : vm->assigned_kib;
        if (reach > vm->policy.startup_kib) {
                g->vmem_max_kib = reach - vm->policy.startup_kib;
                g->vmem_block_kib = POLICY_ALIGN_KIB;
        }
        if (sv->demand_age_usec) {
                g->agent = SIM_AGENT_SILENT;
                g->silent_usec = now - sv->demand_age_usec;
        }
        /* A guest claiming a total below its use: its agent lies by that much. */
        if (vm->has_demand && vm->guest_total_kib && (uint64_t) vm->demand_kib > vm->guest_total_kib) {
                g->agent = SIM_AGENT_LIAR;
                g->demand.base_kib = vm->guest_total_kib;
                g->lie_factor = (double) vm->demand_kib / (double) vm->guest_total_kib;
        }
}

/* Settled means nothing moves and nothing waits on a clock: a VM in its quiet period, pressure
 * back-off or boot will move once its timer runs out. */
static bool settled(const struct sim *sim) {
        for (size_t i = 0; i < sim->n_vms; i++) {
                const struct core_vm_out *o = &sim->frame.out[i];
                const struct sim_vm *v = &sim->vms[i];
                if (o->set_balloon || o->set_vmem || o->release || v->actual_kib != v->balloon_target_kib ||
                    v->info.virtio_mem_current_kib != v->info.virtio_mem_requested_kib)
                        return false;
                if (!v->state.decided)
                        continue;
                enum engine_reason why = v->state.decision.reason;
                if (why == ENGINE_REASON_QUIET || why == ENGINE_REASON_PRESSURE_HOLD || why == ENGINE_REASON_BOOTING ||
                    v->state.booting)
                        return false;
        }
        return true;
}

/* Ticks of tided on a simulated host through the controller core, balloons reaching their
 * targets within a tick (the balloon's own speed is tided's concern, not the policy's). */
static int settle(struct scenario *s, const struct tide_config *base, const struct plan_options *o,
                  struct plan_result *res) {
        struct tide_config cfg = *base;
        struct sim sim;
        int r;

        /* The scenario's reserve is the host's, whatever the config says. */
        cfg.reserve_auto = false;
        cfg.reserve_kib = s->host.reserve_kib;
        if ((r = sim_init(&sim, &cfg, s->host_memory_kib, PLAN_EPOCH_USEC)) < 0)
                return r;
        sim.balloon_kib_per_sec = 0;
        sim.n_nodes = s->host.n_nodes;
        memcpy(sim.node_total_kib, s->host.node_usable_kib, sizeof(sim.node_total_kib));
        for (size_t i = 0; i < s->n_vms && r >= 0; i++) {
                struct sim_vm_spec g;
                scenario_guest(&s->vms[i], sim.now_usec, &g);
                r = sim_add_vm(&sim, &g);
        }
        res->ticks = 0;
        res->settled = false;
        while (r >= 0) {
                if ((r = sim_tick(&sim)) < 0)
                        break;
                if (settled(&sim)) {
                        res->settled = true;
                        break;
                }
                if (res->ticks >= o->max_ticks)
                        break;
                sim_advance(&sim, cfg.interval_usec);
                res->ticks++;
        }
        if (r >= 0) {
                res->summary = sim.host_out.summary;
                for (size_t i = 0; i < s->n_vms; i++) {
                        const struct core_vm *st = &sim.vms[i].state;
                        res->vm[i] = st->input;
                        res->d[i] = st->decision;
                        res->vm[i].assigned_kib = sim_vm_assigned_kib(&sim.vms[i]);
                }
        }
        sim_done(&sim);
        return r < 0 ? r : 0;
}

static const char *flag_names[] = { "insane_demand", "stale_demand", "overcommitted", "pressured", "guest_oom" };

static void print_json(const struct scenario *s, const struct plan_result *res, const struct plan_options *o,
                       FILE *out) {
        json_object *root = json_object_new_object(), *host = json_object_new_object(), *vms = json_object_new_array();
        char reason[REASON_MAX];

        json_object_object_add(host, "memory_kib", json_object_new_int64((int64_t) s->host_memory_kib));
        json_object_object_add(host, "reserve_kib", json_object_new_int64((int64_t) s->host.reserve_kib));
        json_object_object_add(host, "capacity_kib", json_object_new_int64((int64_t) res->summary.capacity_kib));
        json_object_object_add(host, "desired_kib", json_object_new_int64((int64_t) res->summary.desired_kib));
        json_object_object_add(host, "target_kib", json_object_new_int64((int64_t) res->summary.target_kib));
        json_object_object_add(host, "short", json_object_new_boolean(res->summary.short_host));
        json_object_object_add(host, "overcommitted", json_object_new_boolean(res->summary.overcommitted));
        json_object_object_add(root, "host", host);
        if (o->settle) {
                json_object_object_add(root, "settled", json_object_new_boolean(res->settled));
                json_object_object_add(root, "ticks", json_object_new_int64((int64_t) res->ticks));
        }
        for (size_t i = 0; i < s->n_vms; i++) {
                const struct engine_vm *vm = &res->vm[i];
                const struct engine_decision *d = &res->d[i];
                json_object *v = json_object_new_object(), *flags = json_object_new_array();

                json_object_object_add(v, "name", json_object_new_string(s->vms[i].name));
                json_object_object_add(v, "target_kib", json_object_new_int64((int64_t) d->target_kib));
                json_object_object_add(v, "assigned_kib", json_object_new_int64((int64_t) vm->assigned_kib));
                json_object_object_add(v, "demand_kib", vm->has_demand ? json_object_new_int64(vm->demand_kib) : NULL);
                json_object_object_add(v, "desired_kib", json_object_new_int64((int64_t) d->desired_kib));
                json_object_object_add(v, "status", json_object_new_string(engine_status_to_string(d->status)));
                json_object_object_add(v, "reason",
                                       json_object_new_string(engine_reason_format(d, vm, reason, sizeof(reason))));
                for (size_t f = 0; f < ELEMENTSOF(flag_names); f++)
                        if (d->flags & (1u << f))
                                json_object_array_add(flags, json_object_new_string(flag_names[f]));
                json_object_object_add(v, "flags", flags);
                json_object_array_add(vms, v);
        }
        json_object_object_add(root, "vms", vms);
        fprintf(out, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
        json_object_put(root);
}

static void print_table(const struct scenario *s, const struct plan_result *res, const struct plan_options *o,
                        FILE *out) {
        char a[SIZE_FORMAT_MAX], b[SIZE_FORMAT_MAX], c[SIZE_FORMAT_MAX], e[SIZE_FORMAT_MAX], f[SIZE_FORMAT_MAX];
        char reason[REASON_MAX];
        int w = 4;

        for (size_t i = 0; i < s->n_vms; i++) {
                int len = (int) strlen(s->vms[i].name);
                w = len > w ? len : w;
        }
        fprintf(out, "host: memory %s, reserve %s, capacity %s; desired %s, targets %s",
                size_format_human(s->host_memory_kib, a), size_format_human(s->host.reserve_kib, b),
                size_format_human(res->summary.capacity_kib, c), size_format_human(res->summary.desired_kib, e),
                size_format_human(res->summary.target_kib, f));
        if (res->summary.overcommitted)
                fprintf(out, " (OVERCOMMITTED: the minimums do not fit)");
        else if (res->summary.short_host)
                fprintf(out, " (short: shared by weight)");
        fputc('\n', out);
        if (o->settle) {
                if (res->settled)
                        fprintf(out, "settled after %" PRIu64 " tick%s\n", res->ticks, res->ticks == 1 ? "" : "s");
                else
                        fprintf(out, "did not settle within %" PRIu64 " ticks; showing the last\n", res->ticks);
        }
        fprintf(out, "%-*s  %9s  %9s  %9s  %-7s  %s\n", w, "NAME", "ASSIGNED", "DEMAND", "TARGET", "STATUS", "REASON");
        for (size_t i = 0; i < s->n_vms; i++) {
                const struct engine_vm *vm = &res->vm[i];
                const struct engine_decision *d = &res->d[i];
                fprintf(out, "%-*s  %9s  %9s  %9s  %-7s  %s\n", w, s->vms[i].name, size_format_human(vm->assigned_kib, a),
                        vm->has_demand && vm->demand_kib >= 0 ? size_format_human((uint64_t) vm->demand_kib, b) : "-",
                        size_format_human(d->target_kib, c), engine_status_to_string(d->status),
                        engine_reason_format(d, vm, reason, sizeof(reason)));
        }
}

static void plan_result_done(struct plan_result *res) {
        free(res->d);
        free(res->vm);
}

static int plan_run(const char *path, const struct plan_options *o, FILE *out, FILE *err) {
        struct tide_config cfg;
        struct scenario s = { 0 };
        struct plan_result res = { 0 };
        char msg[512];
        int r;

        config_init(&cfg);
        if (o->config_path && config_load_file(o->config_path, &cfg, msg, sizeof(msg)) < 0) {
                fprintf(err, "tidectl: %s\n", msg);
                return TIDECTL_EXIT_FAIL;
        }
        if (scenario_load(path, &cfg, &s, msg, sizeof(msg)) < 0) {
                fprintf(err, "tidectl: %s\n", msg);
                return TIDECTL_EXIT_FAIL;
        }
        size_t n = s.n_vms ? s.n_vms : 1;
        res.d = calloc(n, sizeof(*res.d));
        res.vm = calloc(n, sizeof(*res.vm));
        r = !res.d || !res.vm ? -ENOMEM : o->settle ? settle(&s, &cfg, o, &res) : decide_once(&s, &cfg, &res);
        if (r < 0) {
                fprintf(err, "tidectl: %s: cannot run the engine: %s\n", path, strerror(-r));
                plan_result_done(&res);
                scenario_done(&s);
                return TIDECTL_EXIT_FAIL;
        }
        if (o->json)
                print_json(&s, &res, o, out);
        else
                print_table(&s, &res, o, out);
        plan_result_done(&res);
        scenario_done(&s);
        return TIDECTL_EXIT_OK;
}

int cmd_plan(int argc, char **argv, struct tidectl_globals *g, FILE *out, FILE *err) {
        static const struct option options[] = {
                { "settle", no_argument, NULL, 's' },       { "json", no_argument, NULL, 'j' },
                { "config", required_argument, NULL, 'c' }, { "max-ticks", required_argument, NULL, 't' },
                TIDECTL_GLOBAL_OPTIONS,                     { 0 },
        };
        struct plan_options o = { .max_ticks = DEFAULT_MAX_TICKS };
        int c;

        /* plan talks to no tided: --socket is accepted, as everywhere, and has nothing to change. */
        while ((c = tidectl_getopt(argc, argv, options, false, "plan", g, out)) != -1) {
                switch (c) {
                case TIDECTL_OPT_DONE:
                        return TIDECTL_EXIT_OK;
                case 's':
                        o.settle = true;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 'c':
                        o.config_path = optarg;
                        break;
                case 't': {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || v == 0 || v > 100000000 || optarg[0] == '-') {
                                fprintf(err, "tidectl plan: --max-ticks: '%s' is not a number of ticks (1-100000000)\n",
                                        optarg);
                                return TIDECTL_EXIT_USAGE;
                        }
                        o.max_ticks = v;
                        break;
                }
                default:
                        fprintf(err, "tidectl plan: unknown or incomplete option '%s' (see 'tidectl help plan')\n",
                                argv[optind - 1]);
                        return TIDECTL_EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                fprintf(err, "tidectl plan: expected one scenario file (see 'tidectl help plan')\n");
                return TIDECTL_EXIT_USAGE;
        }
        return plan_run(argv[optind], &o, out, err);
}
