/* The simulator's fast path (sim/sleep.c) against the full loop: the same scenarios run both
 * ways, every metric compared after every step and every VM's state at the end, number for
 * number; and the fast path must really have slept (or the comparison proves nothing). */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/macro.h"
#include "sim/internal.h"
#include "sim/sim.h"

#define MIB(x) ((uint64_t) (x) * KIB_PER_MIB)
#define SEC(x) ((uint64_t) (x) * USEC_PER_SEC)

#define SAMPLES 40
static uint64_t trace_t[4][SAMPLES], trace_kib[4][SAMPLES];

/* Four recorded-looking VMs: a sample every 5 minutes, slow drifts and a few jumps. */
static void make_traces(void) {
        uint64_t x = 7;
        for (int k = 0; k < 4; k++)
                for (int i = 0; i < SAMPLES; i++) {
                        x = x * 6364136223846793005u + 1442695040888963407u;
                        trace_t[k][i] = SEC(300) * (uint64_t) i + SEC(17) * (uint64_t) k;
                        uint64_t base = MIB(300 + 150 * k), wobble = (x >> 33) % MIB(64);
                        trace_kib[k][i] = base + wobble + (i % 13 == 5 ? MIB(400) : 0);
                }
}

/* VM number i of a mixed host: every demand profile, agents that may and may not sleep,
 * virtio-mem, deflate-on-oom, a restart, late starts. */
static struct sim_vm_spec mixed_vm(size_t i) {
        struct sim_vm_spec g = { .boot_kib = MIB(1024 + 256 * (i % 3)), .node = -1, .have_policy = true,
                                 .balloon_stats = true, .uptime_usec = SEC(3600), .kernel_kib = MIB(20) };
        snprintf(g.name, sizeof(g.name), "vm%zu", i);
        policy_init(&g.policy);
        g.policy.startup_kib = g.boot_kib;
        g.policy.maximum_kib = g.boot_kib;
        g.policy.minimum_kib = MIB(256);
        g.policy.buffer_pct = 10 + 5 * (unsigned) (i % 4);
        g.policy.weight = 20 + 10 * (unsigned) (i % 7);
        switch (i % 6) {
        case 0:
        case 1:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_TRACE,
                                                .trace = { .n = SAMPLES, .t_usec = trace_t[i % 4],
                                                           .kib = trace_kib[i % 4], .hold = i % 2 } };
                break;
        case 2:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_WALK, .base_kib = MIB(500),
                                                .step_kib = i % 4 ? MIB(2) : 0, .min_kib = MIB(200),
                                                .max_kib = MIB(900), .seed = i };
                break;
        case 3:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_STEPS, .base_kib = MIB(400), .n_steps = 3,
                                                .steps = { { SEC(600), MIB(800) }, { SEC(1500), MIB(350) },
                                                           { SEC(2500), MIB(700) } } };
                break;
        case 4:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_RAMP, .base_kib = MIB(300), .to_kib = MIB(900),
                                                .from_usec = SEC(300), .len_usec = SEC(2400) };
                break;
        default:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_CONSTANT, .base_kib = MIB(450) };
        }
        g.agent = (enum sim_agent[]){ SIM_AGENT_NONE, SIM_AGENT_HONEST, SIM_AGENT_NONE, SIM_AGENT_LATE,
                                      SIM_AGENT_HONEST, SIM_AGENT_LIAR }[i % 6];
        g.lag_usec = SEC(5);
        g.lie_factor = 1.5;
        g.floor_kib = i % 5 == 1 ? MIB(380) : 0;
        g.deflate_on_oom = i % 3 == 0;
        if (i % 8 == 3) {
                g.vmem_max_kib = MIB(1024);
                g.vmem_block_kib = MIB(2);
                g.policy.maximum_kib = g.boot_kib + MIB(1024);
        }
        if (i % 10 == 4)
                g.restart_at_usec = SEC(1200 + 7 * i);
        if (i % 10 == 7) {
                g.stopped = true;
                g.start_at_usec = SEC(100 + 30 * i);
        }
        if (i % 17 == 2)
                g.have_policy = false;
        return g;
}

static void expect_same_step(struct sim *full, struct sim *fast, uint64_t step) {
        const struct sim_metrics *a = &full->metrics, *b = &fast->metrics;
        cr_assert(a->assigned_kib_usec == b->assigned_kib_usec, "assigned integral, step %" PRIu64, step);
        cr_assert(a->startup_kib_usec == b->startup_kib_usec, "startup integral, step %" PRIu64, step);
        cr_assert_eq(a->vm_usec, b->vm_usec, "VM time, step %" PRIu64, step);
        cr_assert_eq(a->warning_vm_usec, b->warning_vm_usec, "warning time, step %" PRIu64, step);
        cr_assert_eq(a->peak_assigned_kib, b->peak_assigned_kib, "peak, step %" PRIu64, step);
        cr_assert_eq(a->all_booted_usec, b->all_booted_usec, "storm, step %" PRIu64, step);
        cr_assert_eq(a->now_running, b->now_running, "running, step %" PRIu64, step);
        cr_assert_eq(a->now_booted, b->now_booted, "booted, step %" PRIu64, step);
        cr_assert_eq(a->now_warning, b->now_warning, "in warning, step %" PRIu64, step);
        cr_assert_eq(a->now_assigned_kib, b->now_assigned_kib, "assigned now, step %" PRIu64, step);
        cr_assert_eq(a->now_demand_kib, b->now_demand_kib, "demand now, step %" PRIu64, step);
        cr_assert_eq(full->balloon_ops, fast->balloon_ops, "balloon ops, step %" PRIu64, step);
        cr_assert_eq(full->vmem_ops, fast->vmem_ops, "virtio-mem ops, step %" PRIu64, step);
        cr_assert_eq(sim_oom_events(full), sim_oom_events(fast), "OOM events, step %" PRIu64, step);
}

static void expect_same_vms(struct sim *full, struct sim *fast) {
        /* Everyone awake, as after the last step, so each VM's state can be compared. */
        sim_sleep_wake_all(fast, fast->now_usec, false);
        for (size_t i = 0; i < full->n_vms; i++) {
                const struct sim_vm *a = &full->vms[i], *b = &fast->vms[i];
                cr_assert_eq(a->actual_kib, b->actual_kib, "%s: balloon", a->spec.name);
                cr_assert_eq(a->balloon_target_kib, b->balloon_target_kib, "%s: target", a->spec.name);
                cr_assert_eq(a->info.virtio_mem_current_kib, b->info.virtio_mem_current_kib, "%s: plugged", a->spec.name);
                cr_assert_eq(a->demand_kib, b->demand_kib, "%s: demand", a->spec.name);
                cr_assert_eq(a->warning_usec, b->warning_usec, "%s: warning", a->spec.name);
                cr_assert_eq(a->oom_deflates, b->oom_deflates, "%s: deflates", a->spec.name);
                cr_assert_eq(a->report.seq, b->report.seq, "%s: report number", a->spec.name);
                cr_assert_eq(a->state.memo.last_demand_usec, b->state.memo.last_demand_usec, "%s: memo", a->spec.name);
                cr_assert_eq(a->state.set_balloon_kib, b->state.set_balloon_kib, "%s: set", a->spec.name);
                cr_assert_eq(a->state.actions, b->state.actions, "%s: actions", a->spec.name);
                cr_assert_eq(a->state.watch.last_move_usec, b->state.watch.last_move_usec, "%s: watch", a->spec.name);
                cr_assert_eq(a->state.decision.target_kib, b->state.decision.target_kib, "%s: decision", a->spec.name);
        }
}

/* Runs n mixed VMs on a host of host_kib both ways for `seconds`; returns the fast sim's
 * wakes of all, and the share of VM-steps it slept through, in *ret. */
static void compare(size_t n, uint64_t host_kib, uint64_t seconds, uint64_t *ret_full_ticks, double *ret_slept) {
        struct tide_config cfg;
        struct sim full, fast;

        make_traces();
        config_init(&cfg);
        cr_assert_eq(sim_init(&full, &cfg, host_kib, SEC(1000)), 0);
        cr_assert_eq(sim_init(&fast, &cfg, host_kib, SEC(1000)), 0);
        for (size_t i = 0; i < n; i++) {
                struct sim_vm_spec g = mixed_vm(i);
                cr_assert_geq(sim_add_vm(&full, &g), 0);
                cr_assert_geq(sim_add_vm(&fast, &g), 0);
        }
        cr_assert_eq(sim_set_fast(&fast, true), 0);
        fast.demand_rows = true;
        for (uint64_t t = 0; t < seconds; t++) {
                cr_assert_eq(sim_tick(&full), 0);
                cr_assert_eq(sim_tick(&fast), 0);
                sim_advance(&full, cfg.interval_usec);
                sim_advance(&fast, cfg.interval_usec);
                expect_same_step(&full, &fast, t);
        }
        uint64_t asleep = fast.n_asleep;
        expect_same_vms(&full, &fast);
        cr_assert_eq(fast.replay_mismatches, 0, "a replayed tick was not the hold it slept on");
        cr_assert_eq(sim_set_fast(&fast, false), -EBUSY, "the fast path is chosen before the first tick");
        *ret_full_ticks = fast.full_ticks;
        *ret_slept = (double) fast.slept_steps / (double) (n * seconds);
        cr_log_info("%zu VMs, %" PRIu64 " s: %" PRIu64 " wakes, %" PRIu64 " full ticks, %.1f %% of VM-steps slept, "
                    "%" PRIu64 " asleep at the end",
                    n, seconds, fast.wakes, fast.full_ticks, 100.0 * *ret_slept, asleep);
        sim_done(&full);
        sim_done(&fast);
}

Test(sleep, on_a_roomy_host_the_fast_path_gives_the_full_loops_numbers_and_sleeps_most_steps) {
        uint64_t full_ticks;
        double slept;
        compare(90, MIB(256 * 1024), 3 * 3600, &full_ticks, &slept);
        cr_assert_eq(full_ticks, 0, "a roomy host is never short");
        cr_assert_gt(slept, 0.5, "most VM-steps slept (%.2f)", slept);
}

Test(sleep, on_a_host_that_turns_short_every_vm_is_woken_and_the_numbers_stay_the_same) {
        uint64_t full_ticks;
        double slept;
        /* 90 VMs of 1-1.5 GiB whose demands plus buffers come and go around 80 GiB. */
        compare(90, MIB(80 * 1024), 3 * 3600, &full_ticks, &slept);
        cr_assert_gt(full_ticks, 0, "the host turned short with sleepers counted");
        cr_assert_gt(slept, 0.05, "some VM-steps slept (%.2f)", slept);
}
