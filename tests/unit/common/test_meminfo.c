#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/meminfo.h"

#define FIXTURES "tests/fixtures/proc/"

static void expect_invalid(const char *text) {
        struct meminfo m = { .total_kib = 4242 };

        cr_assert_eq(meminfo_parse(text, &m), -EINVAL, "meminfo_parse accepted:\n%s", text ? text : "(null)");
        cr_assert_eq(m.total_kib, 4242, "meminfo_parse wrote its result on failure");
}

Test(meminfo, reads_every_field_of_a_host) {
        struct meminfo m;

        cr_assert_eq(meminfo_read(FIXTURES "idle", &m), 0);
        cr_assert_eq(m.total_kib, 65837716);
        cr_assert_eq(m.free_kib, 41203884);
        cr_assert_eq(m.available_kib, 58112936);
        cr_assert_eq(m.buffers_kib, 412764);
        cr_assert_eq(m.cached_kib, 16380228, "Cached, not SwapCached");
        cr_assert_eq(m.swap_total_kib, 8388604);
        cr_assert_eq(m.swap_free_kib, 8388604);
        cr_assert_eq(m.committed_as_kib, 12734120);
}

Test(meminfo, reads_a_host_under_pressure) {
        struct meminfo m;

        cr_assert_eq(meminfo_read(FIXTURES "contended", &m), 0);
        cr_assert_eq(m.available_kib, 1493660);
        cr_assert_eq(m.swap_free_kib, 2127736);
        cr_assert_eq(m.swap_cached_kib, 219340);
        cr_assert_eq(m.committed_as_kib, 79251844);
}

Test(meminfo, defaults_optional_fields_to_zero_in_a_minimal_guest) {
        struct meminfo m;

        cr_assert_eq(meminfo_read(FIXTURES "guest-minimal", &m), 0);
        cr_assert_eq(m.total_kib, 481632);
        cr_assert_eq(m.free_kib, 212340);
        cr_assert_eq(m.available_kib, 318876);
        cr_assert_eq(m.buffers_kib, 0);
        cr_assert_eq(m.cached_kib, 0);
        cr_assert_eq(m.swap_total_kib, 0);
        cr_assert_eq(m.swap_free_kib, 0);
        cr_assert_eq(m.swap_cached_kib, 0);
        cr_assert_eq(m.committed_as_kib, 0);
}

Test(meminfo, rejects_a_kernel_without_memavailable) {
        struct meminfo m;

        cr_assert_eq(meminfo_read(FIXTURES "no-memavailable", &m), -EINVAL);
}

Test(meminfo, rejects_garbage_values) {
        struct meminfo m;

        cr_assert_eq(meminfo_read(FIXTURES "meminfo-garbage", &m), -EINVAL);
}

Test(meminfo, reports_a_missing_file) {
        struct meminfo m;

        cr_assert_eq(meminfo_read(FIXTURES "no-such-scenario", &m), -ENOENT);
}

#define REQUIRED "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 500 kB\n"

Test(meminfo, parses_the_three_required_fields_alone) {
        struct meminfo m;

        cr_assert_eq(meminfo_parse(REQUIRED, &m), 0);
        cr_assert_eq(m.total_kib, 1000);
        cr_assert_eq(m.free_kib, 100);
        cr_assert_eq(m.available_kib, 500);
}

Test(meminfo, accepts_text_without_a_final_newline) {
        struct meminfo m;

        cr_assert_eq(meminfo_parse("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 500 kB", &m), 0);
        cr_assert_eq(m.available_kib, 500);
}

Test(meminfo, ignores_lines_it_does_not_use) {
        struct meminfo m;

        cr_assert_eq(meminfo_parse("HugePages_Total:       0\nSomethingNew: whatever\nno colon here\n" REQUIRED
                                   "SwapCached: 77 kB\nMemTotalX: 1 kB\n",
                                   &m),
                     0);
        cr_assert_eq(m.total_kib, 1000);
        cr_assert_eq(m.cached_kib, 0);
}

Test(meminfo, requires_each_required_field) {
        expect_invalid("MemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 1000 kB\nMemFree: 100 kB\n");
        expect_invalid("");
        expect_invalid(NULL);
}

Test(meminfo, requires_the_kb_unit) {
        expect_invalid("MemTotal: 1000\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 1000 MB\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 1000kB\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 1000 kBytes\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid(REQUIRED "Cached: 5\n");
}

Test(meminfo, rejects_malformed_values) {
        expect_invalid("MemTotal: kB\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: -1000 kB\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 10x00 kB\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 1000 kB junk\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal: 18446744073709551616 kB\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid("MemTotal:\nMemFree: 100 kB\nMemAvailable: 500 kB\n");
        expect_invalid(REQUIRED "SwapFree: lots kB\n");
}

Test(meminfo, rejects_a_repeated_field) {
        expect_invalid(REQUIRED "MemFree: 100 kB\n");
}

Test(meminfo, accepts_the_largest_value) {
        struct meminfo m;

        cr_assert_eq(meminfo_parse("MemTotal: 18446744073709551615 kB\nMemFree: 0 kB\nMemAvailable: 0 kB\n", &m), 0);
        cr_assert_eq(m.total_kib, UINT64_MAX);
}

Test(meminfo, survives_every_truncation_of_a_host_file) {
        static const char text[] = "MemTotal:       65837716 kB\nMemFree:        41203884 kB\n"
                                   "MemAvailable:   58112936 kB\nBuffers:          412764 kB\n";
        char buf[sizeof(text)];

        for (size_t n = 0; n < sizeof(text); n++) {
                struct meminfo m;
                int r;

                memcpy(buf, text, n);
                buf[n] = '\0';
                r = meminfo_parse(buf, &m);
                cr_assert(r == 0 || r == -EINVAL, "cut at %zu: %d", n, r);
                if (n < strlen("MemTotal:       65837716 kB\nMemFree:        41203884 kB\nMemAvailable:   58112936 kB"))
                        cr_assert_eq(r, -EINVAL, "cut at %zu was accepted", n);
        }
}

Test(meminfo, reads_sane_live_values_through_libproc2) {
        struct meminfo live, file;

        cr_assert_eq(meminfo_read_live(&live), 0);
        cr_assert_gt(live.total_kib, 0);
        cr_assert_leq(live.available_kib, live.total_kib);
        cr_assert_leq(live.free_kib, live.total_kib);
        cr_assert_leq(live.swap_free_kib, live.swap_total_kib);

        /* Both paths read the same kernel; MemTotal only moves on hotplug or ballooning. */
        cr_assert_eq(meminfo_read(NULL, &file), 0);
        cr_assert_eq(live.total_kib, file.total_kib);
        cr_assert_eq(live.swap_total_kib, file.swap_total_kib);
}
