/* The simulated hypervisor: balloons that move at their rate, finite memory, guests that run out
 * of it, agents that report late or lie, and the controller core driving them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "sim/sim.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)

static struct sim sim;
static struct tide_config cfg;

static void setup(void) {
        config_init(&cfg);
        cr_assert_eq(sim_init(&sim, &cfg, MIB(16384), SEC(1000)), 0);
}

static void teardown(void) {
        sim_done(&sim);
}

TestSuite(sim, .init = setup, .fini = teardown);

/* A 1 GiB guest, managed (minimum 256 MiB), up for an hour, using `demand`. */
static struct sim_vm_spec guest(const char *name, uint64_t demand, enum sim_agent agent) {
        struct sim_vm_spec g = { .boot_kib = MIB(1024), .node = -1, .have_policy = true, .agent = agent,
                                 .balloon_stats = true, .uptime_usec = SEC(3600),
                                 .demand = { .kind = SIM_DEMAND_CONSTANT, .base_kib = demand } };
        snprintf(g.name, sizeof(g.name), "%s", name);
        policy_init(&g.policy);
        g.policy.startup_kib = g.policy.maximum_kib = MIB(1024);
        g.policy.minimum_kib = MIB(256);
        return g;
}

static void run(unsigned ticks) {
        for (unsigned t = 0; t < ticks; t++) {
                cr_assert_eq(sim_tick(&sim), 0);
                sim_advance(&sim, cfg.interval_usec);
        }
}

Test(sim, a_balloon_moves_at_the_rate_measured_under_tcg) {
        struct sim_vm_spec g = guest("a", MIB(100), SIM_AGENT_NONE);
        g.have_policy = false;
        g.assigned_kib = MIB(512);
        g.boot_kib = MIB(512);
        g.policy.startup_kib = g.policy.maximum_kib = MIB(512);
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        sim.vms[0].balloon_target_kib = MIB(200);
        sim_advance(&sim, 400 * 1000);
        cr_assert(sim.vms[0].actual_kib > MIB(200) && sim.vms[0].actual_kib < MIB(512), "halfway after 0.4 s");
        sim_advance(&sim, 400 * 1000);
        cr_assert_eq(sim.vms[0].actual_kib, MIB(200), "512 -> 200 MiB in 0.8 s");
}

Test(sim, memory_is_finite_a_balloon_grows_only_into_free_memory) {
        sim_done(&sim);
        cr_assert_eq(sim_init(&sim, &cfg, MIB(1536), SEC(1000)), 0);
        struct sim_vm_spec g = guest("a", MIB(100), SIM_AGENT_NONE);
        g.have_policy = false;
        g.assigned_kib = MIB(256);
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        g.assigned_kib = MIB(1024);
        snprintf(g.name, sizeof(g.name), "b");
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        sim.vms[0].balloon_target_kib = MIB(1024);
        sim_advance(&sim, SEC(5));
        cr_assert_eq(sim.vms[0].actual_kib, MIB(512), "256 MiB free on a 1.5 GiB host");
}

Test(sim, a_short_guest_takes_back_its_balloon_with_deflate_on_oom_or_else_runs_out) {
        struct sim_vm_spec g = guest("doo", MIB(700), SIM_AGENT_NONE);
        g.have_policy = false;
        g.deflate_on_oom = true;
        g.assigned_kib = MIB(512);
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        snprintf(g.name, sizeof(g.name), "plain");
        g.deflate_on_oom = false;
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        sim_advance(&sim, SEC(1));
        cr_assert_eq(sim.vms[0].actual_kib, MIB(700));
        cr_assert_eq(sim.vms[0].oom_deflates, 1);
        cr_assert_eq(sim.vms[0].oom_events, 0);
        sim_advance(&sim, SEC(1));
        sim_advance(&sim, SEC(1));
        cr_assert_eq(sim.vms[1].oom_events, 1, "one episode, counted once");
        cr_assert_eq(sim.vms[1].warning_usec, SEC(3));
}

Test(sim, a_random_walk_is_bounded_and_repeats_with_its_seed) {
        struct sim_vm_spec g = guest("w", MIB(300), SIM_AGENT_NONE);
        g.demand = (struct sim_demand){ .kind = SIM_DEMAND_WALK, .base_kib = MIB(300), .step_kib = MIB(50),
                                        .min_kib = MIB(200), .max_kib = MIB(400), .seed = 7 };
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        bool moved = false;
        for (int t = 0; t < 100; t++) {
                sim_advance(&sim, SEC(1));
                cr_assert(sim.vms[0].demand_kib >= MIB(200) && sim.vms[0].demand_kib <= MIB(400));
                cr_assert_eq(sim.vms[0].demand_kib, sim.vms[1].demand_kib, "same seed, same walk");
                moved |= sim.vms[0].demand_kib != MIB(300);
        }
        cr_assert(moved);
}

Test(sim, demand_profiles_step_and_ramp) {
        struct sim_demand d = { .kind = SIM_DEMAND_STEPS, .base_kib = 1, .n_steps = 2,
                                .steps = { { SEC(10), 2 }, { SEC(20), 3 } } };
        cr_assert_eq(sim_demand_at(&d, SEC(9)), 1);
        cr_assert_eq(sim_demand_at(&d, SEC(10)), 2);
        cr_assert_eq(sim_demand_at(&d, SEC(25)), 3);
        d = (struct sim_demand){ .kind = SIM_DEMAND_RAMP, .base_kib = 100, .to_kib = 200, .from_usec = SEC(10),
                                 .len_usec = SEC(10) };
        cr_assert_eq(sim_demand_at(&d, SEC(5)), 100);
        cr_assert_eq(sim_demand_at(&d, SEC(15)), 150);
        cr_assert_eq(sim_demand_at(&d, SEC(30)), 200);
}

Test(sim, a_late_agent_reports_what_the_guest_used_lag_seconds_ago) {
        struct sim_vm_spec g = guest("late", MIB(100), SIM_AGENT_LATE);
        g.lag_usec = SEC(5);
        g.demand = (struct sim_demand){ .kind = SIM_DEMAND_STEPS, .base_kib = MIB(100), .n_steps = 1,
                                        .steps = { { SEC(10), MIB(400) } } };
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        for (int t = 0; t < 12; t++)
                sim_advance(&sim, SEC(1));
        const struct agent_report *r = &sim.vms[0].report;
        cr_assert_eq(r->total_kib - r->available_kib, MIB(100), "at 12 s it reports 7 s");
        for (int t = 0; t < 4; t++)
                sim_advance(&sim, SEC(1));
        cr_assert_eq(r->total_kib - r->available_kib, MIB(400));
}

Test(sim, tide_shrinks_an_idle_guest_and_grows_a_busy_one_through_the_core) {
        cfg.quiet_usec = 0;
        sim.cfg = cfg;
        cr_assert_eq(sim_add_vm(&sim, &(struct sim_vm_spec){ 0 }), -EINVAL, "a VM without a name or size");
        cr_assert_geq(sim_add_vm(&sim, &(struct sim_vm_spec){ .name = "x", .boot_kib = MIB(1) }), 0);
        sim_done(&sim);
        cr_assert_eq(sim_init(&sim, &cfg, MIB(16384), SEC(1000)), 0);
        struct sim_vm_spec idle = guest("idle", MIB(100), SIM_AGENT_HONEST);
        struct sim_vm_spec busy = guest("busy", MIB(100), SIM_AGENT_HONEST);
        /* From 100 to 700 MiB at 10 MiB/s: a rise tide must keep ahead of, without deflate-on-oom. */
        busy.demand = (struct sim_demand){ .kind = SIM_DEMAND_RAMP, .base_kib = MIB(100), .to_kib = MIB(700),
                                           .from_usec = SEC(200), .len_usec = SEC(60) };
        cr_assert_geq(sim_add_vm(&sim, &idle), 0);
        cr_assert_geq(sim_add_vm(&sim, &busy), 0);
        run(200);
        cr_assert_eq(sim_vm_assigned_kib(&sim.vms[0]), MIB(256), "at its minimum: 100 MiB + 20 %% is below it");
        cr_assert_eq(sim_vm_assigned_kib(&sim.vms[1]), MIB(256));
        run(65);
        cr_assert_geq(sim_vm_assigned_kib(&sim.vms[1]), MIB(700), "grown for its new demand");
        cr_assert_eq(sim.vms[1].oom_events, 0);
        cr_assert_eq(sim.vms[1].warning_usec, 0, "never held less than it used");
        cr_assert_gt(sim.balloon_ops, 0);
}

Test(sim, a_lying_agent_is_not_believed_and_its_balloon_stats_decide) {
        cfg.quiet_usec = 0;
        sim.cfg = cfg;
        struct sim_vm_spec g = guest("liar", MIB(100), SIM_AGENT_LIAR);
        g.lie_factor = 20;
        cr_assert_geq(sim_add_vm(&sim, &g), 0);
        run(100);
        cr_assert(!sim.vms[0].state.agent_demand);
        cr_assert_eq(sim_vm_assigned_kib(&sim.vms[0]), MIB(256), "shrunk on its balloon statistics");
}
