#include "sim/cpu.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "common/macro.h"
#include "coreparking/measure.h"
#include "sim/internal.h"

/* intel-lpmd's defaults (../shared/PEERS.md): util_entry_threshold 10 %, util_exit_threshold
 * 95 % of the busiest low-power CPU; polled every 100-1000 ms (adaptive): here every second. */
#define LPMD_ENTRY 0.10
#define LPMD_EXIT 0.95
#define LPMD_PERIOD_USEC USEC_PER_SEC
/* The simulated second: the demand's step, and what every rule sees. */
#define STEP_USEC USEC_PER_SEC
/* How much a VM's demand varies around its 5-minute sample from one second to the next: a factor
 * uniform in [1 - SPREAD, 1 + SPREAD] (mean 1, so the trace's average holds). */
#define SPREAD 0.5
/* The idle-depth model's exponent: (1 - active)^4 (docs/SIMULATOR.md). */
#define DEEP_EXPONENT 4.0

static const char *const rule_names[] = {
        [SIM_CPU_NONE] = "none",
        [SIM_CPU_TIDE] = "tide",
        [SIM_CPU_LPMD] = "lpmd",
};

const char *sim_cpu_rule_to_string(enum sim_cpu_rule r) {
        return (unsigned) r < ELEMENTSOF(rule_names) ? rule_names[r] : NULL;
}

double sim_cpu_deep_share(double active) {
        if (!(active > 0))
                return 1;
        return active >= 1 ? 0 : pow(1 - active, DEEP_EXPONENT);
}

/* A VM's CPUs wanted at t (before the second's variation). */
static double demand_at(const struct sim_cpu_vm *v, uint64_t t, bool hold, size_t *pos) {
        if (!v->n || t < v->offset_usec)
                return 0;
        t -= v->offset_usec;
        size_t k = *pos < v->n && v->t_usec[*pos] <= t ? *pos : 0;
        while (k + 1 < v->n && v->t_usec[k + 1] <= t)
                k++;
        *pos = k;
        double pct = v->cpu_pct[k];
        if (!hold && t > v->t_usec[k] && k + 1 < v->n) {
                double f = (double) (t - v->t_usec[k]) / (double) (v->t_usec[k + 1] - v->t_usec[k]);
                pct += (v->cpu_pct[k + 1] - pct) * f;
        }
        return fmax(0, pct) / 100.0 * v->cores;
}

/* The rule's state over the run. */
struct run {
        const struct sim_cpu_options *o;
        unsigned n_cpus;
        struct parking_core *cores;
        struct parking_topology topo;
        struct parking_state state;
        struct hv_cpuset parked, lp; /* lp: lpmd's low-power CPUs */
        bool lp_mode;
        double *busy;                /* per CPU over tide's tick */
        double tick_busy_s;          /* busy CPU-seconds on the unparked CPUs since the last tick */
        uint64_t tick_start;
};

static unsigned parked_cores(const struct run *r) {
        return hv_cpuset_count(&r->parked) / r->o->host.threads_per_core;
}

static int setup(struct run *r) {
        const struct sim_cpu_host *h = &r->o->host;
        if (!h->cores || !h->threads_per_core || !h->nodes || h->nodes > h->cores ||
            (uint64_t) h->cores * h->threads_per_core > SIM_CPU_MAX_CPUS)
                return -EINVAL;
        r->n_cpus = h->cores * h->threads_per_core;
        r->cores = calloc(h->cores, sizeof(*r->cores));
        r->busy = calloc(r->n_cpus, sizeof(*r->busy));
        if (!r->cores || !r->busy)
                return -ENOMEM;
        unsigned per_node = (h->cores + h->nodes - 1) / h->nodes;
        for (unsigned k = 0; k < h->cores; k++) {
                struct parking_core *c = &r->cores[k];
                c->node = c->package = (int) (k / per_node);
                for (unsigned t = 0; t < h->threads_per_core; t++)
                        hv_cpuset_set(&c->cpus, k * h->threads_per_core + t);
                /* lpmd's low-power CPUs: the first core of each node. */
                if (k % per_node == 0)
                        hv_cpuset_or(&r->lp, &c->cpus);
        }
        r->topo = (struct parking_topology){ .cores = r->cores, .n_cores = h->cores };
        return 0;
}

/* Moves to a new parked set, counting what changed. */
static void park(struct run *r, const struct hv_cpuset *to, struct sim_cpu_result *res) {
        struct hv_cpuset more = *to, fewer = r->parked;
        hv_cpuset_minus(&more, &r->parked);
        hv_cpuset_minus(&fewer, to);
        res->parks += hv_cpuset_count(&more) > 0;
        res->unparks += hv_cpuset_count(&fewer) > 0;
        r->parked = *to;
}

/* tide's plan on what the last tick's interval looked like: every unparked CPU equally busy
 * (the scheduler spreads the floating VMs' threads), parked ones idle. */
static int decide_tide(struct run *r, uint64_t now, struct sim_cpu_result *res) {
        double secs = (double) (now - r->tick_start) / 1e6;
        unsigned unparked = r->n_cpus - hv_cpuset_count(&r->parked);
        double b = secs > 0 && unparked ? fmin(1, r->tick_busy_s / secs / unparked) : 0;
        for (unsigned c = 0; c < r->n_cpus; c++)
                r->busy[c] = hv_cpuset_test(&r->parked, c) ? 0 : b;
        struct parking_obs obs = { .busy = r->busy, .n_cpus = r->n_cpus, .load_known = r->tick_start > 0 };
        struct parking_decision d;
        int e = parking_plan(&r->o->parking, &r->topo, &obs, &r->state, now, &d);
        if (e < 0)
                return e;
        park(r, &d.parked, res);
        res->reversals = r->state.reversals;
        r->tick_busy_s = 0;
        r->tick_start = now;
        return 0;
}

static void decide_lpmd(struct run *r, double served, struct sim_cpu_result *res) {
        double util = served / r->n_cpus;
        unsigned lp = hv_cpuset_count(&r->lp);
        if (!r->lp_mode && util <= LPMD_ENTRY) {
                struct hv_cpuset to = { 0 };
                for (unsigned c = 0; c < r->n_cpus; c++)
                        if (!hv_cpuset_test(&r->lp, c))
                                hv_cpuset_set(&to, c);
                park(r, &to, res);
                r->lp_mode = true;
        } else if (r->lp_mode && served / lp > LPMD_EXIT) {
                struct hv_cpuset none = { 0 };
                park(r, &none, res);
                r->lp_mode = false;
                res->reversals++;
        }
}

/* One second of the host's cores: energy, idle depth, with `served` CPU-seconds of work spread
 * over the unparked CPUs. Per core, as the power model is: a core is active when any of its
 * threads runs (threads independently busy b: 1 - (1 - b)^T). */
static void account(const struct run *r, const struct parking_power_model *pm, double served,
                    struct sim_cpu_result *res) {
        unsigned t = r->o->host.threads_per_core, cores = r->o->host.cores, pc = parked_cores(r);
        unsigned unparked_cpus = r->n_cpus - hv_cpuset_count(&r->parked);
        double b = unparked_cpus ? fmin(1, served / unparked_cpus) : 0;
        double active = 1 - pow(1 - b, t);
        double deep = sim_cpu_deep_share(active);
        double w_unparked = parking_cpu_watts(pm, active, 1 - active, (1 - active) * deep);
        double w_parked = parking_cpu_watts(pm, 0, 1, SIM_CPU_PARKED_DEEP);
        res->joules += (cores - pc) * w_unparked + pc * w_parked;
        res->deep_core_s += (cores - pc) * (1 - active) * deep + pc * SIM_CPU_PARKED_DEEP;
        res->parked_core_s += pc;
        res->max_parked_cores = pc > res->max_parked_cores ? pc : res->max_parked_cores;
}

int sim_cpu_demand(const struct sim_cpu_vm *vms, size_t n, uint64_t duration_usec, uint64_t seed, bool hold,
                   double **ret, size_t *ret_n) {
        if (!ret || !ret_n || !duration_usec || (n && !vms))
                return -EINVAL;
        size_t steps = (size_t) ((duration_usec + STEP_USEC - 1) / STEP_USEC);
        double *out = calloc(steps, sizeof(*out));
        size_t *pos = calloc(n ? n : 1, sizeof(*pos));
        if (!out || !pos) {
                free(out);
                free(pos);
                return -ENOMEM;
        }
        uint64_t rng = seed ^ UINT64_C(0x5eed0ca7c0de);
        for (size_t s = 0; s < steps; s++) {
                uint64_t t = (uint64_t) s * STEP_USEC;
                double sum = 0;
                for (size_t i = 0; i < n; i++) {
                        double u = (double) (sim_rng_next(&rng) >> 11) / 9007199254740992.0; /* [0, 1) */
                        double d = demand_at(&vms[i], t, hold, &pos[i]) * (1 - SPREAD + 2 * SPREAD * u);
                        sum += fmin(d, vms[i].cores);
                }
                out[s] = sum;
        }
        free(pos);
        *ret = out;
        *ret_n = steps;
        return 0;
}

int sim_cpu_run(const struct sim_cpu_options *o, const double *demands, size_t n, struct sim_cpu_result *ret) {
        if (!o || !ret || !n || !demands || (o->rule == SIM_CPU_TIDE && !o->tick_usec) ||
            (unsigned) o->rule >= SIM_CPU_RULES)
                return -EINVAL;
        *ret = (struct sim_cpu_result){ 0 };
        struct run r = { .o = o };
        int e = setup(&r);
        struct parking_power_model pm;
        parking_power_model_default(&pm);
        uint64_t next_tick = o->tick_usec, next_lpmd = LPMD_PERIOD_USEC;
        double backlog = 0; /* CPU-seconds of work waiting for a CPU */

        for (size_t s = 0; e >= 0 && s < n; s++) {
                uint64_t t = (uint64_t) s * STEP_USEC;
                /* Work that waited is still to do: it runs, late, as CPUs come free. */
                double demand = demands[s], want = demand + backlog;
                unsigned unparked = r.n_cpus - hv_cpuset_count(&r.parked);
                double served = fmin(want, unparked);
                backlog = want - served;
                ret->demand_cpu_s += demand;
                /* What this second asks above the unparked CPUs (the "demand above
                 * unparked capacity"): what is still queued from before is not counted again. */
                ret->wait_cpu_s += fmax(0, demand - unparked);
                ret->wait_seconds += demand - unparked > 1e-9;
                account(&r, &pm, served, ret);
                ret->seconds += 1;
                r.tick_busy_s += served;

                /* The rules see the second that was: they act for the next. */
                uint64_t now = t + STEP_USEC;
                if (o->rule == SIM_CPU_TIDE && now >= next_tick) {
                        e = decide_tide(&r, now, ret);
                        next_tick += o->tick_usec;
                } else if (o->rule == SIM_CPU_LPMD && now >= next_lpmd) {
                        decide_lpmd(&r, served, ret);
                        next_lpmd += LPMD_PERIOD_USEC;
                }
        }
        free(r.cores);
        free(r.busy);
        return e < 0 ? e : 0;
}
