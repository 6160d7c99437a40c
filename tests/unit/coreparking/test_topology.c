/* The topology as hwloc gives it (coreparking/topology.h): the three fixtures in
 * tests/fixtures/topology (their README says how they were made) and this host. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "coreparking/topology.h"

#define FIX "tests/fixtures/topology/"

static struct parking_core *cores;
static char err[PARKING_TOPO_ERR_MAX];

static void fini(void) {
        free(cores);
        cores = NULL;
}

TestSuite(topology, .fini = fini);

static unsigned cpus_of(const struct parking_core *c, unsigned *first, unsigned *second) {
        unsigned n = 0;
        for (unsigned cpu = 0; cpu < HV_CPUSET_MAX; cpu++)
                if (hv_cpuset_test(&c->cpus, cpu)) {
                        if (n == 0 && first)
                                *first = cpu;
                        if (n == 1 && second)
                                *second = cpu;
                        n++;
                }
        return n;
}

Test(topology, a_two_cpu_vm_is_two_cores_of_one_cpu_on_one_node) {
        int n = parking_topology_load(FIX "vm-2cpu.xml", &cores, err, sizeof(err));
        cr_assert_eq(n, 2, "%d: %s", n, err);
        for (int i = 0; i < n; i++) {
                unsigned first = 99;
                cr_expect_eq(cpus_of(&cores[i], &first, NULL), 1);
                cr_expect_eq(first, (unsigned) i);
                cr_expect_eq(cores[i].node, 0);
                cr_expect_eq(cores[i].kind, 0);
        }
}

Test(topology, a_two_socket_smt_host_pairs_siblings_and_splits_nodes) {
        int n = parking_topology_load(FIX "2socket-smt.xml", &cores, err, sizeof(err));
        cr_assert_eq(n, 16, "%d: %s", n, err);
        for (int i = 0; i < n; i++) {
                unsigned a = 99, b = 99;
                cr_expect_eq(cpus_of(&cores[i], &a, &b), 2, "core %d", i);
                cr_expect_eq(a, (unsigned) i, "core %d starts at CPU %d", i, i);
                cr_expect_eq(b, (unsigned) i + 16, "its sibling is %d", i + 16);
                cr_expect_eq(cores[i].node, i < 8 ? 0 : 1);
                cr_expect_eq(cores[i].package, i < 8 ? 0 : 1);
        }
}

Test(topology, a_hybrid_part_ranks_its_performance_cores_above_its_efficient_ones) {
        int n = parking_topology_load(FIX "hybrid.xml", &cores, err, sizeof(err));
        cr_assert_eq(n, 12, "%d: %s", n, err);
        for (int i = 0; i < 4; i++) {
                cr_expect_eq(cpus_of(&cores[i], NULL, NULL), 2, "P core %d", i);
                cr_expect_eq(cores[i].kind, 1, "P core %d", i);
        }
        for (int i = 4; i < 12; i++) {
                cr_expect_eq(cpus_of(&cores[i], NULL, NULL), 1, "E core %d", i);
                cr_expect_eq(cores[i].kind, 0, "E core %d", i);
        }
}

Test(topology, this_host_has_every_online_cpu_once) {
        int n = parking_topology_load(NULL, &cores, err, sizeof(err));
        cr_assert_gt(n, 0, "%s", err);
        struct hv_cpuset all = { 0 };
        unsigned total = 0;
        for (int i = 0; i < n; i++) {
                for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                        cr_expect_eq(all.bits[w] & cores[i].cpus.bits[w], 0, "a CPU in two cores");
                for (unsigned w = 0; w < HV_CPUSET_WORDS; w++)
                        all.bits[w] |= cores[i].cpus.bits[w];
                total += cpus_of(&cores[i], NULL, NULL);
        }
        cr_expect_eq(total, (unsigned) sysconf(_SC_NPROCESSORS_ONLN));
}

Test(topology, a_missing_or_unreadable_file_is_named) {
        cr_expect_eq(parking_topology_load(FIX "nope.xml", &cores, err, sizeof(err)), -ENOENT);
        cr_expect(strstr(err, "nope.xml"), "%s", err);
        cr_expect_eq(parking_topology_load(FIX "README.md", &cores, err, sizeof(err)), -EINVAL);
        cr_expect(strstr(err, "README.md"), "%s", err);
        cr_expect_null(cores);
}
