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

/* Two CPUs parked: before, 60 s at 10 % busy, 90 % idle, 20 % deep; during, 60 s at 1 % busy,
 * 99 % idle, 95 % deep. Before: 2 x (0.5 + 0.7 x 1.5 + 0.02) = 2 x 1.57 = 3.14 W; during:
 * 2 x (0.05 + 0.04 x 1.5 + 0.095) = 2 x 0.205 = 0.41 W; saved 2.73 W. */
static struct parking_episode quieter(void) {
        return (struct parking_episode){
                .before = { .seconds = 60, .cpus = 2, .busy_cpu_s = 12, .idle_cpu_s = 108, .deep_cpu_s = 24,
                            .rapl_joules = 3000 },
                .during = { .seconds = 60, .cpus = 2, .busy_cpu_s = 1.2, .idle_cpu_s = 118.8, .deep_cpu_s = 114,
                            .rapl_joules = 2700 },
        };
}

Test(measure, deeper_idle_worth_a_tenth_of_a_watt_paid) {
        struct parking_episode e = quieter();
        struct parking_judgement j = parking_judge(&m, &e, true);
        cr_expect_eq(j.verdict, PARKING_PAID, "%s", parking_verdict_to_string(j.verdict));
        cr_expect_float_eq(j.deep_before, 0.2, 1e-9);
        cr_expect_float_eq(j.deep_during, 0.95, 1e-9);
        cr_expect_float_eq(j.watts_saved, 2.73, 1e-9);
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
        cr_expect_lt(parking_judge(&m, &e, true).rapl_watts_saved, 0, "no RAPL: not measured");
        for (int v = PARKING_UNKNOWN; v <= PARKING_NO_DEEP_STATE; v++)
                cr_expect_not_null(parking_verdict_to_string((enum parking_verdict) v));
}
