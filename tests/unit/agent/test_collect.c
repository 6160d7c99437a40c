/* tide-agent's pure parts: from /proc text to a report tided accepts, finding the port, and the
 * hostile test modes. Fixture trees: tests/fixtures/proc/README.md. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/macro.h"
#include "guest-agent/agent_hostile.h"
#include "guest-agent/agent_port.h"
#include "guest-agent/collect.h"
#include "guest-agent/protocol.h"

#define FIXTURES "tests/fixtures/proc/"

/* Reads a fixture file; NULL when the scenario does not have it (as a guest may not). */
static char *fixture(const char *scenario, const char *path) {
        char root[256];
        char *text = NULL;

        snprintf(root, sizeof(root), FIXTURES "%s", scenario);
        if (read_file_at(root, path, 1 << 20, &text, NULL) < 0)
                return NULL;
        return text;
}

/* The sample of a scenario, read the way `tide-agent --root` reads it. */
static int sample_of(const char *scenario, struct agent_sample *ret) {
        _cleanup_free_ char *mem = fixture(scenario, "/proc/meminfo");
        _cleanup_free_ char *vm = fixture(scenario, "/proc/vmstat");
        _cleanup_free_ char *psi = fixture(scenario, "/proc/pressure/memory");

        return agent_sample_parse(mem, vm, psi, ret);
}

/* Formats the report and parses it back as tided does; returns what tided saw. */
static struct agent_report round_trip(const struct agent_report *r) {
        char buf[AGENT_MSG_MAX], err[128] = "";
        struct agent_msg msg;
        int n;

        n = agent_format_report(buf, sizeof(buf), r);
        cr_assert_gt(n, 0);
        cr_assert_eq(buf[n - 1], '\n');
        cr_assert_eq(agent_msg_parse(buf, (size_t) n - 1, &msg, err, sizeof(err)), 0, "tided refused %s: %s", buf, err);
        cr_assert_eq(msg.type, AGENT_MSG_REPORT);
        return msg.report;
}

/* ---- vmstat ---- */

Test(collect, reads_pgmajfault_from_vmstat) {
        uint64_t v = 0;

        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgfault 100\npgmajfault 42\npgrefill 7\n", &v), 0);
        cr_assert_eq(v, 42);
}

Test(collect, pgmajfault_does_not_match_longer_keys) {
        uint64_t v = 0;

        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault_file 5\npgmajfaults 6\npgmajfault 7", &v), 0);
        cr_assert_eq(v, 7);
        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault_file 5\n", &v), -ENOENT);
}

Test(collect, refuses_a_pgmajfault_line_the_kernel_would_not_write) {
        uint64_t v = 99;

        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault x12\n", &v), -EINVAL);
        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault 12 kB\n", &v), -EINVAL);
        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault 99999999999999999999\n", &v), -EINVAL);
        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault 1\npgmajfault 2\n", &v), -EINVAL);
        cr_assert_eq(agent_vmstat_parse_pgmajfault("pgmajfault \n", &v), -EINVAL);
        cr_assert_eq(v, 99, "wrote its result on failure");
        cr_assert_eq(agent_vmstat_parse_pgmajfault(NULL, &v), -EINVAL);
}

/* ---- samples and reports ---- */

Test(collect, builds_a_report_from_a_guests_proc_files) {
        struct agent_collector c;
        struct agent_sample s;
        struct agent_report r;

        cr_assert_eq(sample_of("agent-guest", &s), 0);
        cr_assert(s.has_pgmajfault);
        cr_assert_eq(s.pgmajfault, 1234);
        cr_assert(s.has_psi);

        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 7, 123456, &r), 0);
        cr_assert_eq(r.seq, 7);
        cr_assert_eq(r.uptime_ms, 123456);
        cr_assert_eq(r.total_kib, 486508);
        cr_assert_eq(r.available_kib, 276332);
        cr_assert_eq(r.committed_as_kib, 214036);
        cr_assert_eq(r.swap_total_kib, 102396);
        cr_assert_eq(r.swap_free_kib, 98300);
        cr_assert(r.has_psi);
        cr_assert_float_eq(r.some_avg10, 2.50, 1e-9);
        cr_assert_float_eq(r.some_avg60, 1.25, 1e-9);
        cr_assert_float_eq(r.full_avg10, 1.10, 1e-9);
        cr_assert_float_eq(r.full_avg60, 0.50, 1e-9);
        cr_assert_eq(r.some_total_usec, 4567890);
        cr_assert_eq(r.full_total_usec, 1234567);
        cr_assert_eq(r.major_faults, 0, "the first report without a baseline has nothing to count from");
        /* 475 MiB: 40 MiB + a quarter (hv_balloon's floor below 512 MiB) */
        cr_assert_eq(r.floor_kib, 40 * 1024 + 486508 / 4);
        cr_assert_eq(r.floor_kib, agent_floor_kib(486508));
}

Test(collect, counts_major_faults_between_reports) {
        struct agent_sample s = { .mem.total_kib = 1 << 20, .has_pgmajfault = true, .pgmajfault = 1000 };
        struct agent_collector c;
        struct agent_report r;

        agent_collector_init(&c, &s); /* the agent's start */
        s.pgmajfault = 1010;
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), 0);
        cr_assert_eq(r.major_faults, 10, "since the baseline");
        s.pgmajfault = 1013;
        cr_assert_eq(agent_report_build(&c, &s, 2, 0, &r), 0);
        cr_assert_eq(r.major_faults, 3, "since the previous report");
        cr_assert_eq(agent_report_build(&c, &s, 3, 0, &r), 0);
        cr_assert_eq(r.major_faults, 0);
}

Test(collect, a_fault_counter_going_back_counts_from_there) {
        struct agent_sample s = { .mem.total_kib = 1 << 20, .has_pgmajfault = true, .pgmajfault = 500 };
        struct agent_collector c;
        struct agent_report r;

        agent_collector_init(&c, &s);
        s.pgmajfault = 20;
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), 0);
        cr_assert_eq(r.major_faults, 0);
        s.pgmajfault = 25;
        cr_assert_eq(agent_report_build(&c, &s, 2, 0, &r), 0);
        cr_assert_eq(r.major_faults, 5);
}

Test(collect, a_sample_without_the_fault_counter_keeps_the_baseline) {
        struct agent_sample s = { .mem.total_kib = 1 << 20, .has_pgmajfault = true, .pgmajfault = 100 };
        struct agent_collector c;
        struct agent_report r;

        agent_collector_init(&c, &s);
        s.has_pgmajfault = false;
        s.pgmajfault = 0;
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), 0);
        cr_assert_eq(r.major_faults, 0);
        s.has_pgmajfault = true;
        s.pgmajfault = 140;
        cr_assert_eq(agent_report_build(&c, &s, 2, 0, &r), 0);
        cr_assert_eq(r.major_faults, 40);
}

Test(collect, omits_psi_when_the_pressure_file_is_absent) {
        struct agent_collector c;
        struct agent_sample s;
        struct agent_report r;

        cr_assert_eq(sample_of("guest-minimal", &s), 0);
        cr_assert_not(s.has_psi);
        cr_assert_not(s.has_pgmajfault);
        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 1, 5, &r), 0);
        cr_assert_not(r.has_psi);
        cr_assert_eq(r.total_kib, 481632);
        cr_assert_eq(r.available_kib, 318876);
        cr_assert_eq(r.committed_as_kib, 0, "absent optional meminfo fields read as 0");
        cr_assert_not(round_trip(&r).has_psi);
}

Test(collect, takes_psi_from_a_host_style_fixture) {
        struct agent_collector c;
        struct agent_sample s;
        struct agent_report r;

        cr_assert_eq(sample_of("contended", &s), 0);
        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 1, 5, &r), 0);
        cr_assert(r.has_psi);
        cr_assert_float_eq(r.some_avg10, 42.17, 1e-9);
        cr_assert_float_eq(r.full_avg60, 12.40, 1e-9);
        cr_assert_eq(r.some_total_usec, 1739204471);
        cr_assert_eq(r.full_total_usec, 702318843);
}

Test(collect, unreadable_psi_or_vmstat_only_drop_those_fields) {
        _cleanup_free_ char *mem = fixture("agent-guest", "/proc/meminfo");
        const char *bad_psi[] = { "psi-garbage", "psi-truncated", "psi-out-of-range" };

        cr_assert_not_null(mem);
        for (size_t i = 0; i < ELEMENTSOF(bad_psi); i++) {
                _cleanup_free_ char *psi = fixture(bad_psi[i], "/proc/pressure/memory");
                struct agent_sample s;

                cr_assert_not_null(psi);
                cr_assert_eq(agent_sample_parse(mem, "pgmajfault oops\n", psi, &s), 0, "%s", bad_psi[i]);
                cr_assert_not(s.has_psi, "%s", bad_psi[i]);
                cr_assert_not(s.has_pgmajfault);
                cr_assert_eq(s.psi.some.total_usec, 0);
                cr_assert_eq(s.mem.total_kib, 486508);
        }
}

Test(collect, refuses_meminfo_it_cannot_parse) {
        const char *bad[] = { "meminfo-garbage", "no-memavailable" };
        struct agent_sample s;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(sample_of(bad[i], &s), -EINVAL, "%s", bad[i]);
        cr_assert_eq(agent_sample_parse(NULL, NULL, NULL, &s), -EINVAL);
}

Test(collect, clamps_odd_kernel_figures_into_what_tided_accepts) {
        struct agent_collector c;
        struct agent_sample s;
        struct agent_report r, seen;

        /* 12 MiB guest; MemAvailable above MemTotal, SwapFree above SwapTotal, Committed_AS 2^51 */
        cr_assert_eq(sample_of("agent-odd", &s), 0);
        cr_assert_not(s.has_pgmajfault, "a garbled pgmajfault is no counter");
        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), 0);
        cr_assert_eq(r.total_kib, 12000);
        cr_assert_eq(r.available_kib, 12000);
        cr_assert_eq(r.swap_free_kib, r.swap_total_kib);
        cr_assert_eq(r.committed_as_kib, UINT64_C(1) << 50);
        cr_assert_eq(r.floor_kib, 12000, "hv_balloon's 8 MiB + half exceeds a 12 MiB guest");
        seen = round_trip(&r);
        cr_assert_eq(seen.available_kib, 12000);
}

Test(collect, clamps_counters_to_their_protocol_caps) {
        struct agent_sample s = { .mem = { .total_kib = 1 << 20, .available_kib = 1 << 19 },
                                  .has_psi = true,
                                  .psi = { .some.total_usec = UINT64_MAX, .full.total_usec = UINT64_MAX, .has_full = true },
                                  .has_pgmajfault = true };
        struct agent_collector c;
        struct agent_report r;

        agent_collector_init(&c, &s);
        s.pgmajfault = UINT64_MAX;
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), 0);
        cr_assert_eq(r.major_faults, UINT64_C(1) << 40);
        cr_assert_eq(r.some_total_usec, UINT64_C(1) << 62);
        cr_assert_eq(r.full_total_usec, UINT64_C(1) << 62);
        round_trip(&r);
}

Test(collect, psi_without_a_full_line_reports_full_as_zero) {
        struct agent_sample s;
        struct agent_collector c;
        struct agent_report r;
        _cleanup_free_ char *mem = fixture("agent-guest", "/proc/meminfo");

        cr_assert_eq(agent_sample_parse(mem, NULL, "some avg10=3.00 avg60=2.00 avg300=1.00 total=99\n", &s), 0);
        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), 0);
        cr_assert(r.has_psi);
        cr_assert_float_eq(r.some_avg10, 3.0, 1e-9);
        cr_assert_eq(r.full_avg10, 0);
        cr_assert_eq(r.full_total_usec, 0);
}

Test(collect, refuses_a_zero_memtotal_and_leaves_the_collector_alone) {
        struct agent_sample s = { .has_pgmajfault = true, .pgmajfault = 77 };
        struct agent_collector c;
        struct agent_report r = { .seq = 4242 };

        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 1, 0, &r), -EINVAL);
        cr_assert_eq(r.seq, 4242);
        cr_assert_not(c.has_last);
}

Test(collect, every_fixture_report_passes_the_hosts_parser) {
        const char *scenarios[] = { "agent-guest", "agent-odd", "idle", "contended", "guest-minimal" };

        for (size_t i = 0; i < ELEMENTSOF(scenarios); i++) {
                struct agent_collector c;
                struct agent_sample s;
                struct agent_report r, seen;

                cr_assert_eq(sample_of(scenarios[i], &s), 0, "%s", scenarios[i]);
                agent_collector_init(&c, NULL);
                cr_assert_eq(agent_report_build(&c, &s, 3, 99, &r), 0);
                seen = round_trip(&r);
                cr_assert_eq(seen.seq, 3);
                cr_assert_eq(seen.total_kib, r.total_kib, "%s", scenarios[i]);
                cr_assert_eq(seen.available_kib, r.available_kib, "%s", scenarios[i]);
                cr_assert_eq(seen.floor_kib, r.floor_kib, "%s", scenarios[i]);
                cr_assert_eq(seen.has_psi, r.has_psi, "%s", scenarios[i]);
                cr_assert_float_eq(seen.some_avg10, r.some_avg10, 0.005, "%s", scenarios[i]);
        }
}

Test(collect, the_lie_is_well_formed_and_only_the_host_can_catch_it) {
        struct agent_collector c;
        struct agent_sample s;
        struct agent_report r, seen;

        cr_assert_eq(sample_of("agent-guest", &s), 0);
        agent_collector_init(&c, NULL);
        cr_assert_eq(agent_report_build(&c, &s, 9, 1000, &r), 0);
        agent_report_lie(&r);
        cr_assert_eq(r.seq, 9, "the lie keeps the session's seq");
        cr_assert_eq(r.uptime_ms, 1000);
        seen = round_trip(&r);
        cr_assert_eq(seen.total_kib, 64 * KIB_PER_GIB);
        cr_assert_geq(seen.total_kib - seen.available_kib, 63 * KIB_PER_GIB, "huge demand");
}

/* ---- the port ---- */

Test(port, finds_the_named_port_through_sysfs) {
        char path[64];

        /* vport0p1 is another channel, vport0p3 has no name: only vport0p2 is ours. */
        cr_assert_eq(agent_port_find(FIXTURES "agent-guest", AGENT_PORT_NAME, path, sizeof(path)), 0);
        cr_assert_str_eq(path, "/dev/vport0p2");
        cr_assert_eq(agent_port_find(FIXTURES "agent-guest", "org.qemu.guest_agent.0", path, sizeof(path)), 0);
        cr_assert_str_eq(path, "/dev/vport0p1");
}

Test(port, falls_back_to_the_udev_link) {
        char path[64];

        cr_assert_eq(agent_port_find(FIXTURES "agent-odd", AGENT_PORT_NAME, path, sizeof(path)), 0);
        cr_assert_str_eq(path, "/dev/virtio-ports/" AGENT_PORT_NAME);
}

Test(port, says_enoent_when_no_port_has_the_name) {
        char path[64];

        cr_assert_eq(agent_port_find(FIXTURES "idle", AGENT_PORT_NAME, path, sizeof(path)), -ENOENT);
        cr_assert_eq(agent_port_find(FIXTURES "agent-guest", "org.example.none", path, sizeof(path)), -ENOENT);
        cr_assert_eq(agent_port_find(FIXTURES "agent-guest", "", path, sizeof(path)), -EINVAL);
        cr_assert_eq(agent_port_find(FIXTURES "agent-guest", "../x", path, sizeof(path)), -EINVAL);
}

Test(port, refuses_a_buffer_too_small_for_the_path) {
        char path[8];

        cr_assert_eq(agent_port_find(FIXTURES "agent-guest", AGENT_PORT_NAME, path, sizeof(path)), -ENAMETOOLONG);
}

/* ---- hostile test modes ---- */

Test(hostile, parses_the_mode_names) {
        enum agent_hostile h = AGENT_HOSTILE_NONE;

        cr_assert_eq(agent_hostile_parse("lie", &h), 0);
        cr_assert_eq(h, AGENT_HOSTILE_LIE);
        cr_assert_eq(agent_hostile_parse("flood", &h), 0);
        cr_assert_eq(h, AGENT_HOSTILE_FLOOD);
        cr_assert_eq(agent_hostile_parse("garbage", &h), 0);
        cr_assert_eq(h, AGENT_HOSTILE_GARBAGE);
        cr_assert_eq(agent_hostile_parse("replay", &h), 0);
        cr_assert_eq(h, AGENT_HOSTILE_REPLAY);
        cr_assert_str_eq(agent_hostile_name(AGENT_HOSTILE_REPLAY), "replay");
        cr_assert_eq(agent_hostile_parse("LIE", &h), -EINVAL);
        cr_assert_eq(agent_hostile_parse("", &h), -EINVAL);
        cr_assert_eq(agent_hostile_parse(NULL, &h), -EINVAL);
}

Test(hostile, garbage_is_one_line_at_a_time_and_tided_refuses_every_line) {
        static char buf[AGENT_GARBAGE_MAX];
        struct agent_report honest = { .seq = 5, .uptime_ms = 777, .total_kib = 500000, .available_kib = 300000,
                                       .floor_kib = 100000, .has_psi = true };
        uint64_t state = 12345;
        unsigned oversized = 0;

        for (int i = 0; i < 5000; i++) {
                size_t n = agent_garbage_line(&state, &honest, buf, sizeof(buf));
                struct agent_msg msg;
                char err[128];
                int r;

                cr_assert_geq(n, 1);
                cr_assert_leq(n, AGENT_GARBAGE_MAX);
                cr_assert_eq(buf[n - 1], '\n');
                cr_assert_null(memchr(buf, '\n', n - 1), "line %d holds a newline before its end", i);
                oversized += n > AGENT_MSG_MAX;
                r = agent_msg_parse(buf, n - 1, &msg, err, sizeof(err));
                cr_assert_lt(r, 0, "line %d was accepted: %.*s", i, (int) min_u64(n, 200), buf);
        }
        cr_assert_gt(oversized, 0, "no oversized line in 5000");
}
