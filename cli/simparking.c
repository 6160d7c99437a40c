#include "cli/simparking.h"

#include <errno.h>
#include <inttypes.h>
#include <json.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/macro.h"
#include "common/units.h"
#include "policy/config.h"
#include "sim/cpu.h"

/* --vms: copies of a trace VM run this much later each, as for the memory simulation. */
#define COPY_SHIFT_USEC (UINT64_C(61) * USEC_PER_SEC)
/* Without --cores: a host with a CPU per this many vCPUs (a common consolidation ratio) and
 * this many cores per NUMA node. */
#define VCPUS_PER_CPU 4
#define CORES_PER_NODE 32

struct job {
        struct sim_cpu_options o;
        const double *demand;
        size_t n;
        struct sim_cpu_result res;
        int r;
};

static void *job_run(void *userdata) {
        struct job *j = userdata;
        j->r = sim_cpu_run(&j->o, j->demand, j->n, &j->res);
        return NULL;
}

static double kwh(double joules) {
        return joules / 3.6e6;
}

static void print_table(const struct simparking_options *o, const struct sim_cpu_host *h, size_t vcpus, size_t n,
                        const struct job *jobs, FILE *out) {
        const struct sim_cpu_result *none = &jobs[SIM_CPU_NONE].res;
        fprintf(out,
                "core parking: %zu VMs (%zu vCPUs) from %s on %u cores x %u thread%s (%u CPUs, %u node%s), %.1f h; "
                "demand: mean %.2f CPUs\n",
                n, vcpus, o->trace, h->cores, h->threads_per_core, h->threads_per_core == 1 ? "" : "s",
                h->cores * h->threads_per_core, h->nodes,
                h->nodes == 1 ? "" : "s", none->seconds / 3600, none->demand_cpu_s / fmax(1, none->seconds));
        fprintf(out, "%-5s  %8s  %10s  %7s  %12s  %14s  %12s  %13s  %9s\n", "RULE", "AVG W", "ENERGY kWh", "SAVED",
                "PARKED avg/max", "DEEP IDLE cores", "WAITED CPU-s", "WAITING s (%)", "REVERSALS");
        for (int r = 0; r < SIM_CPU_RULES; r++) {
                const struct sim_cpu_result *x = &jobs[r].res;
                char parked[32], waiting[32];
                snprintf(parked, sizeof(parked), "%.1f/%u", x->parked_core_s / x->seconds, x->max_parked_cores);
                snprintf(waiting, sizeof(waiting), "%.0f (%.2f%%)", x->wait_seconds,
                         100 * x->wait_seconds / x->seconds);
                fprintf(out, "%-5s  %8.1f  %10.2f  %6.1f%%  %14s  %15.1f  %12.0f  %13s  %9" PRIu64 "\n",
                        sim_cpu_rule_to_string((enum sim_cpu_rule) r), x->joules / x->seconds, kwh(x->joules),
                        100 * (1 - x->joules / none->joules), parked, x->deep_core_s / x->seconds, x->wait_cpu_s,
                        waiting, x->reversals);
        }
        fprintf(out, "Energy: the host's cores only, estimated (docs/SIMULATOR.md \"Core parking\": the model and "
                     "its assumptions).\n");
}

static void print_json(const struct simparking_options *o, const struct sim_cpu_host *h, size_t vcpus, size_t n,
                       const struct job *jobs, FILE *out) {
        json_object *root = json_object_new_object(), *host = json_object_new_object(), *rules = json_object_new_array();
        json_object_object_add(root, "trace", json_object_new_string(o->trace));
        json_object_object_add(root, "vms", json_object_new_int64((int64_t) n));
        json_object_object_add(root, "vcpus", json_object_new_int64((int64_t) vcpus));
        json_object_object_add(host, "cores", json_object_new_int64(h->cores));
        json_object_object_add(host, "threads_per_core", json_object_new_int64(h->threads_per_core));
        json_object_object_add(host, "nodes", json_object_new_int64(h->nodes));
        json_object_object_add(root, "host", host);
        for (int r = 0; r < SIM_CPU_RULES; r++) {
                const struct sim_cpu_result *x = &jobs[r].res;
                json_object *j = json_object_new_object();
                json_object_object_add(j, "rule", json_object_new_string(sim_cpu_rule_to_string((enum sim_cpu_rule) r)));
                json_object_object_add(j, "seconds", json_object_new_double(x->seconds));
                json_object_object_add(j, "joules", json_object_new_double(x->joules));
                json_object_object_add(j, "avg_watts", json_object_new_double(x->joules / x->seconds));
                json_object_object_add(j, "saved_pct",
                                       json_object_new_double(100 * (1 - x->joules / jobs[SIM_CPU_NONE].res.joules)));
                json_object_object_add(j, "demand_cpu_s", json_object_new_double(x->demand_cpu_s));
                json_object_object_add(j, "wait_cpu_s", json_object_new_double(x->wait_cpu_s));
                json_object_object_add(j, "wait_seconds", json_object_new_double(x->wait_seconds));
                json_object_object_add(j, "parked_cores_avg", json_object_new_double(x->parked_core_s / x->seconds));
                json_object_object_add(j, "parked_cores_max", json_object_new_int64(x->max_parked_cores));
                json_object_object_add(j, "deep_idle_cores_avg", json_object_new_double(x->deep_core_s / x->seconds));
                json_object_object_add(j, "parks", json_object_new_int64((int64_t) x->parks));
                json_object_object_add(j, "unparks", json_object_new_int64((int64_t) x->unparks));
                json_object_object_add(j, "reversals", json_object_new_int64((int64_t) x->reversals));
                json_object_array_add(rules, j);
        }
        json_object_object_add(root, "rules", rules);
        fprintf(out, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
}

int simulate_parking(const struct simparking_options *o, FILE *out, FILE *err) {
        struct sim_trace_set t = { 0 };
        if (!o->trace) {
                fprintf(err, "tidectl simulate: --parking needs a --trace (its cores and cpu_pct are the demand)\n");
                return TIDECTL_EXIT_USAGE;
        }
        if (simulate_load_trace(o->trace, o->hours, &t, err) < 0) {
                sim_trace_set_done(&t);
                return TIDECTL_EXIT_FAIL;
        }
        size_t n = o->vms ? o->vms : t.n, vcpus = 0;
        struct sim_cpu_vm *vms = calloc(n, sizeof(*vms));
        if (!vms) {
                sim_trace_set_done(&t);
                fprintf(err, "tidectl simulate: %s\n", strerror(ENOMEM));
                return TIDECTL_EXIT_FAIL;
        }
        uint64_t end = 0;
        for (size_t i = 0; i < n; i++) {
                const struct sim_trace_vm *v = &t.vms[i % t.n];
                vms[i] = (struct sim_cpu_vm){ .n = v->n, .t_usec = v->t_usec, .cpu_pct = v->cpu_pct, .cores = v->cores,
                                              .offset_usec = (i / t.n) * COPY_SHIFT_USEC };
                vcpus += v->cores;
                if (v->n)
                        end = max_u64(end, v->t_usec[v->n - 1] + vms[i].offset_usec);
        }
        struct sim_cpu_host h = { .cores = o->cores, .threads_per_core = o->smt ? o->smt : 2, .nodes = o->nodes };
        if (!h.cores)
                h.cores = (unsigned) max_u64(1, (vcpus / VCPUS_PER_CPU + h.threads_per_core - 1) / h.threads_per_core);
        if (!h.nodes)
                h.nodes = (h.cores + CORES_PER_NODE - 1) / CORES_PER_NODE;
        int rc = TIDECTL_EXIT_OK;
        if ((uint64_t) h.cores * h.threads_per_core > SIM_CPU_MAX_CPUS || h.nodes > h.cores) {
                fprintf(err,
                        "tidectl simulate: a host of %u cores x %u threads on %u nodes cannot be simulated (at most %d "
                        "CPUs, at least a core per node); give --cores, --smt, --nodes\n",
                        h.cores, h.threads_per_core, h.nodes, SIM_CPU_MAX_CPUS);
                rc = TIDECTL_EXIT_USAGE;
        }

        struct tide_config cfg;
        config_init(&cfg);
        double *demand = NULL;
        size_t steps = 0;
        int e;
        if (rc == TIDECTL_EXIT_OK &&
            (e = sim_cpu_demand(vms, n, end + 300 * USEC_PER_SEC, o->seed, o->hold, &demand, &steps)) < 0) {
                fprintf(err, "tidectl simulate: %s\n", strerror(-e));
                rc = TIDECTL_EXIT_FAIL;
        }
        struct job jobs[SIM_CPU_RULES];
        pthread_t th[SIM_CPU_RULES];
        bool started[SIM_CPU_RULES] = { false };
        for (int r = 0; rc == TIDECTL_EXIT_OK && r < SIM_CPU_RULES; r++) {
                jobs[r] = (struct job){ .o = { .rule = (enum sim_cpu_rule) r, .host = h, .parking = cfg.parking,
                                               .tick_usec = cfg.interval_usec },
                                        .demand = demand, .n = steps };
                /* The rules run side by side on the same demand. */
                started[r] = pthread_create(&th[r], NULL, job_run, &jobs[r]) == 0;
                if (!started[r])
                        job_run(&jobs[r]);
        }
        for (int r = 0; r < SIM_CPU_RULES; r++)
                if (started[r])
                        pthread_join(th[r], NULL);
        for (int r = 0; rc == TIDECTL_EXIT_OK && r < SIM_CPU_RULES; r++) {
                if (jobs[r].r < 0) {
                        fprintf(err, "tidectl simulate: %s: %s\n", sim_cpu_rule_to_string((enum sim_cpu_rule) r),
                                strerror(-jobs[r].r));
                        rc = TIDECTL_EXIT_FAIL;
                }
        }
        if (rc == TIDECTL_EXIT_OK) {
                if (o->json)
                        print_json(o, &h, vcpus, n, jobs, out);
                else
                        print_table(o, &h, vcpus, n, jobs, out);
        }
        free(demand);
        free(vms);
        sim_trace_set_done(&t);
        return rc;
}
