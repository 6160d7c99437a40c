/* What parking is measured by (coreparking/idle.h): cpuidle states and RAPL read from the trees
 * in tests/fixtures/sys (their README), the residency over an interval, and this host. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

Test(idle, rapl_sums_the_packages_and_skips_their_subzones_and_psys) {
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

/* ---- the host read interval after interval, on a copy of intel-skx whose counters move ---- */

static char host_root[64];

static void host_copy(void) {
        char cmd[160];
        snprintf(host_root, sizeof(host_root), "/tmp/tide-idle-host-XXXXXX");
        cr_assert_not_null(mkdtemp(host_root));
        snprintf(cmd, sizeof(cmd), "cp -r " FIX "intel-skx/sys %s/", host_root);
        cr_assert_eq(system(cmd), 0);
}

static void host_rm(void) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", host_root);
        cr_expect_eq(system(cmd), 0);
}

/* Adds `by` to the number in root/path. */
static void bump(const char *path, long long by) {
        char full[256];
        long long v = 0;
        snprintf(full, sizeof(full), "%s%s", host_root, path);
        FILE *f = fopen(full, "r");
        cr_assert_not_null(f, "%s", full);
        cr_assert_eq(fscanf(f, "%lld", &v), 1);
        fclose(f);
        cr_assert_not_null(f = fopen(full, "w"));
        fprintf(f, "%lld\n", v + by);
        fclose(f);
}

#define CPUIDLE(cpu, k) "/sys/devices/system/cpu/cpu" #cpu "/cpuidle/state" #k "/time"
#define RAPL(p) "/sys/class/powercap/intel-rapl:" #p "/energy_uj"

Test(idle, the_host_over_an_interval_sums_every_cpu_and_rapl, .init = host_copy, .fini = host_rm) {
        struct parking_idle_host h;
        struct parking_sample s;
        struct parking_core cores[2] = { 0 }; /* two cores of one CPU each */
        double busy[2] = { 0.3, 0.1 };
        hv_cpuset_set(&cores[0].cpus, 0);
        hv_cpuset_set(&cores[1].cpus, 1);
        cr_assert_eq(parking_idle_host_init(&h, 2), 0);
        cr_assert_eq(parking_idle_host_read(&h, host_root, cores, 2, busy, 1000000, &s), 0);
        cr_expect_eq(s.seconds, 0, "a first read has nothing to compare");
        cr_expect_eq(s.cores, 0);
        cr_expect(h.has_deep, "C1E and C6 are deep");
        /* 10 s: CPU 0 1 s in C1 and 6 s in C6, CPU 1 9 s in C1; package 0 used 50 J. */
        bump(CPUIDLE(0, 1), 1000000);
        bump(CPUIDLE(0, 3), 6000000);
        bump(CPUIDLE(1, 1), 9000000);
        bump(RAPL(0), 50000000);
        cr_assert_eq(parking_idle_host_read(&h, host_root, cores, 2, busy, 11000000, &s), 0);
        cr_expect_float_eq(s.seconds, 10, 1e-9);
        cr_expect_eq(s.cores, 2);
        cr_expect_float_eq(s.idle_cpu_s, 16, 1e-9);
        cr_expect_float_eq(s.deep_cpu_s, 6, 1e-9);
        cr_expect_float_eq(s.busy_cpu_s, 4, 1e-9, "3 + 1 CPU-seconds");
        cr_expect_float_eq(s.rapl_joules, 50, 1e-9);
        cr_expect_float_eq(h.idle[0], 0.7, 1e-9);
        cr_expect_float_eq(h.deep[0], 0.6, 1e-9);
        cr_expect_float_eq(h.deep[1], 0, 1e-9);

        /* Package 0's counter wraps: 262143328850 - 123456789 - 50000000 + 1000000 µJ later. */
        bump(RAPL(0), 1000000 - 123456789 - 50000000);
        /* Only core 0 asked for: CPU 1 not measured. */
        cr_assert_eq(parking_idle_host_read(&h, host_root, cores, 1, NULL, 21000000, &s), 0);
        cr_expect_float_eq(s.rapl_joules, (262143328850.0 - 123456789 - 50000000 + 1000000) / 1e6, 1e-6);
        cr_expect_eq(s.cores, 1);
        cr_expect_float_eq(h.idle[1], 0.9, 1e-9, "kept from the last time it was read");
        cr_expect_float_eq(s.busy_cpu_s, 0, 1e-9, "no load given");
        parking_idle_host_done(&h);
}

Test(idle, the_host_without_deep_states_or_rapl_says_so) {
        struct parking_idle_host h;
        struct parking_sample s;
        struct parking_core core = { 0 };
        hv_cpuset_set(&core.cpus, 0);
        cr_assert_eq(parking_idle_host_init(&h, 1), 0);
        cr_assert_eq(parking_idle_host_read(&h, FIX "haltpoll-vm", &core, 1, NULL, 1000000, &s), 0);
        cr_assert_eq(parking_idle_host_read(&h, FIX "haltpoll-vm", &core, 1, NULL, 2000000, &s), 0);
        cr_expect_not(h.has_deep, "haltpoll's 1 us halt is not deep");
        cr_expect_lt(s.rapl_joules, 0);
        cr_expect_eq(s.cores, 1, "nothing moved, but measured");
        cr_expect_float_eq(s.idle_cpu_s, 0, 1e-9);
        cr_expect_eq(parking_idle_host_read(NULL, "/", &core, 1, NULL, 0, &s), -EINVAL);
        parking_idle_host_done(&h);
}

/* SMT: one core of CPUs 0 and 1. It is idle, and deep idle, only as far as its busier sibling
 * lets it: CPU 0 idle 7 s (6 deep), CPU 1 idle 9 s (none deep): the core 0.7 idle, 0 deep. */
Test(idle, siblings_make_one_core_as_idle_as_the_busier_one, .init = host_copy, .fini = host_rm) {
        struct parking_idle_host h;
        struct parking_sample s;
        struct parking_core core = { 0 };
        double busy[2] = { 0.3, 0.1 };
        hv_cpuset_set(&core.cpus, 0);
        hv_cpuset_set(&core.cpus, 1);
        cr_assert_eq(parking_idle_host_init(&h, 2), 0);
        cr_assert_eq(parking_idle_host_read(&h, host_root, &core, 1, busy, 1000000, &s), 0);
        bump(CPUIDLE(0, 1), 1000000);
        bump(CPUIDLE(0, 3), 6000000);
        bump(CPUIDLE(1, 1), 9000000);
        cr_assert_eq(parking_idle_host_read(&h, host_root, &core, 1, busy, 11000000, &s), 0);
        cr_expect_eq(s.cores, 1);
        cr_expect_float_eq(s.idle_cpu_s, 7, 1e-9);
        cr_expect_float_eq(s.deep_cpu_s, 0, 1e-9, "CPU 1 never went deep: the core did not");
        cr_expect_float_eq(s.busy_cpu_s, 3, 1e-9, "as busy as its busier sibling");
        cr_expect_float_eq(h.deep[0], 0.6, 1e-9, "each CPU's own share is kept for stats");
        parking_idle_host_done(&h);
}
