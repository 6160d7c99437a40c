/* Core parking on the simulated host (sim/cpu.h): the demand the rules share, the energy worked
 * out by hand for a host that parks nothing, tide's plan parking an idle host and unparking at
 * once, and the intel-lpmd-like rule entering and leaving its low-power mode. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "coreparking/measure.h"
#include "policy/config.h"
#include "sim/cpu.h"

/* One sample held for the whole run: pct % of `cores`. */
static const uint64_t t0[] = { 0 };

static struct sim_cpu_options opts(enum sim_cpu_rule rule, unsigned cores, unsigned threads, unsigned nodes) {
        struct tide_config cfg;
        config_init(&cfg);
        return (struct sim_cpu_options){ .rule = rule, .host = { cores, threads, nodes }, .parking = cfg.parking,
                                         .tick_usec = USEC_PER_SEC };
}

Test(cpu, idle_depth_falls_with_the_work_on_a_core) {
        cr_expect_float_eq(sim_cpu_deep_share(0), 1, 1e-12);
        cr_expect_float_eq(sim_cpu_deep_share(0.1), 0.6561, 1e-12, "0.9^4");
        cr_expect_float_eq(sim_cpu_deep_share(1), 0, 1e-12);
        cr_expect_float_eq(sim_cpu_deep_share(2), 0, 1e-12);
}

Test(cpu, demand_varies_by_the_second_around_the_sample_and_never_past_the_cores) {
        static const double half[] = { 50 }, full[] = { 100 };
        struct sim_cpu_vm vms[] = { { .n = 1, .t_usec = t0, .cpu_pct = half, .cores = 2 },
                                    { .n = 1, .t_usec = t0, .cpu_pct = full, .cores = 1 } };
        double *d = NULL, *again = NULL;
        size_t n = 0, n2 = 0;
        cr_assert_eq(sim_cpu_demand(vms, 2, 10000 * USEC_PER_SEC, 7, true, &d, &n), 0);
        cr_assert_eq(n, 10000);
        double sum = 0, lo = 1e9, hi = 0;
        for (size_t s = 0; s < n; s++) {
                sum += d[s];
                lo = fmin(lo, d[s]);
                hi = fmax(hi, d[s]);
        }
        /* VM 1: 1 CPU x [0.5, 1.5], mean 1; VM 2: 1 CPU x [0.5, 1.5] capped at its 1 core, mean
         * 0.5 x 0.75 + 0.5 x 1 = 0.875. */
        cr_expect_float_eq(sum / n, 1.875, 0.02);
        cr_expect_geq(lo, 1.0);
        cr_expect_leq(hi, 2.5);
        cr_assert_eq(sim_cpu_demand(vms, 2, 10000 * USEC_PER_SEC, 7, true, &again, &n2), 0);
        cr_expect_eq(memcmp(d, again, n * sizeof(*d)), 0, "same seed, same demand");
        free(again);
        cr_assert_eq(sim_cpu_demand(vms, 2, 10000 * USEC_PER_SEC, 8, true, &again, &n2), 0);
        cr_expect_neq(memcmp(d, again, n * sizeof(*d)), 0);
        free(again);
        free(d);

        /* Interpolated between samples, and nothing before a copy's offset. */
        static const uint64_t ts[] = { 0, 100 * USEC_PER_SEC };
        static const double ramp[] = { 0, 100 };
        struct sim_cpu_vm v = { .n = 2, .t_usec = ts, .cpu_pct = ramp, .cores = 4, .offset_usec = 10 * USEC_PER_SEC };
        cr_assert_eq(sim_cpu_demand(&v, 1, 200 * USEC_PER_SEC, 1, false, &d, &n), 0);
        cr_expect_float_eq(d[5], 0, 1e-12, "before its offset");
        cr_expect_leq(d[60], 1.5 * 4 * 0.5 + 1e-9, "half way up the ramp, at most x1.5");
        cr_expect_geq(d[60], 0.5 * 4 * 0.5 - 1e-9);
        free(d);
        cr_expect_eq(sim_cpu_demand(&v, 1, 0, 1, false, &d, &n), -EINVAL);
}

Test(cpu, with_nothing_parked_the_energy_is_every_core_at_its_share) {
        /* 4 cores, 1 thread, 1 CPU of demand for 100 s: each core 25 % active, idle 75 % of which
         * 0.75^4 = 31.6 % deep; per core 0.25 x 4 + 0.75 x (0.684 x 1.44 + 0.316 x 0.1) W. */
        double demand[100];
        for (size_t s = 0; s < 100; s++)
                demand[s] = 1;
        struct sim_cpu_options o = opts(SIM_CPU_NONE, 4, 1, 1);
        struct sim_cpu_result r;
        cr_assert_eq(sim_cpu_run(&o, demand, 100, &r), 0);
        struct parking_power_model m;
        parking_power_model_default(&m);
        double deep = pow(0.75, 4);
        double w = 0.25 * m.active_w + 0.75 * ((1 - deep) * m.shallow_w + deep * m.deep_w);
        cr_expect_float_eq(r.joules, 4 * w * 100, 1e-6);
        cr_expect_float_eq(r.seconds, 100, 1e-12);
        cr_expect_float_eq(r.demand_cpu_s, 100, 1e-9);
        cr_expect_float_eq(r.wait_cpu_s, 0, 1e-12);
        cr_expect_eq(r.parks + r.unparks + r.reversals + r.max_parked_cores, 0);
}

Test(cpu, tide_parks_an_idle_host_one_core_per_dwell_and_unparks_at_once) {
        enum { SECONDS = 400 };
        double demand[SECONDS];
        for (size_t s = 0; s < SECONDS; s++)
                demand[s] = s < 200 ? 0.2 : 6.0; /* idle, then 6 of 8 CPUs wanted */
        struct sim_cpu_options o = opts(SIM_CPU_TIDE, 8, 1, 1), none = opts(SIM_CPU_NONE, 8, 1, 1);
        struct sim_cpu_result r, base;
        cr_assert_eq(sim_cpu_run(&o, demand, SECONDS, &r), 0);
        cr_assert_eq(sim_cpu_run(&none, demand, SECONDS, &base), 0);
        /* 0.2 CPUs needs 1 with 50 % headroom: 7 cores parked, one per 10 s dwell. */
        cr_expect_eq(r.max_parked_cores, 7);
        cr_expect_geq(r.parks, 7);
        cr_expect_eq(r.unparks, 1, "the load came back: unparked in one step");
        /* 6 CPUs on the one left: 5 CPU-seconds wait until tide's next tick unparks all; they run
         * over the next seconds (11 wanted on 8, then 9, then 7). */
        cr_expect_float_eq(r.wait_cpu_s, 5, 1e-9);
        cr_expect_eq(r.wait_seconds, 1, "unparked within a tick");
        cr_expect_eq(r.reversals, 1);
        cr_expect_lt(r.joules, base.joules, "parked cores idle deep");
        cr_expect_gt(r.deep_core_s, base.deep_core_s);
}

Test(cpu, lpmd_enters_low_power_below_ten_percent_and_leaves_past_ninety_five) {
        enum { SECONDS = 100 };
        double demand[SECONDS];
        for (size_t s = 0; s < SECONDS; s++)
                demand[s] = s < 50 ? 0.5 : 2.0;
        /* 8 cores on 2 nodes: low-power CPUs 0 and 4. Demand 0.5 of 8 CPUs (6 %): in; 2.0 on 2
         * CPUs is 100 %: out, and 2.0 of 8 (25 %) keeps it out. */
        struct sim_cpu_options o = opts(SIM_CPU_LPMD, 8, 1, 2);
        struct sim_cpu_result r;
        cr_assert_eq(sim_cpu_run(&o, demand, SECONDS, &r), 0);
        cr_expect_eq(r.max_parked_cores, 6);
        cr_expect_eq(r.parks, 1);
        cr_expect_eq(r.unparks, 1);
        cr_expect_eq(r.reversals, 1);
        cr_expect_float_eq(r.wait_cpu_s, 0, 1e-9, "2 CPUs of demand fit its 2 low-power CPUs exactly");
}

Test(cpu, lpmd_flaps_when_its_entry_is_above_what_its_low_power_cpus_hold) {
        enum { SECONDS = 60 };
        double demand[SECONDS];
        for (size_t s = 0; s < SECONDS; s++)
                demand[s] = 3.0; /* 9 % of 32 CPUs: in; 3 CPUs on its 2: out; 9 %: in again */
        struct sim_cpu_options o = opts(SIM_CPU_LPMD, 32, 1, 2);
        struct sim_cpu_result r;
        cr_assert_eq(sim_cpu_run(&o, demand, SECONDS, &r), 0);
        /* In (9 % of 32), out (3 CPUs of work on its 2), the waiting work run on all 32 (12 %),
         * in again: a cycle of three seconds. */
        cr_expect_geq(r.reversals, 19, "in and out every few seconds");
        cr_expect_gt(r.wait_cpu_s, 0);
}

Test(cpu, bad_hosts_and_arguments_are_refused) {
        double d[1] = { 0 };
        struct sim_cpu_result r;
        struct sim_cpu_options o = opts(SIM_CPU_NONE, 0, 1, 1);
        cr_expect_eq(sim_cpu_run(&o, d, 1, &r), -EINVAL, "no core");
        o = opts(SIM_CPU_NONE, SIM_CPU_MAX_CPUS, 2, 1);
        cr_expect_eq(sim_cpu_run(&o, d, 1, &r), -EINVAL, "more CPUs than a set holds");
        o = opts(SIM_CPU_NONE, 2, 1, 3);
        cr_expect_eq(sim_cpu_run(&o, d, 1, &r), -EINVAL, "more nodes than cores");
        o = opts(SIM_CPU_TIDE, 2, 1, 1);
        o.tick_usec = 0;
        cr_expect_eq(sim_cpu_run(&o, d, 1, &r), -EINVAL);
        o = opts(SIM_CPU_NONE, 2, 1, 1);
        cr_expect_eq(sim_cpu_run(&o, d, 0, &r), -EINVAL, "no demand");
        o.rule = SIM_CPU_RULES;
        cr_expect_eq(sim_cpu_run(&o, d, 1, &r), -EINVAL);
        cr_expect_null(sim_cpu_rule_to_string(SIM_CPU_RULES));
        cr_expect_str_eq(sim_cpu_rule_to_string(SIM_CPU_LPMD), "lpmd");
}
