/* The memory limit of a libvirt partition's cgroup, from fixture trees (v1 and v2). */
#include <criterion/criterion.h>
#include <errno.h>

#include "common/cgroup.h"

#define FIX "tests/fixtures/cgroup/"

Test(cgroup, a_v1_partition_below_machine_is_named_with_dot_partition) {
        uint64_t limit, usage;
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-limited", "/machine/tenant", &limit, &usage), 0);
        cr_assert_eq(limit, 2 * 1024 * 1024);
        cr_assert_eq(usage, 1536 * 1024);
}

Test(cgroup, the_v1_no_limit_value_is_no_limit) {
        uint64_t limit = 1, usage;
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-unlimited", "/machine", &limit, &usage), 0);
        cr_assert_eq(limit, CGROUP_UNLIMITED);
        cr_assert_eq(usage, 100 * 1024);
}

Test(cgroup, v2_with_systemd_slices_and_max) {
        uint64_t limit, usage;
        cr_assert_eq(cgroup_partition_memory_at(FIX "v2-slices", "/machine/tenant", &limit, &usage), 0);
        cr_assert_eq(limit, 4 * 1024 * 1024);
        cr_assert_eq(cgroup_partition_memory_at(FIX "v2-slices", "/machine", &limit, &usage), 0);
        cr_assert_eq(limit, CGROUP_UNLIMITED, "max is no limit");
        cr_assert_eq(usage, 2 * 1024 * 1024);
}

Test(cgroup, a_parents_lower_limit_bounds_the_partition) {
        uint64_t limit, usage;
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-nested", "/machine/tenant", &limit, &usage), 0);
        cr_assert_eq(limit, 1024 * 1024, "machine allows 1 GiB, tenant 2 GiB");
        cr_assert_eq(usage, 512 * 1024);
}

Test(cgroup, missing_garbage_and_escaping_partitions_are_errors) {
        uint64_t limit, usage;
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-limited", "/machine/other", &limit, &usage), -ENOENT);
        cr_assert_eq(cgroup_partition_memory_at(FIX "garbage", "/machine", &limit, &usage), -EINVAL);
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-limited", "/machine/../../etc", &limit, &usage), -EINVAL);
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-limited", "machine", &limit, &usage), -EINVAL);
        cr_assert_eq(cgroup_partition_memory_at(FIX "v1-limited", "/", &limit, &usage), -EINVAL);
}

Test(cgroup, parses_bytes_and_max_only) {
        uint64_t kib;
        cr_assert_eq(cgroup_parse_bytes("1048576\n", &kib), 0);
        cr_assert_eq(kib, 1024);
        cr_assert_eq(cgroup_parse_bytes("max\n", &kib), 0);
        cr_assert_eq(kib, CGROUP_UNLIMITED);
        cr_assert_eq(cgroup_parse_bytes("0\n", &kib), 0);
        cr_assert_eq(kib, 0, "a limit of nothing is a limit");
        cr_assert_eq(cgroup_parse_bytes("-1", &kib), -EINVAL);
        cr_assert_eq(cgroup_parse_bytes("12k", &kib), -EINVAL);
        cr_assert_eq(cgroup_parse_bytes("", &kib), -EINVAL);
        cr_assert_eq(cgroup_parse_bytes("maximum", &kib), -EINVAL);
}
