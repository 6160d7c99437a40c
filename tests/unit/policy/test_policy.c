/* The VM policy model: defaults and validation messages that name the field. */
#include <criterion/criterion.h>
#include <errno.h>

#include "common/macro.h"
#include "policy/policy.h"

static struct vm_policy valid(void) {
        struct vm_policy p;
        policy_init(&p);
        p.minimum_kib = 512 * KIB_PER_MIB;
        p.startup_kib = KIB_PER_GIB;
        p.maximum_kib = 4 * KIB_PER_GIB;
        return p;
}

static void expect_invalid(const struct vm_policy *p, const char *message) {
        char err[256] = "";
        cr_assert_eq(policy_validate(p, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, message);
}

Test(policy, defaults_are_hyperv_like) {
        struct vm_policy p;
        policy_init(&p);
        cr_assert_eq(p.buffer_pct, 20);
        cr_assert_eq(p.weight, 50);
        cr_assert(p.dynamic);
}

Test(policy, accepts_a_sane_policy) {
        struct vm_policy p = valid();
        char err[128];
        cr_assert_eq(policy_validate(&p, err, sizeof(err)), 0);
        p.minimum_kib = p.startup_kib = p.maximum_kib = 32 * KIB_PER_MIB;
        cr_assert_eq(policy_validate(&p, err, sizeof(err)), 0, "all equal at the lowest minimum is fine");
}

Test(policy, rejects_minimum_below_32mib) {
        struct vm_policy p = valid();
        p.minimum_kib = 16 * KIB_PER_MIB;
        expect_invalid(&p, "minimum: 16MiB is below the lowest allowed minimum 32MiB");
}

Test(policy, rejects_minimum_above_startup) {
        struct vm_policy p = valid();
        p.minimum_kib = 2 * KIB_PER_GIB;
        expect_invalid(&p, "minimum: 2GiB is above startup 1GiB");
}

Test(policy, rejects_startup_above_maximum) {
        struct vm_policy p = valid();
        p.maximum_kib = 768 * KIB_PER_MIB;
        p.startup_kib = KIB_PER_GIB;
        expect_invalid(&p, "startup: 1GiB is above maximum 768MiB");
}

Test(policy, rejects_sizes_not_multiple_of_2mib) {
        struct vm_policy p = valid();
        p.maximum_kib = 4 * KIB_PER_GIB + 1024;
        expect_invalid(&p, "maximum: 4097MiB is not a multiple of 2MiB");
        p = valid();
        p.startup_kib = 1023 * KIB_PER_MIB;
        expect_invalid(&p, "startup: 1023MiB is not a multiple of 2MiB");
}

Test(policy, rejects_unset_sizes) {
        struct vm_policy p = valid();
        p.minimum_kib = 0;
        expect_invalid(&p, "minimum: must be set (a size such as 1GiB)");
}

Test(policy, rejects_buffer_and_weight_out_of_range) {
        struct vm_policy p = valid();
        p.buffer_pct = 4;
        expect_invalid(&p, "buffer: 4 is out of range 5-2000 (percent)");
        p.buffer_pct = 2001;
        expect_invalid(&p, "buffer: 2001 is out of range 5-2000 (percent)");
        p = valid();
        p.weight = 101;
        expect_invalid(&p, "weight: 101 is out of range 0-100");
}

Test(policy, a_change_on_a_domain_without_policy_starts_from_its_boot_size) {
        struct policy_change c = { .have_minimum = true, .minimum_kib = UINT64_C(2048) * 1024 };
        struct vm_policy p = policy_apply_change(NULL, UINT64_C(1024) * 1024 + 100, UINT64_C(3072) * 1024 + 100, &c);
        cr_assert_eq(p.minimum_kib, UINT64_C(2048) * 1024);
        cr_assert_eq(p.startup_kib, UINT64_C(2048) * 1024, "the default startup moves up with the minimum");
        cr_assert_eq(p.maximum_kib, UINT64_C(3072) * 1024, "reachable, aligned down");
        cr_assert_eq(p.buffer_pct, POLICY_BUFFER_DEFAULT);

        struct vm_policy cur = p;
        c = (struct policy_change){ .have_weight = true, .weight = 7 };
        p = policy_apply_change(&cur, 0, 0, &c);
        cr_assert_eq(p.weight, 7);
        cr_assert_eq(p.minimum_kib, cur.minimum_kib, "an existing policy keeps what the change leaves out");
}

Test(policy, within_reach_lowers_maximum_then_startup_and_minimum) {
        struct vm_policy p;
        policy_init(&p);
        p.minimum_kib = UINT64_C(1024) * 1024;
        p.startup_kib = UINT64_C(2048) * 1024;
        p.maximum_kib = UINT64_C(4096) * 1024;
        struct vm_policy q = policy_within_reach(&p, UINT64_C(768) * 1024 + 1);
        cr_assert_eq(q.maximum_kib, UINT64_C(768) * 1024);
        cr_assert_eq(q.startup_kib, q.maximum_kib);
        cr_assert_eq(q.minimum_kib, q.maximum_kib);
        q = policy_within_reach(&p, 0);
        cr_assert_eq(q.maximum_kib, p.maximum_kib, "unknown reach: unchanged");
}
