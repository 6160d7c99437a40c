/* Smart Paging's plan on hand-made hosts: who pages, how much, what RAM it is granted, when it is
 * raised and released; the figures are worked out in the comments. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>

#include "common/macro.h"
#include "common/units.h"
#include "policy/engine.h"
#include "smartpaging/plan.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define N 6

static struct tide_config cfg;
static struct paging_vm_state st[N];
static struct paging_vm vm[N];
static struct paging_action act[N];
static struct paging_summary sum;
/* The host's free swap (SwapFree): plenty unless a test says otherwise. */
static uint64_t swap_free_mib;


/* A running, booted, dynamic VM: startup 384 MiB, minimum 128 MiB, holding `held` MiB. */
static void running(size_t i, uint64_t held) {
        vm[i] = (struct paging_vm){ .state = &st[i], .active = true, .managed = true, .dynamic = true,
                                    .reporting = true, .startup_kib = MIB(384), .minimum_kib = MIB(128),
                                    .weight = 50, .assigned_kib = MIB(held), .held_kib = MIB(held) };
}

/* The same VM rebooting this tick, with `held` MiB of its memory in RAM. */
static void restarting(size_t i, uint64_t held) {
        running(i, held);
        vm[i].start = PAGING_START_RESTART;
        vm[i].booting = true;
        vm[i].reporting = false;
}

/* A paging VM whose boot is over: its balloon reports and it holds `assigned` MiB. */
static void booted(size_t i, uint64_t assigned) {
        vm[i].start = PAGING_START_NONE;
        vm[i].booting = false;
        vm[i].reporting = true;
        vm[i].assigned_kib = MIB(assigned);
}

/* No QEMU overhead unless a test says so: the figures stay those of the guest memory. */
static void setup(void) {
        config_init(&cfg);
        cfg.qemu_overhead_kib = 0;
        swap_free_mib = 100000;
        for (size_t i = 0; i < N; i++) {
                st[i] = (struct paging_vm_state){ 0 };
                running(i, 160);
                vm[i].managed = vm[i].active = false; /* unused slots: not running */
        }
}

static void plan(size_t n, uint64_t free_mib, uint64_t now) {
        struct paging_host h = { .free_kib = MIB(free_mib), .can_page = true, .swap_known = true,
                                 .swapped_kib = UINT64_MAX, .swap_free_kib = MIB(swap_free_mib) };
        cr_assert_eq(paging_plan(&cfg, &h, vm, n, now, act, &sum), 0);
}

TestSuite(plan, .init = setup);

Test(plan, restart_that_fits_in_free_memory_does_not_page) {
        restarting(0, 160);
        plan(1, 300, SEC(10)); /* needs 384 - 160 = 224 MiB, 300 free */
        cr_expect_not(act[0].start);
        cr_expect(act[0].start_seen);
        cr_expect_eq(st[0].phase, PAGING_NONE);
        cr_expect_eq(sum.unfunded_kib, 0);
}

Test(plan, restart_on_a_full_host_pages_the_shortfall_with_limits_around_the_grant) {
        restarting(0, 160);
        plan(1, 64, SEC(10));
        /* Needs 224 MiB; 64 free, nothing to take back: 160 short. RAM granted 160 + 64. */
        cr_assert(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(160));
        cr_expect_eq(act[0].grant_kib, MIB(224));
        cr_expect_eq(act[0].file_kib, MIB(160) + PAGING_FILE_SLACK_KIB);
        cr_expect_eq(act[0].hard_limit_kib, MIB(224) + cfg.qemu_overhead_kib);
        cr_expect_eq(act[0].swap_hard_limit_kib, UINT64_MAX, "memory + swap unbounded");
        cr_expect(act[0].hard_limit_kib <= act[0].swap_hard_limit_kib, "libvirt refuses hard > swap");
        cr_expect_eq(st[0].phase, PAGING_ACTIVE);
        cr_expect(paging_in_use(&st[0]));
        cr_expect_eq(sum.files, 1);
        cr_expect_eq(sum.file_kib, act[0].file_kib);
}

Test(plan, what_the_others_give_back_within_reclaim_time_funds_the_start_first) {
        /* Two others hold 1024 MiB each (minimum 128). Shrink steps: 2 % of assigned a tick (20 MiB
         * at 1 GiB), 10 ticks in the default 10 s: each gives what engine_shrink_reach_kib says. */
        restarting(0, 160);
        running(1, 1024);
        running(2, 1024);
        uint64_t each = MIB(1024) - engine_shrink_reach_kib(MIB(1024), MIB(128), 10, &cfg);
        cr_assert(each > MIB(150) && each < MIB(224), "each gives %" PRIu64 " KiB", each);
        plan(3, 0, SEC(10));
        uint64_t need = MIB(224);
        cr_expect(2 * each >= need);
        cr_expect_not(act[0].start, "two others give %" PRIu64 " KiB within 10 s", 2 * each);

        /* With reclaim_time 0 the same host pages all of it. */
        setup();
        cfg.reclaim_usec = 0;
        restarting(0, 160);
        running(1, 1024);
        running(2, 1024);
        plan(3, 0, SEC(10));
        cr_expect(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(224));
}

Test(plan, the_others_are_never_counted_below_their_minimum) {
        restarting(0, 160);
        running(1, 130); /* 2 MiB above its minimum of 128 */
        plan(2, 0, SEC(10));
        cr_expect(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(222));
}

Test(plan, a_booting_or_paging_vm_gives_nothing_back) {
        restarting(0, 160);
        running(1, 1024);
        vm[1].booting = true; /* still booting: holds its startup */
        plan(2, 0, SEC(10));
        cr_expect_eq(act[0].shortfall_kib, MIB(224));
}

Test(plan, starts_in_one_tick_are_funded_by_weight) {
        restarting(0, 160);
        restarting(1, 160);
        vm[1].weight = 80;
        plan(2, 300, SEC(10)); /* 224 each: the heavier one is funded whole, the other pages 148 */
        cr_expect_not(act[1].start);
        cr_expect(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(148));
        cr_expect_eq(act[0].grant_kib, MIB(160 + 76));
}

Test(plan, memory_promised_to_a_boot_is_not_funded_twice) {
        restarting(0, 160);
        plan(1, 300, SEC(10)); /* funded whole: 224 of the 300 free */
        cr_assert_not(act[0].start);
        /* A second later it has touched 40 of them; the host still shows 260 free. */
        vm[0].start = PAGING_START_NONE;
        vm[0].held_kib = MIB(200);
        restarting(1, 160);
        plan(2, 260, SEC(11)); /* 260 - (384 - 200) promised = 76 for the new start: 148 short */
        cr_expect(act[1].start);
        cr_expect_eq(act[1].shortfall_kib, MIB(148));

        /* A paging VM's grant is promised too: no raise from memory it has yet to fill. */
        setup();
        restarting(0, 160);
        plan(1, 64, SEC(10)); /* grant 224, 64 of it not yet resident */
        vm[0].start = PAGING_START_NONE;
        plan(1, 64, SEC(11));
        cr_expect_not(act[0].raise, "the 64 free are its own grant");
        plan(1, 64 + 100, SEC(12));
        cr_expect(act[0].raise);
        cr_expect_eq(act[0].grant_kib, MIB(324));
}

Test(plan, restart_mode_does_not_page_a_cold_start_but_always_does) {
        running(0, 0);
        vm[0].start = PAGING_START_COLD;
        vm[0].booting = true;
        vm[0].held_kib = 0;
        plan(1, 100, SEC(10));
        cr_expect_not(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(284));
        cr_expect_eq(sum.unfunded_kib, MIB(284), "the host is overcommitted by what no file covers");

        cfg.smart_paging = CONFIG_PAGING_ALWAYS;
        plan(1, 100, SEC(10));
        cr_expect(act[0].start);
        cr_expect_eq(act[0].grant_kib, MIB(100));
}

Test(plan, off_never_pages) {
        cfg.smart_paging = CONFIG_PAGING_OFF;
        restarting(0, 160);
        plan(1, 0, SEC(10));
        cr_expect_not(act[0].start);
        cr_expect_eq(sum.unfunded_kib, MIB(224));
}

Test(plan, a_vm_that_cannot_come_down_does_not_page) {
        restarting(0, 160);
        vm[0].minimum_kib = vm[0].startup_kib; /* it could never release its file */
        plan(1, 0, SEC(10));
        cr_expect_not(act[0].start);
        restarting(0, 160);
        vm[0].dynamic = false;
        plan(1, 0, SEC(10));
        cr_expect_not(act[0].start);
        cr_expect_eq(sum.unfunded_kib, MIB(224));
}

Test(plan, qemu_overhead_is_wanted_resident_and_never_paged) {
        cfg.qemu_overhead_kib = MIB(100);
        restarting(0, 260); /* 160 MiB of guest memory + 100 of QEMU resident */
        plan(1, 64, SEC(10));
        /* Wants 384 + 100, has 260: needs 224, as without the overhead. */
        cr_assert(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(160));
        cr_expect_eq(act[0].hard_limit_kib, MIB(324));
        cr_expect_eq(act[0].grant_kib, MIB(224));
        cr_expect_eq(act[0].swap_hard_limit_kib, UINT64_MAX);

        /* A cold start with nothing free: QEMU's own memory stays resident, the guest pages. */
        cfg.smart_paging = CONFIG_PAGING_ALWAYS;
        st[0] = (struct paging_vm_state){ 0 };
        running(0, 0);
        vm[0].start = PAGING_START_COLD;
        vm[0].booting = true;
        plan(1, 0, SEC(10));
        cr_assert(act[0].start);
        cr_expect_eq(act[0].hard_limit_kib, MIB(100));
        cr_expect_eq(act[0].grant_kib, 0);
        cr_expect_eq(act[0].shortfall_kib, MIB(484));
}

Test(plan, a_host_that_cannot_page_leaves_the_shortfall_unfunded) {
        restarting(0, 160);
        struct paging_host h = { .free_kib = 0, .can_page = false };
        cr_assert_eq(paging_plan(&cfg, &h, vm, 1, SEC(10), act, &sum), 0);
        cr_expect_not(act[0].start);
        cr_expect_eq(act[0].shortfall_kib, MIB(224));
        cr_expect_eq(sum.unfunded_kib, MIB(224));
}

Test(plan, a_small_shortfall_is_left_to_the_reserve) {
        restarting(0, 160);
        plan(1, 224 - 15, SEC(10));
        cr_expect_not(act[0].start);
        cr_expect_eq(sum.unfunded_kib, 0);
}

Test(plan, released_once_the_guest_reports_and_fits_in_its_grant) {
        restarting(0, 160);
        plan(1, 64, SEC(10)); /* grant 224 */
        cr_assert(act[0].start);
        paging_started(&st[0], &act[0], 0);

        /* Still booting: held. */
        vm[0].start = PAGING_START_NONE;
        plan(1, 0, SEC(11));
        cr_expect_not(act[0].release);

        /* Its balloon reports, but it still holds its startup: not yet. */
        vm[0].booting = false;
        vm[0].reporting = true;
        vm[0].assigned_kib = MIB(384);
        plan(1, 0, SEC(40));
        cr_expect_not(act[0].release);
        cr_expect(paging_in_use(&st[0]));

        /* Ballooned down to 200: fits its grant of 224. */
        vm[0].assigned_kib = MIB(200);
        plan(1, 0, SEC(50));
        cr_expect(act[0].release);
        cr_expect(act[0].lift_limits);
        cr_expect_eq(st[0].phase, PAGING_RELEASING);
        cr_expect(paging_in_use(&st[0]), "shows paging until the file is gone");
        plan(1, 0, SEC(51));
        cr_expect_not(act[0].release, "asked once");
        paging_released(&st[0], true, 0, SEC(53));
        cr_expect_eq(st[0].phase, PAGING_NONE);
        cr_expect_not(paging_in_use(&st[0]));
}

Test(plan, released_when_the_host_can_hold_what_it_has_even_above_its_grant) {
        restarting(0, 160);
        plan(1, 64, SEC(10)); /* grant 224 */
        vm[0] = (struct paging_vm){ .state = &st[0], .active = true, .managed = true, .dynamic = true, .reporting = true,
                                    .startup_kib = MIB(384), .minimum_kib = MIB(128), .assigned_kib = MIB(300),
                                    .held_kib = MIB(224) };
        plan(1, 50, SEC(60)); /* 76 of its 300 are not resident: more than the 50 free */
        cr_expect_not(act[0].release);
        plan(1, 80, SEC(61)); /* 76 <= 80: the host takes it all back */
        cr_expect(act[0].release);
}

Test(plan, a_file_is_switched_off_only_when_what_it_holds_fits) {
        restarting(0, 160);
        plan(1, 64, SEC(10)); /* grant 224 */
        vm[0] = (struct paging_vm){ .state = &st[0], .active = true, .managed = true, .dynamic = true, .reporting = true,
                                    .startup_kib = MIB(384), .minimum_kib = MIB(128), .assigned_kib = MIB(200),
                                    .held_kib = MIB(224), .file_used_kib = MIB(300) };
        /* Fits its grant, but its file holds 300 MiB (others' pages too: swap is host-wide). */
        plan(1, 250, SEC(60));
        cr_expect_not(act[0].release);
        plan(1, 300, SEC(61));
        cr_expect(act[0].release);

        /* Two in one tick: the second waits for room the first did not take. */
        setup();
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        for (int i = 0; i < 2; i++)
                vm[i] = (struct paging_vm){ .state = &st[i], .active = true, .managed = true, .dynamic = true,
                                            .reporting = true, .startup_kib = MIB(384), .minimum_kib = MIB(128),
                                            .assigned_kib = MIB(128), .held_kib = MIB(160),
                                            .file_used_kib = MIB(200) };
        plan(2, 1000, SEC(60));
        cr_expect(act[0].release);
        cr_expect_not(act[1].release, "one file is switched off at a time");
        plan(2, 1000, SEC(61));
        cr_expect_not(act[1].release, "the first is still being switched off");
        paging_released(&st[0], true, 0, SEC(62));
        plan(2, 1000, SEC(63));
        cr_expect(act[1].release);
}

Test(plan, a_stopped_vm_only_has_its_file_removed) {
        restarting(0, 160);
        plan(1, 0, SEC(10));
        vm[0].active = vm[0].managed = false;
        vm[0].start = PAGING_START_NONE;
        plan(1, 0, SEC(20));
        cr_expect(act[0].release);
        cr_expect_not(act[0].lift_limits, "its limits went with its QEMU");
}

Test(plan, a_stopped_vms_file_waits_for_room_and_its_turn) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        cr_assert(act[0].start && act[1].start);
        /* VM 0 stops; its file still holds 300 MiB of other VMs' pages: 100 free is too little. */
        vm[0].active = vm[0].managed = false;
        vm[0].start = vm[1].start = PAGING_START_NONE;
        vm[0].file_used_kib = MIB(300);
        vm[1].booting = false;
        vm[1].reporting = true;
        vm[1].assigned_kib = MIB(128);
        vm[1].file_used_kib = MIB(10);
        plan(2, 100, SEC(20));
        cr_expect_not(act[0].release, "300 MiB would come back into 100 free");
        cr_expect_eq(st[0].phase, PAGING_RELEASING, "shown as releasing while it waits");
        cr_expect_not(act[1].release, "VM 1's own file fits, but not all the files hold");
        plan(2, 400, SEC(21));
        cr_expect(act[0].release, "it waited longest");
        cr_expect_not(act[0].lift_limits);
        cr_expect_not(act[1].release, "one at a time");
        plan(2, 1000, SEC(22));
        cr_expect_not(act[0].release, "asked once");
        cr_expect_not(act[1].release, "VM 0's file is still being switched off");
        paging_released(&st[0], true, 0, SEC(23));
        vm[0].file_used_kib = 0;
        plan(2, 1000, SEC(24));
        cr_expect(act[1].release);
}

/* VM 0 stopped while its file waits for room, then starts again cold on a short host: it cannot
 * page (its file's name is taken), so its shortfall shows as unfunded; while it boots, the
 * startup it fills is promised, not raised away to VM 1, which pages. */
Test(plan, a_cold_start_while_its_old_file_waits_is_counted_not_paged) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        cr_assert(act[0].start && act[1].start);
        vm[0].active = vm[0].managed = false;
        vm[0].start = vm[1].start = PAGING_START_NONE;
        vm[0].file_used_kib = MIB(300);
        plan(2, 100, SEC(20));
        cr_assert_eq(st[0].phase, PAGING_RELEASING, "waits: 300 MiB would come back into 100 free");

        running(0, 0);
        vm[0].start = PAGING_START_COLD;
        vm[0].booting = true;
        vm[0].reporting = false;
        vm[0].file_used_kib = MIB(300);
        cfg.smart_paging = CONFIG_PAGING_ALWAYS;
        plan(2, 100, SEC(30));
        cr_expect_not(act[0].start, "one file per VM: the old one is still on");
        cr_expect_eq(sum.unfunded_kib, MIB(384 - 100), "its startup less the 100 MiB free");

        /* Still booting next tick: its 384 MiB startup is promised, so 200 MiB free raise nothing. */
        vm[0].start = PAGING_START_NONE;
        vm[0].held_kib = MIB(100);
        plan(2, 200, SEC(31));
        cr_expect_not(act[1].raise, "the boot's startup is promised first");
        cr_expect_not(act[0].release);
}

Test(plan, a_release_waits_until_everything_the_files_hold_fits) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        for (int i = 0; i < 2; i++) {
                booted(i, 128);
        }
        /* VM 1 has come down and its file holds 20 MiB; VM 0's holds 300 (a guest still using
         * them, pages it takes back from any file once its limit is lifted). */
        vm[0].assigned_kib = MIB(384);
        vm[0].file_used_kib = MIB(300);
        vm[1].file_used_kib = MIB(20);
        plan(2, 200, SEC(60));
        cr_expect_not(act[1].release, "320 MiB out, 200 free");
        plan(2, 320, SEC(61));
        cr_expect(act[1].release);
}

Test(plan, what_a_release_is_let_go_on_is_not_raised_away_in_the_same_tick) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10)); /* both page, grant 160 */
        /* VM 0 has come down (its file 50 MiB); VM 1's boot is over but its balloon has not
         * reported since (so it is not released, and a boot still paging out would hold VM 0's
         * file back), its file holding 300 (much of it VM 0's pages: the first file on takes
         * most). 400 free. */
        vm[0].start = vm[1].start = PAGING_START_NONE;
        vm[0].booting = vm[1].booting = false;
        vm[0].reporting = true;
        vm[0].assigned_kib = MIB(128);
        vm[0].file_used_kib = MIB(50);
        vm[1].file_used_kib = MIB(300);
        plan(2, 400, SEC(60));
        cr_expect(act[0].release, "350 out, 400 free");
        cr_expect_not(act[1].raise, "only 50 left once what is out is kept back");
        /* While VM 0's file is being switched off, nothing is raised either. */
        plan(2, 1000, SEC(61));
        cr_expect_not(act[1].raise);
        paging_released(&st[0], true, 0, SEC(62));
        plan(2, 1000, SEC(63));
        cr_expect(act[1].raise);
}

Test(plan, a_vm_no_longer_managed_is_released_once_the_files_fit) {
        restarting(0, 160);
        plan(1, 0, SEC(10));
        cr_assert(act[0].start);
        /* Its policy is removed while it still boots: never sampled again. */
        vm[0].start = PAGING_START_NONE;
        vm[0].managed = false;
        vm[0].file_used_kib = MIB(100);
        plan(1, 50, SEC(20));
        cr_expect_not(act[0].release, "100 MiB out, 50 free");
        plan(1, 250, SEC(21)); /* and the 224 its file was counted to back */
        cr_expect(act[0].release, "booting for good as far as tide knows, but not limited for good");
        cr_expect(act[0].lift_limits);
}

/* Six paging VMs ballooned down after a storm, their grants raised to their startup: the grants
 * are no longer promises (the storm here kept every file on with them counted). */
Test(plan, a_booted_vms_grant_is_no_longer_promised) {
        cfg.qemu_overhead_kib = MIB(256);
        for (size_t i = 0; i < N; i++) {
                restarting(i, 160);
                vm[i].managed = vm[i].active = true;
        }
        plan(N, 0, SEC(10));
        for (size_t i = 0; i < N; i++) {
                cr_assert(act[i].start);
                st[i].grant_kib = MIB(384);
                booted(i, 128);
                vm[i].file_used_kib = MIB(20);
        }
        plan(N, 200, SEC(60)); /* 120 out, 200 free */
        size_t released = 0;
        for (size_t i = 0; i < N; i++)
                released += act[i].release;
        cr_expect_eq(released, 1);
}

Test(plan, the_file_holding_least_goes_first) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        for (int i = 0; i < 2; i++) {
                booted(i, 128);
        }
        vm[0].file_used_kib = MIB(200);
        vm[1].file_used_kib = MIB(50);
        plan(2, 1000, SEC(60));
        cr_expect_not(act[0].release);
        cr_expect(act[1].release);
}

Test(plan, pages_already_back_in_ram_are_not_counted_twice) {
        restarting(0, 160);
        plan(1, 0, SEC(10));
        cr_assert(act[0].start);
        booted(0, 128);
        vm[0].file_used_kib = MIB(240);
        /* The storm here: its file shows 240 MiB used, 56 of them swapped back in and still kept
         * there; 184 out, 234 free. */
        struct paging_host h = { .free_kib = MIB(234), .can_page = true, .swap_known = true,
                                 .swapped_kib = MIB(184) };
        cr_assert_eq(paging_plan(&cfg, &h, vm, 1, SEC(60), act, &sum), 0);
        cr_expect(act[0].release);
        /* None of it back in RAM: the file's use is all that counts. */
        setup();
        restarting(0, 160);
        plan(1, 0, SEC(10));
        booted(0, 128);
        vm[0].file_used_kib = MIB(240);
        plan(1, 234, SEC(60));
        cr_expect_not(act[0].release);
}

/* The storm's step 3 here: files went one a tick while guest 3 still paged; switching off the
 * fifth, the last other file full, failed with ENOMEM and guest 3's QEMU was OOM-killed: its
 * pages in that file could not come back under its limit, nor go anywhere else. */
Test(plan, a_file_waits_for_swap_room_while_another_vm_is_under_its_limit) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        cr_assert(act[0].start && act[1].start);
        uint64_t file0 = st[0].file_kib;
        booted(0, 128);
        vm[0].file_used_kib = MIB(100);
        vm[1].booting = true; /* still booting: paging, under its limit */
        vm[1].reporting = false;
        plan(2, 1000, SEC(60));
        cr_expect(act[0].lift_limits, "it has come down: its limits go");
        cr_expect_not(act[0].release, "a boot under its limit still pages out, into any file's room");
        cr_expect_eq(st[0].phase, PAGING_RELEASING);
        paging_lifted(&st[0], 0, SEC(60));
        cr_expect(st[0].lifted);
        /* Its boot over, its balloon not reporting yet: under its limit, not released. */
        vm[1].booting = false;
        swap_free_mib = file0 / KIB_PER_MIB - 1; /* the other file's room cannot take all of it */
        plan(2, 1000, SEC(61));
        cr_expect_not(act[0].release || act[0].lift_limits, "its file may hold the limited VM's pages, with "
                                                            "nowhere to go");
        cr_expect_not(act[1].release || act[1].lift_limits);

        /* Room enough for all the file holds: it goes, its limits already off. */
        swap_free_mib = file0 / KIB_PER_MIB;
        plan(2, 1000, SEC(62));
        cr_expect(act[0].release);
        cr_expect_not(act[0].lift_limits);
        paging_released(&st[0], true, 0, SEC(63));
        cr_expect_eq(st[0].phase, PAGING_NONE);
}

Test(plan, with_no_vm_left_under_a_limit_the_files_go_without_swap_room) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        for (int i = 0; i < 2; i++) {
                booted(i, 128);
                vm[i].file_used_kib = MIB(100);
        }
        vm[1].booting = true;
        vm[1].reporting = false;
        swap_free_mib = 0;
        plan(2, 1000, SEC(60));
        cr_assert(act[0].lift_limits && !act[0].release);
        paging_lifted(&st[0], 0, SEC(60));
        /* The other comes down. The waiting file still may not go while it is limited; its
         * own may: the only VM left under a limit is itself, lifted before its file goes. */
        booted(1, 128);
        plan(2, 1000, SEC(70));
        cr_expect_not(act[0].release, "one file at a time, and the other still limited");
        cr_expect(act[1].release && act[1].lift_limits);
        paging_released(&st[1], true, 0, SEC(71));
        plan(2, 1000, SEC(72));
        cr_expect(act[0].release, "no VM under a limit: it goes without swap room");
        cr_expect_not(act[0].lift_limits, "already lifted");
}

Test(plan, free_swap_not_known_waits_for_the_limited_vms) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        booted(0, 128);
        vm[0].file_used_kib = MIB(100);
        struct paging_host h = { .free_kib = MIB(1000), .can_page = true };
        cr_assert_eq(paging_plan(&cfg, &h, vm, 2, SEC(60), act, &sum), 0);
        cr_expect(act[0].lift_limits);
        cr_expect_not(act[0].release);
}

/* Two VMs paging since 10 s, VM 0 come down at 60 s and lifted only (no swap room while VM 1
 * is limited); the lift's outcome `lifted` (0 or -errno). */
static void two_paging_first_lifted(int lifted) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        booted(0, 128);
        swap_free_mib = 0;
        plan(2, 1000, SEC(60));
        cr_assert(act[0].lift_limits && !act[0].release);
        paging_lifted(&st[0], lifted, SEC(60));
}

Test(plan, a_failed_lift_is_asked_again_as_a_whole_release) {
        two_paging_first_lifted(-EIO);
        cr_expect_not(st[0].lifted);
        cr_expect_eq(st[0].fail_errno, EIO);
        booted(1, 128);
        plan(2, 1000, SEC(61));
        cr_expect_not(act[0].lift_limits || act[0].release, "asked again only after the retry time");
        /* Its limit is still on: the other, come down, is lifted only. */
        cr_assert(act[1].lift_limits && !act[1].release);
        paging_lifted(&st[1], 0, SEC(61));
        plan(2, 1000, SEC(60) + PAGING_RETRY_USEC);
        cr_expect(act[0].release && act[0].lift_limits, "lifted, then switched off");
        cr_expect_not(act[1].release, "one at a time");
}

/* Two lifts failed (libvirt away) while neither file could go: each counts the other as limited,
 * so each is lifted again on its own as soon as it is due, not only with its file. */
Test(plan, two_failed_lifts_do_not_wait_on_each_other) {
        restarting(0, 160);
        restarting(1, 160);
        plan(2, 0, SEC(10));
        booted(0, 128);
        booted(1, 128);
        swap_free_mib = 0;
        plan(2, 1000, SEC(60));
        size_t first = act[0].lift_limits ? 0 : 1;
        cr_assert(act[first].lift_limits && !act[first].release);
        paging_lifted(&st[first], -ENOTCONN, SEC(60));
        plan(2, 1000, SEC(61));
        size_t second = 1 - first;
        cr_assert(act[second].lift_limits && !act[second].release, "the other still limited: lifted only");
        paging_lifted(&st[second], -ENOTCONN, SEC(61));
        /* Both due again: each lifted on its own, the files still held. */
        plan(2, 1000, SEC(61) + PAGING_RETRY_USEC);
        cr_expect(act[0].lift_limits && act[1].lift_limits);
        cr_expect_not(act[0].release || act[1].release);
        paging_lifted(&st[0], 0, SEC(92));
        paging_lifted(&st[1], 0, SEC(92));
        plan(2, 1000, SEC(93));
        cr_expect(act[0].release != act[1].release, "nobody limited: one file goes, then the other");
}

Test(plan, a_lifted_vm_waiting_for_swap_room_that_reboots_is_funded_and_one_that_stops_is_unlimited) {
        two_paging_first_lifted(0);
        /* It reboots: under no limit, it fills its startup like an unpaged boot; its file, still
         * waiting, keeps it from paging. */
        restarting(0, 128);
        plan(2, 100, SEC(70));
        cr_expect(act[0].start_seen, "funded");
        cr_expect_not(act[0].start);
        cr_expect_gt(act[0].shortfall_kib, 0);
        cr_expect_gt(sum.unfunded_kib, 0, "what no RAM covers shows as unfunded");
        cr_expect_eq(st[0].phase, PAGING_RELEASING);
        /* A VM whose lift failed and that stopped: its limits went with its QEMU. */
        paging_released(&st[1], false, -EIO, SEC(70));
        st[1].phase = PAGING_RELEASING;
        vm[1].active = vm[1].managed = false;
        vm[0].start = PAGING_START_NONE;
        plan(2, 100, SEC(71));
        cr_expect(st[1].lifted);
}

Test(plan, qemus_overhead_is_not_counted_twice_in_what_comes_back) {
        cfg.qemu_overhead_kib = MIB(256);
        restarting(0, 160);
        plan(1, 0, SEC(10));
        cr_assert(act[0].start);
        st[0].grant_kib = MIB(16); /* hard limit 272 MiB */
        booted(0, 128);
        vm[0].held_kib = MIB(150);
        vm[0].file_used_kib = MIB(80);
        /* On disk as the engine counts it: 128 - 16 = 112, in 120 free. Assigned + overhead - RSS
         * (234) would hold it for good though its QEMU holds its own memory resident already. */
        plan(1, 120, SEC(60));
        cr_expect(act[0].release);
        /* With 112 on disk and 100 free it stays. */
        setup();
        cfg.qemu_overhead_kib = MIB(256);
        restarting(0, 160);
        plan(1, 0, SEC(10));
        st[0].grant_kib = MIB(16);
        booted(0, 128);
        vm[0].held_kib = MIB(172);
        vm[0].file_used_kib = MIB(80);
        plan(1, 100, SEC(60));
        cr_expect_not(act[0].release);
}

Test(plan, freed_memory_raises_the_grant_in_steps_worth_a_call) {
        restarting(0, 160);
        plan(1, 0, SEC(10)); /* grant 160, 224 paged */
        cr_assert_eq(st[0].grant_kib, MIB(160));
        vm[0].start = PAGING_START_NONE;
        plan(1, 40, SEC(11));
        cr_expect_not(act[0].raise, "40 MiB is below a step worth a limit change");
        plan(1, 100, SEC(12));
        cr_assert(act[0].raise);
        cr_expect_eq(act[0].grant_kib, MIB(260));
        cr_expect_eq(act[0].hard_limit_kib, MIB(260) + cfg.qemu_overhead_kib);
        cr_expect_eq(act[0].swap_hard_limit_kib, UINT64_MAX, "memory + swap unbounded");
        cr_expect_eq(st[0].grant_kib, MIB(160), "only a raise carried out moves the grant");
        paging_started(&st[0], &act[0], 0);
        cr_expect_eq(st[0].grant_kib, MIB(260));
        vm[0].held_kib = MIB(260); /* it filled its grant */
        plan(1, 100, SEC(13));
        cr_assert(act[0].raise);
        paging_started(&st[0], &act[0], 0);
        cr_expect_eq(st[0].grant_kib, MIB(360));
        /* The last 24 MiB come whole even below the step: the limit then covers its startup. */
        vm[0].held_kib = MIB(360);
        plan(1, 24, SEC(14));
        cr_expect(act[0].raise);
        cr_expect_eq(act[0].grant_kib, MIB(384));
}

Test(plan, what_counts_as_on_disk_is_at_most_the_file) {
        restarting(0, 160);
        plan(1, 64, SEC(10)); /* grant 224, file 160 + 32 */
        cr_expect_eq(sum.on_disk_kib, MIB(160), "booting: startup beyond the grant");
        vm[0].start = PAGING_START_NONE;
        vm[0].booting = false;
        vm[0].reporting = true;
        vm[0].assigned_kib = MIB(600); /* grown past its startup */
        vm[0].held_kib = MIB(224);
        plan(1, 0, SEC(40));
        cr_expect_eq(sum.on_disk_kib, MIB(192), "no more than its file");
}

Test(plan, a_paging_vm_stopped_and_started_between_ticks_gives_its_file_up) {
        restarting(0, 160);
        plan(1, 64, SEC(10));
        vm[0].start = PAGING_START_COLD; /* a new QEMU: the old limits are gone */
        plan(1, 64, SEC(20));
        cr_expect(act[0].release);
        cr_expect_not(act[0].lift_limits);
}

Test(plan, a_retried_release_waits_its_turn_and_for_room) {
        for (int i = 0; i < 2; i++)
                restarting(i, 160);
        plan(2, 0, SEC(10));
        for (int i = 0; i < 2; i++)
                vm[i] = (struct paging_vm){ .state = &st[i], .active = true, .managed = true, .dynamic = true,
                                            .reporting = true, .startup_kib = MIB(384), .minimum_kib = MIB(128),
                                            .assigned_kib = MIB(128), .held_kib = MIB(160), .file_used_kib = MIB(50) };
        plan(2, 1000, SEC(60));
        cr_assert(act[0].release);
        paging_released(&st[0], true, -ENOMEM, SEC(61)); /* swapoff failed: retry in 30 s */
        plan(2, 1000, SEC(62));
        cr_assert(act[1].release, "the failed one no longer holds the turn");
        plan(2, 1000, SEC(61) + PAGING_RETRY_USEC);
        cr_expect_not(act[0].release, "the second is being switched off: the retry waits");
        paging_released(&st[1], true, 0, SEC(100));
        vm[0].file_used_kib = MIB(2000);
        plan(2, 1000, SEC(101));
        cr_expect_not(act[0].release, "its file holds more than is free");
        vm[0].file_used_kib = MIB(50);
        plan(2, 1000, SEC(102));
        cr_expect(act[0].release);
}

Test(plan, a_failed_boot_still_takes_its_startup) {
        restarting(0, 160);
        plan(1, 0, SEC(10));
        paging_started(&st[0], &act[0], -ENOSPC);
        vm[0].start = PAGING_START_NONE;
        restarting(1, 160);
        vm[0].start = PAGING_START_NONE;
        plan(2, 300, SEC(11)); /* 300 free, but 224 of them the failed boot fills: 76 left */
        cr_expect(act[1].start);
        cr_expect_eq(act[1].shortfall_kib, MIB(148));
}

Test(plan, a_failed_start_boots_unprotected_and_ends_with_its_boot) {
        restarting(0, 160);
        plan(1, 0, SEC(10));
        paging_started(&st[0], &act[0], -ENOSPC);
        cr_expect_eq(st[0].phase, PAGING_FAILED);
        cr_expect_eq(st[0].fail_errno, ENOSPC);
        cr_expect_not(paging_in_use(&st[0]));
        vm[0].start = PAGING_START_NONE;
        plan(1, 0, SEC(11));
        cr_expect_eq(sum.unfunded_kib, MIB(224), "still booting: the host is overcommitted");
        cr_expect_eq(sum.files, 0);
        vm[0].booting = false;
        plan(1, 0, SEC(60));
        cr_expect_eq(st[0].phase, PAGING_NONE);
        cr_expect_eq(sum.unfunded_kib, 0);
}

Test(plan, a_failed_release_is_asked_again_later) {
        restarting(0, 160);
        plan(1, 64, SEC(10));
        booted(0, 160);
        plan(1, 0, SEC(40));
        cr_assert(act[0].release);
        paging_released(&st[0], true, -ENOMEM, SEC(41)); /* limits off, swapoff failed */
        plan(1, 0, SEC(42));
        cr_expect_not(act[0].release);
        plan(1, 0, SEC(41) + PAGING_RETRY_USEC);
        cr_expect(act[0].release);
        cr_expect_not(act[0].lift_limits, "lifted already");
        cr_expect(paging_in_use(&st[0]));
}

Test(plan, paging_past_ten_minutes_is_reported_once) {
        restarting(0, 160);
        plan(1, 0, SEC(10));
        vm[0].start = PAGING_START_NONE;
        plan(1, 0, SEC(10) + PAGING_LONG_USEC - 1);
        cr_expect_not(act[0].warn_long);
        plan(1, 0, SEC(10) + PAGING_LONG_USEC);
        cr_expect(act[0].warn_long);
        plan(1, 0, SEC(11) + PAGING_LONG_USEC);
        cr_expect_not(act[0].warn_long);
}

Test(plan, an_adopted_file_is_released_once_the_vm_fits_and_its_limit_is_left_alone) {
        running(0, 300);
        paging_adopt(&st[0], MIB(256), 0, 0, SEC(5));
        cr_expect(paging_in_use(&st[0]));
        vm[0].file_used_kib = MIB(250);
        plan(1, 200, SEC(6));
        cr_expect_not(act[0].raise, "grant unknown: no limit is invented");
        cr_expect_not(act[0].release, "its file holds 250 MiB, 200 free");
        plan(1, 300, SEC(7));
        cr_expect(act[0].release);
        cr_expect(act[0].lift_limits);
}

Test(plan, an_adopted_file_with_its_record_is_raised_as_memory_frees) {
        restarting(0, 160);
        vm[0].start = PAGING_START_NONE; /* tided restarted mid-boot: no start seen */
        paging_adopt(&st[0], MIB(256), MIB(200), MIB(384), SEC(5));
        plan(1, 200, SEC(6));
        /* 184 short of its startup; 200 free less the 40 of its grant it has not taken yet. */
        cr_expect(act[0].raise);
        cr_expect_eq(act[0].grant_kib, MIB(360));
        /* Without a grant the startup is not kept: nothing to raise from. */
        paging_adopt(&st[1], MIB(256), 0, MIB(384), SEC(5));
        cr_expect_eq(st[1].startup_kib, 0);
}

Test(plan, an_adopted_file_of_a_stopped_domain_goes_when_it_fits) {
        paging_adopt(&st[0], MIB(256), 0, 0, SEC(5));
        vm[0].file_used_kib = MIB(250);
        plan(1, 200, SEC(6));
        cr_expect_not(act[0].release);
        cr_expect_eq(st[0].phase, PAGING_RELEASING);
        plan(1, 300, SEC(7));
        cr_expect(act[0].release);
        cr_expect_not(act[0].lift_limits, "no QEMU, no limits");
}

Test(plan, bad_arguments) {
        struct paging_host h = { 0 };
        cr_expect_eq(paging_plan(NULL, &h, vm, 1, 0, act, NULL), -EINVAL);
        cr_expect_eq(paging_plan(&cfg, NULL, vm, 1, 0, act, NULL), -EINVAL);
        cr_expect_eq(paging_plan(&cfg, &h, NULL, 1, 0, act, NULL), -EINVAL);
        vm[0].state = NULL;
        cr_expect_eq(paging_plan(&cfg, &h, vm, 1, 0, act, NULL), -EINVAL);
        cr_expect_eq(paging_plan(&cfg, &h, NULL, 0, 0, NULL, NULL), 0);
        cr_expect_str_eq(paging_phase_to_string(PAGING_ACTIVE), "paging");
        cr_expect_null(paging_phase_to_string((enum paging_phase) 99));
}
