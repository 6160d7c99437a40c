/* Core parking's plan (coreparking/plan.h) on three hosts built here: a 2-CPU VM (2 cores, no
 * SMT, what the test machines are), a 2-socket host with SMT (2 x 8 cores x 2 threads, sibling
 * CPUs c and c + 16, one NUMA node per socket) and a hybrid part (4 performance cores with SMT,
 * kind 1, and 8 efficient cores without, kind 0). Times are in seconds from 1000 s. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

#include "common/macro.h"
#include "coreparking/plan.h"

#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define T(x) (SEC(1000) + SEC(x))

static struct parking_core cores[32];
static struct parking_topology topo;
static struct parking_config cfg;
static struct parking_state st;
static struct parking_decision d;
static double busy[64];
static struct parking_obs obs;

static void core(size_t i, int node, int kind, unsigned cpu_a, int cpu_b) {
        cores[i] = (struct parking_core){ .node = node, .package = node, .kind = kind };
        hv_cpuset_set(&cores[i].cpus, cpu_a);
        if (cpu_b >= 0)
                hv_cpuset_set(&cores[i].cpus, (unsigned) cpu_b);
}

static void vm_2cpu(void) {
        core(0, 0, 0, 0, -1);
        core(1, 0, 0, 1, -1);
        topo = (struct parking_topology){ cores, 2 };
        obs.n_cpus = 2;
}

static void two_socket_smt(void) {
        for (unsigned c = 0; c < 16; c++)
                core(c, c < 8 ? 0 : 1, 0, c, (int) c + 16);
        topo = (struct parking_topology){ cores, 16 };
        obs.n_cpus = 32;
}

/* CPUs 0-7: four P cores (0,1) (2,3) (4,5) (6,7); CPUs 8-15: eight E cores. */
static void hybrid(void) {
        for (unsigned c = 0; c < 4; c++)
                core(c, 0, 1, 2 * c, (int) (2 * c + 1));
        for (unsigned c = 0; c < 8; c++)
                core(4 + c, 0, 0, 8 + c, -1);
        topo = (struct parking_topology){ cores, 12 };
        obs.n_cpus = 16;
}

static void all_busy(double b) {
        for (unsigned c = 0; c < obs.n_cpus; c++)
                busy[c] = b;
}

static void setup(void) {
        memset(cores, 0, sizeof(cores));
        parking_config_init(&cfg);
        st = (struct parking_state){ 0 };
        obs = (struct parking_obs){ .busy = busy, .load_known = true };
        all_busy(0);
}

static void tick(uint64_t now) {
        cr_assert_eq(parking_plan(&cfg, &topo, &obs, &st, now, &d), 0);
}

TestSuite(parking, .init = setup);

Test(parking, an_idle_two_cpu_vm_parks_cpu_1_and_keeps_cpu_0) {
        vm_2cpu();
        all_busy(0.02);
        tick(T(0));
        cr_expect_eq(d.reason, PARKING_REASON_PARK, "%s", parking_reason_to_string(d.reason));
        cr_expect(hv_cpuset_test(&d.parked, 1));
        cr_expect(hv_cpuset_test(&d.unparked, 0));
        cr_expect_eq(d.unparked_cpus, 1);
        cr_expect(hv_cpuset_test(&d.changed, 1));
        /* One core is the minimum on its node: nothing more, however long it stays idle. */
        tick(T(60));
        cr_expect_eq(d.reason, PARKING_REASON_STEADY, "%s", parking_reason_to_string(d.reason));
        cr_expect_eq(hv_cpuset_count(&d.parked), 1);
        cr_expect_eq(hv_cpuset_count(&d.changed), 0);
}

Test(parking, nothing_is_parked_before_the_load_is_known) {
        vm_2cpu();
        obs.load_known = false;
        tick(T(0));
        cr_expect_eq(d.reason, PARKING_REASON_NO_LOAD);
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        cr_expect_eq(d.unparked_cpus, 2);
}

Test(parking, one_core_per_dwell_and_siblings_together) {
        two_socket_smt();
        all_busy(0.01);
        tick(T(0));
        cr_assert_eq(d.reason, PARKING_REASON_PARK);
        /* Core 15 (CPUs 15 and 31) goes first: the highest. */
        cr_expect(hv_cpuset_test(&d.parked, 15) && hv_cpuset_test(&d.parked, 31));
        cr_expect_eq(hv_cpuset_count(&d.parked), 2);
        tick(T(5));
        cr_expect_eq(d.reason, PARKING_REASON_DWELL);
        cr_expect_eq(hv_cpuset_count(&d.parked), 2);
        tick(T(10));
        cr_expect_eq(d.reason, PARKING_REASON_PARK);
        cr_expect(hv_cpuset_test(&d.parked, 14) && hv_cpuset_test(&d.parked, 30));
        /* Every parked set is whole cores. */
        for (unsigned c = 0; c < 16; c++)
                cr_expect_eq(hv_cpuset_test(&d.parked, c), hv_cpuset_test(&d.parked, c + 16), "CPU %u", c);
}

Test(parking, each_numa_node_keeps_its_minimum) {
        two_socket_smt();
        all_busy(0.0);
        for (int t = 0; t < 20; t++)
                tick(T(10 * t));
        /* 14 cores parked, one left on each node: core 0 (node 0) and core 8 (node 1). */
        cr_expect_eq(hv_cpuset_count(&d.parked), 28);
        cr_expect(hv_cpuset_test(&d.unparked, 0) && hv_cpuset_test(&d.unparked, 16));
        cr_expect(hv_cpuset_test(&d.unparked, 8) && hv_cpuset_test(&d.unparked, 24));
        cr_expect_eq(d.reason, PARKING_REASON_NOTHING, "idle, but the minimum holds: %s",
                     parking_reason_to_string(d.reason));

        cfg.min_per_node = 3;
        setup();
        two_socket_smt();
        cfg.min_per_node = 3;
        for (int t = 0; t < 20; t++)
                tick(T(10 * t));
        cr_expect_eq(d.unparked_cpus, 12, "three cores of two CPUs on each node");
}

Test(parking, parks_only_while_the_rest_holds_the_load_with_its_headroom) {
        two_socket_smt();
        /* 6 CPUs' worth of load: with 50 % headroom 12 CPUs are needed, six cores. */
        all_busy(6.0 / 32);
        for (int t = 0; t < 20; t++)
                tick(T(10 * t));
        cr_expect_eq(d.needed_cpus, 12);
        cr_expect_geq(d.unparked_cpus, 12);
        cr_expect_lt(d.unparked_cpus, 14, "%u", d.unparked_cpus);
        cr_expect_eq(d.reason, PARKING_REASON_STEADY);
}

Test(parking, over_utilised_unparks_at_once_as_many_as_needed) {
        two_socket_smt();
        all_busy(0.0);
        for (int t = 0; t < 20; t++)
                tick(T(10 * t));
        cr_assert_eq(d.unparked_cpus, 4);
        /* The four unparked CPUs at 90 %: over 85 %, under saturation. L = 3.6, so 8 CPUs needed. */
        all_busy(0);
        busy[0] = busy[16] = busy[8] = busy[24] = 0.9;
        tick(T(201));
        cr_expect_eq(d.reason, PARKING_REASON_UNPARK, "%s", parking_reason_to_string(d.reason));
        cr_expect_eq(d.needed_cpus, 8);
        cr_expect_eq(d.unparked_cpus, 8, "two cores given back, in the same tick");
        cr_expect_eq(st.reversals, 1);
}

Test(parking, saturated_unparks_everything) {
        two_socket_smt();
        for (int t = 0; t < 20; t++)
                tick(T(10 * t));
        all_busy(0);
        busy[0] = busy[16] = busy[8] = busy[24] = 1.0;
        tick(T(201));
        cr_expect_eq(d.reason, PARKING_REASON_SATURATED);
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        cr_expect_eq(d.unparked_cpus, 32);
}

Test(parking, no_park_within_ten_minutes_of_an_unpark) {
        vm_2cpu();
        tick(T(0));
        cr_assert_eq(hv_cpuset_count(&d.parked), 1);
        busy[0] = 1.0;
        tick(T(20));
        cr_assert_eq(hv_cpuset_count(&d.parked), 0);
        all_busy(0.01);
        tick(T(40));
        cr_expect_eq(d.reason, PARKING_REASON_REVERSAL, "%s", parking_reason_to_string(d.reason));
        tick(T(20 + 599));
        cr_expect_eq(d.reason, PARKING_REASON_REVERSAL);
        tick(T(20 + 600));
        cr_expect_eq(d.reason, PARKING_REASON_PARK);
}

Test(parking, pinned_and_reserved_cpus_are_never_parked_and_a_claimed_core_comes_back) {
        vm_2cpu();
        hv_cpuset_set(&obs.pinned, 1); /* a VM pinned to CPU 1 by its administrator */
        tick(T(0));
        cr_expect_not(hv_cpuset_test(&d.parked, 1));
        cr_expect(hv_cpuset_test(&d.parked, 0), "the floating VMs join the pinned one on CPU 1");
        hv_cpuset_set(&obs.pinned, 0);
        tick(T(1));
        cr_expect_eq(d.reason, PARKING_REASON_CLAIMED);
        tick(T(100));
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        cr_expect_eq(d.reason, PARKING_REASON_NOTHING, "%s", parking_reason_to_string(d.reason));

        setup();
        two_socket_smt();
        hv_cpuset_set(&cfg.reserved, 31); /* core 15's sibling */
        tick(T(0));
        cr_expect_not(hv_cpuset_test(&d.parked, 15), "a reserved CPU's core stays");
        cr_expect(hv_cpuset_test(&d.parked, 14));
        /* Core 14 parked; an administrator pins a VM to CPU 30 (its sibling): given back at once. */
        hv_cpuset_set(&obs.pinned, 30);
        tick(T(1));
        cr_expect_eq(d.reason, PARKING_REASON_CLAIMED, "%s", parking_reason_to_string(d.reason));
        cr_expect_not(hv_cpuset_test(&d.parked, 14));
        cr_expect_not(hv_cpuset_test(&d.parked, 30));
        cr_expect_eq(st.reversals, 0, "not a load reversal");
}

Test(parking, a_hybrid_part_parks_its_performance_cores_first) {
        hybrid();
        all_busy(0.01);
        for (int t = 0; t < 4; t++)
                tick(T(10 * t));
        /* The four P cores (CPUs 0-7) go before any E core. */
        for (unsigned c = 0; c < 8; c++)
                cr_expect(hv_cpuset_test(&d.parked, c), "CPU %u", c);
        for (unsigned c = 8; c < 16; c++)
                cr_expect_not(hv_cpuset_test(&d.parked, c), "CPU %u", c);
        /* Load back on the E cores: a P core (the lowest) comes back first. */
        for (unsigned c = 8; c < 16; c++)
                busy[c] = 0.9;
        tick(T(50));
        cr_expect_eq(d.reason, PARKING_REASON_UNPARK);
        cr_expect_not(hv_cpuset_test(&d.parked, 0));
}

Test(parking, a_small_headroom_never_parks_into_over_utilisation) {
        vm_2cpu();
        cfg.headroom_pct = 0;
        /* 0.9 CPUs of load: 1 CPU holds it with no headroom, but at 90 %, over 85 %: stays. */
        all_busy(0.45);
        tick(T(0));
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        cr_expect_eq(d.reason, PARKING_REASON_STEADY);
}

Test(parking, off_unparks_everything_and_confines_no_vm) {
        vm_2cpu();
        tick(T(0));
        cr_assert_eq(hv_cpuset_count(&d.parked), 1);
        cr_expect_eq(parking_vm_action(&cfg, &d, true, false), PARKING_VM_CONFINE);
        cr_expect_eq(parking_vm_action(&cfg, &d, true, true), PARKING_VM_LEAVE, "latency-sensitive");
        cr_expect_eq(parking_vm_action(&cfg, &d, false, false), PARKING_VM_LEAVE, "pinned by its administrator");
        cfg.mode = PARKING_OFF;
        tick(T(1));
        cr_expect_eq(d.reason, PARKING_REASON_OFF);
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        cr_expect_eq(parking_vm_action(&cfg, &d, true, false), PARKING_VM_RESTORE);
        cfg.mode = PARKING_PARTITION;
        tick(T(2));
        cr_expect_eq(parking_vm_action(&cfg, &d, true, false), PARKING_VM_RESTORE, "the partition confines them");
}

Test(parking, names_and_bad_arguments) {
        cr_expect_str_eq(parking_mode_to_string(PARKING_PIN), "pin");
        cr_expect_str_eq(parking_mode_to_string(PARKING_PARTITION), "partition");
        cr_expect_null(parking_mode_to_string(PARKING_MODES));
        for (unsigned r = 0; r < PARKING_REASONS; r++)
                cr_expect_not_null(parking_reason_to_string((enum parking_reason) r), "%u", r);
        vm_2cpu();
        cr_expect_eq(parking_plan(NULL, &topo, &obs, &st, T(0), &d), -EINVAL);
        struct parking_topology empty = { cores, 0 };
        cr_expect_eq(parking_plan(&cfg, &empty, &obs, &st, T(0), &d), -EINVAL);
        cfg.min_per_node = 0;
        cr_expect_eq(parking_plan(&cfg, &topo, &obs, &st, T(0), &d), -EINVAL);
        parking_config_init(&cfg);
        cfg.dwell_usec = SEC(5);
        cr_expect_eq(parking_plan(&cfg, &topo, &obs, &st, T(0), &d), -EINVAL);
        parking_config_init(&cfg);
        cfg.headroom_pct = 96;
        cr_expect_eq(parking_plan(&cfg, &topo, &obs, &st, T(0), &d), -EINVAL);
        parking_config_init(&cfg);
        obs.busy = NULL;
        cr_expect_eq(parking_plan(&cfg, &topo, &obs, &st, T(0), &d), -EINVAL);
}

Test(parking, cpu_lists_read_and_print_as_the_kernel_writes_them) {
        struct hv_cpuset s;
        const char *why = NULL;
        char buf[64];
        cr_assert_eq(parking_cpulist_parse("0-3,8,10-11", &s, &why), 0);
        cr_expect_eq(hv_cpuset_count(&s), 7);
        cr_expect_str_eq(parking_cpulist_format(&s, buf, sizeof(buf)), "0-3,8,10-11");
        cr_assert_eq(parking_cpulist_parse("1023", &s, &why), 0);
        cr_expect_str_eq(parking_cpulist_format(&s, buf, sizeof(buf)), "1023");
        cr_assert_eq(parking_cpulist_parse("none", &s, &why), 0);
        cr_expect_eq(hv_cpuset_count(&s), 0);
        cr_expect_str_eq(parking_cpulist_format(&s, buf, sizeof(buf)), "none");
        cr_assert_eq(parking_cpulist_parse("", &s, &why), 0);
        cr_expect_eq(hv_cpuset_count(&s), 0);
        const char *bad[] = { "1024", "3-1", "0,", ",0", "0-", "a", "0 1", "-1", "0-3,,4", "99999999999999999999" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                why = NULL;
                cr_expect_eq(parking_cpulist_parse(bad[i], &s, &why), -EINVAL, "'%s'", bad[i]);
                cr_expect_not_null(why, "'%s' says why", bad[i]);
        }
        cr_assert_eq(parking_cpulist_parse("0-1023", &s, &why), 0);
        cr_expect_null(parking_cpulist_format(&s, buf, 5), "does not fit");
}

Test(parking, nothing_new_is_parked_while_a_vms_own_cpus_are_unknown) {
        vm_2cpu();
        obs.affinity_unknown = true;
        tick(T(0));
        cr_expect_eq(d.reason, PARKING_REASON_UNKNOWN_VM, "%s", parking_reason_to_string(d.reason));
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        obs.affinity_unknown = false;
        tick(T(1));
        cr_expect_eq(d.reason, PARKING_REASON_PARK);
        /* Unparking never waits for it. */
        obs.affinity_unknown = true;
        busy[0] = 1.0;
        tick(T(2));
        cr_expect_eq(d.reason, PARKING_REASON_SATURATED);
}

Test(parking, an_offline_cpu_is_no_capacity) {
        two_socket_smt();
        /* CPUs 8-15 and 24-31 (node 1) went offline: 16 CPUs measured, 2.8 CPUs of load. With
         * 50 % headroom 6 are needed; counting the offline ones, it would park down to 6 CPUs
         * of which half are offline. */
        all_busy(2.8 / 16);
        for (unsigned c = 8; c < 16; c++)
                busy[c] = busy[c + 16] = -1;
        for (int t = 0; t < 20; t++)
                tick(T(10 * t));
        unsigned measured_unparked = 0;
        for (unsigned c = 0; c < 32; c++)
                measured_unparked += hv_cpuset_test(&d.unparked, c) && busy[c] >= 0;
        cr_expect_geq(measured_unparked, 6, "%u measured CPUs unparked", measured_unparked);
}

Test(parking, a_latency_sensitive_vm_in_a_confined_partition_stops_parking_and_not_in_pin_mode) {
        vm_2cpu();
        cfg.mode = PARKING_PARTITION;
        tick(T(0));
        cr_assert_eq(d.reason, PARKING_REASON_PARK);
        /* The partition confines every VM in it: one that must not be packed unparks all. */
        obs.exempt_running = true;
        tick(T(1));
        cr_expect_eq(d.reason, PARKING_REASON_EXEMPT_VM, "%s", parking_reason_to_string(d.reason));
        cr_expect_eq(hv_cpuset_count(&d.parked), 0);
        /* pin mode leaves that VM alone and parks on. */
        cfg.mode = PARKING_PIN;
        tick(T(20 * 60));
        cr_expect_eq(d.reason, PARKING_REASON_PARK, "%s", parking_reason_to_string(d.reason));
}
