/* The controller core on hand-made observations: no hypervisor, no daemon, no clock. Every
 * decision tided makes can be replayed this way. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "core/core.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)

static struct tide_config cfg;
static struct core *core;
static struct hv_domain dom;
static struct core_vm state;
static struct core_vm_obs obs;
static struct core_vm_out out;
static struct core_host_out hout;
static struct core_host_obs host = { .total_kib = MIB(16384), .available_kib = MIB(12000) };

/* A running 1 GiB domain with a policy (minimum 256 MiB), found at t=1 s. */
static void setup(void) {
        config_init(&cfg);
        core = core_new();
        dom = (struct hv_domain){ .active = true, .max_kib = MIB(1024), .current_kib = MIB(1024), .has_balloon = true,
                                  .numa_node = -1 };
        snprintf(dom.name, sizeof(dom.name), "web");
        core_vm_init(&state, SEC(1));
        obs = (struct core_vm_obs){ .info = &dom, .have_policy = true, .state = &state };
        policy_init(&obs.policy);
        obs.policy.startup_kib = obs.policy.maximum_kib = MIB(1024);
        obs.policy.minimum_kib = MIB(256);
}

static void teardown(void) {
        core = core_free(core);
}

TestSuite(core, .init = setup, .fini = teardown);

/* A balloon sample: the guest holds `actual`, uses `used` of it (no deflate-on-oom), and its
 * statistics were refreshed at guest second `update`. */
static void sample(uint64_t actual, uint64_t used, uint64_t update) {
        memset(&obs.stats, 0xff, sizeof(obs.stats));
        obs.fresh_stats = obs.stats_ok = true;
        obs.stats.actual_kib = actual;
        obs.stats.available_kib = actual;
        obs.stats.usable_kib = actual - used;
        obs.stats.rss_kib = actual;
        obs.stats.last_update_sec = update;
}

static void tick(uint64_t now, bool grow_only) {
        cr_assert_eq(core_tick(core, &cfg, &host, &obs, 1, now, grow_only, &out, &hout), 0);
        obs.start = CORE_START_NONE;
        obs.stopped = false;
        obs.report_fresh = false;
}

static const char *reason(void) {
        static char buf[160];
        return core_reason_format(&state, buf, sizeof(buf));
}

Test(core, a_first_sample_is_only_a_baseline_and_moves_nothing) {
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(200), false);
        cr_assert(!out.set_balloon);
        cr_assert_str_eq(reason(), "hold: no demand data");
        sample(MIB(1024), MIB(100), 51);
        tick(SEC(201), false);
        cr_assert(out.set_balloon, "%s", reason());
        cr_assert_lt(out.balloon_kib, MIB(1024));
}

Test(core, a_domain_found_running_waits_its_quiet_period_from_when_it_was_found) {
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(2), false);
        sample(MIB(1024), MIB(100), 51);
        tick(SEC(3), false);
        cr_assert(!out.set_balloon);
        cr_assert_str_eq(reason(), "hold: quiet period 43 s left", "45 s from t=1 s, when it was found: %s", reason());
}

Test(core, the_agents_uptime_may_end_the_quiet_period_sooner) {
        obs.has_report = obs.report_fresh = true;
        obs.report = (struct agent_report){ .seq = 1, .uptime_ms = 3600 * 1000, .total_kib = MIB(1024),
                                            .available_kib = MIB(924) };
        core_vm_init(&state, SEC(5000));
        obs.report_usec = SEC(5001);
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(5002), false);
        cr_assert(out.set_balloon, "%s", reason());
        cr_assert(state.agent_demand);
        cr_assert_eq(state.early_above_kib, (int64_t) (MIB(100) + cfg.deadband_kib), "use + dead-band");
}

Test(core, a_boot_holds_startup_until_the_balloon_driver_reports) {
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(100), false);
        obs.start = CORE_START_BOOT;
        sample(MIB(512), MIB(100), 0);
        tick(SEC(101), false);
        cr_assert(state.booting);
        cr_assert(out.set_balloon);
        cr_assert_eq(out.balloon_kib, MIB(1024), "startup memory");
        core_vm_applied(&state, &out, false, true, MIB(512), SEC(101));
        sample(MIB(1024), MIB(100), 7);
        tick(SEC(102), false);
        cr_assert(state.booting, "a first sample after a boot is a baseline");
        sample(MIB(1024), MIB(100), 8);
        tick(SEC(103), false);
        cr_assert(!state.booting);
        cr_assert_str_eq(reason(), "hold: quiet period 43 s left", "45 s from the boot at 101 s: %s", reason());
}

Test(core, a_policy_that_goes_away_is_released_until_the_release_works) {
        sample(MIB(600), MIB(100), 50);
        tick(SEC(100), false);
        obs.have_policy = false;
        tick(SEC(101), false);
        cr_assert(out.release);
        cr_assert_eq(core_release_split(&dom).balloon_kib, MIB(1024));
        core_vm_released(&state, false);
        tick(SEC(102), false);
        cr_assert(out.release, "asked again after a failure");
        core_vm_released(&state, true);
        tick(SEC(103), false);
        cr_assert(!out.release, "once done, never again");
        cr_assert(!out.set_balloon);
}

Test(core, a_policy_cleared_while_stopped_needs_no_release) {
        sample(MIB(600), MIB(100), 50);
        tick(SEC(100), false);
        dom.active = false;
        obs.stopped = true;
        obs.have_policy = false;
        tick(SEC(101), false);
        cr_assert(!out.release);
        dom.active = true;
        obs.start = CORE_START_BOOT;
        tick(SEC(102), false);
        cr_assert(!out.release, "it booted at its boot size");
}

Test(core, an_early_tick_only_grows) {
        cfg.quiet_usec = 0;
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(100), false);
        sample(MIB(1024), MIB(100), 51);
        tick(SEC(101), true);
        cr_assert(!out.set_balloon, "a shrink waits for the regular tick: %s", reason());
        sample(MIB(1024), MIB(100), 52);
        tick(SEC(102), false);
        cr_assert(out.set_balloon);
}

Test(core, a_cgroup_partition_limit_caps_what_the_vms_may_hold) {
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(100), false);
        uint64_t roomy = hout.host.usable_kib;
        host.partition_limited = true;
        host.partition_limit_kib = MIB(2048);
        host.partition_usage_kib = MIB(1536);
        tick(SEC(101), false);
        /* 512 MiB left in the partition + the 1 GiB the VM holds, the host reserve added back. */
        cr_assert_eq(hout.host.usable_kib, MIB(512) + MIB(1024) + hout.host.reserve_kib);
        cr_assert_lt(hout.host.usable_kib, roomy);
        host.partition_limited = false;
}

Test(core, a_huge_balloon_actual_counts_as_the_boot_size) {
        sample(MIB(1024), MIB(100), 50);
        obs.stats.actual_kib = UINT64_C(1) << 40;
        tick(SEC(100), false);
        cr_assert(out.logs & CORE_LOG_CLAMPED);
        cr_assert_eq(out.assigned_kib, MIB(1024));
}

Test(core, an_agent_claiming_more_than_qemu_holds_is_not_believed) {
        sample(MIB(1024), MIB(100), 50);
        obs.stats.rss_kib = MIB(200);
        obs.has_report = obs.report_fresh = true;
        obs.report = (struct agent_report){ .seq = 1, .uptime_ms = 1000, .total_kib = MIB(1024), .available_kib = MIB(24) };
        obs.report_usec = SEC(100);
        tick(SEC(100), false);
        cr_assert(out.logs & CORE_LOG_DISTRUST);
        cr_assert_not_null(strstr(out.distrust_why, "resident"));
        cr_assert(!state.agent_demand);
}

Test(core, a_deflate_on_oom_rise_is_a_guest_oom_and_is_grown) {
        cfg.quiet_usec = 0;
        dom.balloon_deflate_on_oom = true;
        sample(MIB(1024), MIB(100), 50);
        tick(SEC(100), false);
        sample(MIB(1024), MIB(100), 51);
        obs.stats.usable_kib = MIB(1024) - MIB(100); /* with deflate-on-oom the balloon counts as used */
        tick(SEC(101), false);
        cr_assert(out.set_balloon);
        core_vm_applied(&state, &out, false, true, MIB(1024), SEC(101));
        uint64_t target = out.balloon_kib;
        sample(target, MIB(100), 52);
        obs.stats.available_kib = MIB(1024);
        obs.stats.usable_kib = MIB(1024) - MIB(100) - (MIB(1024) - target);
        tick(SEC(102), false);
        cr_assert(!(out.logs & CORE_LOG_GUEST_OOM), "at its target: no OOM");
        sample(target + MIB(16), MIB(100), 53);
        obs.stats.available_kib = MIB(1024);
        obs.stats.usable_kib = MIB(1024) - MIB(100) - (MIB(1024) - target - MIB(16));
        tick(SEC(103), false);
        cr_assert(out.logs & CORE_LOG_GUEST_OOM, "logs %#x", out.logs);
        cr_assert_eq(out.oom_took_kib, MIB(16), "%lu KiB", (unsigned long) out.oom_took_kib);
        cr_assert(state.decision.flags & ENGINE_FLAG_GUEST_OOM, "%s", reason());
}

/* With VMs left out of the tick (the simulator's sleepers), a host that may be short with them
 * counted returns -EAGAIN and leaves every handed-in state as it was; a roomy one decides. */
Test(core, others_that_may_make_the_host_short_return_eagain_and_change_nothing) {
        sample(MIB(1024), MIB(300), 100);
        tick(SEC(100), false);
        sample(MIB(1024), MIB(300), 101);
        struct core_vm before = state;
        host.others_held_kib = MIB(2000);
        host.others_desired_kib = MIB(20000); /* with this VM's, more than the 14 GiB usable */
        cr_assert_eq(core_tick(core, &cfg, &host, &obs, 1, SEC(101), false, &out, &hout), -EAGAIN);
        /* What this tick's sample and decision would have changed. */
        cr_assert_eq(state.last_update_seen, before.last_update_seen, "the sample is not taken");
        cr_assert_eq(state.demand_usec, before.demand_usec);
        cr_assert_eq(state.stats.last_update_sec, before.stats.last_update_sec);
        cr_assert_eq(state.memo.last_demand_usec, before.memo.last_demand_usec, "nothing decided");
        cr_assert_eq(state.decision.target_kib, before.decision.target_kib);
        cr_assert_eq(state.watch.last_move_usec, before.watch.last_move_usec);
        host.others_desired_kib = MIB(2000);
        cr_assert_eq(core_tick(core, &cfg, &host, &obs, 1, SEC(101), false, &out, &hout), 0);
        cr_assert(state.stats_advanced, "decided: the sample counted");
        host.others_held_kib = host.others_desired_kib = 0;
}

/* Smart Paging through the core: a reboot on a host with 100 MiB free (and no other VM to take
 * from) pages what it lacks of its startup once the caller can page; without, it is reported. */
static void reboot_short(bool can_page) {
        cfg.qemu_overhead_kib = 0;
        host.can_page = can_page;
        sample(MIB(300), MIB(100), 50);
        tick(SEC(100), false);
        /* 16 GiB host, reserve 1 GiB (auto): 15 GiB capacity, 300 MiB resident, so this much free. */
        host.available_kib = MIB(100) + config_reserve_kib(&cfg, host.total_kib);
        obs.start = CORE_START_REBOOT;
        sample(MIB(300), MIB(100), 0);
        tick(SEC(101), false);
}

Test(core, a_reboot_the_host_cannot_fund_pages_its_shortfall) {
        reboot_short(true);
        /* Wants 1024, has 300 resident, 100 free: 624 MiB short. */
        cr_assert(out.paging.start);
        cr_expect_eq(out.paging.shortfall_kib, MIB(624));
        cr_expect_eq(out.paging.grant_kib, MIB(400));
        cr_expect_eq(out.paging.hard_limit_kib, MIB(400));
        cr_expect_eq(out.paging.swap_hard_limit_kib, HV_MEMTUNE_UNLIMITED);
        cr_expect_eq(out.status, ENGINE_STATUS_PAGING);
        cr_expect_eq(hout.paging.files, 1);
        cr_expect_eq(hout.paging.on_disk_kib, MIB(624), "the file backs what the RAM grant does not");
        cr_expect(out.set_balloon, "the boot still gets its startup memory");
        cr_expect_eq(out.balloon_kib, MIB(1024));
        cr_expect_not(core_vm_settled(&state, &out, &hout), "a paging VM is not settled");
}

Test(core, a_reboot_the_host_cannot_fund_or_page_is_reported_overcommitted) {
        reboot_short(false);
        cr_expect_not(out.paging.start);
        cr_expect_eq(out.paging.shortfall_kib, MIB(624));
        cr_expect_eq(hout.paging.unfunded_kib, MIB(624));
        cr_expect_neq(out.status, ENGINE_STATUS_PAGING);
}

/* tided restarted mid-storm: a domain found running with its paging file on boots as far as
 * tide knows, so the stale actual QEMU shows after a reset (its minimum) does not release it. */
Test(core, a_vm_found_running_with_an_adopted_file_boots_until_it_is_known_to_be_over) {
        cfg.qemu_overhead_kib = 0;
        host.can_page = true;
        paging_adopt(&state.paging, MIB(700), MIB(400), MIB(1024), SEC(99));
        sample(MIB(256), MIB(400), 50);
        obs.paging_used_kib = MIB(100);
        tick(SEC(100), false);
        cr_expect(state.booting, "found running with a file on: a boot");
        cr_expect_not(out.paging.release, "not on the actual of before its reset");
        cr_expect(out.set_balloon);
        cr_expect_eq(out.balloon_kib, MIB(1024), "its startup, as any boot");
        /* Without a file it is found running, not booting. */
        core_vm_init(&state, SEC(99));
        state.paging = (struct paging_vm_state){ 0 };
        sample(MIB(256), MIB(400), 60);
        tick(SEC(110), false);
        cr_expect_not(state.booting);
}

Test(core, a_start_in_a_partial_tick_is_taken_again_with_every_vm) {
        host.others_held_kib = MIB(100);
        obs.start = CORE_START_BOOT;
        sample(MIB(300), MIB(100), 0);
        struct core_vm before = state;
        cr_expect_eq(core_tick(core, &cfg, &host, &obs, 1, SEC(10), false, &out, &hout), -EAGAIN);
        cr_expect_eq(memcmp(&before, &state, sizeof(state)), 0, "state untouched");
}

/* After a reboot QEMU reports the old balloon actual until the new driver has deflated to the
 * boot target: the boot is not over on that stale figure (it would be held there). */
Test(core, a_boot_ends_once_the_new_driver_has_taken_the_boot_target) {
        sample(MIB(300), MIB(100), 50);
        tick(SEC(100), false);
        obs.start = CORE_START_REBOOT;
        sample(MIB(300), MIB(100), 50);
        tick(SEC(101), false);
        cr_assert(out.set_balloon);
        core_vm_applied(&state, &out, false, true, MIB(300), SEC(101));
        sample(MIB(300), MIB(100), 51);
        tick(SEC(102), false);
        sample(MIB(300), MIB(100), 52);
        tick(SEC(103), false);
        cr_expect(state.booting, "stats advance, but the actual is the old one");
        cr_expect_eq(state.decision.target_kib, MIB(1024), "still its startup");
        sample(MIB(1024), MIB(100), 53);
        tick(SEC(104), false);
        cr_expect_not(state.booting);
        /* A driver that never gets there: the boot ends after the quiet period. */
        obs.start = CORE_START_REBOOT;
        sample(MIB(300), MIB(100), 54);
        tick(SEC(200), false);
        core_vm_applied(&state, &out, false, true, MIB(300), SEC(200));
        sample(MIB(300), MIB(100), 55);
        tick(SEC(201), false);
        sample(MIB(300), MIB(100), 56);
        tick(SEC(200) + cfg.quiet_usec, false);
        cr_expect_not(state.booting);
}

/* Core parking through the core, on a 2-CPU host (two cores of one CPU): idle, CPU 1 is parked
 * and a floating VM is confined to CPU 0; a latency-sensitive one and one its administrator
 * pinned are left alone (the pinned one's CPUs never parked); load back: every VM restored;
 * early ticks move no core. */
static void two_cpu_host(void) {
        static struct parking_core cores[2];
        memset(cores, 0, sizeof(cores));
        hv_cpuset_set(&cores[0].cpus, 0);
        hv_cpuset_set(&cores[1].cpus, 1);
        cr_assert_eq(core_set_topology(core, cores, 2), 0);
}

Test(core, parking_confines_a_floating_vm_and_leaves_pinned_and_latency_sensitive_ones) {
        static double busy[2] = { 0.02, 0.02 };
        two_cpu_host();
        host.cpu_busy = busy;
        host.n_cpus = 2;
        host.cpu_load_known = true;
        sample(MIB(1024), MIB(300), 100);
        tick(SEC(2), true);
        cr_expect_not(hout.parking_on, "an early tick moves no core");
        tick(SEC(3), false);
        cr_assert(hout.parking_on);
        cr_expect(hv_cpuset_test(&hout.parking.parked, 1));
        cr_expect_eq(out.parking, PARKING_VM_CONFINE);
        cr_expect(hv_cpuset_test(&core_parking_state(core)->parked, 1));

        obs.policy.latency_sensitive = true;
        tick(SEC(4), false);
        cr_expect_eq(out.parking, PARKING_VM_LEAVE, "latency-sensitive");
        obs.policy.latency_sensitive = false;

        busy[0] = 1.0;
        tick(SEC(5), false);
        cr_expect_eq(hout.parking.reason, PARKING_REASON_SATURATED);
        cr_expect_eq(out.parking, PARKING_VM_RESTORE);

        /* Pinned by its administrator to CPU 1: left alone, and CPU 1 is never parked. */
        core_free(core);
        core = core_new();
        two_cpu_host();
        busy[0] = busy[1] = 0.02;
        obs.pinned = true;
        hv_cpuset_set(&obs.pinned_cpus, 1);
        tick(SEC(20), false);
        cr_expect_eq(out.parking, PARKING_VM_LEAVE);
        cr_expect_not(hv_cpuset_test(&hout.parking.parked, 1));
        host.cpu_busy = NULL;
        host.n_cpus = 0;
        host.cpu_load_known = false;
}

Test(core, no_topology_no_parking) {
        sample(MIB(1024), MIB(300), 100);
        tick(SEC(2), false);
        cr_expect_not(hout.parking_on);
        cr_expect_eq(out.parking, PARKING_VM_LEAVE);
        cr_expect_eq(core_set_topology(core, NULL, 3), -EINVAL);
}

/* A VM that arrives with its memory (a live migration in, a restore) is no boot to fund: on a
 * host short of its startup memory, with Smart Paging on for every start, it gets no paging file
 * and no limit, and the host is not counted overcommitted for it; a cold start there would be. */
Test(core, a_migrated_in_vm_is_no_start_for_smart_paging) {
        struct core_host_obs short_host = { .total_kib = MIB(2048), .available_kib = MIB(100), .can_page = true };
        cfg.smart_paging = CONFIG_PAGING_ALWAYS;
        obs.start = CORE_START_RESUME;
        sample(MIB(1024), MIB(100), 50);
        obs.stats.rss_kib = MIB(20); /* QEMU's memory still arriving */
        cr_assert_eq(core_tick(core, &cfg, &short_host, &obs, 1, SEC(100), false, &out, &hout), 0);
        cr_expect(!out.paging.start, "a resume was funded like a boot");
        cr_expect_eq(hout.paging.unfunded_kib, 0);

        core_vm_init(&state, SEC(1));
        obs.start = CORE_START_BOOT;
        cr_assert_eq(core_tick(core, &cfg, &short_host, &obs, 1, SEC(101), false, &out, &hout), 0);
        cr_expect(out.paging.start || hout.paging.unfunded_kib > 0, "a cold start on this host is funded or counted");
}
