/* The trace reader: the format of shared/traces, every field checked, gaps and repeated
 * instants as the real trace has them, and a trace VM's use as the simulator's demand. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "sim/trace.h"

static struct sim_trace_set t;
static char err[256];

static void teardown(void) {
        sim_trace_set_done(&t);
}

TestSuite(trace, .fini = teardown);

static int feed_all(const char *const *lines) {
        int r = 0;
        for (size_t i = 0; lines[i] && r == 0; i++)
                r = sim_trace_feed(&t, lines[i], err, sizeof(err));
        return r;
}

Test(trace, reads_samples_per_vm_with_gaps_and_repeated_instants) {
        const char *lines[] = { SIM_TRACE_HEADER "\n",
                                "1,1000,2,1.50,2097152,524288\n",
                                "1,1300,2,0.50,2097152,1048576\n",
                                "1,1300,2,0.50,2097152,786432\n", /* the same instant: the later wins */
                                "1,1600,0,0.00,0,0\n",            /* reported nothing: a gap */
                                "1,1900,2,0.40,2097152,262144\n",
                                "2,1000,1,3.00,1048576,102400\n",
                                NULL };
        cr_assert_eq(feed_all(lines), 0, "%s", err);
        cr_assert_eq(sim_trace_finish(&t, 0, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(t.n, 2);
        cr_assert_eq(t.vms[0].n, 3);
        cr_assert_eq(t.vms[0].used_kib[1], 786432);
        cr_assert_eq(t.vms[0].t_usec[2], UINT64_C(900) * 1000000, "relative to the first sample");
        cr_assert_eq(t.vms[0].provisioned_kib, 2097152);
        cr_assert_eq(t.gaps, 1);
        cr_assert_eq(t.duplicates, 1);
}

Test(trace, bad_lines_name_the_line_and_the_field) {
        const char *header[] = { "vm,t,cores\n", NULL };
        cr_assert_eq(feed_all(header), -EINVAL);
        cr_assert_str_eq(err, "line 1: header: expected " SIM_TRACE_HEADER);
        sim_trace_set_done(&t);

        const char *cases[][2] = {
                { "1,1000,2,lots,2097152,524288\n", "line 2: cpu_pct: expected a percentage" },
                { "x,1000,2,1,2097152,524288\n", "line 2: vm: expected a VM number" },
                { "1,1000,2,1,2097152\n", "line 2: mem_used_kib: expected KiB, at most 64 TiB" },
                { "1,1000,2,1,2097152,5,7\n", "line 2: mem_used_kib: extra fields after it" },
                { "1,1000,2,1,99999999999999999999,5\n", "line 2: mem_provisioned_kib: expected KiB, at most 64 TiB" },
                { "1,-5,2,1,2097152,5\n", "line 2: t_s: expected Unix seconds" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *lines[] = { SIM_TRACE_HEADER "\n", cases[i][0], NULL };
                cr_expect_eq(feed_all(lines), -EINVAL, "%s", cases[i][0]);
                cr_expect_str_eq(err, cases[i][1]);
                sim_trace_set_done(&t);
        }
        const char *back[] = { SIM_TRACE_HEADER "\n", "1,1000,2,1,2097152,5\n", "1,900,2,1,2097152,5\n", NULL };
        cr_assert_eq(feed_all(back), -EINVAL);
        cr_assert_str_eq(err, "line 3: t_s: before this VM's previous sample");
}

Test(trace, hours_keep_only_the_first_samples) {
        const char *lines[] = { SIM_TRACE_HEADER "\n", "1,1000,2,1,2097152,100\n", "1,4600,2,1,2097152,200\n",
                                "1,8200,2,1,2097152,300\n", NULL };
        cr_assert_eq(feed_all(lines), 0, "%s", err);
        cr_assert_eq(sim_trace_finish(&t, UINT64_C(3600) * 1000000 + 1, err, sizeof(err)), 0);
        cr_assert_eq(t.vms[0].n, 2);
        sim_trace_set_done(&t);
        const char *late[] = { SIM_TRACE_HEADER "\n", "1,1000,2,1,0,0\n", NULL };
        cr_assert_eq(feed_all(late), 0);
        cr_assert_eq(sim_trace_finish(&t, 0, err, sizeof(err)), -EINVAL, "only gaps: nothing to simulate");
}

Test(trace, demand_is_interpolated_or_held_and_flat_outside) {
        const char *lines[] = { SIM_TRACE_HEADER "\n", "1,1000,2,1,2097152,100\n", "1,1100,2,1,2097152,300\n", NULL };
        cr_assert_eq(feed_all(lines), 0, "%s", err);
        cr_assert_eq(sim_trace_finish(&t, 0, err, sizeof(err)), 0);
        struct sim_demand d = { .kind = SIM_DEMAND_TRACE, .trace = sim_trace_of(&t.vms[0], false) };
        cr_assert_eq(sim_demand_at(&d, 0), 100);
        cr_assert_eq(sim_demand_at(&d, UINT64_C(50) * 1000000), 200, "halfway");
        cr_assert_eq(sim_demand_at(&d, UINT64_C(500) * 1000000), 300, "the last holds");
        d.trace.hold = true;
        cr_assert_eq(sim_demand_at(&d, UINT64_C(99) * 1000000), 100, "held until the next sample");
        cr_assert_eq(sim_demand_at(&d, UINT64_C(100) * 1000000), 300);
}

/* A trace whose first sample is at 0 s is timed from it, like any other. */
Test(trace, a_first_sample_at_time_zero_counts) {
        const char *lines[] = { SIM_TRACE_HEADER "\n", "1,0,2,1,2097152,100\n", "1,600,2,1,2097152,300\n", NULL };
        cr_assert_eq(feed_all(lines), 0, "%s", err);
        cr_assert_eq(sim_trace_finish(&t, 0, err, sizeof(err)), 0);
        cr_assert_eq(t.t0_s, 0);
        cr_assert_eq(t.vms[0].t_usec[1], UINT64_C(600) * 1000000);
}

/* Rows may interleave VMs: each row still finds its VM. */
Test(trace, interleaved_vms_keep_their_own_samples) {
        const char *lines[] = { SIM_TRACE_HEADER "\n", "7,10,1,1,1048576,1\n", "9,10,1,1,1048576,2\n",
                                "7,20,1,1,1048576,3\n", "9,20,1,1,1048576,4\n", NULL };
        cr_assert_eq(feed_all(lines), 0, "%s", err);
        cr_assert_eq(t.n, 2);
        cr_assert_eq(t.vms[0].n, 2);
        cr_assert_eq(t.vms[0].used_kib[1], 3);
        cr_assert_eq(t.vms[1].used_kib[1], 4);
}

/* A sample using more than the VM is provisioned with is taken as using all of it. */
Test(trace, use_above_the_provisioned_size_is_capped_at_it) {
        const char *lines[] = { SIM_TRACE_HEADER "\n", "46,10,8,0,301056,15728640\n", NULL };
        cr_assert_eq(feed_all(lines), 0, "%s", err);
        cr_assert_eq(t.vms[0].used_kib[0], 301056);
        cr_assert_eq(t.capped, 1);
}
