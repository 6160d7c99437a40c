/* tidectl plan: run the engine tided runs on a scenario file and show what it decides. */
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
        struct engine_decision *d;
        struct engine_summary summary;
        uint64_t ticks;
        bool settled;
};

static int simulate(struct scenario *s, const struct tide_config *cfg, const struct plan_options *o,
                    struct plan_result *res) {
        uint64_t now = PLAN_EPOCH_USEC;
        int r = 0;

        for (size_t i = 0; i < s->n_vms; i++)
                s->vms[i].vm.demand_usec = now - s->vms[i].demand_age_usec;

        /* The engine takes a contiguous engine_vm array; the scenario keeps names beside them. */
        struct engine_vm *vms = calloc(s->n_vms ? s->n_vms : 1, sizeof(*vms));
        struct engine *e = engine_new(s->n_vms);
        if (!vms || !e) {
                free(vms);
                engine_free(e);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_vms; i++)
                vms[i] = s->vms[i].vm;

        res->ticks = 0;
        res->settled = false;
        for (;;) {
                r = engine_step(e, &s->host, vms, s->n_vms, cfg, now, res->d, &res->summary);
                if (r < 0)
                        break;
                /* Settled means nothing moves and nothing waits on a clock: a VM in its quiet
                 * period or pressure back-off will move once its timer runs out. */
                bool moved = false;
                for (size_t i = 0; i < s->n_vms; i++)
                        moved |= res->d[i].target_kib != vms[i].assigned_kib ||
                                 res->d[i].reason == ENGINE_REASON_QUIET ||
                                 res->d[i].reason == ENGINE_REASON_PRESSURE_HOLD ||
                                 vms[i].state == ENGINE_VM_BOOTING;
                if (!o->settle)
                        break;
                if (!moved) {
                        res->settled = true;
                        break;
                }
                if (res->ticks >= o->max_ticks)
                        break;
                /* One tick passes: every VM reaches its target (the balloon's own speed is
                 * tided's concern, not the policy's), the guest keeps its demand. */
                now += cfg->interval_usec;
                res->ticks++;
                for (size_t i = 0; i < s->n_vms; i++) {
                        vms[i].assigned_kib = res->d[i].target_kib;
                        vms[i].memo = res->d[i].memo;
                        vms[i].uptime_usec += cfg->interval_usec;
                        vms[i].demand_usec += cfg->interval_usec;
                        /* A booting VM has booted one tick later; its quiet period still runs. */
                        vms[i].state = ENGINE_VM_RUNNING;
                        /* The OOM deflate was one event; its back-off runs on in the memo. */
                        vms[i].guest_reclaimed = false;
                }
        }
        for (size_t i = 0; i < s->n_vms; i++)
                s->vms[i].vm = vms[i];
        free(vms);
        engine_free(e);
        return r;
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
                const struct engine_vm *vm = &s->vms[i].vm;
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
                const struct engine_vm *vm = &s->vms[i].vm;
                const struct engine_decision *d = &res->d[i];
                fprintf(out, "%-*s  %9s  %9s  %9s  %-7s  %s\n", w, s->vms[i].name, size_format_human(vm->assigned_kib, a),
                        vm->has_demand && vm->demand_kib >= 0 ? size_format_human((uint64_t) vm->demand_kib, b) : "-",
                        size_format_human(d->target_kib, c), engine_status_to_string(d->status),
                        engine_reason_format(d, vm, reason, sizeof(reason)));
        }
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
        res.d = calloc(s.n_vms ? s.n_vms : 1, sizeof(*res.d));
        if (!res.d || (r = simulate(&s, &cfg, o, &res)) < 0) {
                fprintf(err, "tidectl: %s: cannot run the engine: %s\n", path, strerror(res.d ? -r : ENOMEM));
                free(res.d);
                scenario_done(&s);
                return TIDECTL_EXIT_FAIL;
        }
        if (o->json)
                print_json(&s, &res, o, out);
        else
                print_table(&s, &res, o, out);
        free(res.d);
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
