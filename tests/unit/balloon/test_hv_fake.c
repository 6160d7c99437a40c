/* The fake's memory limits and CPU placement refuse what libvirt refuses and keep what it keeps,
 * so code tested on the fake cannot lean on a change the real layer would reject. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balloon/hv.h"
#include "common/macro.h"

#define GIB UINT64_C(1048576)

/* 1.7 MB: static rather than on the stack. */
static struct hv_fake fake;
static struct hv hv;

static void setup(void) {
        struct hv_domain on = {.uuid = "on", .name = "on", .active = true, .max_kib = GIB, .current_kib = GIB};
        struct hv_domain off = {.uuid = "off", .name = "off", .max_kib = GIB, .current_kib = GIB};
        struct hv_mem_stats s = {.actual_kib = GIB};

        memset(&fake, 0, sizeof(fake));
        cr_assert_eq(hv_fake_add(&fake, &on, &s), 0);
        cr_assert_eq(hv_fake_add(&fake, &off, &s), 1);
        hv = hv_fake_hv(&fake);
}

static void teardown(void) {
        hv_fake_done(&fake);
}

static struct hv_cpuset cpus(unsigned a, unsigned b) {
        struct hv_cpuset s = {0};
        for (unsigned c = a; c <= b; c++)
                hv_cpuset_set(&s, c);
        return s;
}

static int set_memtune(const char *uuid, uint64_t hard, uint64_t swap, unsigned flags) {
        struct hv_memtune m = {.hard_limit_kib = hard, .swap_hard_limit_kib = swap};
        char err[HV_ERR_MAX];
        return hv.ops->set_memtune(hv.h, uuid, &m, flags, err, sizeof(err));
}

static struct hv_memtune memtune(const char *uuid) {
        struct hv_memtune m;
        char err[HV_ERR_MAX];
        cr_assert_eq(hv.ops->get_memtune(hv.h, uuid, &m, err, sizeof(err)), 0, "%s", err);
        return m;
}

Test(hv_cpuset, helpers_agree_on_bits_across_words) {
        struct hv_cpuset s = {0}, t = {0};
        cr_assert_eq(hv_cpuset_count(&s), 0);
        cr_assert_eq(hv_cpuset_last(&s), -1);
        hv_cpuset_set(&s, 0);
        hv_cpuset_set(&s, 63);
        hv_cpuset_set(&s, 64);
        hv_cpuset_set(&s, HV_CPUSET_MAX - 1);
        hv_cpuset_set(&s, HV_CPUSET_MAX); /* past the end: ignored */
        cr_assert_eq(hv_cpuset_count(&s), 4);
        cr_assert(hv_cpuset_test(&s, 63));
        cr_assert(hv_cpuset_test(&s, 64));
        cr_assert_not(hv_cpuset_test(&s, 65));
        cr_assert_not(hv_cpuset_test(&s, HV_CPUSET_MAX));
        cr_assert_eq(s.bits[1], 1, "CPU 64 is bit 0 of word 1");
        cr_assert_eq(hv_cpuset_last(&s), HV_CPUSET_MAX - 1);
        hv_cpuset_clear(&s, HV_CPUSET_MAX - 1);
        cr_assert_eq(hv_cpuset_last(&s), 64);
        cr_assert_not(hv_cpuset_equal(&s, &t));
        hv_cpuset_set(&t, 64);
        hv_cpuset_set(&t, 63);
        hv_cpuset_set(&t, 0);
        cr_assert(hv_cpuset_equal(&s, &t));
}

Test(hv_fake, a_new_domain_is_unlimited_unpinned_and_in_machine, .init = setup, .fini = teardown) {
        char err[HV_ERR_MAX], part[HV_PARTITION_MAX];
        struct hv_cpuset pins[4], emu, all = cpus(0, HV_FAKE_HOST_CPUS - 1);
        unsigned n = 0;

        struct hv_memtune m = memtune("on");
        cr_assert_eq(m.hard_limit_kib, HV_MEMTUNE_UNLIMITED);
        cr_assert_eq(m.swap_hard_limit_kib, HV_MEMTUNE_UNLIMITED);
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, "on", &n, err, sizeof(err)), 0);
        cr_assert_eq(n, 1);
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, "on", pins, ELEMENTSOF(pins), &n, err, sizeof(err)), 0);
        cr_assert_eq(n, 1);
        cr_assert(hv_cpuset_equal(&pins[0], &all), "unpinned reads as every host CPU");
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, "on", &emu, err, sizeof(err)), 0);
        cr_assert(hv_cpuset_equal(&emu, &all));
        cr_assert_eq(hv.ops->get_partition(hv.h, "on", part, sizeof(part), err, sizeof(err)), 0);
        cr_assert_str_eq(part, "/machine");
}

Test(hv_fake, memtune_keeps_libvirts_rule_on_the_pair_a_call_leaves, .init = setup, .fini = teardown) {
        cr_assert_eq(set_memtune("on", GIB, 2 * GIB, HV_LIVE), 0);
        /* raising past the old swap limit and lowering under the old hard limit: one call each */
        cr_assert_eq(set_memtune("on", 4 * GIB, 8 * GIB, HV_LIVE), 0);
        cr_assert_eq(memtune("on").hard_limit_kib, 4 * GIB);
        cr_assert_eq(set_memtune("on", GIB / 2, GIB, 0), 0, "0 is current: live on a running domain");
        cr_assert_eq(memtune("on").swap_hard_limit_kib, GIB);

        cr_assert_eq(set_memtune("on", 2 * GIB, GIB, HV_LIVE), -EINVAL, "hard above swap");
        cr_assert_eq(set_memtune("on", HV_MEMTUNE_UNLIMITED, GIB, HV_LIVE), -EINVAL, "unlimited above a limit");
        cr_assert_eq(set_memtune("on", 0, GIB, HV_LIVE), -EINVAL, "0 KiB");
        cr_assert_eq(set_memtune("on", GIB, HV_MEMTUNE_MAX_KIB + 1, HV_LIVE), -EINVAL,
                     "libvirt's unlimited as a number");
        cr_assert_eq(set_memtune("on", GIB, 2 * GIB, 1u << 5), -EINVAL, "unknown flags");
        cr_assert_eq(memtune("on").hard_limit_kib, GIB / 2, "refusals change nothing");

        cr_assert_eq(set_memtune("on", GIB, HV_MEMTUNE_UNLIMITED, HV_LIVE), 0);
        cr_assert_eq(memtune("on").swap_hard_limit_kib, HV_MEMTUNE_UNLIMITED);
}

Test(hv_fake, memtune_keeps_live_state_only, .init = setup, .fini = teardown) {
        char err[HV_ERR_MAX];
        struct hv_memtune m;

        cr_assert_eq(set_memtune("on", GIB, 2 * GIB, HV_CONFIG), 0);
        cr_assert_eq(memtune("on").hard_limit_kib, HV_MEMTUNE_UNLIMITED, "config is not live");
        cr_assert_eq(set_memtune("on", 2 * GIB, GIB, HV_CONFIG), -EINVAL, "but it is checked");
        cr_assert_eq(set_memtune("on", GIB, 2 * GIB, HV_LIVE | HV_CONFIG), 0);
        cr_assert_eq(memtune("on").hard_limit_kib, GIB);

        cr_assert_eq(hv.ops->get_memtune(hv.h, "off", &m, err, sizeof(err)), -EINVAL, "no live values");
        cr_assert_eq(set_memtune("off", GIB, 2 * GIB, HV_LIVE), -EINVAL);
        cr_assert_eq(set_memtune("off", GIB, 2 * GIB, 0), 0, "current of a stopped domain is its config");
        cr_assert_eq(set_memtune("off", GIB, 2 * GIB, HV_CONFIG), 0);
        cr_assert_eq(fake.memtune[1].hard_limit_kib, HV_MEMTUNE_UNLIMITED);
}

Test(hv_fake, every_change_is_recorded_with_its_values, .init = setup, .fini = teardown) {
        char err[HV_ERR_MAX];
        struct hv_cpuset s = cpus(2, 3);

        fake.vcpus[0] = 2;
        cr_assert_eq(set_memtune("on", GIB, 2 * GIB, HV_LIVE), 0);
        cr_assert_eq(set_memtune("on", 2 * GIB, GIB, HV_LIVE), -EINVAL);
        cr_assert_eq(hv_fake_count(&fake, "set_memtune", "on"), 2, "refused calls are recorded too");
        const struct hv_fake_call *c = hv_fake_last(&fake, "set_memtune");
        cr_assert_eq(c->value, 2 * GIB);
        cr_assert_eq(c->value2, GIB);
        cr_assert_eq(c->flags, HV_LIVE);

        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 1, &s, 0, err, sizeof(err)), 0, "%s", err);
        c = hv_fake_last(&fake, "set_vcpu_pin");
        cr_assert_eq(c->value, 1, "the vCPU");
        cr_assert(hv_cpuset_equal(&c->cpus, &s));
        cr_assert_eq(c->flags, 0);

        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, "on", &s, HV_LIVE | HV_CONFIG, err, sizeof(err)), 0, "%s", err);
        c = hv_fake_last(&fake, "set_emulator_pin");
        cr_assert(hv_cpuset_equal(&c->cpus, &s));
        cr_assert_eq(c->flags, HV_LIVE | HV_CONFIG);
        cr_assert_str_eq(c->uuid, "on");
}

Test(hv_fake, pins_round_trip_and_refuse_what_the_host_lacks, .init = setup, .fini = teardown) {
        char err[HV_ERR_MAX];
        struct hv_cpuset pins[4], got, s = cpus(1, 2), empty = {0}, past = cpus(7, 8), all = cpus(0, 7);
        unsigned n = 0;

        fake.vcpus[0] = 3;
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 2, &s, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, "on", pins, ELEMENTSOF(pins), &n, err, sizeof(err)), 0);
        cr_assert_eq(n, 3);
        cr_assert(hv_cpuset_equal(&pins[2], &s));
        cr_assert(hv_cpuset_equal(&pins[0], &all));
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, "on", pins, 2, &n, err, sizeof(err)), -ENOBUFS);

        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 0, &empty, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 0, &past, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "CPU 8 is not on this host (CPUs 0-7)");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 0, NULL, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 3, &s, HV_LIVE, err, sizeof(err)), -EINVAL, "no vCPU 3");
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "off", 0, &s, HV_LIVE, err, sizeof(err)), -EINVAL, "not running");
        /* A bigger host has the CPU. */
        fake.host_cpus = 16;
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 0, &past, HV_LIVE, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, "on", pins, ELEMENTSOF(pins), &n, err, sizeof(err)), 0);
        cr_assert(hv_cpuset_equal(&pins[0], &past));
        all = cpus(0, 15);
        cr_assert(hv_cpuset_equal(&pins[1], &all));

        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, "on", &empty, HV_LIVE, err, sizeof(err)), -EINVAL);
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, "on", &s, HV_CONFIG, err, sizeof(err)), 0);
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, "on", &got, err, sizeof(err)), 0);
        cr_assert(hv_cpuset_equal(&got, &all), "config is not live");
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, "on", &s, HV_LIVE, err, sizeof(err)), 0);
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, "on", &got, err, sizeof(err)), 0);
        cr_assert(hv_cpuset_equal(&got, &s));
        /* A stopped domain reads as configured (the fake keeps one set of pins). */
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, "off", &got, err, sizeof(err)), 0, "%s", err);
        cr_assert(hv_cpuset_equal(&got, &all), "never pinned");
}

Test(hv_fake, injected_failures_reach_every_new_op_once, .init = setup, .fini = teardown) {
        char err[HV_ERR_MAX], part[HV_PARTITION_MAX];
        struct hv_memtune m = {GIB, 2 * GIB};
        struct hv_cpuset s = cpus(0, 0), pins[2];
        unsigned n;

        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->get_memtune(hv.h, "on", &m, err, sizeof(err)), -EIO);
        cr_assert_eq(hv.ops->get_memtune(hv.h, "on", &m, err, sizeof(err)), 0);
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->set_memtune(hv.h, "on", &m, HV_LIVE, err, sizeof(err)), -EIO);
        cr_assert_eq(memtune("on").hard_limit_kib, HV_MEMTUNE_UNLIMITED, "a failed set changes nothing");
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, "on", &n, err, sizeof(err)), -EIO);
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->get_vcpu_pins(hv.h, "on", pins, ELEMENTSOF(pins), &n, err, sizeof(err)), -EIO);
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->set_vcpu_pin(hv.h, "on", 0, &s, HV_LIVE, err, sizeof(err)), -EIO);
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->get_emulator_pin(hv.h, "on", &s, err, sizeof(err)), -EIO);
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->set_emulator_pin(hv.h, "on", &s, HV_LIVE, err, sizeof(err)), -EIO);
        fake.fail_errno = EIO;
        cr_assert_eq(hv.ops->get_partition(hv.h, "on", part, sizeof(part), err, sizeof(err)), -EIO);
        cr_assert_str_eq(err, "fake failure of get_partition");
        cr_assert_eq(fake.fail_errno, 0);
}

Test(hv_fake, unknown_missing_and_too_small_are_refused, .init = setup, .fini = teardown) {
        char err[HV_ERR_MAX], small[4];
        struct hv_memtune m;
        unsigned n;

        cr_assert_eq(hv.ops->get_memtune(hv.h, "nope", &m, err, sizeof(err)), -ENOENT);
        cr_assert_eq(hv.ops->get_vcpu_count(hv.h, NULL, &n, err, sizeof(err)), -EINVAL, "no UUID is not domain 0");
        cr_assert_eq(hv.ops->get_partition(hv.h, "on", small, sizeof(small), err, sizeof(err)), -ENAMETOOLONG);
        snprintf(fake.partition[0], sizeof(fake.partition[0]), "/a");
        cr_assert_eq(hv.ops->get_partition(hv.h, "on", small, sizeof(small), err, sizeof(err)), 0);
        cr_assert_str_eq(small, "/a");
}
