/* What parking is measured by (coreparking/idle.h): cpuidle states and RAPL read from the trees
 * in tests/fixtures/sys (their README), the residency over an interval, and this host. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "coreparking/idle.h"

#define FIX "tests/fixtures/sys/"

Test(idle, reads_every_state_with_its_latency_time_and_entries) {
        struct parking_idle i;
        cr_assert_eq(parking_idle_read(FIX "intel-skx", 1, &i), 0);
        cr_assert_eq(i.n, 4);
        cr_expect_str_eq(i.s[0].name, "POLL");
        cr_expect_str_eq(i.s[3].name, "C6");
        cr_expect_eq(i.s[3].latency_usec, 133);
        cr_expect_eq(i.s[3].time_usec, 5000000);
        cr_expect_eq(i.s[1].usage, 5000);
        cr_assert_eq(parking_idle_read(FIX "haltpoll-vm", 0, &i), 0);
        cr_expect_eq(i.n, 2);
        cr_expect_str_eq(i.s[1].name, "haltpoll idle", "a name with a space");
}

Test(idle, a_cpu_without_cpuidle_has_no_state_and_a_bad_number_is_refused) {
        struct parking_idle i;
        cr_expect_eq(parking_idle_read(FIX "intel-skx", 7, &i), 0);
        cr_expect_eq(i.n, 0);
        cr_expect_eq(parking_idle_read(FIX "bad-state", 0, &i), -EINVAL);
}

Test(idle, residency_is_the_share_of_the_interval_in_idle_and_deep_states) {
        struct parking_idle a, b;
        cr_assert_eq(parking_idle_read(FIX "intel-skx", 0, &a), 0);
        b = a;
        /* Over 10 s: 1 s in C1 (shallow), 2 s in C1E and 6 s in C6 (deep, >= 10 us), 9000 entries. */
        b.s[1].time_usec += 1000000;
        b.s[2].time_usec += 2000000;
        b.s[3].time_usec += 6000000;
        b.s[1].usage += 9000;
        double idle, deep;
        uint64_t entries;
        cr_assert(parking_idle_residency(&a, &b, 10000000, &idle, &deep, &entries));
        cr_expect_float_eq(idle, 0.9, 1e-9);
        cr_expect_float_eq(deep, 0.8, 1e-9);
        cr_expect_eq(entries, 9000);
        /* Never more than all of it (counters read a little after the clock). */
        cr_assert(parking_idle_residency(&a, &b, 8000000, &idle, &deep, NULL));
        cr_expect_float_eq(idle, 1.0, 1e-9);
        /* Not comparable: a counter back, another state list, no time. */
        b.s[3].time_usec = 0;
        cr_expect_not(parking_idle_residency(&a, &b, 10000000, &idle, &deep, NULL));
        b = a;
        b.n = 3;
        cr_expect_not(parking_idle_residency(&a, &b, 10000000, &idle, &deep, NULL));
        cr_expect_not(parking_idle_residency(&a, &a, 0, &idle, &deep, NULL));
}

Test(idle, rapl_sums_the_packages_and_skips_their_subzones) {
        uint64_t uj = 0, range = 0;
        unsigned packages = 0;
        cr_assert_eq(parking_rapl_read(FIX "intel-skx", &uj, &range, &packages), 0);
        cr_expect_eq(uj, 124456789);
        cr_expect_eq(range, 262143328850);
        cr_expect_eq(packages, 2);
        cr_expect_eq(parking_rapl_read(FIX "haltpoll-vm", &uj, NULL, NULL), -ENOENT, "a VM has no RAPL");
}

Test(idle, this_host_reads_cpu_0) {
        struct parking_idle i;
        cr_assert_eq(parking_idle_read(NULL, 0, &i), 0);
        /* This host may have no cpuidle at all; when it has, the states read back in order. */
        for (unsigned k = 1; k < i.n; k++)
                cr_expect_geq(i.s[k].latency_usec, i.s[k - 1].latency_usec, "state %u", k);
}
