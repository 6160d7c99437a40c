/* The peers' rules (sim/peers.h) on hand-computed cases: every expected number is worked out in
 * the comment beside it from the rule in docs/SIMULATOR.md "The peers' rules". */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "sim/peers.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
/* Every case runs at t = 1000 s with a zero memo: each rule is due (1000 s since "never"). */
#define NOW SEC(1000)

/* A VM up for an hour, reporting, reachable up to its maximum, buffer 20 %, weight 50. */
static struct peer_vm vm(uint64_t min_mib, uint64_t max_mib, uint64_t assigned_mib, uint64_t used_mib) {
        return (struct peer_vm){
                .policy = { .startup_kib = MIB(assigned_mib), .minimum_kib = MIB(min_mib), .maximum_kib = MIB(max_mib),
                            .buffer_pct = 20, .weight = 50, .dynamic = true },
                .assigned_kib = MIB(assigned_mib),
                .reachable_kib = MIB(max_mib),
                .reporting = true,
                .uptime_usec = SEC(3600),
                .used_kib = MIB(used_mib),
                .committed_kib = MIB(used_mib),
                .demand_kib = MIB(used_mib),
        };
}

/* ---- names, periods, arguments ---- */

Test(peers, rule_names_round_trip_and_unknown_names_are_rejected) {
        for (unsigned r = 0; r < PEER_RULES; r++) {
                enum peer_rule back = PEER_RULES;
                const char *s = peer_rule_to_string((enum peer_rule) r);
                cr_assert_not_null(s);
                cr_assert_eq(peer_rule_from_string(s, &back), 0, "%s", s);
                cr_assert_eq(back, (enum peer_rule) r, "%s", s);
        }
        cr_assert_str_eq(peer_rule_to_string(PEER_HYPERV), "hyperv");
        cr_assert_str_eq(peer_rule_to_string(PEER_MOM), "mom");
        cr_assert_str_eq(peer_rule_to_string(PEER_PROXMOX), "proxmox");
        cr_assert_str_eq(peer_rule_to_string(PEER_STATIC), "static");
        cr_assert_str_eq(peer_rule_to_string(PEER_ORACLE), "oracle");
        cr_assert_str_eq(peer_rule_to_string(PEER_SWAP_ANYTIME), "swap-anytime");
        cr_assert_null(peer_rule_to_string(PEER_RULES));

        enum peer_rule untouched = PEER_ORACLE;
        cr_assert_eq(peer_rule_from_string("vmware", &untouched), -EINVAL);
        cr_assert_eq(peer_rule_from_string("HyperV", &untouched), -EINVAL);
        cr_assert_eq(peer_rule_from_string("", &untouched), -EINVAL);
        cr_assert_eq(peer_rule_from_string(NULL, &untouched), -EINVAL);
        cr_assert_eq(untouched, PEER_ORACLE, "no result on failure");
}

Test(peers, periods_are_a_second_for_hyperv_ten_for_mom_and_proxmox_every_tick_otherwise) {
        cr_assert_eq(peer_rule_period_usec(PEER_HYPERV), SEC(1));
        cr_assert_eq(peer_rule_period_usec(PEER_SWAP_ANYTIME), SEC(1));
        cr_assert_eq(peer_rule_period_usec(PEER_MOM), SEC(10));
        cr_assert_eq(peer_rule_period_usec(PEER_PROXMOX), SEC(10));
        cr_assert_eq(peer_rule_period_usec(PEER_STATIC), 0);
        cr_assert_eq(peer_rule_period_usec(PEER_ORACLE), 0);
}

Test(peers, bad_arguments_are_rejected) {
        struct peer_host h = { .total_kib = MIB(16384), .free_kib = MIB(8192) };
        struct peer_vm v = vm(512, 4096, 2048, 1000);
        uint64_t t;
        cr_assert_eq(peer_tick(PEER_RULES, &h, &v, 1, NOW, &t), -EINVAL);
        cr_assert_eq(peer_tick(PEER_MOM, &h, NULL, 1, NOW, &t), -EINVAL);
        cr_assert_eq(peer_tick(PEER_MOM, &h, &v, 1, NOW, NULL), -EINVAL);
        cr_assert_eq(peer_tick(PEER_MOM, NULL, &v, 1, NOW, &t), -EINVAL);
        struct peer_host empty = { 0 };
        cr_assert_eq(peer_tick(PEER_MOM, &empty, &v, 1, NOW, &t), -EINVAL);
        cr_assert_eq(peer_tick(PEER_PROXMOX, &h, NULL, 0, NOW, NULL), 0, "nothing to do is fine");
}

Test(peers, a_rule_acts_once_per_period_per_vm) {
        struct peer_host h = { .total_kib = MIB(16384), .free_kib = MIB(8192) };
        uint64_t t[2];

        /* Hyper-V, 1 s: a VM that acted 0.5 s ago waits; one that acted 1 s ago is sized. */
        struct peer_vm hv[2] = { vm(512, 4096, 2048, 1000), vm(512, 4096, 2048, 1000) };
        hv[0].memo.last_act_usec = NOW - 500 * USEC_PER_MSEC;
        hv[1].memo.last_act_usec = NOW - SEC(1);
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, hv, 2, NOW, t), 0);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_neq(t[1], PEER_NO_CHANGE);
        cr_assert_eq(hv[0].memo.last_act_usec, NOW - 500 * USEC_PER_MSEC, "not acted: unchanged");
        cr_assert_eq(hv[1].memo.last_act_usec, NOW);

        /* MOM, 10 s: 9.999 s after its last act a growing guest waits; at 10 s it grows. */
        struct peer_vm mom[2] = { vm(512, 4096, 2048, 1000), vm(512, 4096, 2048, 1000) };
        mom[0].memo.last_act_usec = NOW - SEC(10) + 1;
        mom[1].memo.last_act_usec = NOW - SEC(10);
        cr_assert_eq(peer_tick(PEER_MOM, &h, mom, 2, NOW, t), 0);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_neq(t[1], PEER_NO_CHANGE);
        cr_assert_eq(mom[0].memo.n, 1, "the collector samples on its own 5 s clock all the same");

        /* Proxmox, 10 s: same, with the host far below its 80 % target. */
        struct peer_host low = { .total_kib = MIB(10000), .free_kib = MIB(8000) };
        struct peer_vm pve[2] = { vm(1000, 2000, 1000, 1000), vm(1000, 2000, 1000, 1000) };
        pve[0].memo.last_act_usec = NOW - SEC(9);
        pve[1].memo.last_act_usec = NOW - SEC(10);
        cr_assert_eq(peer_tick(PEER_PROXMOX, &low, pve, 2, NOW, t), 0);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], MIB(1100), "1000 MiB + the 100 MiB a cycle allows");
}

/* ---- Hyper-V ---- */

Test(peers, hyperv_sizes_demand_plus_buffer_when_the_host_has_room) {
        struct peer_host h = { .total_kib = MIB(16384), .free_kib = MIB(14336), .reserve_kib = MIB(1024) };
        struct peer_vm v[3] = { vm(512, 4096, 2048, 1000), vm(512, 4096, 2048, 100), vm(512, 2500, 2048, 2000) };
        uint64_t t[3];
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, v, 3, NOW, t), 0);
        /* Linux floor at 2048 MiB: 232 + 2048/16 = 360 MiB; demand 1000 + 360 = 1360;
         * x 1.2 = 1360 + 272 = 1632 MiB. */
        cr_assert_eq(t[0], MIB(1632));
        /* 100 + 360 = 460; x 1.2 = 552 MiB, above the 512 MiB minimum. */
        cr_assert_eq(t[1], MIB(552));
        /* 2000 + 360 = 2360; x 1.2 = 2832 MiB, beyond the 2500 MiB maximum. */
        cr_assert_eq(t[2], MIB(2500));
}

Test(peers, hyperv_never_sizes_below_the_minimum) {
        struct peer_host h = { .total_kib = MIB(16384), .free_kib = MIB(14336), .reserve_kib = MIB(1024) };
        struct peer_vm v = vm(1024, 4096, 2048, 10);
        uint64_t t;
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, &v, 1, NOW, &t), 0);
        /* 10 + 360 = 370; x 1.2 = 444 MiB < 1024 MiB minimum. */
        cr_assert_eq(t, MIB(1024));
}

/* Three VMs of 1024 MiB each: Linux floor 104 + 1024/8 = 232 MiB, so demand = committed + 232. */
static void short_host_vms(struct peer_vm v[3]) {
        v[0] = vm(512, 4096, 1024, 1768); /* demand 2000, want 2400 */
        v[1] = vm(512, 4096, 1024, 1780); /* demand 2012, want 2414.4 */
        v[2] = vm(512, 4096, 1024, 780);  /* demand 1012, want 1214.4 */
        v[0].policy.weight = 80;
}

Test(peers, hyperv_short_host_gives_demand_by_priority_and_drops_the_buffer) {
        /* The VMs may hold 5048 - 1024 = 4024 MiB (held 3072 + free 1976 = 5048, no less). */
        struct peer_host h = { .total_kib = MIB(5048), .free_kib = MIB(1976), .reserve_kib = MIB(1024) };
        struct peer_vm v[3];
        uint64_t t[3];
        short_host_vms(v);
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, v, 3, NOW, t), 0);
        /* minimums 3 x 512 = 1536, 2488 left; weight 80 first: 2000 - 512 = 1488, 1000 left;
         * weight 50 needs 1500 + 500 = 2000 > 1000: shares in proportion, 750 and 250. */
        cr_assert_eq(t[0], MIB(2000), "demand in full, no buffer");
        cr_assert_eq(t[1], MIB(512 + 750));
        cr_assert_eq(t[2], MIB(512 + 250));
}

Test(peers, hyperv_short_host_keeps_the_buffer_of_the_higher_priority_first) {
        /* Two VMs of demand 2000 (want 2400): 4200 MiB for them, 200 MiB past both demands. */
        struct peer_host h = { .total_kib = MIB(5224), .free_kib = MIB(3176), .reserve_kib = MIB(1024) };
        struct peer_vm v[2] = { vm(512, 4096, 1024, 1768), vm(512, 4096, 1024, 1768) };
        uint64_t t[2];
        v[1].policy.weight = 80;
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, v, 2, NOW, t), 0);
        cr_assert_eq(t[0], MIB(2000));
        cr_assert_eq(t[1], MIB(2200), "2000 + the 200 MiB left of its 400 MiB buffer");
}

Test(peers, hyperv_short_host_never_goes_below_the_minimum) {
        /* 2048 - 1024 = 1024 MiB for three minimums of 512: each keeps its minimum anyway. */
        struct peer_host h = { .total_kib = MIB(2048), .free_kib = 0, .reserve_kib = MIB(1024) };
        struct peer_vm v[3];
        uint64_t t[3];
        short_host_vms(v);
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, v, 3, NOW, t), 0);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(t[i], MIB(512), "vm %d", i);
}

Test(peers, hyperv_leaves_a_vm_alone_while_it_boots_and_for_45_s_after) {
        struct peer_host h = { .total_kib = MIB(16384), .free_kib = MIB(14336), .reserve_kib = MIB(1024) };
        struct peer_vm v[3] = { vm(512, 4096, 2048, 100), vm(512, 4096, 2048, 100), vm(512, 4096, 2048, 100) };
        uint64_t t[3];
        v[0].reporting = false;
        v[0].uptime_usec = SEC(3);
        v[1].uptime_usec = SEC(44); /* hv_balloon has not posted a pressure report yet */
        v[2].uptime_usec = SEC(45);
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, v, 3, NOW, t), 0);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], PEER_NO_CHANGE, "no shrink during the post-boot quiet");
        cr_assert_eq(t[2], MIB(552), "(100 + 360) x 1.2");
}

Test(peers, hyperv_vms_left_alone_keep_their_memory_against_the_host) {
        /* 4024 MiB for the VMs; a booting one holds 2048 of them, leaving 1976 for the others. */
        struct peer_host h = { .total_kib = MIB(5048), .free_kib = MIB(952), .reserve_kib = MIB(1024) };
        struct peer_vm v[3];
        uint64_t t[3];
        short_host_vms(v);
        v[2] = vm(512, 4096, 2048, 100);
        v[2].reporting = false;
        cr_assert_eq(peer_tick(PEER_HYPERV, &h, v, 3, NOW, t), 0);
        /* 1976 - 2 x 512 = 952 after the minimums; weight 80 needs 1488, gets all 952. */
        cr_assert_eq(t[0], MIB(512 + 952));
        cr_assert_eq(t[1], MIB(512));
        cr_assert_eq(t[2], PEER_NO_CHANGE);
}

/* ---- oVirt MOM ---- */

/* Host of 16 GiB; a guest of 2048 MiB, minimum 512, maximum 4096, using `used` MiB. */
static struct peer_host mom_host(uint64_t free_mib) {
        return (struct peer_host){ .total_kib = MIB(16384), .free_kib = MIB(free_mib) };
}

static uint64_t mom_once(struct peer_host h, struct peer_vm v) {
        uint64_t t = 0;
        cr_assert_eq(peer_tick(PEER_MOM, &h, &v, 1, NOW, &t), 0);
        return t;
}

Test(peers, mom_grows_5_percent_a_step_without_pressure) {
        /* Host 50 % free. used 1000: used + 20 % x 2048 = 1409.6 < 2048 x 1.05 = 2150.4 MiB:
         * the step wins, 2097152 x 1.05 = 2202009.6 KiB, sent as int(). */
        cr_assert_eq(mom_once(mom_host(8192), vm(512, 4096, 2048, 1000)), 2202009);
        /* Near the maximum: 4000 x 1.05 = 4200 is capped at 4096 MiB. */
        cr_assert_eq(mom_once(mom_host(8192), vm(512, 4096, 4000, 1000)), MIB(4096));
        /* At the maximum there is nothing to do. */
        cr_assert_eq(mom_once(mom_host(8192), vm(512, 4096, 4096, 1000)), PEER_NO_CHANGE);
}

Test(peers, mom_grows_straight_to_used_plus_20_percent_when_that_is_more) {
        /* used 2000: 2000 + 0.2 x 2048 = 2409.6 MiB > 2150.4: 2048000 + 419430.4 KiB. */
        cr_assert_eq(mom_once(mom_host(8192), vm(512, 4096, 2048, 2000)), 2467430);
}

Test(peers, mom_counts_page_cache_as_used) {
        /* used 1400 + cache 400: MemFree = 2048 - 1800 = 248, "used" = 1800;
         * 1800 + 409.6 = 2209.6 MiB > 2150.4: 1843200 + 419430.4 KiB. Without the cache it would
         * be the 5 % step, 2202009. */
        struct peer_vm v = vm(512, 4096, 2048, 1400);
        v.cache_kib = MIB(400);
        cr_assert_eq(mom_once(mom_host(8192), v), 2262630);
}

Test(peers, mom_shrinks_under_pressure_5_percent_a_step) {
        /* Host free 1600/16384 = 0.09765625 < 0.20: guest free = 0.20 x (0.09765625 / 0.20);
         * used 1000 + 0.09765625 x 2048 = 1200 MiB < 2048 x 0.95 = 1945.6 MiB:
         * 2097152 x 0.95 = 1992294.4 KiB. */
        cr_assert_eq(mom_once(mom_host(1600), vm(512, 4096, 2048, 1000)), 1992294);
}

Test(peers, mom_shrinks_no_lower_than_used_plus_the_scaled_free_share) {
        /* balloon_cur 1150 MiB = 1177600 KiB: floor = 1000 MiB + 0.09765625 x 1177600
         * = 1024000 + 115000 = 1139000 KiB, above the 5 % step 1118720. */
        cr_assert_eq(mom_once(mom_host(1600), vm(512, 4096, 1150, 1000)), 1139000);
}

Test(peers, mom_critical_pressure_forces_the_guest_below_its_use) {
        /* Host free 512/16384 = 0.03125 <= 0.05: guest free = 0.03125 - 0.05 = -0.01875;
         * cur 1030 MiB = 1054720 KiB: floor = 1024000 - 0.01875 x 1054720 = 1004224 KiB,
         * above the step 1054720 x 0.95 = 1001984, and below the 1000 MiB in use. */
        cr_assert_eq(mom_once(mom_host(512), vm(512, 4096, 1030, 1000)), 1004224);
}

Test(peers, mom_never_shrinks_below_the_minimum) {
        /* used 200: 200 + 0.0977 x 520 = 250.8 < min 512; the step 520 x 0.95 = 494 < 512. */
        cr_assert_eq(mom_once(mom_host(1600), vm(512, 4096, 520, 200)), MIB(512));
        /* At the minimum: the target is balloon_cur itself, a change of 0. */
        cr_assert_eq(mom_once(mom_host(1600), vm(512, 4096, 512, 200)), PEER_NO_CHANGE);
}

Test(peers, mom_skips_changes_of_a_quarter_percent_or_less) {
        /* Grow capped at the maximum: 4090 -> 4096 is 6 MiB <= 0.25 % x 4090 = 10.2 MiB. */
        cr_assert_eq(mom_once(mom_host(8192), vm(512, 4096, 4090, 1000)), PEER_NO_CHANGE);
        /* Shrink to the floor: used 1845 + 0.09765625 x 2048 = 2045 MiB, 3 MiB <= 5.12 MiB. */
        cr_assert_eq(mom_once(mom_host(1600), vm(512, 4096, 2048, 1845)), PEER_NO_CHANGE);
        /* The same with used 1835: floor 2035, 13 MiB > 5.12: acted on. */
        cr_assert_eq(mom_once(mom_host(1600), vm(512, 4096, 2048, 1835)), MIB(2035));
}

Test(peers, mom_does_not_balloon_a_guest_without_stats) {
        struct peer_host h = mom_host(1600);
        struct peer_vm v = vm(512, 4096, 2048, 100);
        uint64_t t = 0;
        v.reporting = false;
        cr_assert_eq(peer_tick(PEER_MOM, &h, &v, 1, NOW, &t), 0);
        cr_assert_eq(t, PEER_NO_CHANGE);
        cr_assert_eq(v.memo.n, 0, "no sample either");
}

Test(peers, mom_averages_the_last_10_samples_taken_every_5_s) {
        struct peer_host h = mom_host(8192);
        struct peer_vm v = vm(512, 4096, 2048, 0);
        uint64_t t = 0;
        /* Samples at 0, 5, ..., 50 s: used 100, then 5 x 1500, then 5 x 2000. The 11th pushes the
         * first out. Ticks between samples (every second) add nothing. */
        for (unsigned s = 0; s <= 50; s++) {
                unsigned k = s / 5;
                v.used_kib = MIB(k == 0 ? 100 : k <= 5 ? 1500 : 2000);
                cr_assert_eq(peer_tick(PEER_MOM, &h, &v, 1, NOW + SEC(s), &t), 0);
        }
        cr_assert_eq(v.memo.n, 10);
        /* The last tick (50 s) is a policy tick (acted at 0, 10, ..., 50 s). Average used
         * (5 x 1500 + 5 x 2000) / 10 = 1750 MiB: 1750 + 409.6 = 2159.6 MiB > 2150.4:
         * 1792000 + 419430.4 KiB. The latest sample alone would give 2467430; all 11 (average
         * 1600) the 5 % step, 2202009. */
        cr_assert_eq(t, 2211430);
        cr_assert_eq(v.memo.last_act_usec, NOW + SEC(50));
        cr_assert_eq(v.memo.last_sample_usec, NOW + SEC(50));
}

Test(peers, mom_averages_the_host_free_memory_too) {
        struct peer_host h = mom_host(8192);
        struct peer_vm v = vm(512, 4096, 2048, 1000);
        uint64_t t = 0;
        /* Nine samples with the host 50 % free, then one at 10 %: the average, 46 %, is no
         * pressure, so the guest grows (2202009 as above) rather than shrinks. */
        for (unsigned k = 0; k < 10; k++) {
                h.free_kib = MIB(k < 9 ? 8192 : 1638);
                cr_assert_eq(peer_tick(PEER_MOM, &h, &v, 1, NOW + SEC(5 * k), &t), 0);
        }
        cr_assert_eq(v.memo.n, 10);
        cr_assert_eq(t, PEER_NO_CHANGE, "45 s is not a policy tick (acted at 40 s)");
        v.memo.last_act_usec = 0;
        cr_assert_eq(peer_tick(PEER_MOM, &h, &v, 1, NOW + SEC(47), &t), 0);
        cr_assert_eq(t, 2202009);
}

/* ---- Proxmox VE ---- */

/* A 10000 MiB host whose goal (80 % target - used) is goal_kib: used = 8192000 KiB - goal. */
static struct peer_host pve_host(int64_t goal_kib) {
        return (struct peer_host){ .total_kib = MIB(10000), .free_kib = (uint64_t) (MIB(2000) + goal_kib) };
}

/* balloontest.pl's test_status1: two VMs at their 1000 MiB minimum, maximum 2000, no free
 * memory; shares 2000 (weight 100) and 1000 (weight 50). */
static void pve_status1(struct peer_vm v[2]) {
        v[0] = vm(1000, 2000, 1000, 1000);
        v[1] = vm(1000, 2000, 1000, 1000);
        v[0].policy.weight = 100;
}

/* One pvestatd cycle: every VM due (what the last call did is forgotten, what it saw is not). */
static void pve_run(int64_t goal_kib, struct peer_vm *v, size_t n, uint64_t *t) {
        struct peer_host h = pve_host(goal_kib);
        for (size_t i = 0; i < n; i++)
                v[i].memo.last_act_usec = 0;
        cr_assert_eq(peer_tick(PEER_PROXMOX, &h, v, n, NOW, t), 0);
}

Test(peers, proxmox_gives_in_proportion_to_shares) {
        struct peer_vm v[2];
        uint64_t t[2];
        pve_status1(v);
        /* goal 90 MiB, shares 2000 + 1000: 90 x 2/3 = 60, 90 x 1/3 = 30. */
        pve_run(MIB(90), v, 2, t);
        cr_assert_eq(t[0], MIB(1060));
        cr_assert_eq(t[1], MIB(1030));
}

Test(peers, proxmox_moves_a_vm_at_most_100_mib_a_cycle) {
        struct peer_vm v[2];
        uint64_t t[2];
        pve_status1(v);
        /* goal 150: desired 1100 and 1050; the first is exactly the 100 MiB step. */
        pve_run(MIB(150), v, 2, t);
        cr_assert_eq(t[0], MIB(1100));
        cr_assert_eq(t[1], MIB(1050));
        /* goal 270: desired 1180 and 1090; the first stops at 1100, and the second round cannot
         * move it (the step counts from the cycle's start): 80 MiB stay ungiven. */
        pve_status1(v);
        pve_run(MIB(270), v, 2, t);
        cr_assert_eq(t[0], MIB(1100));
        cr_assert_eq(t[1], MIB(1090));
}

Test(peers, proxmox_does_nothing_within_10_mib_of_its_target) {
        struct peer_vm v[2];
        uint64_t t[2];
        pve_status1(v);
        pve_run(MIB(10), v, 2, t);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], PEER_NO_CHANGE);
        pve_status1(v);
        pve_run(-(int64_t) MIB(10), v, 2, t);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], PEER_NO_CHANGE);
        /* One KiB past the deadband it acts: 10241 KiB x 2/3 = 6827.3 -> 6827, x 1/3 -> 3413. */
        pve_status1(v);
        pve_run(MIB(10) + 1, v, 2, t);
        cr_assert_eq(t[0], MIB(1000) + 6827);
        cr_assert_eq(t[1], MIB(1000) + 3413);
}

Test(peers, proxmox_keeps_each_vm_within_its_minimum_and_maximum) {
        /* balloontest.pl's test_status2: a VM pinned at min = max = 2000 (shares 2000) and one at
         * its 1000 minimum (shares 1000). */
        struct peer_vm v[2] = { vm(2000, 2000, 2000, 2000), vm(1000, 2000, 1000, 1000) };
        uint64_t t[2];
        v[0].policy.weight = 100;
        /* goal 18: the pinned VM's desired 2000 + 12 is clamped to 2000 (done), the other gets
         * 6, then the whole 18 in the second round. */
        pve_run(MIB(18), v, 2, t);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], MIB(1018));
        /* goal 500: 1100 at most this cycle. */
        pve_run(MIB(500), v, 2, t);
        cr_assert_eq(t[1], MIB(1100));
        /* Shrinking never goes below the minimum: goal -1500 with 300 above the minimum: desired
         * 1000 + (300 - 1500) is clamped to the minimum 1000, and 100 MiB a cycle gives 1200. */
        struct peer_vm w = vm(1000, 2000, 1300, 1300);
        pve_run(-(int64_t) MIB(1500), &w, 1, t);
        cr_assert_eq(t[0], MIB(1200));
        /* 50 above the minimum: 1000, not 950. */
        w = vm(1000, 2000, 1050, 1050);
        pve_run(-(int64_t) MIB(1500), &w, 1, t);
        cr_assert_eq(t[0], MIB(1000));
}

Test(peers, proxmox_takes_from_vms_with_free_memory_first) {
        /* Both 1300 MiB over a 1000 minimum; the first has 512 MiB free (> 1000 / 4), the other
         * none. goal -200: the first alone: desired 1000 + (300 - 200) = 1100, but 100 MiB a
         * cycle: 1200; 100 MiB stay untaken, and the other is not touched. */
        struct peer_vm v[2] = { vm(1000, 2000, 1300, 788), vm(1000, 2000, 1300, 1300) };
        uint64_t t[2];
        pve_run(-(int64_t) MIB(200), v, 2, t);
        cr_assert_eq(t[0], MIB(1200));
        cr_assert_eq(t[1], PEER_NO_CHANGE);
        /* Nobody with free memory: everyone, (600 - 200) / 2 = 200 above the minimum each. */
        v[0] = vm(1000, 2000, 1300, 1300);
        pve_run(-(int64_t) MIB(200), v, 2, t);
        cr_assert_eq(t[0], MIB(1200));
        cr_assert_eq(t[1], MIB(1200));
}

Test(peers, proxmox_gives_to_vms_with_pressure_first) {
        /* goal 60: the VM without free memory (pressure) takes it all, 1000 + 60; the one with
         * 512 MiB free is only considered when the first could not move. */
        struct peer_vm v[2] = { vm(1000, 2000, 1000, 488), vm(1000, 2000, 1000, 1000) };
        uint64_t t[2];
        pve_run(MIB(60), v, 2, t);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], MIB(1060));
}

Test(peers, proxmox_gives_to_everyone_when_no_vm_has_pressure) {
        /* Both have 512 MiB free: the pressure list is empty, nothing moves, so compute_alg1
         * falls back to all VMs: goal 60, equal shares, 30 each. */
        struct peer_vm v[2] = { vm(1000, 2000, 1000, 488), vm(1000, 2000, 1000, 488) };
        uint64_t t[2];
        pve_run(MIB(60), v, 2, t);
        cr_assert_eq(t[0], MIB(1030));
        cr_assert_eq(t[1], MIB(1030));
}

Test(peers, proxmox_sets_a_vm_it_sees_start_to_its_minimum) {
        /* qemu-server vm_start sets the balloon to `balloon` (the minimum) as the VM starts. */
        struct peer_vm v[2] = { vm(1000, 2000, 2000, 100), vm(1000, 2000, 2000, 100) };
        uint64_t t[2];
        v[0].reporting = false;
        v[0].uptime_usec = SEC(1);
        pve_run(MIB(5), v, 2, t);
        cr_assert_eq(t[0], MIB(1000));
        cr_assert_eq(t[1], PEER_NO_CHANGE, "up for an hour: it started before we looked");
        cr_assert(v[0].memo.seen);
        cr_assert_eq(v[0].memo.uptime_usec, SEC(1));
        /* A restart (uptime back to 2 s) does it again. */
        v[1].uptime_usec = SEC(2);
        pve_run(MIB(5), v, 2, t);
        cr_assert_eq(t[1], MIB(1000));
}

Test(peers, proxmox_leaves_a_vm_without_a_balloon_minimum_or_shares_alone) {
        struct peer_vm v[3] = { vm(1000, 2000, 1000, 1000), vm(1000, 2000, 1000, 1000), vm(1000, 2000, 1000, 1000) };
        uint64_t t[3];
        v[0].policy.dynamic = false;
        v[1].policy.weight = 0; /* shares 0: "disables auto-ballooning" */
        pve_run(MIB(90), v, 3, t);
        cr_assert_eq(t[0], PEER_NO_CHANGE);
        cr_assert_eq(t[1], PEER_NO_CHANGE);
        cr_assert_eq(t[2], MIB(1090), "the one left gets all 90");
}

/* ---- static and the oracle ---- */

Test(peers, static_holds_startup_memory_within_reach) {
        struct peer_host h = { .total_kib = MIB(1024), .free_kib = 0 };
        struct peer_vm v[2] = { vm(512, 4096, 700, 3000), vm(512, 4096, 700, 10) };
        uint64_t t[2];
        v[0].policy.startup_kib = MIB(2048);
        v[0].reporting = false;
        v[1].policy.startup_kib = MIB(2048);
        v[1].reachable_kib = MIB(1536);
        cr_assert_eq(peer_tick(PEER_STATIC, &h, v, 2, NOW, t), 0);
        cr_assert_eq(t[0], MIB(2048), "whatever its use, even while booting");
        cr_assert_eq(t[1], MIB(1536), "no more than it can reach");
}

Test(peers, oracle_holds_the_demand_every_tick_even_while_booting) {
        struct peer_host h = { .total_kib = MIB(1024), .free_kib = 0 };
        struct peer_vm v[3] = { vm(512, 4096, 2048, 300), vm(512, 4096, 2048, 0), vm(512, 4096, 2048, 5000) };
        uint64_t t[3];
        v[0].reporting = false;
        v[0].uptime_usec = SEC(1);
        v[0].memo.last_act_usec = NOW; /* acted this very instant: it has no period */
        cr_assert_eq(peer_tick(PEER_ORACLE, &h, v, 3, NOW, t), 0);
        cr_assert_eq(t[0], MIB(300), "below the minimum: the bound ignores it");
        cr_assert_eq(t[1], MIB(1), "at least 1 MiB");
        cr_assert_eq(t[2], MIB(4096), "at most what it can reach");
}

/* ---- swap-anytime (ESXi's allocation) ---- */

/* A 28 GiB host keeps minFree = 899 MiB free: 27773 MiB for the VMs (no reserve, nothing else). */
static const struct peer_host esx28 = { .total_kib = MIB(28672), .free_kib = MIB(28672) };

static void expect_near_mib(uint64_t got_kib, double want_mib, const char *what) {
        double got = (double) got_kib / (double) KIB_PER_MIB;
        cr_expect(got > want_mib - 1 && got < want_mib + 1, "%s: %.1f MiB, want %.1f", what, got, want_mib);
}

Test(peers, swap_anytime_gives_every_ceiling_when_they_fit_minus_min_free) {
        /* 64 GiB: minFree = 899 MiB + 1 % of 36 GiB; two 4 GiB VMs fit, whatever they use. */
        struct peer_host h = { .total_kib = MIB(65536), .free_kib = MIB(60000) };
        struct peer_vm v[2] = { vm(512, 4096, 1024, 300), vm(512, 4096, 2048, 4000) };
        uint64_t t[2];
        cr_assert_eq(peer_tick(PEER_SWAP_ANYTIME, &h, v, 2, NOW, t), 0);
        cr_expect_eq(t[0], MIB(4096));
        cr_expect_eq(t[1], MIB(4096));
}

Test(peers, swap_anytime_taxes_idle_memory_four_times_an_active_page) {
        /* Equal shares (same weight, same ceiling 20000), active 12000 and 2000 MiB. At level s
         * pages per share-unit, each holds a + (s - a) / 4 (k = 1 / (1 - 0.75)): 10500 + s / 2 =
         * 27773, s = 34546: 17636.5 and 10136.5 MiB. */
        struct peer_vm v[2] = { vm(1024, 20000, 14000, 12000), vm(1024, 20000, 14000, 2000) };
        uint64_t t[2];
        cr_assert_eq(peer_tick(PEER_SWAP_ANYTIME, &esx28, v, 2, NOW, t), 0);
        expect_near_mib(t[0], 17636.5, "active");
        expect_near_mib(t[1], 10136.5, "idle");
}

Test(peers, swap_anytime_splits_by_shares_when_all_is_active) {
        /* Fully active, weight 100 against 50: twice the shares, twice the pages:
         * 27773 / 3 = 9257.7 and 18515.3 MiB. */
        struct peer_vm v[2] = { vm(1024, 20000, 14000, 20000), vm(1024, 20000, 14000, 20000) };
        v[0].policy.weight = 100;
        uint64_t t[2];
        cr_assert_eq(peer_tick(PEER_SWAP_ANYTIME, &esx28, v, 2, NOW, t), 0);
        expect_near_mib(t[0], 18515.3, "weight 100");
        expect_near_mib(t[1], 9257.7, "weight 50");
}

Test(peers, swap_anytime_holds_reservations_even_past_the_room) {
        /* The minimums (reservations) alone exceed 27773 MiB: each VM gets its minimum. */
        struct peer_vm v[2] = { vm(15000, 20000, 16000, 20000), vm(15000, 20000, 16000, 100) };
        uint64_t t[2];
        cr_assert_eq(peer_tick(PEER_SWAP_ANYTIME, &esx28, v, 2, NOW, t), 0);
        cr_expect_eq(t[0], MIB(15000));
        cr_expect_eq(t[1], MIB(15000));
}

Test(peers, swap_anytime_sizes_a_booting_vm_and_leaves_a_static_one_alone) {
        /* A static VM holding 7773 MiB is left alone and leaves 20000 MiB; a booting one (no
         * driver, uptime 0) is sized all the same, beside an idle one: equal shares, active 9000
         * and 1000: 9000 + (s - 9000) / 4 + 1000 + (s - 1000) / 4 = 7500 + s / 2 = 20000,
         * s = 25000: 13000 and 7000 MiB. */
        struct peer_vm v[3] = { vm(1024, 20000, 7773, 7773), vm(1024, 20000, 14000, 9000),
                                vm(1024, 20000, 5000, 1000) };
        v[0].policy.dynamic = false;
        v[1].reporting = false;
        v[1].uptime_usec = 0;
        uint64_t t[3];
        cr_assert_eq(peer_tick(PEER_SWAP_ANYTIME, &esx28, v, 3, NOW, t), 0);
        cr_expect_eq(t[0], PEER_NO_CHANGE);
        expect_near_mib(t[1], 13000, "booting");
        expect_near_mib(t[2], 7000, "idle");
}
