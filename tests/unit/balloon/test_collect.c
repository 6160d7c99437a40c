/* Balloon statistics -> engine inputs, targets -> balloon and virtio-mem sizes, progress. */
#include <criterion/criterion.h>
#include <errno.h>

#include "balloon/collect.h"
#include "common/macro.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define ABSENT UINT64_MAX

static const struct hv_domain nodoo = { .max_kib = MIB(512) };

static struct hv_mem_stats stats(uint64_t actual, uint64_t available, uint64_t usable) {
        struct hv_mem_stats s;
        memset(&s, 0xff, sizeof(s));
        s.actual_kib = actual;
        s.available_kib = available;
        s.usable_kib = usable;
        return s;
}

Test(collect, demand_is_memtotal_minus_memavailable_plus_the_guest_kernels_share) {
        /* 512 MiB held; the guest sees 500 MiB (12 MiB are its kernel's), 380 available. */
        struct hv_mem_stats s = stats(MIB(512), MIB(500), MIB(380));
        int64_t demand;
        uint64_t total;
        cr_assert_eq(balloon_demand_from_stats(&s, &nodoo, &demand, &total), 0);
        cr_assert_eq(demand, (int64_t) MIB(132));
        cr_assert_eq(total, MIB(512));
}

Test(collect, a_deflate_on_oom_balloon_is_not_demand) {
        /* 1 GiB guest ballooned to 400 MiB: MemTotal stays 1000 MiB, the balloon counts as used. */
        struct hv_domain d = { .max_kib = MIB(1024), .balloon_deflate_on_oom = true };
        struct hv_mem_stats s = stats(MIB(400), MIB(1000), MIB(1000) - MIB(624) - MIB(150));
        int64_t demand;
        uint64_t total;
        cr_assert_eq(balloon_demand_from_stats(&s, &d, &demand, &total), 0);
        cr_assert_eq(demand, (int64_t) MIB(150 + 24), "150 used + the kernel's 24 outside MemTotal");
        d.balloon_deflate_on_oom = false; /* then MemTotal would have shrunk with the balloon */
        cr_assert_eq(balloon_demand_from_stats(&s, &d, &demand, &total), 0);
        cr_assert_eq(demand, (int64_t) MIB(774));
}

Test(collect, plugged_virtio_mem_is_part_of_what_the_guest_sees) {
        struct hv_domain d = { .max_kib = MIB(512), .has_virtio_mem = true, .virtio_mem_current_kib = MIB(256) };
        struct hv_mem_stats s = stats(MIB(512), MIB(700), MIB(300));
        int64_t demand;
        uint64_t total;
        cr_assert_eq(balloon_demand_from_stats(&s, &d, &demand, &total), 0);
        cr_assert_eq(demand, (int64_t) MIB(400 + 68));
        cr_assert_eq(total, MIB(768));
}

Test(collect, demand_needs_both_fields) {
        struct hv_mem_stats s = stats(MIB(512), ABSENT, MIB(380));
        int64_t demand = 7;
        uint64_t total = 7;
        cr_assert_eq(balloon_demand_from_stats(&s, &nodoo, &demand, &total), -ENODATA);
        cr_assert_eq(demand, 7, "untouched on failure");
}

Test(collect, garbage_usable_above_total_gives_negative_demand_for_the_engine_to_reject) {
        struct hv_mem_stats s = stats(MIB(512), MIB(100), MIB(400));
        int64_t demand;
        uint64_t total;
        cr_assert_eq(balloon_demand_from_stats(&s, &nodoo, &demand, &total), 0);
        cr_assert_lt(demand, 0);
}

Test(collect, assigned_adds_plugged_virtio_mem) {
        struct hv_domain d = { .max_kib = MIB(512), .has_virtio_mem = true, .virtio_mem_current_kib = MIB(256) };
        struct hv_mem_stats s = stats(MIB(512), MIB(700), MIB(600));
        uint64_t a;
        cr_assert_eq(balloon_assigned_kib(&s, &d, &a), 0);
        cr_assert_eq(a, MIB(768));
        s.actual_kib = ABSENT;
        cr_assert_eq(balloon_assigned_kib(&s, &d, &a), -ENODATA);
}

Test(collect, split_uses_the_balloon_up_to_boot_size) {
        struct hv_domain d = { .max_kib = MIB(1024), .has_virtio_mem = true, .virtio_mem_max_kib = MIB(2048),
                               .virtio_mem_block_kib = 2048 };
        struct balloon_split sp = balloon_split_target(MIB(600), &d);
        cr_assert_eq(sp.balloon_kib, MIB(600));
        cr_assert_eq(sp.vmem_requested_kib, 0);
}

Test(collect, split_plugs_virtio_mem_above_boot_size_in_blocks) {
        struct hv_domain d = { .max_kib = MIB(1024), .has_virtio_mem = true, .virtio_mem_max_kib = MIB(2048),
                               .virtio_mem_block_kib = MIB(4) };
        struct balloon_split sp = balloon_split_target(MIB(1500) + 8, &d);
        cr_assert_eq(sp.balloon_kib, MIB(1024), "balloon fully deflated first");
        cr_assert_eq(sp.vmem_requested_kib, MIB(476), "476 MiB + 8 KiB rounded down to the 4 MiB block: never above");
        sp = balloon_split_target(MIB(9000), &d);
        cr_assert_eq(sp.vmem_requested_kib, MIB(2048), "capped at the device size");
}

Test(collect, split_without_virtio_mem_caps_at_boot_size) {
        struct hv_domain d = { .max_kib = MIB(1024) };
        cr_assert_eq(balloon_split_target(MIB(2000), &d).balloon_kib, MIB(1024));
        cr_assert_eq(balloon_reachable_kib(&d), MIB(1024));
}

Test(collect, balloon_that_does_not_move_is_inactive_then_uncooperative) {
        struct balloon_watch w = { 0 };
        uint64_t t = 1000000;
        balloon_watch_target(&w, MIB(200), MIB(512), t);
        cr_assert_eq(balloon_watch_update(&w, MIB(400), t + 1000000), BALLOON_STATE_OK, "moving");
        cr_assert_eq(balloon_watch_update(&w, MIB(400), t + 3000000), BALLOON_STATE_OK);
        cr_assert_eq(balloon_watch_update(&w, MIB(400), t + 6500000), BALLOON_STATE_INACTIVE, "5 s still");
        cr_assert_eq(balloon_watch_update(&w, MIB(400), t + 21500000), BALLOON_STATE_UNCOOPERATIVE);
        cr_assert_eq(balloon_watch_update(&w, MIB(200), t + 22000000), BALLOON_STATE_OK, "reached");
        cr_assert_str_eq(balloon_state_to_string(BALLOON_STATE_INACTIVE), "inactive");
}

Test(collect, guest_deflating_its_balloon_is_seen_as_reclaim) {
        struct balloon_watch w = { 0 };
        uint64_t t = 1000000;
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(300)), 0, "no target set: tided does not know the balloon's aim");

        balloon_watch_target(&w, MIB(200), MIB(512), t);
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(400)), 0, "inflating toward a lower target");
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(200)), 0, "reached");
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(202)), 0, "within the slack of the target");
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(210)), MIB(8), "rose above the target: the guest took it");
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(210)), 0, "once per rise");
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(211)), MIB(1), "virtio_balloon's OOM notifier frees 1 MiB a call");

        balloon_watch_target(&w, MIB(600), MIB(211), t);
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(400)), 0, "deflating toward a higher target is tided's doing");
        cr_assert_eq(balloon_watch_reclaimed(&w, MIB(600)), 0);
}
