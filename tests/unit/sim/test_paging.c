/* Smart Paging in the simulator: four 1 GiB guests restart at once on a host that cannot back
 * what they touch while they boot. With a paging disk the shortfall goes to files at the disk's
 * pace and the storm ends sooner; every file is gone once the guests have come down. */
#include <criterion/criterion.h>
#include <inttypes.h>

#include "common/macro.h"
#include "sim/sim.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)
#define N 4

static struct tide_config cfg;

/* A 1 GiB guest (minimum 256 MiB, 300 MiB in use) that touches 900 MiB in the first 4.5 s of a
 * boot, its drivers up 20 s after it began. */
static void add_guest(struct sim *s, const char *name, struct sim_vm_spec g) {
        g.boot_kib = MIB(1024);
        g.node = -1;
        g.have_policy = true;
        g.agent = SIM_AGENT_HONEST;
        g.balloon_stats = true;
        g.boot_touch_kib = MIB(900);
        g.boot_touch_kib_per_sec = MIB(200);
        g.boot_usec = SEC(20);
        g.demand = (struct sim_demand){ .kind = SIM_DEMAND_CONSTANT, .base_kib = MIB(300) };
        snprintf(g.name, sizeof(g.name), "%s", name);
        policy_init(&g.policy);
        g.policy.startup_kib = g.policy.maximum_kib = MIB(1024);
        g.policy.minimum_kib = MIB(256);
        cr_assert_geq(sim_add_vm(s, &g), 0);
}

/* Host 4 GiB (auto reserve 640 MiB): 3.4 GiB for four guests that each touch 900 MiB in the
 * first 4.5 s of a boot at 120 s, drivers up 20 s after it began. */
static void storm(struct sim *s, uint64_t disk_kib_per_sec, bool fast, int peer) {
        config_init(&cfg);
        cr_assert_eq(sim_init(s, &cfg, MIB(4096), SEC(1000)), 0);
        s->reserve_kib = config_reserve_kib(&cfg, MIB(4096));
        s->paging_kib_per_sec = disk_kib_per_sec;
        if (peer >= 0)
                sim_use_peer(s, (enum peer_rule) peer);
        else if (fast)
                cr_assert_eq(sim_set_fast(s, true), 0);
        for (int i = 0; i < N; i++)
                add_guest(s, (const char *[]){ "g0", "g1", "g2", "g3" }[i],
                          (struct sim_vm_spec){ .uptime_usec = SEC(3600), .assigned_kib = MIB(400),
                                                .restart_at_usec = SEC(120) });
        for (uint64_t t = 0; t < SEC(900); t += cfg.interval_usec) {
                cr_assert_eq(sim_tick(s), 0);
                sim_advance(s, cfg.interval_usec);
        }
}

static void expect_all_released(const struct sim *s) {
        for (size_t i = 0; i < s->n_vms; i++) {
                cr_expect_eq(s->vms[i].pg.file_kib, 0, "%s still has a file", s->vms[i].spec.name);
                cr_expect_eq(s->vms[i].state.paging.phase, PAGING_NONE, "%s", s->vms[i].spec.name);
        }
        cr_expect_eq(s->metrics.now_paging_kib, 0);
}

Test(sim_paging, a_storm_pages_at_the_disks_pace_boots_sooner_and_gives_every_file_back) {
        struct sim without, with;
        storm(&without, 0, false, -1);
        storm(&with, MIB(200), false, -1);
        cr_expect_eq(without.metrics.paging_starts, 0, "no disk: nothing pages");
        cr_expect_eq(without.metrics.paging_kib_usec, 0);
        cr_expect_gt(with.metrics.paging_starts, 0);
        cr_expect_gt(with.metrics.paging_peak_kib, 0);
        cr_assert_geq(without.metrics.all_booted_usec, 0);
        cr_assert_geq(with.metrics.all_booted_usec, 0);
        cr_expect_lt(with.metrics.all_booted_usec, without.metrics.all_booted_usec, "%ld s with paging, %ld without",
                     (long) (with.metrics.all_booted_usec / (int64_t) USEC_PER_SEC),
                     (long) (without.metrics.all_booted_usec / (int64_t) USEC_PER_SEC));
        expect_all_released(&with);
        sim_done(&without);
        sim_done(&with);
}

/* The disk sets the pace: a slower one, a slower storm. */
Test(sim_paging, a_slower_paging_disk_boots_the_storm_later) {
        struct sim slow, fast;
        storm(&slow, MIB(25), false, -1);
        storm(&fast, MIB(400), false, -1);
        cr_assert_geq(slow.metrics.all_booted_usec, 0);
        cr_expect_gt(slow.metrics.all_booted_usec, fast.metrics.all_booted_usec, "%ld s at 25 MiB/s, %ld at 400",
                     (long) (slow.metrics.all_booted_usec / (int64_t) USEC_PER_SEC),
                     (long) (fast.metrics.all_booted_usec / (int64_t) USEC_PER_SEC));
        expect_all_released(&slow);
        sim_done(&slow);
        sim_done(&fast);
}

Test(sim_paging, the_fast_path_pages_as_the_full_loop) {
        struct sim full, fast;
        storm(&full, MIB(200), false, -1);
        storm(&fast, MIB(200), true, -1);
        cr_expect(full.metrics.paging_kib_usec == fast.metrics.paging_kib_usec);
        cr_expect_eq(full.metrics.paging_peak_kib, fast.metrics.paging_peak_kib);
        cr_expect_eq(full.metrics.all_booted_usec, fast.metrics.all_booted_usec);
        cr_expect(full.metrics.assigned_kib_usec == fast.metrics.assigned_kib_usec);
        sim_done(&full);
        sim_done(&fast);
}

Test(sim_paging, hyperv_pages_a_restart_and_mom_does_not) {
        struct sim hv, mom;
        storm(&hv, MIB(200), false, PEER_HYPERV);
        storm(&mom, MIB(200), false, PEER_MOM);
        cr_expect_gt(hv.metrics.paging_starts, 0);
        expect_all_released(&hv);
        cr_expect_eq(mom.metrics.paging_starts, 0);
        sim_done(&hv);
        sim_done(&mom);
}

Test(sim_paging, off_pages_nothing_and_always_pages_a_cold_start) {
        struct sim s;
        config_init(&cfg);
        cr_assert_eq(sim_init(&s, &cfg, MIB(2048), SEC(1000)), 0);
        s.reserve_kib = config_reserve_kib(&cfg, MIB(2048));
        s.paging_kib_per_sec = MIB(200);
        s.cfg.smart_paging = CONFIG_PAGING_ALWAYS;
        for (int i = 0; i < 2; i++)
                add_guest(&s, i ? "c1" : "c0", (struct sim_vm_spec){ .stopped = true, .start_at_usec = SEC(5) });
        for (uint64_t t = 0; t < SEC(300); t += cfg.interval_usec) {
                cr_assert_eq(sim_tick(&s), 0);
                sim_advance(&s, cfg.interval_usec);
        }
        cr_expect_gt(s.metrics.paging_starts, 0, "always: a cold start on a short host pages");
        expect_all_released(&s);
        sim_done(&s);
}

Test(sim_paging, smart_paging_off_pages_nothing) {
        struct sim s;
        config_init(&cfg);
        cfg.smart_paging = CONFIG_PAGING_OFF;
        cr_assert_eq(sim_init(&s, &cfg, MIB(4096), SEC(1000)), 0);
        s.reserve_kib = config_reserve_kib(&cfg, MIB(4096));
        s.paging_kib_per_sec = MIB(200);
        for (int i = 0; i < N; i++)
                add_guest(&s, (const char *[]){ "o0", "o1", "o2", "o3" }[i],
                          (struct sim_vm_spec){ .uptime_usec = SEC(3600), .assigned_kib = MIB(400),
                                                .restart_at_usec = SEC(60) });
        for (uint64_t t = 0; t < SEC(200); t += cfg.interval_usec) {
                cr_assert_eq(sim_tick(&s), 0);
                sim_advance(&s, cfg.interval_usec);
        }
        cr_expect_eq(s.metrics.paging_starts, 0);
        cr_expect_eq(s.metrics.paging_peak_kib, 0);
        sim_done(&s);
}

/* swap-anytime (ESXi): a swap file per VM from its power-on, kept for its life; the hypervisor
 * swaps what the balloon cannot reclaim, a booting guest too. The storm above: no guest runs out
 * of memory, what went to disk comes back once the guests use their 300 MiB again, and without a
 * disk the rule cannot swap at all. */
Test(sim_paging, swap_anytime_swaps_the_storm_and_keeps_a_file_per_vm) {
        struct sim with, without;
        storm(&with, MIB(200), false, PEER_SWAP_ANYTIME);
        storm(&without, 0, false, PEER_SWAP_ANYTIME);
        cr_expect_eq(with.metrics.paging_starts, N, "a file per VM at its first tick");
        cr_expect_gt(with.metrics.paging_peak_kib, 0);
        cr_expect_eq(sim_oom_events(&with), 0);
        cr_assert_geq(with.metrics.all_booted_usec, 0);
        for (size_t i = 0; i < with.n_vms; i++) {
                /* ceiling 1024 less reservation (minimum) 256 */
                cr_expect_eq(with.vms[i].pg.file_kib, MIB(768), "%s", with.vms[i].spec.name);
                cr_expect_eq(with.vms[i].pg.on_disk_kib, 0, "%s: back from disk", with.vms[i].spec.name);
        }
        cr_expect_eq(with.metrics.now_paging_kib, 0);
        cr_expect_eq(without.metrics.paging_starts, 0);
        cr_expect_eq(without.metrics.paging_kib_usec, 0);
        sim_done(&with);
        sim_done(&without);
}

/* Unlike Hyper-V's Smart Paging, a cold start on a full host swaps too: two 1 GiB guests hold
 * reservations (minimums) of 900 MiB on a 3 GiB host, so a third that starts cold at 60 s and
 * touches 900 MiB while it boots cannot be given it all. swap-anytime swaps the rest of its boot
 * and no guest runs out of memory; Hyper-V pages restarts only. */
Test(sim_paging, swap_anytime_swaps_a_cold_start_that_hyperv_does_not_page) {
        struct sim sa, hv;
        struct sim *sims[] = { &sa, &hv };
        int rules[] = { PEER_SWAP_ANYTIME, PEER_HYPERV };
        for (int k = 0; k < 2; k++) {
                struct sim *s = sims[k];
                config_init(&cfg);
                cr_assert_eq(sim_init(s, &cfg, MIB(3072), SEC(1000)), 0);
                s->reserve_kib = config_reserve_kib(&cfg, MIB(3072));
                s->paging_kib_per_sec = MIB(200);
                sim_use_peer(s, (enum peer_rule) rules[k]);
                add_guest(s, "up0", (struct sim_vm_spec){ .uptime_usec = SEC(3600), .assigned_kib = MIB(1024) });
                add_guest(s, "up1", (struct sim_vm_spec){ .uptime_usec = SEC(3600), .assigned_kib = MIB(1024) });
                add_guest(s, "cold", (struct sim_vm_spec){ .stopped = true, .start_at_usec = SEC(60) });
                s->vms[0].spec.policy.minimum_kib = s->vms[1].spec.policy.minimum_kib = MIB(900);
                uint64_t peak_cold = 0;
                for (uint64_t t = 0; t < SEC(400); t += cfg.interval_usec) {
                        cr_assert_eq(sim_tick(s), 0);
                        sim_advance(s, cfg.interval_usec);
                        peak_cold = max_u64(peak_cold, s->vms[2].pg.on_disk_kib);
                }
                if (k == 0) {
                        cr_expect_gt(peak_cold, 0, "swap-anytime swaps the cold start's boot");
                        cr_expect_eq(sim_oom_events(s), 0);
                } else
                        cr_expect_eq(peak_cold, 0, "Hyper-V pages restarts only");
                cr_assert_geq(s->metrics.all_booted_usec, 0, "%s", rules[k] == PEER_HYPERV ? "hyperv" : "swap-anytime");
        }
        sim_done(&sa);
        sim_done(&hv);
}

/* While a paging limit is on, RAM never passes the grant, even when the host has room: the
 * cgroup's hard limit holds whatever the guest does. The storm above; once a guest pages, the
 * host gains 2 GiB between a tick and the next step (before tide could raise the grant), and
 * that guest reboots again in that step (its QEMU, and so its limit, stay): its new boot gets
 * no more RAM than its grant, nor does it take more back from its balloon (deflate-on-oom), at
 * any step until its file is released. */
Test(sim_paging, a_paging_vms_ram_never_passes_its_grant) {
        struct sim s;
        config_init(&cfg);
        cr_assert_eq(sim_init(&s, &cfg, MIB(4096), SEC(1000)), 0);
        s.reserve_kib = config_reserve_kib(&cfg, MIB(4096));
        s.paging_kib_per_sec = MIB(200);
        for (int i = 0; i < N; i++)
                add_guest(&s, (const char *[]){ "d0", "d1", "d2", "d3" }[i],
                          (struct sim_vm_spec){ .uptime_usec = SEC(3600), .assigned_kib = MIB(400),
                                                .restart_at_usec = SEC(60), .deflate_on_oom = true });
        struct sim_vm *paged = NULL;
        uint64_t limited_steps = 0;
        for (uint64_t t = 0; t < SEC(600); t += cfg.interval_usec) {
                cr_assert_eq(sim_tick(&s), 0);
                for (size_t i = 0; i < s.n_vms && !paged; i++)
                        if (s.vms[i].pg.limited) {
                                paged = &s.vms[i];
                                s.total_kib += MIB(2048);
                                paged->restarted = false; /* reboots again at the end of this step */
                                paged->spec.restart_at_usec = t;
                        }
                sim_advance(&s, cfg.interval_usec);
                if (paged && paged->pg.limited) {
                        limited_steps++;
                        cr_assert_leq(paged->actual_kib, paged->pg.grant_kib,
                                      "%s at %" PRIu64 " s: %" PRIu64 " KiB in RAM, grant %" PRIu64, paged->spec.name,
                                      t / USEC_PER_SEC, paged->actual_kib, paged->pg.grant_kib);
                }
        }
        cr_assert_not_null(paged, "the storm paged");
        cr_expect_gt(limited_steps, 1);
        sim_done(&s);
}
