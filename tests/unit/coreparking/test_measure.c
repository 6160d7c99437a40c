/* Whether parking paid (coreparking/measure.h), on episodes worked out by hand with a model of
 * 5 W busy, 1.5 W shallow idle and 0.1 W deep idle per CPU. */
#include <criterion/criterion.h>

#include "coreparking/measure.h"

static const struct parking_power_model m = { .active_w = 5, .shallow_w = 1.5, .deep_w = 0.1 };

Test(measure, a_cpus_watts_weigh_its_busy_shallow_and_deep_time) {
        /* 20 % busy, 80 % idle of which 50 % deep: 1 + 0.45 + 0.05 = 1.5 W. */
        cr_expect_float_eq(parking_cpu_watts(&m, 0.2, 0.8, 0.5), 1.5, 1e-9);
        /* Shares past their bounds are clamped: idle 1.2 is 1, deep 2 is all of it, busy 0. */
        cr_expect_float_eq(parking_cpu_watts(&m, 0.5, 1.2, 2), 0.1, 1e-9);
}

/* A 2-CPU host: before, 60 s at 10 % busy, 90 % idle, 20 % deep; during, 60 s at 1 % busy, 99 %
 * idle, 95 % deep. Deep share of idle: 24 / 108 = 2/9 before, 114 / 118.8 during. An idle
 * CPU-second cost 7/9 x 1.5 + 2/9 x 0.1 = 1.18889 W before, 4.8/118.8 x 1.5 + 114/118.8 x 0.1
 * = 0.15657 W during; the 118.8 idle CPU-seconds of the 60 s during: 1.98 CPUs idle, so
 * 1.03232 x 1.98 = 2.044 W saved. The busy time that fell (12 to 1.2 CPU-s) is not counted:
 * parking moves work, it does not remove it. */
static struct parking_episode quieter(void) {
        return (struct parking_episode){
                .before = { .seconds = 60, .cores = 2, .busy_cpu_s = 12, .idle_cpu_s = 108, .deep_cpu_s = 24,
                            .rapl_joules = 3000 },
                .during = { .seconds = 60, .cores = 2, .busy_cpu_s = 1.2, .idle_cpu_s = 118.8, .deep_cpu_s = 114,
                            .rapl_joules = 2700 },
        };
}

Test(measure, deeper_idle_worth_a_tenth_of_a_watt_paid) {
        struct parking_episode e = quieter();
        struct parking_judgement j = parking_judge(&m, &e, true);
        cr_expect_eq(j.verdict, PARKING_PAID, "%s", parking_verdict_to_string(j.verdict));
        cr_expect_float_eq(j.deep_before, 24.0 / 108, 1e-9);
        cr_expect_float_eq(j.deep_during, 114 / 118.8, 1e-9);
        cr_expect_float_eq(j.watts_saved, 2.044, 1e-9);
        cr_expect_float_eq(j.rapl_watts_saved, 5.0, 1e-9, "50 W before, 45 W during");
}

Test(measure, no_deeper_idle_did_not_pay) {
        struct parking_episode e = quieter();
        e.during.deep_cpu_s = 24; /* as deep as before: the cores were idle already */
        e.during.idle_cpu_s = 108;
        e.during.busy_cpu_s = 12;
        struct parking_judgement j = parking_judge(&m, &e, true);
        cr_expect_eq(j.verdict, PARKING_DID_NOT_PAY);
        cr_expect_float_eq(j.watts_saved, 0, 1e-9);
        /* The host drew 5 W less, but not on these CPUs' account: shown, not judged on. */
        cr_expect_float_eq(j.rapl_watts_saved, 5.0, 1e-9);
}

Test(measure, a_host_without_deep_states_can_never_pay_and_short_episodes_say_nothing) {
        struct parking_episode e = quieter();
        cr_expect_eq(parking_judge(&m, &e, false).verdict, PARKING_NO_DEEP_STATE);
        e.during.seconds = 5;
        cr_expect_eq(parking_judge(&m, &e, true).verdict, PARKING_UNKNOWN);
        e = quieter();
        e.before.rapl_joules = -1;
        cr_expect_not(parking_judge(&m, &e, true).rapl_known, "no RAPL: not measured");
        for (int v = PARKING_UNKNOWN; v <= PARKING_NO_DEEP_STATE; v++)
                cr_expect_not_null(parking_verdict_to_string((enum parking_verdict) v));
}

/* Ten-second intervals of the 2-CPU host at the mixes of quieter(). */
static struct parking_sample interval(bool deep) {
        return deep ? (struct parking_sample){ .seconds = 10, .cores = 2, .busy_cpu_s = 0.2, .idle_cpu_s = 19.8,
                                               .deep_cpu_s = 19, .rapl_joules = 450 }
                    : (struct parking_sample){ .seconds = 10, .cores = 2, .busy_cpu_s = 2, .idle_cpu_s = 18,
                                               .deep_cpu_s = 4, .rapl_joules = 500 };
}

Test(measure, an_episode_runs_from_the_first_park_to_the_last_unpark_and_is_judged_on_its_baseline) {
        struct parking_meter mt = { 0 };
        struct parking_sample s = interval(false);
        for (int i = 0; i < 6; i++)
                parking_meter_add(&mt, &m, &s, false, true);
        cr_expect_not(mt.in_episode);
        cr_expect_eq(parking_meter_now(&mt, &m, true).verdict, PARKING_UNKNOWN, "no episode");
        s = interval(true);
        parking_meter_add(&mt, &m, &s, true, true);
        cr_expect(mt.in_episode);
        cr_expect_eq(parking_meter_now(&mt, &m, true).verdict, PARKING_PAID, "10 s each side: judged so far");
        for (int i = 0; i < 5; i++)
                parking_meter_add(&mt, &m, &s, true, true);
        cr_expect_not(mt.ended);
        s = interval(false);
        parking_meter_add(&mt, &m, &s, false, true);
        cr_expect(mt.ended);
        cr_expect_not(mt.in_episode);
        cr_expect_eq(mt.last.verdict, PARKING_PAID);
        cr_expect_float_eq(mt.last.watts_saved, 2.044, 1e-9, "quieter()'s figures, in 10 s steps");
        cr_expect(mt.last.rapl_known);
        cr_expect_float_eq(mt.last.rapl_watts_saved, 5.0, 1e-9);
        cr_expect_float_eq(mt.last_seconds, 60, 1e-9);
        cr_expect_float_eq(mt.joules_saved, 2.044 * 60, 1e-6);
        cr_expect_eq(mt.episodes[PARKING_PAID], 1);
        cr_expect_float_eq(mt.baseline.seconds, 10, 1e-9, "the baseline starts again after an episode");
        parking_meter_add(&mt, &m, &s, false, true);
        cr_expect_not(mt.ended, "ended once");
}

Test(measure, the_baseline_weighs_the_last_minutes_most) {
        struct parking_meter mt = { 0 };
        struct parking_sample s = interval(true);
        for (int i = 0; i < 100; i++) /* 1000 s of deep idle */
                parking_meter_add(&mt, &m, &s, false, true);
        s = interval(false);
        for (int i = 0; i < 30; i++) /* then 300 s of shallow */
                parking_meter_add(&mt, &m, &s, false, true);
        cr_expect_float_eq(mt.baseline.seconds, PARKING_BASELINE_S, 1e-6);
        /* The deep time of 300 s and more ago keeps (29/30)^30 = 36 % of its weight: the deep
         * share of idle, 0.96 then and 0.22 since, reads 0.505. */
        cr_expect_float_eq(mt.baseline.deep_cpu_s / mt.baseline.idle_cpu_s, 0.5053, 1e-3);
        struct parking_sample none = { 0 };
        parking_meter_add(&mt, &m, &none, true, true);
        cr_expect_not(mt.in_episode, "an interval of no length says nothing");
}

Test(measure, a_setting_that_never_pays_is_reported_as_such) {
        struct parking_meter mt = { 0 };
        struct parking_sample s = interval(false);
        cr_expect(parking_meter_never_pays(&mt, false), "no deep state: it cannot");
        cr_expect_not(parking_meter_never_pays(&mt, true), "not judged yet");
        for (int e = 0; e < PARKING_NEVER_PAID_EPISODES; e++) {
                for (int i = 0; i < 3; i++)
                        parking_meter_add(&mt, &m, &s, false, true);
                for (int i = 0; i < 3; i++) /* parked, as shallow as before */
                        parking_meter_add(&mt, &m, &s, true, true);
        }
        parking_meter_add(&mt, &m, &s, false, true);
        cr_expect_eq(mt.episodes[PARKING_DID_NOT_PAY], PARKING_NEVER_PAID_EPISODES);
        cr_expect(parking_meter_never_pays(&mt, true));
        cr_expect_float_eq(mt.joules_saved, 0, 1e-9);
}

Test(measure, one_interval_without_rapl_leaves_the_sum_unmeasured) {
        struct parking_meter mt = { 0 };
        struct parking_sample s = interval(false);
        parking_meter_add(&mt, &m, &s, false, true);
        s.rapl_joules = -1;
        parking_meter_add(&mt, &m, &s, false, true);
        cr_expect_lt(mt.baseline.rapl_joules, 0);
}
