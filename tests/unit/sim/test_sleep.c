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

/* Runs n VMs made by make(i, seed) on a host of host_kib both ways for `seconds` with cfg and
 * balloons at rate; *ret_full_ticks gets how often the fast sim woke every VM, *ret_slept the
 * share of VM-steps it slept through. */
static void compare_with(struct tide_config cfg, uint64_t rate, struct sim_vm_spec (*make)(size_t, uint64_t),
                         uint64_t seed, size_t n, uint64_t host_kib, uint64_t seconds, uint64_t *ret_full_ticks,
                         double *ret_slept) {
        struct sim full, fast;

        make_traces();
        cr_assert_eq(sim_init(&full, &cfg, host_kib, SEC(1000)), 0);
        cr_assert_eq(sim_init(&fast, &cfg, host_kib, SEC(1000)), 0);
        full.balloon_kib_per_sec = fast.balloon_kib_per_sec = rate;
        /* A third of the VMs come later (a failover's), while the others may sleep. */
        size_t first = n - n / 3;
        for (size_t i = 0; i < first; i++) {
                struct sim_vm_spec g = make(i, seed);
                cr_assert_geq(sim_add_vm(&full, &g), 0, "%s", g.name);
                cr_assert_geq(sim_add_vm(&fast, &g), 0);
        }
        cr_assert_eq(sim_set_fast(&fast, true), 0);
        fast.demand_rows = true;
        uint64_t steps = seconds * USEC_PER_SEC / cfg.interval_usec;
        for (uint64_t t = 0; t < steps; t++) {
                if (t == steps / 3)
                        for (size_t i = first; i < n; i++) {
                                struct sim_vm_spec g = make(i, seed);
                                g.stopped = true;
                                g.start_at_usec = full.now_usec - full.start_usec + cfg.interval_usec;
                                cr_assert_geq(sim_add_vm(&full, &g), 0);
                                cr_assert_geq(sim_add_vm(&fast, &g), 0);
                        }
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
        *ret_slept = (double) fast.slept_steps / (double) (n * steps);
        cr_log_info("%zu VMs, %" PRIu64 " steps (seed %" PRIu64 "): %" PRIu64 " wakes, %" PRIu64 " full ticks, "
                    "%.1f %% of VM-steps slept, %" PRIu64 " asleep at the end",
                    n, steps, seed, fast.wakes, fast.full_ticks, 100.0 * *ret_slept, asleep);
        sim_done(&full);
        sim_done(&fast);
}

static struct sim_vm_spec mixed(size_t i, uint64_t seed) {
        (void) seed;
        return mixed_vm(i);
}

static void compare(size_t n, uint64_t host_kib, uint64_t seconds, uint64_t *ret_full_ticks, double *ret_slept) {
        struct tide_config cfg;
        config_init(&cfg);
        compare_with(cfg, SIM_BALLOON_KIB_PER_SEC, mixed, 0, n, host_kib, seconds, ret_full_ticks, ret_slept);
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

static uint64_t next(uint64_t *x) {
        *x = *x * 6364136223846793005u + 1442695040888963407u;
        return *x >> 33;
}

/* VM i of a seeded random host: every kind of VM the simulator has, its sizes uneven, guest
 * kernels of 0-40 MiB, agents whose floor or whose use sits near what the VM holds (where what
 * the core reads stops following the use), virtio-mem in small and large blocks. */
static struct sim_vm_spec random_vm(size_t i, uint64_t seed) {
        uint64_t x = seed * 1000003u + i;
        for (int k = 0; k < 3; k++)
                next(&x);
        struct sim_vm_spec g = { .boot_kib = MIB(512 + 2 * (next(&x) % 1024)), .node = -1, .have_policy = next(&x) % 13 != 0,
                                 .balloon_stats = next(&x) % 5 != 0, .uptime_usec = SEC(next(&x) % 3) * 1800,
                                 .kernel_kib = MIB(next(&x) % 41), .deflate_on_oom = next(&x) % 2 };
        snprintf(g.name, sizeof(g.name), "r%zu", i);
        policy_init(&g.policy);
        g.policy.startup_kib = g.boot_kib;
        g.policy.maximum_kib = g.boot_kib;
        g.policy.minimum_kib = MIB(256 + 2 * (next(&x) % 120));
        g.policy.buffer_pct = 5 + (unsigned) (next(&x) % 50);
        g.policy.weight = 1 + (unsigned) (next(&x) % 100);
        g.policy.dynamic = next(&x) % 11 != 0;
        if (next(&x) % 4 == 0) {
                g.vmem_block_kib = next(&x) % 2 ? MIB(2) : MIB(128);
                g.vmem_max_kib = 4 * g.vmem_block_kib * (1 + next(&x) % 4);
                g.policy.maximum_kib = g.boot_kib + g.vmem_max_kib;
        }
        uint64_t top = g.boot_kib;
        switch (next(&x) % 6) {
        case 0:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_TRACE,
                                                .trace = { .n = SAMPLES, .t_usec = trace_t[i % 4], .kib = trace_kib[i % 4],
                                                           .hold = next(&x) % 2, .offset_usec = SEC(61) * (next(&x) % 5) } };
                break;
        case 1:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_WALK, .base_kib = top / 2,
                                                .step_kib = MIB(next(&x) % 8), .min_kib = top / 4, .max_kib = top,
                                                .seed = next(&x) };
                break;
        case 2:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_STEPS, .base_kib = top / 3, .n_steps = 2,
                                                .steps = { { SEC(300 + next(&x) % 600), top - MIB(next(&x) % 48) },
                                                           { SEC(1200 + next(&x) % 600), top / 2 } } };
                break;
        case 3:
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_RAMP, .base_kib = top / 5, .to_kib = top - MIB(8),
                                                .from_usec = SEC(next(&x) % 600), .len_usec = SEC(60 + next(&x) % 1800) };
                break;
        default:
                /* Near what it holds once tide has sized it, or far below. */
                g.demand = (struct sim_demand){ .kind = SIM_DEMAND_CONSTANT,
                                                .base_kib = next(&x) % 2 ? top - MIB(next(&x) % 24) : top / 3 };
        }
        g.agent = (enum sim_agent[]){ SIM_AGENT_NONE, SIM_AGENT_HONEST, SIM_AGENT_HONEST, SIM_AGENT_LATE,
                                      SIM_AGENT_LIAR, SIM_AGENT_FLOOD, SIM_AGENT_SILENT }[next(&x) % 7];
        g.lag_usec = SEC(next(&x) % 8);
        g.lie_factor = 0.5 + (double) (next(&x) % 100) / 50.0;
        g.silent_usec = SEC(next(&x) % 1200);
        g.floor_kib = next(&x) % 3 == 0 ? g.demand.base_kib + MIB(next(&x) % 16) : 0;
        g.psi_some_avg10 = next(&x) % 9 == 0 ? 5.0 : 0;
        g.oom_at_start = next(&x) % 10 == 0;
        if (next(&x) % 6 == 0)
                g.restart_at_usec = SEC(200 + next(&x) % 1500);
        if (next(&x) % 7 == 0) {
                g.booting = true;
                g.boot_usec = SEC(3 + next(&x) % 20);
                g.boot_touch_kib = top / 2;
                g.boot_touch_kib_per_sec = MIB(16 + next(&x) % 64);
        }
        return g;
}

/* Seeded random hosts, settings and VMs, roomy and tight, ticks of 1-3 s: the two ways agree. */
Test(sleep, random_hosts_and_settings_give_the_same_numbers_both_ways) {
        double slept_sum = 0;
        for (uint64_t seed = 1; seed <= 16; seed++) {
                uint64_t x = seed;
                struct tide_config cfg;
                config_init(&cfg);
                cfg.interval_usec = SEC(1 + next(&x) % 3);
                cfg.deadband_kib = MIB(next(&x) % 4 == 0 ? 0 : 1 + next(&x) % 64);
                cfg.quiet_usec = SEC(next(&x) % 600);
                cfg.grow_step_max_kib = next(&x) % 3 == 0 ? MIB(64) : 0;
                uint64_t rates[] = { 0, MIB(40), SIM_BALLOON_KIB_PER_SEC };
                uint64_t host = MIB(1024) * (seed % 2 ? 200 : 70), full_ticks;
                double slept;
                compare_with(cfg, rates[next(&x) % 3], random_vm, seed, 60, host, 3600, &full_ticks, &slept);
                slept_sum += slept;
        }
        cr_assert_gt(slept_sum / 16, 0.08, "VMs slept (%.2f of VM-steps on average)", slept_sum / 16);
}
